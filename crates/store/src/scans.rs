//! Antivirus scans of evidence. With a scanner configured an upload is stored `pending` and served only once
//! a scanner found it `clean`; an `infected` one is quarantined (its bytes moved out of the blob store) and
//! never served again. A verdict is about bytes, not rows: every document sharing an infected blob is
//! infected with it, and a later upload of those bytes is infected on arrival.
//!
//! The queue is the `documents` table itself: a scanner claims a pending row by moving its `scan_due_at`
//! past its lease, so replicas never scan one document at once; a failed try moves it by a backoff.

use chrono::{DateTime, Utc};
use incubator_engine::RequirementStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;

use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::documents::set_requirement;
use crate::entities::{documents, requirements};
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::projects::{find, record};

/// The actor the antivirus's audit events are recorded under.
pub const SCANNER_ACTOR: &str = "antivirus";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// Waiting for a scanner: not served.
    Pending,
    /// Scanned clean, or stored with no scanner configured: served.
    Clean,
    /// Quarantined: never served.
    Infected,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Clean => "clean",
            Self::Infected => "infected",
        }
    }

    pub fn of(document: &documents::Model) -> StoreResult<Self> {
        match document.scan_status.as_str() {
            "pending" => Ok(Self::Pending),
            "clean" => Ok(Self::Clean),
            "infected" => Ok(Self::Infected),
            other => Err(StoreError::Corrupt(format!(
                "document {} has the unknown scan status `{other}`",
                document.id
            ))),
        }
    }
}

/// A document's bytes may be handed out (downloaded, reviewed) only once scanned clean.
pub fn require_clean(document: &documents::Model) -> StoreResult<()> {
    match ScanStatus::of(document)? {
        ScanStatus::Clean => Ok(()),
        status => Err(StoreError::NotClean {
            document_id: document.id,
            status,
        }),
    }
}

/// Claims the oldest pending document that is due, for `lease`: until then no other scanner takes it. A
/// claim counts as an attempt.
pub async fn claim_next(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease: chrono::TimeDelta,
) -> StoreResult<Option<documents::Model>> {
    let now = normalize(now);
    let due = Condition::any()
        .add(documents::Column::ScanDueAt.is_null())
        .add(documents::Column::ScanDueAt.lte(now));
    // A few candidates: another replica may take the first ones between this read and the claim.
    let candidates = documents::Entity::find()
        .filter(documents::Column::ScanStatus.eq(ScanStatus::Pending.as_str()))
        .filter(due.clone())
        .order_by_asc(documents::Column::Id)
        .limit(8)
        .all(db)
        .await?;
    for document in candidates {
        // Conditional on the row still being pending and due: of two replicas, one moves it.
        let moved = documents::Entity::update_many()
            .col_expr(documents::Column::ScanDueAt, Expr::value(now + lease))
            .col_expr(
                documents::Column::ScanAttempts,
                Expr::col(documents::Column::ScanAttempts).add(1),
            )
            .filter(documents::Column::Id.eq(document.id))
            .filter(documents::Column::ScanStatus.eq(ScanStatus::Pending.as_str()))
            .filter(due.clone())
            .exec(db)
            .await?;
        if moved.rows_affected == 1 {
            return Ok(Some(documents::Model {
                scan_attempts: document.scan_attempts + 1,
                ..document
            }));
        }
    }
    Ok(None)
}

/// A try that gave no verdict (scanner down, bytes unreadable): the document stays pending, due again at
/// `retry_at`, with the reason shown to admins.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    document_id: i64,
    error: &str,
    retry_at: DateTime<Utc>,
) -> StoreResult<()> {
    documents::Entity::update_many()
        .col_expr(
            documents::Column::ScanDueAt,
            Expr::value(normalize(retry_at)),
        )
        .col_expr(documents::Column::ScanError, Expr::value(error.to_owned()))
        .filter(documents::Column::Id.eq(document_id))
        .filter(documents::Column::ScanStatus.eq(ScanStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Found clean: served from now on. A document found infected meanwhile (through another row sharing its
/// bytes) stays infected.
pub async fn record_clean(
    db: &impl ConnectionTrait,
    document_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    documents::Entity::update_many()
        .col_expr(
            documents::Column::ScanStatus,
            Expr::value(ScanStatus::Clean.as_str()),
        )
        .col_expr(documents::Column::ScannedAt, Expr::value(normalize(now)))
        .col_expr(
            documents::Column::ScanDueAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            documents::Column::ScanError,
            Expr::value(Option::<String>::None),
        )
        .filter(documents::Column::Id.eq(document_id))
        .filter(documents::Column::ScanStatus.eq(ScanStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Found infected: every document whose bytes are `sha256` is infected, with a `document_infected` event on
/// its project; an acceptance resting on one of them is withdrawn. The caller then moves the bytes to the
/// quarantine (`BlobStore::quarantine`): until it does they are kept but never served. Returns the ids
/// newly infected.
#[derive(Debug)]
pub struct QuarantineBytes {
    pub sha256: String,
    pub signature: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for QuarantineBytes {
    type Output = Vec<i64>;

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<Vec<i64>> {
        let sharing = documents::Entity::find()
            .filter(documents::Column::Sha256.eq(self.sha256.as_str()))
            .filter(documents::Column::ScanStatus.ne(ScanStatus::Infected.as_str()))
            .order_by_asc(documents::Column::Id)
            .all(txn)
            .await?;
        let mut infected = Vec::new();
        for document in sharing {
            infect(txn, &document, &self.signature, self.now).await?;
            infected.push(document.id);
        }
        Ok(infected)
    }
}

/// The signature these bytes were found infected with before, if they were.
pub(crate) async fn known_infection(
    txn: &impl ConnectionTrait,
    sha256: &str,
) -> StoreResult<Option<String>> {
    Ok(documents::Entity::find()
        .filter(documents::Column::Sha256.eq(sha256))
        .filter(documents::Column::ScanStatus.eq(ScanStatus::Infected.as_str()))
        .one(txn)
        .await?
        .map(|d| d.scan_signature.unwrap_or_default()))
}

/// Marks one document infected, records why on its project's trail and withdraws an acceptance resting on it.
pub(crate) async fn infect(
    txn: &DatabaseTransaction,
    document: &documents::Model,
    signature: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let now = normalize(now);
    documents::Entity::update_many()
        .col_expr(
            documents::Column::ScanStatus,
            Expr::value(ScanStatus::Infected.as_str()),
        )
        .col_expr(
            documents::Column::ScanSignature,
            Expr::value(signature.to_owned()),
        )
        .col_expr(documents::Column::ScannedAt, Expr::value(now))
        .col_expr(
            documents::Column::ScanDueAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            documents::Column::ScanError,
            Expr::value(Option::<String>::None),
        )
        .filter(documents::Column::Id.eq(document.id))
        .exec(txn)
        .await?;
    let accepted_on_it = requirements::Entity::find()
        .filter(requirements::Column::ProjectId.eq(document.project_id))
        .filter(requirements::Column::Key.eq(document.requirement.as_str()))
        .filter(requirements::Column::AcceptedDocumentId.eq(document.id))
        .count(txn)
        .await?
        > 0;
    if accepted_on_it {
        set_requirement(
            txn,
            document.project_id,
            &document.requirement,
            RequirementStatus::Rejected,
            None,
            None,
            now,
        )
        .await?;
    }
    let project = find(txn, document.project_id).await?;
    let changes = json!({ "document_id": document.id, "requirement": document.requirement,
                          "sha256": document.sha256, "signature": signature,
                          "acceptance_withdrawn": accepted_on_it });
    let event = NewEvent::other("document_infected", SCANNER_ACTOR, None, changes);
    record(txn, &project, event, now, |u| u).await?;
    Ok(())
}
