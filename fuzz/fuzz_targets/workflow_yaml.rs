//! The workflow YAML loader on arbitrary text, as `incubator workflow validate` and the registry run it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Callers read definitions as UTF-8 text and refuse anything else before the engine sees it.
    if let Ok(source) = std::str::from_utf8(data) {
        incubator_fuzz::check_load(source);
    }
});
