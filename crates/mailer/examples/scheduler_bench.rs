//! A scheduler pass over many pending deadlines (1% due) on SQLite, next to the raw floor measured in the
//! same run: a bare indexed select of the due rows plus one `INSERT … ON CONFLICT DO NOTHING` per due row,
//! in one transaction. A third measure adds to the floor the one write every pass must make and the floor
//! does not: moving each due deadline's next look in the `deadline_checks` queue.
//!
//! `cargo run --release -p incubator-mailer --example scheduler_bench -- 100000 1000000`
//!
//! The bench database drops the one-project-per-region constraint so that it can hold a million projects,
//! each with the `invited` deadline of the ANSSI workflow; the due 1% have a before-reminder due, addressed
//! to a council account, so each queues one outbox row.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use incubator_mailer::Scheduler;
use incubator_store::{DbConfig, Store};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait, Value};

const REGIONS: [&str; 18] = [
    "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84",
    "93", "94",
];
const RUNS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    println!(
        "| deadlines | due | floor (median of {RUNS}) | floor + next_check_at moved | pass (median of {RUNS}) | pass / floor | RSS growth in a pass |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in sizes {
        bench(n).await?;
    }
    Ok(())
}

async fn bench(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&DbConfig::default(), dir.path()).await?;
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workflows/csirt-incubation.yaml"
    ))?;
    let now = Utc.with_ymd_and_hms(2021, 6, 1, 10, 0, 0).unwrap();
    let deployed = store
        .deploy_workflow(&source, "csirt-incubation.yaml", now)
        .await?;
    let due = fill(&store, n, deployed.version, now).await?;

    let mut floors = Vec::new();
    let mut moves = Vec::new();
    let mut passes = Vec::new();
    let mut growth = 0;
    for _ in 0..RUNS {
        checkpoint(&store).await?;
        floors.push(floor(&store, now, false).await?);
        checkpoint(&store).await?;
        moves.push(floor(&store, now, true).await?);
        undo(&store, now).await?;
        checkpoint(&store).await?;
        let before = rss_kib();
        reset_peak();
        let started = Instant::now();
        let report = Scheduler::new(store.clone())
            .pass(now, false, |_| {})
            .await?;
        passes.push(started.elapsed());
        growth = growth.max(peak_kib().saturating_sub(before));
        assert_eq!(report.examined, due, "{report:?}");
        assert_eq!(report.reminders, due, "{report:?}");
        assert_eq!(report.mails, due, "{report:?}");
        undo(&store, now).await?;
    }
    let floor = median(&mut floors);
    let moved = median(&mut moves);
    let pass = median(&mut passes);
    println!(
        "| {n} | {due} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} | {} KiB |",
        ms(floor),
        ms(moved),
        ms(pass),
        pass.as_secs_f64() / floor.as_secs_f64(),
        growth
    );
    Ok(())
}

/// Projects, a council account per region, and one `invited` deadline each: 1% due a week from `now`
/// (their before-reminder is due), the rest due in a year and looked at in eleven months.
async fn fill(
    store: &Store,
    n: usize,
    workflow_version: i32,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let db = store.db();
    db.execute_unprepared("DROP INDEX uq_projects_region_workflow")
        .await?;
    for (i, region) in REGIONS.iter().enumerate() {
        db.execute(stmt(
            "INSERT INTO users (email, name, role, region_code, password_hash, lang, disabled, created_at) \
             VALUES (?, ?, 'council', ?, 'x', 'fr', false, ?)",
            vec![format!("council{i}@example.org").into(), format!("Council {i}").into(), (*region).into(), now.into()],
        ))
        .await?;
    }
    let mut due = 0;
    let txn = db.begin().await?;
    for chunk_start in (0..n).step_by(500) {
        let end = (chunk_start + 500).min(n);
        let mut projects = String::from(
            "INSERT INTO projects (id, region_code, workflow_id, workflow_version, state, state_entered_at, facts, \
             version, last_event_hash, last_event_seq, created_at, updated_at) VALUES ",
        );
        let mut deadlines =
            String::from("INSERT INTO deadlines (project_id, key, due_at, set_at) VALUES ");
        let mut values: Vec<Value> = Vec::new();
        let mut deadline_values: Vec<Value> = Vec::new();
        for i in chunk_start..end {
            let id = i as i64 + 1;
            let is_due = i % 100 == 0;
            due += usize::from(is_due);
            let due_at = if is_due {
                now + TimeDelta::days(5)
            } else {
                now + TimeDelta::days(365)
            };
            if i > chunk_start {
                projects.push(',');
                deadlines.push(',');
            }
            projects.push_str("(?, ?, 'csirt-incubation', ?, 'invited', ?, '{}', 0, '0', 0, ?, ?)");
            values.extend([
                id.into(),
                REGIONS[i % 18].into(),
                workflow_version.into(),
                now.into(),
                now.into(),
                now.into(),
            ]);
            deadlines.push_str("(?, 'invited', ?, ?)");
            deadline_values.extend([id.into(), due_at.into(), now.into()]);
        }
        txn.execute(stmt(&projects, values)).await?;
        txn.execute(stmt(&deadlines, deadline_values)).await?;
    }
    txn.execute(stmt(
        "INSERT INTO deadline_checks (next_check_at, deadline_id) SELECT ?, id FROM deadlines \
         WHERE (project_id - 1) % 100 <> 0",
        vec![(now + TimeDelta::days(330)).into()],
    ))
    .await?;
    txn.commit().await?;
    queue_due(store, now).await?;
    db.execute_unprepared("ANALYZE").await?;
    Ok(due)
}

/// The floor: the due rows through the queue's index, then one insert per row, in one transaction. With
/// `move_checks`, also what no pass can skip and the floor leaves out: each due deadline's next look moved
/// in the queue (the due rows taken off its head, one grouped `INSERT` at their next instant, as the pass
/// does).
async fn floor(store: &Store, now: DateTime<Utc>, move_checks: bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let txn = store.db().begin().await?;
    let rows = txn
        .query_all(stmt(
            "SELECT d.id, d.project_id, d.key, d.due_at FROM deadline_checks c \
             JOIN deadlines d ON d.id = c.deadline_id WHERE c.next_check_at <= ? AND d.cleared_at IS NULL",
            vec![now.into()],
        ))
        .await?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let project_id: i64 = row.try_get("", "project_id")?;
        let key: String = row.try_get("", "key")?;
        let due_at: DateTime<Utc> = row.try_get("", "due_at")?;
        ids.push(row.try_get::<i64>("", "id")?);
        txn.execute(stmt(
            "INSERT INTO reminders_sent (project_id, deadline_key, due_at, step, sent_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            vec![project_id.into(), key.into(), due_at.into(), "before:P7D".into(), now.into()],
        ))
        .await?;
    }
    if move_checks {
        txn.execute(stmt(
            "DELETE FROM deadline_checks WHERE next_check_at <= ?",
            vec![now.into()],
        ))
        .await?;
        txn.execute(stmt(
            "INSERT INTO deadline_checks (next_check_at, deadline_id) \
             SELECT ?, value FROM json_each(?) WHERE true ON CONFLICT DO NOTHING",
            vec![
                (now + TimeDelta::days(5)).into(),
                serde_json::to_string(&ids)?.into(),
            ],
        ))
        .await?;
    }
    txn.commit().await?;
    let elapsed = started.elapsed();
    // Leave the tables as the pass expects them.
    store
        .db()
        .execute_unprepared("DELETE FROM reminders_sent")
        .await?;
    if move_checks {
        queue_due(store, now).await?;
    }
    Ok(elapsed)
}

/// Puts the due deadlines back as they were before the pass, and forgets what it wrote.
async fn undo(store: &Store, now: DateTime<Utc>) -> anyhow::Result<()> {
    let db = store.db();
    db.execute_unprepared("DELETE FROM reminders_sent").await?;
    db.execute_unprepared("DELETE FROM outbox").await?;
    queue_due(store, now).await
}

/// The due 1%: each deadline's one look queued an hour before `now`, whatever a pass queued for it.
async fn queue_due(store: &Store, now: DateTime<Utc>) -> anyhow::Result<()> {
    let txn = store.db().begin().await?;
    txn.execute(stmt(
        "DELETE FROM deadline_checks WHERE next_check_at < ? \
         AND deadline_id IN (SELECT id FROM deadlines WHERE (project_id - 1) % 100 = 0)",
        vec![(now + TimeDelta::days(300)).into()],
    ))
    .await?;
    txn.execute(stmt(
        "INSERT INTO deadline_checks (next_check_at, deadline_id) SELECT ?, id FROM deadlines \
         WHERE (project_id - 1) % 100 = 0",
        vec![(now - TimeDelta::hours(1)).into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Both measures start with the write-ahead log folded into the database, so neither pays for folding
/// what the other (or the bench's own resets) wrote.
async fn checkpoint(store: &Store) -> anyhow::Result<()> {
    store
        .db()
        .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await?;
    Ok(())
}

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn peak_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resets the peak RSS to the current one (Linux: `echo 5 > /proc/self/clear_refs`).
fn reset_peak() {
    if Path::new("/proc/self/clear_refs").exists() {
        std::fs::write("/proc/self/clear_refs", "5").ok();
    }
}
