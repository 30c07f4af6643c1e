//! Group commit: writes from concurrent callers share one database transaction, the way PostgreSQL shares
//! WAL flushes. Each unit still runs inside its own savepoint, so it is checked and refused on its own, and
//! no caller hears "done" before the commit that holds its work.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use crate::error::{StoreError, StoreResult};
use crate::projects::{WriteDecision, write_together};

/// A unit of work: everything one request writes, run inside a transaction it does not own.
#[async_trait::async_trait]
pub trait UnitOfWork: Send + 'static {
    type Output: Send + 'static;
    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<Self::Output>;

    /// The project the unit writes to, if one: units of one project always share a writer, so they never
    /// wait on each other's row locks from two transactions.
    fn project_id(&self) -> Option<i64> {
        None
    }

    /// Whether the unit is background work that may wait a little ([`RIDE_ALONG`]) for a unit that cannot,
    /// to share its commit instead of paying a flush of its own and holding the writer from the requests.
    fn can_wait(&self) -> bool {
        false
    }

    /// Whether the unit's first statement writes. A transaction that writes before it reads takes SQLite's
    /// write lock on that write, waiting out the busy timeout like [`crate::db::begin_write`]'s own
    /// statement: a batch that starts with such a unit saves that statement's round.
    fn writes_first(&self) -> bool {
        false
    }
}

/// The type-erased job a committer runs: the unit, its result until the commit is known, and its caller.
#[async_trait::async_trait]
trait Job: Send {
    /// Runs the unit; true when it succeeded and its writes must be kept.
    async fn run(&mut self, txn: &DatabaseTransaction) -> bool;
    /// Tells the caller, once the fate of the batch is known.
    fn complete(self: Box<Self>, commit: Result<(), &Failed>);
    fn can_wait(&self) -> bool;
    fn writes_first(&self) -> bool;
    /// The job when it is a decided transition's writes, which may share a round with others'.
    fn decided(&mut self) -> Option<&mut Pending<WriteDecision>>;
}

struct Pending<U: UnitOfWork> {
    unit: U,
    result: Option<StoreResult<U::Output>>,
    reply: oneshot::Sender<StoreResult<U::Output>>,
}

#[async_trait::async_trait]
impl<U: UnitOfWork> Job for Pending<U> {
    async fn run(&mut self, txn: &DatabaseTransaction) -> bool {
        // A unit that panics fails alone, like one that errs, and the writer goes on with the rest.
        let result = match unwound(self.unit.run(txn)).await {
            Some(result) => result,
            None => Err(StoreError::NotCommitted(PANICKED.into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn can_wait(&self) -> bool {
        self.unit.can_wait()
    }

    fn writes_first(&self) -> bool {
        self.unit.writes_first()
    }

    fn decided(&mut self) -> Option<&mut Pending<WriteDecision>> {
        (self as &mut dyn Any).downcast_mut()
    }

    fn complete(self: Box<Self>, commit: Result<(), &Failed>) {
        let result = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            // A refusal stays a refusal even when the batch failed: it wrote nothing either way.
            (Err(_), Some(Err(refusal))) => Err(refusal),
            (Err(failed), _) => Err(failed.error()),
            (Ok(()), None) => Err(StoreError::NotCommitted("the unit never ran".into())),
        };
        // The caller may have gone away (request cancelled); its work is committed all the same.
        let _ = self.reply.send(result);
    }
}

const PANICKED: &str =
    "the write failed on a defect (its panic is in the log): nothing of it was kept";

/// `work`'s output, or `None` when it panicked. A panic must not end a writer task: every later write on
/// its lane would be refused until the service restarts. The panic hook has already logged it.
async fn unwound<T>(work: impl Future<Output = T>) -> Option<T> {
    AssertUnwindSafe(work).catch_unwind().await.ok()
}

/// Runs units of work in batches, on one writer task per lane; clones share the same tasks.
#[derive(Clone)]
pub struct Committer {
    lanes: Vec<mpsc::Sender<Box<dyn Job>>>,
}

impl fmt::Debug for Committer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

/// Most units one transaction carries; bounds the work lost to one failed commit and the latency of the last.
const MAX_BATCH: usize = 128;

/// How long a batch of background units only waits for a request's unit to join it. Under steady requests
/// one arrives well within it, and the background work costs no flush of its own; when none comes, the
/// background work commits alone, this much later.
const RIDE_ALONG: std::time::Duration = std::time::Duration::from_millis(2);

impl Committer {
    /// SQLite has one writer at a time, so one lane; PostgreSQL commits several transactions at once.
    /// `commits`, when given, hears of every commit (a full channel means it already has the news).
    pub fn start(db: DatabaseConnection, lanes: usize, commits: Option<mpsc::Sender<()>>) -> Self {
        let lanes = (0..lanes.max(1))
            .map(|_| {
                let (queue, jobs) = mpsc::channel(4 * MAX_BATCH);
                tokio::spawn(run_batches(db.clone(), jobs, commits.clone()));
                queue
            })
            .collect();
        Self { lanes }
    }

    /// Submits a unit and waits until its batch is committed (or refused, or failed).
    pub async fn submit<U: UnitOfWork>(&self, unit: U) -> StoreResult<U::Output> {
        let lane = match unit.project_id() {
            Some(id) => id.unsigned_abs() as usize % self.lanes.len(),
            None => 0,
        };
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            unit,
            result: None,
            reply,
        });
        self.lanes[lane]
            .send(job)
            .await
            .map_err(|_| StoreError::NotCommitted("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::NotCommitted("the writer stopped before committing".into()))?
    }
}

async fn run_batches(
    db: DatabaseConnection,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    commits: Option<mpsc::Sender<()>>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.iter().all(|job| job.can_wait()) {
            wait_for_company(&mut jobs, &mut batch).await;
        }
        // Most batches hold no refusal: run them without savepoints, which cost two statements a unit.
        // When a unit fails, its writes cannot be undone alone, so the batch is rolled back and run again,
        // each unit in its own savepoint; units only read and write the database, so a rerun is safe.
        let mut outcome = run_batch(&db, &mut batch, Isolation::Shared).await;
        if matches!(outcome, Ok(Ran::UnitFailed)) {
            outcome = run_batch(&db, &mut batch, Isolation::Savepoints).await;
        }
        match (&outcome, &commits) {
            (Err(e), _) => tracing::warn!(error = %e.0, units = batch.len(), "batch not committed"),
            (Ok(_), Some(commits)) => {
                let _ = commits.try_send(());
            }
            (Ok(_), None) => {}
        }
        let commit = outcome.as_ref().map(|_| ());
        for job in batch.drain(..) {
            job.complete(commit);
        }
    }
}

/// Adds to a batch of background units what arrives within [`RIDE_ALONG`], until a unit that cannot wait
/// comes (it then runs at once, with them).
async fn wait_for_company(jobs: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    let until = tokio::time::Instant::now() + RIDE_ALONG;
    while batch.len() < MAX_BATCH && batch.iter().all(|job| job.can_wait()) {
        let room = MAX_BATCH - batch.len();
        match tokio::time::timeout_at(until, jobs.recv_many(batch, room)).await {
            Ok(received) if received > 0 => {}
            // Closed, or nothing came in time.
            _ => return,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// Every unit writes straight into the batch's transaction.
    Shared,
    /// Every unit runs in a savepoint, released when it succeeds and rolled back when it fails.
    Savepoints,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// The transaction was committed (or, for a lone failed unit, rolled back) and results are final.
    Done,
    /// A unit failed in a shared batch: nothing was committed and the batch must run again.
    UnitFailed,
}

/// Why a batch was not committed: its transaction failed, or never began.
#[derive(Debug)]
struct Failed(DbErr);

impl Failed {
    /// The answer of every unit of the failed batch.
    fn error(&self) -> StoreError {
        if crate::db::is_unreachable(&self.0) {
            StoreError::Unavailable(self.0.to_string())
        } else {
            StoreError::NotCommitted(self.0.to_string())
        }
    }
}

async fn run_batch(
    db: &DatabaseConnection,
    batch: &mut [Box<dyn Job>],
    isolation: Isolation,
) -> Result<Ran, Failed> {
    let txn = if batch.first().is_some_and(|job| job.writes_first()) {
        db.begin().await
    } else {
        crate::db::begin_write(db).await
    }
    .map_err(Failed)?;
    let lone = batch.len() == 1;
    match isolation {
        Isolation::Shared => {
            let mut next = 0;
            while next < batch.len() {
                let together = sharing_a_round(&mut batch[next..]);
                let ran = if together > 1 {
                    run_together(&txn, &mut batch[next..next + together]).await
                } else {
                    batch[next].run(&txn).await
                };
                next += together.max(1);
                if !ran {
                    txn.rollback().await.map_err(Failed)?;
                    // A lone unit's failure is its own answer: its writes were all that was rolled back.
                    return Ok(if lone { Ran::Done } else { Ran::UnitFailed });
                }
            }
        }
        Isolation::Savepoints => {
            for job in batch.iter_mut() {
                let savepoint = txn.begin().await.map_err(Failed)?;
                if job.run(&savepoint).await {
                    savepoint.commit().await.map_err(Failed)?;
                } else {
                    savepoint.rollback().await.map_err(Failed)?;
                }
            }
        }
    }
    txn.commit().await.map_err(Failed)?;
    Ok(Ran::Done)
}

/// How many of the first jobs are decided writes that may share one round (see
/// [`WriteDecision::may_join`]).
fn sharing_a_round(jobs: &mut [Box<dyn Job>]) -> usize {
    let mut members: Vec<&WriteDecision> = Vec::new();
    for job in jobs {
        match job.decided() {
            Some(pending) if pending.unit.may_join(&members) => members.push(&pending.unit),
            _ => break,
        }
    }
    members.len()
}

/// Runs decided writes in one round; true when every one of them succeeded. When the round itself fails,
/// no unit's answer is known: the batch runs again, each unit on its own.
async fn run_together(txn: &DatabaseTransaction, jobs: &mut [Box<dyn Job>]) -> bool {
    let mut pending: Vec<&mut Pending<WriteDecision>> =
        jobs.iter_mut().filter_map(|job| job.decided()).collect();
    let units: Vec<&WriteDecision> = pending.iter().map(|p| &p.unit).collect();
    let answers = match unwound(write_together(txn, &units)).await {
        Some(Ok(answers)) => answers,
        Some(Err(e)) => {
            tracing::warn!(error = %e, units = units.len(), "a shared round failed; its units run again apart");
            return false;
        }
        None => {
            tracing::warn!(
                units = units.len(),
                "a shared round panicked; its units run again apart"
            );
            return false;
        }
    };
    let mut all = true;
    for (one, answer) in pending.iter_mut().zip(answers) {
        all &= answer.is_ok();
        one.result = Some(answer);
    }
    all
}
