//! The mailer's configuration: built explicitly by the service or the command line, passed down, never
//! read from a global.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use incubator_notify::PublicUrl;
use lettre::message::Mailbox;

use crate::error::{MailError, MailResult};

/// The sender when the deployment names none.
pub const DEFAULT_MAIL_FROM: &str = "Incubateur CSIRT <incubateur@localhost>";
/// Where links point when the deployment names no public address: the service's default local address.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

#[derive(Clone)]
pub struct MailConfig {
    /// `smtp://host:port` (plain), `smtp://…?tls=required` (STARTTLS), `smtps://user:pass@host` (TLS), as
    /// lettre reads it. `None`: mails are written as `.eml` files under [`Self::outbox_dir`].
    pub smtp_url: Option<String>,
    pub mail_from: Mailbox,
    /// Links in mails hang off it.
    pub public_url: PublicUrl,
    /// Where `.eml` files go when there is no SMTP server: `DATA_DIR/outbox/` by default.
    pub outbox_dir: PathBuf,
    /// Attempts (each claim counts one) before a mail is marked dead.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, capped at [`Self::backoff_cap`], then jittered.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// How long a claimed mail is a worker's own; a crashed worker's mails come back after it.
    pub lease: Duration,
    /// Mails claimed at once by one worker.
    pub batch_size: u64,
    /// How long the worker sleeps when the outbox has nothing due.
    pub poll_interval: Duration,
    /// After a batch that took every due mail, how long the worker lets new ones gather before it claims
    /// again: under a steady stream of transitions, one claim and one read transaction serve many mails
    /// instead of one each, and the mails' work stays off the requests' way.
    pub gather: Duration,
    /// How often the service runs a scheduler pass.
    pub scheduler_interval: Duration,
    /// SMTP connect and command timeout.
    pub smtp_timeout: Duration,
    /// Shift of the programme's clock (a demo loaded as of a past date): the scheduler plans reminders by
    /// it; delivery retries and leases keep the real clock.
    pub programme_clock_offset: chrono::TimeDelta,
}

impl MailConfig {
    /// Defaults around the three things only the deployment knows.
    pub fn new(mail_from: Mailbox, public_url: PublicUrl, data_dir: &Path) -> MailConfig {
        MailConfig {
            smtp_url: None,
            mail_from,
            public_url,
            outbox_dir: data_dir.join("outbox"),
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(6 * 3600),
            lease: Duration::from_secs(120),
            batch_size: 32,
            poll_interval: Duration::from_secs(2),
            gather: Duration::from_millis(100),
            scheduler_interval: Duration::from_secs(300),
            smtp_timeout: Duration::from_secs(30),
            programme_clock_offset: chrono::TimeDelta::zero(),
        }
    }

    /// The longest one send may take, whatever the server does: the liveness check of a pooled connection,
    /// a new connection, then the exchange, each bounded by the SMTP timeout. A send that reaches it is cut
    /// off and counts as a transient failure.
    pub fn send_limit(&self) -> Duration {
        self.smtp_timeout * 3
    }

    /// The domain of the sender's address, which Message-IDs end with.
    pub fn message_id_domain(&self) -> &str {
        self.mail_from.email.domain()
    }
}

pub fn parse_mailbox(text: &str) -> MailResult<Mailbox> {
    text.parse().map_err(|e| {
        MailError::Config(format!(
            "`{text}` is not a mailbox such as `Incubateur CSIRT <csirt@example.org>`: {e}"
        ))
    })
}

pub fn parse_public_url(text: &str) -> MailResult<PublicUrl> {
    PublicUrl::parse(text).map_err(|e| MailError::Config(e.to_string()))
}

/// The SMTP URL may carry a password: shown without it.
impl fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from.to_string())
            .field("public_url", &self.public_url)
            .field("outbox_dir", &self.outbox_dir)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("lease", &self.lease)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("gather", &self.gather)
            .field("scheduler_interval", &self.scheduler_interval)
            .field("smtp_timeout", &self.smtp_timeout)
            .finish()
    }
}

/// `smtps://user:secret@host` → `smtps://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact_url("smtps://bob:hunter2@mail.example.org:465"),
            "smtps://bob:***@mail.example.org:465"
        );
        assert_eq!(redact_url("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
        let mut config = MailConfig::new(
            parse_mailbox(DEFAULT_MAIL_FROM).unwrap(),
            parse_public_url(DEFAULT_PUBLIC_URL).unwrap(),
            Path::new("/data"),
        );
        config.smtp_url = Some("smtp://u:topsecret@h".into());
        assert!(!format!("{config:?}").contains("topsecret"));
        assert_eq!(config.message_id_domain(), "localhost");
        assert_eq!(config.outbox_dir, Path::new("/data/outbox"));
        assert!(parse_mailbox("nope").is_err());
    }
}
