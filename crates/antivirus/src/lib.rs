//! Antivirus scanning of uploaded evidence through clamd. Uploads are stored `pending` (see
//! `incubator_store::scans`); the [`Scanner`] here claims them one at a time, streams their bytes to clamd
//! (INSTREAM) and records the verdict: clean documents are served from then on, infected ones quarantined.
//! Without a verdict (clamd down, too slow, an error) a document stays pending and is tried again after a
//! backoff, however long that takes: nothing is served unscanned.

mod clamd;
mod config;
mod worker;

pub use clamd::{Clamd, ClamdAddress, ScanError, Verdict};
pub use config::ScannerConfig;
pub use worker::{PassReport, Scanner};
