//! `examples/api-walkthrough.sh`, the curl walk through the API that the README points newcomers to, runs
//! as written against the binary under test: if the API changes under it, this fails.

use std::process::Command;

#[test]
fn the_curl_walkthrough_runs_from_start_to_end() {
    let tools = ["curl", "jq"];
    if let Some(missing) = tools.iter().find(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
    }) {
        assert!(
            std::env::var("CI").is_err(),
            "{missing} is missing in CI: .ci/test must install it"
        );
        eprintln!("SKIPPED: the curl walk-through needs {missing}");
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/api-walkthrough.sh"
    );
    let output = Command::new("bash")
        .arg(script)
        .env("INCUBATOR", env!("CARGO_BIN_EXE_incubator"))
        .env_remove("BASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "{\"requirement\":\"council_backed\",\"status\":\"rejected\"}",
        "  intercert_commitment: accepted",
        "→ legal_structure (version",
        "retain_project project_identification → legal_structure",
        "## Done: project 1 is at subsidy",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
}
