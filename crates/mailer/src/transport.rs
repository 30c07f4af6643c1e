//! Where mails go: one SMTP transport (with its connection pool) built once and reused for every mail, or
//! `.eml` files when no SMTP server is configured, so the embedded default works offline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, redact_url};
use crate::error::{MailError, MailResult};

/// Whether trying again later may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 4xx replies, refused or dropped connections, timeouts: the server or the network may recover.
    Transient,
    /// 5xx replies and messages lettre cannot send at all: the same mail will fail the same way.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    pub class: ErrorClass,
    pub message: String,
}

impl SendFailure {
    pub fn permanent(message: impl Into<String>) -> SendFailure {
        SendFailure {
            class: ErrorClass::Permanent,
            message: message.into(),
        }
    }

    pub fn transient(message: impl Into<String>) -> SendFailure {
        SendFailure {
            class: ErrorClass::Transient,
            message: message.into(),
        }
    }
}

/// Sorts lettre's SMTP errors as vaultwarden's `src/mail.rs` does: the reply code decides when there is one.
pub fn classify(error: &lettre::transport::smtp::Error) -> ErrorClass {
    if error.is_permanent() || error.is_client() {
        ErrorClass::Permanent
    } else {
        // 4xx, timeouts, connection and TLS failures, a pool shut down: all worth another try.
        ErrorClass::Transient
    }
}

#[derive(Debug, Clone)]
pub enum Transport {
    Smtp(Arc<Smtp>),
    Files(PathBuf),
}

/// The SMTP transport and its connection pool, and what it takes to build them again.
pub struct Smtp {
    current: Mutex<AsyncSmtpTransport<Tokio1Executor>>,
    url: String,
    timeout: Duration,
    /// Bounds a whole send: lettre's timeout applies to each socket operation, and a server that takes the
    /// message and never answers would otherwise hold a send (and the lease the worker counts on) for as
    /// long as its pooled connection is tried again.
    limit: Duration,
}

impl std::fmt::Debug for Smtp {
    // The URL may carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("url", &redact_url(&self.url))
            .field("timeout", &self.timeout)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    fn build(url: &str, timeout: Duration) -> MailResult<AsyncSmtpTransport<Tokio1Executor>> {
        Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Config(format!("SMTP_URL `{}`: {e}", redact_url(url))))?
            .timeout(Some(timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(4)
                    .idle_timeout(Duration::from_secs(30)),
            )
            .build())
    }

    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    async fn send(&self, message: Message) -> Result<(), SendFailure> {
        match tokio::time::timeout(self.limit, self.transport().send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(SendFailure {
                class: classify(&error),
                message: error_chain(&error),
            }),
            Err(_) => {
                // The cut-off exchange's connection would go back to the pool still waiting for the
                // server's answer, and the next mail would wait on it: start a new pool instead.
                if let Ok(fresh) = Smtp::build(&self.url, self.timeout) {
                    *self
                        .current
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
                }
                Err(SendFailure::transient(format!(
                    "the SMTP exchange timed out after {:?}: the server stopped answering",
                    self.limit
                )))
            }
        }
    }
}

impl Transport {
    pub fn from_config(config: &MailConfig) -> MailResult<Transport> {
        match &config.smtp_url {
            Some(url) => Ok(Transport::Smtp(Arc::new(Smtp {
                current: Mutex::new(Smtp::build(url, config.smtp_timeout)?),
                url: url.clone(),
                timeout: config.smtp_timeout,
                limit: config.send_limit(),
            }))),
            None => {
                std::fs::create_dir_all(&config.outbox_dir).map_err(|e| {
                    MailError::Config(format!(
                        "cannot create the mail folder {}: {e}",
                        config.outbox_dir.display()
                    ))
                })?;
                Ok(Transport::Files(config.outbox_dir.clone()))
            }
        }
    }

    /// Hands one mail over. `file_stem` names the `.eml` file, so a resent mail overwrites itself.
    pub async fn send(&self, message: Message, file_stem: &str) -> Result<(), SendFailure> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).await,
            Transport::Files(dir) => {
                let dir = dir.clone();
                let name = format!("{file_stem}.eml");
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
                    .await
                    .map_err(|e| SendFailure::transient(format!("writer task failed: {e}")))?
                    .map_err(|e| SendFailure::transient(format!("cannot write the mail file: {e}")))
            }
        }
    }
}

/// Written beside, flushed, then renamed: a reader never sees half a mail, a crash leaves at most a
/// temporary file.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = tempfile_in(dir)?;
    file.1.write_all(bytes)?;
    file.1.sync_all()?;
    std::fs::rename(&file.0, dir.join(name))
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
