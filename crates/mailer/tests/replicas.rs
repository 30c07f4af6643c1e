//! Two service processes sharing one database, each running the delivery worker and the scheduler over the
//! same month: 1,000 queued mails and every reminder arrive at the SMTP server once, none lost.
//!
//! The test re-runs its own binary twice as the replicas (`REPLICA_DB` set), like the store's crash test.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::{TestDb, at};
use incubator_mailer::{Scheduler, Worker, message_id};
use incubator_store::entities::{outbox, projects, reminders_sent};
use incubator_store::outbox::PENDING;
use incubator_store::{DbConfig, Store, delivery};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use support::{SmtpSink, config, programme, queue_officer_mail, templates};

const MAILS: usize = 1000;
const REGIONS: [&str; 18] = [
    "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84",
    "93", "94",
];

fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    (
        Utc.with_ymd_and_hms(2021, 3, 25, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2021, 4, 25, 0, 0, 0).unwrap(),
    )
}

/// One replica: a scheduler pass every three hours of the month, a delivery batch after each, then
/// delivery until nothing is pending (the other replica may still hold leases).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_child() {
    let Ok(url) = std::env::var("REPLICA_DB") else {
        return;
    };
    let dir = std::env::var("REPLICA_DIR").expect("dir");
    let smtp = std::env::var("REPLICA_SMTP").expect("smtp");
    let store = Store::open(
        &DbConfig {
            url: Some(url),
            ..DbConfig::default()
        },
        dir.as_ref(),
    )
    .await
    .expect("open");
    let mut config = config(dir.as_ref(), Some(smtp));
    config.lease = Duration::from_secs(10);
    let worker = Worker::new(store.clone(), templates(), Arc::new(config)).expect("worker");
    let scheduler = Scheduler::new(store.clone());
    let (start, end) = window();
    let mut now = start;
    while now <= end {
        scheduler.pass(now, false, |_| {}).await.expect("pass");
        worker.run_batch(Utc::now()).await.expect("batch");
        now += TimeDelta::hours(3);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivery::count(store.db(), PENDING).await.expect("count") > 0 {
        assert!(Instant::now() < deadline, "mails still pending");
        if worker.run_batch(Utc::now()).await.expect("batch").claimed == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("REPLICA DONE");
}

both_backends!(two_replicas_deliver_everything_once);

async fn two_replicas_deliver_everything_once(db: &TestDb) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    let created = Utc.with_ymd_and_hms(2021, 1, 11, 15, 30, 0).unwrap();
    let mut ids = Vec::new();
    for region in REGIONS {
        ids.push(p.create_project(region, created).await);
    }
    // A backlog of 1,000 milestone mails, queued as handlers queue them.
    let txn = p.store.db().begin().await.unwrap();
    for n in 0..MAILS {
        let project = projects::Entity::find_by_id(ids[n % ids.len()])
            .one(&txn)
            .await
            .unwrap()
            .unwrap();
        queue_officer_mail(&txn, &project, &p.officer, n, at(2021, 2, 1)).await;
    }
    txn.commit().await.unwrap();

    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "replica_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("REPLICA_DB", db.url())
                .env("REPLICA_DIR", db.data_dir())
                .env("REPLICA_SMTP", sink.url())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn replica")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("replica");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("REPLICA DONE"),
            "replica failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let rows = outbox::Entity::find().all(p.store.db()).await.unwrap();
    assert!(
        rows.iter().all(|r| r.status == delivery::SENT),
        "unsent rows remain"
    );
    let received = sink.wait_for(rows.len(), Duration::from_secs(10)).await;
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for message in &received {
        *by_id.entry(message.message_id.clone()).or_default() += 1;
    }
    let duplicates: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "duplicates at the SMTP server: {duplicates:?}"
    );
    for row in &rows {
        assert!(
            by_id.contains_key(&message_id(row, "anssi.example")),
            "mail {} lost",
            row.id
        );
    }
    assert_eq!(received.len(), rows.len());
    let milestones = rows
        .iter()
        .filter(|r| r.template == "stage_entered")
        .count();
    assert_eq!(milestones, MAILS);

    // Every reminder step of the month was recorded once and mailed once per recipient: compare
    // with the engine's plan.
    let workflow = p
        .store
        .workflows()
        .get(p.store.db(), "csirt-incubation", 2)
        .await
        .unwrap();
    let plan = workflow.reminder_plan("invited").unwrap();
    let (start, end) = window();
    let mut expected_rows = 0;
    let mut expected_steps = 0;
    for id in &ids {
        let project = projects::Entity::find_by_id(*id)
            .one(p.store.db())
            .await
            .unwrap()
            .unwrap();
        let due = common_due(&p.store, *id).await;
        let mut steps: Vec<_> = plan
            .schedule(due, end)
            .into_iter()
            .filter(|s| s.send_at > start)
            .collect();
        steps.extend(plan.due_steps(due, start));
        for step in steps {
            expected_steps += 1;
            expected_rows += match (step.escalation, project.region_code.as_str()) {
                (true, _) => 1,     // the officer
                (false, "53") => 2, // Bretagne's council, in French and English
                (false, "11") => 1, // Île-de-France's council, in French
                (false, _) => 0,    // no council account: recorded, nobody to mail
            };
        }
    }
    let recorded = reminders_sent::Entity::find()
        .filter(reminders_sent::Column::ProjectId.ne(0))
        .all(p.store.db())
        .await
        .unwrap();
    assert_eq!(recorded.len(), expected_steps);
    let reminder_rows = rows
        .iter()
        .filter(|r| r.template.starts_with("deadline_"))
        .count();
    assert_eq!(reminder_rows, expected_rows);
    assert!(expected_rows > 0);
    // The weekly digests of the month: five ISO weeks, once each.
    assert_eq!(
        rows.iter()
            .filter(|r| r.template == "officers_digest")
            .count(),
        5
    );
}

async fn common_due(store: &Store, project_id: i64) -> DateTime<Utc> {
    use incubator_store::entities::deadlines;
    deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::Key.eq("invited"))
        .one(store.db())
        .await
        .unwrap()
        .unwrap()
        .due_at
}
