//! Delivering the outbox: claiming due rows under a lease, then recording what became of each.
//!
//! A claimed row stays `pending`; its `next_attempt_at` moves to the end of the lease, so the one index on
//! `(status, next_attempt_at)` finds both never-tried rows and rows whose worker died mid-lease. Attempts are
//! counted when a row is claimed, so a mail that crashes every worker still ends up `dead`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::entities::outbox;
use crate::error::StoreResult;
use crate::outbox::PENDING;

/// The SMTP server accepted the mail.
pub const SENT: &str = "sent";
/// Delivery gave up: a permanent refusal, or too many attempts. An admin may retry it.
pub const DEAD: &str = "dead";

/// Claims up to `limit` due rows for `worker` until `lease_until`, oldest due first. On PostgreSQL, rows
/// another replica is claiming at the same moment are skipped (`FOR UPDATE SKIP LOCKED`), never waited for
/// nor claimed twice; SQLite runs one writer at a time, so the single `UPDATE … RETURNING` is enough.
pub async fn claim(
    db: &impl ConnectionTrait,
    worker: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> StoreResult<Vec<outbox::Model>> {
    let backend = db.get_database_backend();
    let mut due = Query::select();
    due.column(outbox::Column::Id)
        .from(outbox::Entity)
        .and_where(outbox::Column::Status.eq(PENDING))
        .and_where(outbox::Column::NextAttemptAt.lte(normalize(now)))
        .order_by(outbox::Column::NextAttemptAt, sea_orm::Order::Asc)
        .order_by(outbox::Column::Id, sea_orm::Order::Asc)
        .limit(limit);
    if backend == DbBackend::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let lease_until = normalize(lease_until);
    let update = Query::update()
        .table(outbox::Entity)
        .value(
            outbox::Column::Attempts,
            Expr::col(outbox::Column::Attempts).add(1),
        )
        .value(outbox::Column::NextAttemptAt, lease_until)
        .value(outbox::Column::LeaseUntil, Some(lease_until))
        .value(outbox::Column::LeasedBy, Some(worker.to_owned()))
        .and_where(outbox::Column::Id.in_subquery(due))
        // Re-checked on the row itself: under READ COMMITTED the subquery's view may be older than the row.
        .and_where(outbox::Column::Status.eq(PENDING))
        .and_where(outbox::Column::NextAttemptAt.lte(normalize(now)))
        .returning_all()
        .to_owned();
    let mut rows = outbox::Model::find_by_statement(backend.build(&update))
        .all(db)
        .await?;
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}

/// Records that the SMTP server accepted the mail. False when the row was no longer pending (an admin or
/// another worker settled it meanwhile).
pub async fn mark_sent(
    db: &impl ConnectionTrait,
    id: i64,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(SENT))
        .col_expr(outbox::Column::SentAt, Expr::value(Some(normalize(now))))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(PENDING))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// [`claim`] as a unit of work, for a worker inside the service: the claim joins the writer's next group
/// commit instead of committing on its own. On SQLite a claim of its own flushes once more and holds the
/// write lock meanwhile; a batch of transitions that meets it sleeps in SQLite's busy handler (a
/// millisecond at least, then longer), which is what the slowest requests waited on.
#[derive(Debug)]
pub struct Claim {
    pub worker: String,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub limit: u64,
}

#[async_trait::async_trait]
impl UnitOfWork for Claim {
    type Output = Vec<outbox::Model>;

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<Vec<outbox::Model>> {
        claim(txn, &self.worker, self.now, self.lease_until, self.limit).await
    }

    fn can_wait(&self) -> bool {
        true
    }

    fn writes_first(&self) -> bool {
        true
    }
}

/// [`mark_sent`] as a unit of work, for a worker inside the service: the record joins the writer's next
/// group commit instead of committing on its own (on SQLite, taking the write lock from the transitions'
/// writer and flushing once more for every mail), and waits a little for a request's commit to share when
/// the writer has nothing else to do. The worker still waits for it before the next send.
#[derive(Debug)]
pub struct MarkSent {
    pub id: i64,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for MarkSent {
    type Output = bool;

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<bool> {
        mark_sent(txn, self.id, self.now).await
    }

    fn can_wait(&self) -> bool {
        true
    }
}

/// A failed attempt that may succeed later: tried again at `next_attempt_at`, only if `worker` still holds
/// the lease (a worker whose lease expired must not push back a row another worker now owns).
pub async fn reschedule(
    db: &impl ConnectionTrait,
    id: i64,
    worker: &str,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> StoreResult<bool> {
    let result = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::NextAttemptAt,
            Expr::value(normalize(next_attempt_at)),
        )
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Some(error.to_owned())),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(PENDING))
        .filter(outbox::Column::LeasedBy.eq(worker))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives back mails a worker claimed and did not try (its lease was running out): due again at `now`, and
/// the attempt their claim counted is not counted, since nothing was sent. Only rows `worker` still holds.
pub async fn release(
    db: &impl ConnectionTrait,
    ids: &[i64],
    worker: &str,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(normalize(now)))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::Attempts,
            Expr::col(outbox::Column::Attempts).sub(1),
        )
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox::Column::Status.eq(PENDING))
        .filter(outbox::Column::LeasedBy.eq(worker))
        .filter(outbox::Column::Attempts.gt(0))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Gives up on a mail: a permanent refusal, or the last attempt failed.
pub async fn mark_dead(
    db: &impl ConnectionTrait,
    id: i64,
    worker: &str,
    error: &str,
) -> StoreResult<bool> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(DEAD))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::LastError,
            Expr::value(Some(error.to_owned())),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(PENDING))
        .filter(outbox::Column::LeasedBy.eq(worker))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// An admin's retry of a dead mail: pending again, due now, with a fresh count of attempts. The Message-ID
/// stays the same, being derived from the row. False when the row is not dead.
pub async fn retry(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(PENDING))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(normalize(now)))
        .col_expr(
            outbox::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::LeasedBy,
            Expr::value(Option::<String>::None),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(DEAD))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// For the admins' page: rows of one status (all when `None`), newest first, `limit` from before `before_id`.
pub async fn list(
    db: &impl ConnectionTrait,
    status: Option<&str>,
    before_id: Option<i64>,
    limit: u64,
) -> StoreResult<Vec<outbox::Model>> {
    Ok(outbox::Entity::find()
        .apply_if(status, |q, s| q.filter(outbox::Column::Status.eq(s)))
        .apply_if(before_id, |q, id| q.filter(outbox::Column::Id.lt(id)))
        .order_by_desc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> StoreResult<Option<outbox::Model>> {
    Ok(outbox::Entity::find_by_id(id).one(db).await?)
}

/// How many rows have the given status (the digest counts the dead ones).
pub async fn count(db: &impl ConnectionTrait, status: &str) -> StoreResult<u64> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Status.eq(status))
        .count(db)
        .await?)
}
