//! Email delivery and the deadline scheduler. Sending is not delivering: handlers write outbox rows in
//! the transaction of their cause; the [`Worker`] here delivers them (SMTP through one reused transport, or
//! `.eml` files offline) with a lease, backoff and jitter; the [`Scheduler`] queues reminders and the weekly
//! digest, each once by its unique key. See `docs/mail.md`.

pub mod config;
mod error;
pub mod render;
pub mod scheduler;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use incubator_notify::Templates;
use incubator_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::MailConfig;
pub use error::{MailError, MailResult};
pub use scheduler::{PassReport, PlannedReminder, Scheduler, next_check};
pub use transport::{ErrorClass, SendFailure, Transport, classify};
pub use worker::{BatchReport, Worker, backoff, message_id};

/// Starts the delivery worker and the periodic scheduler of one service process. Both stop when
/// `shutdown` turns true; the handle finishes once both have. Fails at once on an unusable configuration
/// (an `SMTP_URL` lettre cannot read, an outbox folder that cannot be created).
pub fn spawn(
    store: Store,
    templates: Arc<Templates>,
    config: Arc<MailConfig>,
    shutdown: watch::Receiver<bool>,
) -> MailResult<JoinHandle<()>> {
    let worker = Worker::new(store.clone(), templates, config.clone())?;
    let scheduler = Scheduler::new(store);
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));
    let scheduler_task = tokio::spawn(scheduler.run(
        config.scheduler_interval,
        config.programme_clock_offset,
        shutdown,
    ));
    Ok(tokio::spawn(async move {
        for (name, task) in [("worker", worker_task), ("scheduler", scheduler_task)] {
            if let Err(error) = task.await {
                tracing::error!(task = name, error = %error, "mail task ended abnormally");
            }
        }
    }))
}
