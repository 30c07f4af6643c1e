//! The delivery worker: claims due outbox rows under a lease, renders each, hands it to the transport, and
//! records the outcome: sent, tried again later (transient failure, with backoff and jitter), or dead
//! (permanent failure, or the last attempt failed).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use incubator_notify::{Lang, Templates};
use incubator_store::entities::outbox;
use incubator_store::{Store, delivery};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use tokio::sync::watch;

use crate::config::MailConfig;
use crate::error::{MailError, MailResult};
use crate::render::{Renderer, recipients};
use crate::transport::{ErrorClass, SendFailure, Transport};

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
}

impl std::ops::AddAssign for BatchReport {
    fn add_assign(&mut self, other: BatchReport) {
        self.claimed += other.claimed;
        self.sent += other.sent;
        self.retried += other.retried;
        self.dead += other.dead;
    }
}

#[derive(Debug, Clone)]
pub struct Worker {
    store: Store,
    templates: Arc<Templates>,
    config: Arc<MailConfig>,
    transport: Transport,
    id: String,
}

/// The Message-ID of a row: the same on every attempt, so that a mail sent twice (see `docs/mail.md`) is
/// recognisably one mail; the creation instant keeps ids of different databases apart.
pub fn message_id(row: &outbox::Model, domain: &str) -> String {
    format!(
        "<outbox.{}.{}@{domain}>",
        row.id,
        row.created_at.timestamp_micros()
    )
}

/// The delay before attempt `attempts + 1`: `base × 2^(attempts-1)`, capped, then jittered into its upper
/// half so that mails failed together do not come back together.
pub fn backoff(config: &MailConfig, attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let delay = config
        .backoff_base
        .saturating_mul(1u32 << exponent)
        .min(config.backoff_cap);
    let half = delay / 2;
    half + half.mul_f64(fastrand::f64())
}

impl Worker {
    /// Builds the transport once; every mail of this worker goes through it.
    pub fn new(
        store: Store,
        templates: Arc<Templates>,
        config: Arc<MailConfig>,
    ) -> MailResult<Worker> {
        if config.lease <= config.send_limit() {
            return Err(MailError::Config(format!(
                "the lease ({:?}) must be above three times the SMTP timeout ({:?}: the longest a send may take), \
                 or no mail could be sent safely",
                config.lease, config.smtp_timeout
            )));
        }
        let transport = Transport::from_config(&config)?;
        let id = format!(
            "{}:{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Worker {
            store,
            templates,
            config,
            transport,
            id,
        })
    }

    /// The lease holder name written on claimed rows.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims one batch of due mails at `now`, renders them all, then delivers them one after the other.
    pub async fn run_batch(&self, now: DateTime<Utc>) -> MailResult<BatchReport> {
        let lease_until = now + self.config.lease;
        let rows = self
            .store
            .write(delivery::Claim {
                worker: self.id.clone(),
                now,
                lease_until,
                limit: self.config.batch_size,
            })
            .await?;
        let mut report = BatchReport {
            claimed: rows.len(),
            ..BatchReport::default()
        };
        let messages = self.render_all(&rows).await;
        // Stop while a mail's send could still end before the lease does: past that, another worker may
        // claim the rest, and both would send them. What is left is given back, its attempt uncounted.
        let stop_at = lease_until - self.config.send_limit();
        let mut mails = rows.iter().zip(messages);
        while let Some((row, message)) = mails.next() {
            if Utc::now() >= stop_at {
                let rest: Vec<i64> = std::iter::once(row.id)
                    .chain(mails.by_ref().map(|(r, _)| r.id))
                    .collect();
                tracing::warn!(
                    mails = rest.len(),
                    "lease nearly over: the rest of the batch is given back untried"
                );
                delivery::release(self.store.db(), &rest, &self.id, Utc::now()).await?;
                break;
            }
            let sent = match message {
                Ok(message) => {
                    self.transport
                        .send(message, &format!("outbox-{}", row.id))
                        .await
                }
                Err(failure) => Err(failure),
            };
            match sent {
                Ok(()) => {
                    // Recorded before the next send: a crash sends again at most the mail in flight
                    // (docs/mail.md).
                    let sent = delivery::MarkSent {
                        id: row.id,
                        now: Utc::now(),
                    };
                    self.store.write(sent).await?;
                    report.sent += 1;
                }
                Err(failure) => self.record_failure(row, &failure, &mut report).await?,
            }
        }
        Ok(report)
    }

    /// A failed mail: dead when the failure is permanent or its attempts are spent, else tried again later.
    async fn record_failure(
        &self,
        row: &outbox::Model,
        failure: &SendFailure,
        report: &mut BatchReport,
    ) -> MailResult<()> {
        let attempts = u32::try_from(row.attempts).unwrap_or(0);
        if failure.class == ErrorClass::Permanent || attempts >= self.config.max_attempts {
            tracing::warn!(mail = row.id, attempts, error = %failure.message, "mail is dead");
            delivery::mark_dead(self.store.db(), row.id, &self.id, &failure.message).await?;
            report.dead += 1;
        } else {
            let next = Utc::now() + backoff(&self.config, attempts);
            tracing::info!(mail = row.id, attempts, %next, error = %failure.message, "mail retried later");
            delivery::reschedule(self.store.db(), row.id, &self.id, next, &failure.message).await?;
            report.retried += 1;
        }
        Ok(())
    }

    /// Every claimed mail as a message, before the first is sent: their reads share one read transaction,
    /// so one connection (sqlx checks a pooled connection each time it goes back, a round trip to SQLite's
    /// thread), and one renderer, which looks regions and people up once for the batch. No connection is
    /// held while the transport waits on a server.
    async fn render_all(&self, rows: &[outbox::Model]) -> Vec<Result<Message, SendFailure>> {
        let renderer = Renderer::new(&self.store, &self.config.public_url);
        let mut messages = Vec::with_capacity(rows.len());
        let mut reads: Option<DatabaseTransaction> = None;
        for row in rows {
            let txn = match reads.take() {
                Some(txn) => txn,
                None => match self.store.db().begin().await {
                    Ok(txn) => txn,
                    Err(e) => {
                        messages.push(Err(SendFailure::transient(format!(
                            "cannot read the database: {e}"
                        ))));
                        continue;
                    }
                },
            };
            let message = self.message(&renderer, &txn, row).await;
            // On PostgreSQL a failed statement spoils its transaction: the next mail reads in a new one.
            if !message
                .as_ref()
                .is_err_and(|f| f.class == ErrorClass::Transient)
            {
                reads = Some(txn);
            }
            messages.push(message);
        }
        if let Some(txn) = reads {
            // It only read: whether it ends well changes nothing.
            let _ = txn.commit().await;
        }
        messages
    }

    /// Delivers batches until nothing is due now (for the command line and tests).
    pub async fn drain(&self) -> MailResult<BatchReport> {
        let mut total = BatchReport::default();
        loop {
            let report = self.run_batch(Utc::now()).await?;
            total += report;
            if report.claimed == 0 {
                return Ok(total);
            }
        }
    }

    /// Delivers until `shutdown` turns true: at once while a batch comes back full, after `gather` when it
    /// took what was due, after `poll_interval` when nothing was.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "mail delivery worker started");
        while !*shutdown.borrow() {
            let pause = match self.run_batch(Utc::now()).await {
                Ok(report) if report.claimed as u64 >= self.config.batch_size => continue,
                Ok(report) if report.claimed > 0 => self.config.gather,
                Ok(_) => self.config.poll_interval,
                Err(error) => {
                    tracing::error!(error = %error, "mail delivery batch failed");
                    self.config.poll_interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(worker = %self.id, "mail delivery worker stopped");
    }

    /// One message to the row's recipient, greeted by name (rows queued before the fan-out to one
    /// recipient may list several, sharing a language: one message to all of them).
    async fn message(
        &self,
        renderer: &Renderer<'_>,
        db: &impl ConnectionTrait,
        row: &outbox::Model,
    ) -> Result<Message, SendFailure> {
        let to = recipients(row).map_err(|e| SendFailure::permanent(e.to_string()))?;
        if to.is_empty() {
            return Err(SendFailure::permanent("the mail has no recipient"));
        }
        let lang = Lang::parse(&row.lang).unwrap_or_default();
        let greeting = to
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let context = renderer
            .context(db, row, lang, &greeting)
            .await
            .map_err(|e| {
                if e.is_transient() {
                    SendFailure::transient(e.to_string())
                } else {
                    SendFailure::permanent(e.to_string())
                }
            })?;
        let rendered = self
            .templates
            .render(lang, &context)
            .map_err(|e| SendFailure::permanent(e.to_string()))?;
        let mut builder = Message::builder()
            .message_id(Some(message_id(row, self.config.message_id_domain())))
            .from(self.config.mail_from.clone())
            .subject(rendered.subject);
        for recipient in &to {
            let address = recipient.email.parse().map_err(|e| {
                SendFailure::permanent(format!("recipient `{}`: {e}", recipient.email))
            })?;
            builder = builder.to(Mailbox::new(Some(recipient.name.clone()), address));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| SendFailure::permanent(format!("cannot build the message: {e}")))
    }
}
