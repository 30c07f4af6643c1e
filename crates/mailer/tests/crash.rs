//! A delivery worker killed with SIGKILL mid-batch: nothing is lost, and nothing is sent twice except, at
//! most, the one mail the SMTP server had accepted before the worker could record it (docs/mail.md), which
//! arrives again under the same Message-ID.
//!
//! The test re-runs its own binary as the worker (`CRASH_MAILER_DB` set) and kills it without warning.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{TestDb, at};
use incubator_mailer::{Worker, message_id};
use incubator_store::entities::{outbox, projects};
use incubator_store::outbox::PENDING;
use incubator_store::{DbConfig, Store, delivery};
use sea_orm::{EntityTrait, TransactionTrait};
use support::{SmtpSink, config, programme, queue_officer_mail, templates};

const MAILS: usize = 400;
const LEASE: Duration = Duration::from_secs(2);

/// The worker to be killed: delivers batches forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_worker_child() {
    let Ok(url) = std::env::var("CRASH_MAILER_DB") else {
        return;
    };
    let dir = std::env::var("CRASH_MAILER_DIR").expect("dir");
    let store = Store::open(
        &DbConfig {
            url: Some(url),
            ..DbConfig::default()
        },
        dir.as_ref(),
    )
    .await
    .expect("open");
    let mut config = config(
        dir.as_ref(),
        Some(std::env::var("CRASH_MAILER_SMTP").expect("smtp")),
    );
    config.lease = LEASE;
    config.smtp_timeout = Duration::from_millis(500);
    config.batch_size = 16;
    let worker = Worker::new(store, templates(), Arc::new(config)).expect("worker");
    // Bounded, so that a child whose parent died never runs on.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        worker.run_batch(Utc::now()).await.expect("batch");
    }
}

/// Kills the child when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

both_backends!(a_killed_worker_loses_nothing_and_duplicates_at_most_the_mail_in_flight);

async fn a_killed_worker_loses_nothing_and_duplicates_at_most_the_mail_in_flight(db: &TestDb) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    let id = p.create_project("53", at(2021, 1, 11)).await;
    let project = projects::Entity::find_by_id(id)
        .one(p.store.db())
        .await
        .unwrap()
        .unwrap();
    let txn = p.store.db().begin().await.unwrap();
    for n in 0..MAILS {
        queue_officer_mail(&txn, &project, &p.officer, n, at(2021, 2, 1)).await;
    }
    txn.commit().await.unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_worker_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CRASH_MAILER_DB", db.url())
        .env("CRASH_MAILER_DIR", db.data_dir())
        .env("CRASH_MAILER_SMTP", sink.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker");
    let mut child = KillOnDrop(child);
    let started = Instant::now();
    while sink.received().len() < MAILS / 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker delivered too little"
        );
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the worker died by itself"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL: no destructor, no flush, no goodbye, leases left held.
    child.0.kill().expect("kill");
    child.0.wait().expect("reap");
    let at_kill = sink.received().len();
    assert!(at_kill < MAILS, "killed too late to be mid-batch");
    let leased = outbox::Entity::find()
        .all(p.store.db())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status == PENDING && r.leased_by.is_some())
        .count();
    assert!(
        leased > 0,
        "the kill left no claimed mail: nothing was mid-batch"
    );

    // A new worker: nothing leased is taken before its lease ends, then everything goes out.
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
    let worker = Worker::new(
        p.store.clone(),
        templates(),
        Arc::new(config(db.data_dir(), Some(sink.url()))),
    )
    .unwrap();
    worker.drain().await.unwrap();
    assert_eq!(delivery::count(p.store.db(), PENDING).await.unwrap(), 0);

    let rows = outbox::Entity::find().all(p.store.db()).await.unwrap();
    let received = sink.wait_for(MAILS, Duration::from_secs(10)).await;
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for message in &received {
        *by_id.entry(message.message_id.as_str()).or_default() += 1;
    }
    for row in &rows {
        assert_eq!(row.status, delivery::SENT);
        assert!(
            by_id.contains_key(message_id(row, "anssi.example").as_str()),
            "mail {} lost",
            row.id
        );
    }
    let duplicates: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    // The one window SMTP leaves open: accepted by the server, not yet recorded when the kill came.
    assert!(
        duplicates.len() <= 1,
        "more than the mail in flight was sent twice: {duplicates:?}"
    );
    assert!(duplicates.iter().all(|(_, n)| **n == 2));
    assert_eq!(received.len(), MAILS + duplicates.len());
}
