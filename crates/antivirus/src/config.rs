use std::time::Duration;

use crate::clamd::ClamdAddress;

/// How the scanner reaches clamd and paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerConfig {
    pub clamd: ClamdAddress,
    /// Longest one scan may take, connection included; past it the try fails and is retried.
    pub timeout: Duration,
    /// How long the scanner sleeps when nothing is due.
    pub poll_interval: Duration,
    /// First retry delay after a failed try, doubled per attempt, then jittered.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// How long a claimed document belongs to one scanner; a crashed scanner's document comes back after it.
    pub lease: Duration,
    /// Shift of the programme's clock, which dates the audit events (see the server's config); leases and
    /// retries run on the real clock.
    pub programme_clock_offset: chrono::TimeDelta,
}

impl ScannerConfig {
    pub fn new(clamd: ClamdAddress) -> Self {
        Self {
            clamd,
            timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(5 * 60),
            programme_clock_offset: chrono::TimeDelta::zero(),
        }
    }

    /// The delay before the try after `attempts` failed ones: `base × 2^(attempts-1)`, capped, then jittered
    /// into its upper half so that documents failed together do not come back together.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let delay = self
            .backoff_base
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_cap);
        let half = delay / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// A lease no longer than a scan would let a second scanner take a document still being scanned.
    pub fn check(&self) -> Result<(), String> {
        if self.lease <= self.timeout * 2 {
            return Err(format!(
                "the antivirus lease ({:?}) must be above twice its timeout ({:?}), or two scanners could take \
                 one document",
                self.lease, self.timeout
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut config = ScannerConfig::new(ClamdAddress::Unix("/run/clamd.ctl".into()));
        config.backoff_base = Duration::from_secs(10);
        config.backoff_cap = Duration::from_secs(60);
        for (attempts, full) in [(1, 10), (2, 20), (3, 40), (4, 60), (40, 60)] {
            let delay = config.backoff(attempts);
            let full = Duration::from_secs(full);
            assert!(delay >= full / 2 && delay <= full, "{attempts}: {delay:?}");
        }
    }

    #[test]
    fn a_lease_shorter_than_two_scans_is_refused() {
        let mut config = ScannerConfig::new(ClamdAddress::Unix("/run/clamd.ctl".into()));
        config.timeout = Duration::from_secs(60);
        config.lease = Duration::from_secs(120);
        assert!(config.check().is_err());
        config.lease = Duration::from_secs(121);
        assert!(config.check().is_ok());
    }
}
