//! The service's typed configuration, built by the binary from its layered settings (defaults, file,
//! environment, flags: see docs/configuration.md) and passed explicitly to [`crate::Application::build`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use incubator_antivirus::ScannerConfig;
use incubator_store::DbConfig;
use ipnet::IpNet;

pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;

#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// The SQLite file (when no database URL) and the uploaded evidence.
    pub data_dir: PathBuf,
    pub db: DbConfig,
    /// Folder whose `*.yaml` workflow definitions are deployed at start-up; unchanged ones are a no-op.
    pub workflows_dir: Option<PathBuf>,
    /// Largest evidence file accepted; larger uploads get 413.
    pub max_upload_bytes: usize,
    /// The antivirus uploads wait for before they are served; `None` serves them on arrival.
    pub antivirus: Option<ScannerConfig>,
    /// Largest JSON body accepted; larger bodies get 413.
    pub max_json_bytes: usize,
    /// Longest a request may take, body included (uploads have their own, longer limit).
    pub request_timeout: Duration,
    pub upload_timeout: Duration,
    /// The address users reach the service at; `https://…` turns HSTS on.
    pub public_url: Option<String>,
    /// Origins allowed to call the API from a browser; empty (the default) closes CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see [`crate::auth::ClientIp`]); empty (the
    /// default) believes no one.
    pub trusted_proxies: Vec<IpNet>,
    /// When set, `GET /metrics` requires `Authorization: Bearer <it>`; unset leaves it open.
    pub metrics_bearer_token: Option<String>,
    /// How long an API token stays valid unless revoked.
    pub token_lifetime: Duration,
    pub login_throttle: LoginThrottleConfig,
    /// A browser session unused this long ends.
    pub session_idle_timeout: Duration,
    /// A browser session ends this long after sign-in, however active.
    pub session_lifetime: Duration,
    /// Shift of the programme's clock from the real one: zero in production; a demo loaded as of a past date
    /// runs its programme from that date so that deadlines and forecasts read as they did then. Security
    /// timing (sessions, tokens, throttling) always uses the real clock.
    pub programme_clock_offset: chrono::TimeDelta,
}

/// Slowing down repeated failed logins per (email, client address): a delay, never a lock-out, so an
/// attacker cannot lock a council out of its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottleConfig {
    /// Failures answered at once before the delay starts.
    pub free_failures: u32,
    /// Delay after the first counted failure; doubles with each further one.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl ServerConfig {
    /// The defaults, with the data directory given.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            db: DbConfig::default(),
            workflows_dir: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            antivirus: None,
            max_json_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(300),
            public_url: None,
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            metrics_bearer_token: None,
            token_lifetime: Duration::from_secs(30 * 24 * 3600),
            login_throttle: LoginThrottleConfig::default(),
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
            programme_clock_offset: chrono::TimeDelta::zero(),
        }
    }

    /// HSTS only makes sense once users reach the service over HTTPS (behind a TLS-terminating proxy).
    pub fn behind_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
    }
}

/// Written by hand so that a database password in the URL and the metrics token are never printed.
impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.db.url.as_deref().map(redact_url))
            .field("sqlite_sync", &self.db.sqlite_sync)
            .field("workflows_dir", &self.workflows_dir)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("antivirus", &self.antivirus)
            .field("max_json_bytes", &self.max_json_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("upload_timeout", &self.upload_timeout)
            .field("public_url", &self.public_url)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "metrics_bearer_token",
                &self.metrics_bearer_token.as_ref().map(|_| "***"),
            )
            .field("token_lifetime", &self.token_lifetime)
            .field("login_throttle", &self.login_throttle)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("session_lifetime", &self.session_lifetime)
            .field("programme_clock_offset", &self.programme_clock_offset)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        let mut config = ServerConfig::new("/tmp/x");
        config.db.url = Some("postgres://app:s3cret@db/x".into());
        config.metrics_bearer_token = Some("m3trics".into());
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("m3trics"),
            "{shown}"
        );
    }

    #[test]
    fn hsts_follows_the_public_url() {
        let mut config = ServerConfig::new("/tmp/x");
        assert!(!config.behind_https());
        config.public_url = Some("HTTPS://incubator.example".into());
        assert!(config.behind_https());
    }
}
