//! SQLite's write-ahead log folded back into the database file off the commit path.
//!
//! Left to itself, SQLite checkpoints inside the commit that pushes the log past 1,000 pages: that commit
//! copies the pages into the database file and flushes it while every unit of its batch, and every request
//! queued behind it, waits. Here commits checkpoint only past a much larger backstop ([`crate::db`]), and
//! a task of the store's runs a passive checkpoint on a pooled connection after commits, at most once per
//! [`PAUSE`]: a passive checkpoint takes no lock that writers or readers wait on, so commits go on while it
//! copies and flushes.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::mpsc;

/// The least time between two checkpoints: long enough that pages rewritten by many commits (the projects'
/// and the indexes' hot pages) are copied once, short enough that the log stays small (once copied whole,
/// the next commit writes it again from its beginning).
const PAUSE: Duration = Duration::from_millis(100);

/// Starts the checkpointing task and returns what the writers tell of their commits: `try_send(())` after
/// each (a full channel already holds the news). The task ends when the last writer's sender goes.
pub(crate) fn checkpoint_after_commits(db: DatabaseConnection) -> mpsc::Sender<()> {
    let (commits, news) = mpsc::channel(1);
    tokio::spawn(checkpoints(db, news));
    commits
}

async fn checkpoints(db: DatabaseConnection, mut commits: mpsc::Receiver<()>) {
    let statement = Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)");
    while commits.recv().await.is_some() {
        match db.query_one(statement.clone()).await {
            Ok(Some(row)) => {
                let frames = |column| row.try_get_by_index::<i64>(column).unwrap_or(-1);
                tracing::trace!(log = frames(1), copied = frames(2), "checkpoint");
            }
            Ok(None) => {}
            // The log only grows meanwhile (up to the writers' backstop); the next commit tries again.
            Err(error) => tracing::warn!(%error, "checkpoint of the write-ahead log failed"),
        }
        tokio::time::sleep(PAUSE).await;
    }
}
