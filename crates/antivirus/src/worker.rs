//! The scanner: claims pending documents one at a time (a lease keeps replicas off each other's), scans
//! their bytes and records the verdict.

use chrono::{TimeDelta, Utc};
use incubator_store::entities::documents;
use incubator_store::scans::{self, QuarantineBytes};
use incubator_store::{Store, StoreResult};
use tokio::sync::watch;

use crate::clamd::{Clamd, Verdict};
use crate::config::ScannerConfig;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub clean: usize,
    pub infected: usize,
    /// Tries that gave no verdict; those documents stay pending, due again after their backoff.
    pub failed: usize,
}

#[derive(Debug)]
pub struct Scanner {
    store: Store,
    clamd: Clamd,
    config: ScannerConfig,
    lease: TimeDelta,
}

impl Scanner {
    pub fn new(store: Store, config: ScannerConfig) -> Result<Self, String> {
        config.check()?;
        let lease = TimeDelta::from_std(config.lease)
            .map_err(|_| format!("the antivirus lease {:?} is too long", config.lease))?;
        Ok(Self {
            clamd: Clamd::new(config.clamd.clone(), config.timeout),
            store,
            config,
            lease,
        })
    }

    /// Scans every pending document that is due, until none is (or `stop` turns true between two).
    pub async fn pass(&self, stop: &watch::Receiver<bool>) -> StoreResult<PassReport> {
        let mut report = PassReport::default();
        while !*stop.borrow() {
            let Some(document) = scans::claim_next(self.store.db(), Utc::now(), self.lease).await?
            else {
                break;
            };
            match self.scan(&document).await? {
                Some(Verdict::Clean) => report.clean += 1,
                Some(Verdict::Infected(_)) => report.infected += 1,
                None => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// Scans one claimed document and records what came of it; `None` when no verdict was reached.
    async fn scan(&self, document: &documents::Model) -> StoreResult<Option<Verdict>> {
        let verdict = match self.store.blobs().get(&document.sha256).await {
            Ok(bytes) => self.clamd.scan(&bytes).await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match verdict {
            Ok(Verdict::Clean) => {
                scans::record_clean(self.store.db(), document.id, Utc::now()).await?;
                tracing::info!(document = document.id, "antivirus: clean");
                Ok(Some(Verdict::Clean))
            }
            Ok(Verdict::Infected(signature)) => {
                let infected = self
                    .store
                    .write(QuarantineBytes {
                        sha256: document.sha256.clone(),
                        signature: signature.clone(),
                        now: Utc::now() + self.config.programme_clock_offset,
                    })
                    .await?;
                // After the rows say so: a crash between the two leaves infected bytes in the store, never
                // served, and moved by the next upload of them.
                self.store.blobs().quarantine(&document.sha256).await?;
                tracing::warn!(document = document.id, %signature, documents = ?infected,
                               sha256 = %document.sha256, "antivirus: infected, quarantined");
                Ok(Some(Verdict::Infected(signature)))
            }
            Err(error) => {
                let attempts = u32::try_from(document.scan_attempts).unwrap_or(u32::MAX);
                let delay =
                    TimeDelta::from_std(self.config.backoff(attempts)).unwrap_or(TimeDelta::MAX);
                let retry_at = Utc::now() + delay;
                scans::record_failure(self.store.db(), document.id, &error, retry_at).await?;
                tracing::warn!(document = document.id, attempts, %error, %retry_at,
                               "antivirus: no verdict, the document stays pending");
                Ok(None)
            }
        }
    }

    /// Scans until `shutdown` turns true, sleeping the poll interval whenever nothing is due.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(clamd = %self.config.clamd, "antivirus scanner started");
        while !*shutdown.borrow() {
            if let Err(error) = self.pass(&shutdown).await {
                tracing::error!(%error, "antivirus pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("antivirus scanner stopped");
    }
}
