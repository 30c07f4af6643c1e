//! Shared by the benchmarks: the raw commit rate of a database (a bare transaction with one update and two
//! inserts, one per commit, from N connections) and the timing loop every measure uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};

static RAW_SEQ: AtomicI64 = AtomicI64::new(1 << 40);

/// The floor: a bare transaction with one update and two inserts per commit, from N connections.
pub async fn raw_rate(
    db: &DatabaseConnection,
    projects: &[i64],
    writers: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
        let id = projects[w % projects.len()];
        tasks.push(tokio::spawn(async move {
            let backend = db.get_database_backend();
            while !stop.load(Ordering::Relaxed) {
                // Far above any real sequence number, and never reused across measures.
                let seq = RAW_SEQ.fetch_add(1, Ordering::Relaxed);
                let now = Utc::now();
                let txn = db.begin().await?;
                txn.execute(Statement::from_sql_and_values(
                    backend,
                    bind(backend, "UPDATE projects SET updated_at = ? WHERE id = ?"),
                    [now.into(), id.into()],
                ))
                .await?;
                txn.execute(Statement::from_sql_and_values(
                    backend,
                    bind(
                        backend,
                        "INSERT INTO events (project_id, seq, at, actor, kind, changes, prev_hash, hash) \
                         VALUES (?, ?, ?, 'raw', 'raw', '{}', '', '')",
                    ),
                    [id.into(), seq.into(), now.into()],
                ))
                .await?;
                txn.execute(Statement::from_sql_and_values(
                    backend,
                    bind(
                        backend,
                        "INSERT INTO outbox (template, lang, recipients, context, status, attempts, \
                         next_attempt_at, created_at) VALUES ('raw', 'fr', '[]', '{}', 'raw', 0, ?, ?)",
                    ),
                    [now.into(), now.into()],
                ))
                .await?;
                txn.commit().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    measure(stop, done, seconds, tasks).await
}

fn bind(backend: sea_orm::DbBackend, sql: &str) -> String {
    if backend != sea_orm::DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

pub async fn measure(
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    seconds: u64,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<f64> {
    // A warm-up second is not counted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_count = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(count as f64 / elapsed)
}
