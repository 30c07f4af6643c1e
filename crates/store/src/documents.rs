//! Evidence: document metadata, reviews, and the derived status of each requirement.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use incubator_engine::{CorrectionKind, RequirementStatus, Workflow, correction_key};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use crate::audit::normalize;
use crate::clocks::{live_deadline, pause, resume};
use crate::committer::UnitOfWork;
use crate::entities::{document_reviews, documents, projects, requirements};
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::projects::{
    Correction, clear_deadlines, correction_of, find, parse_status, record, set_deadline,
    status_name,
};
use crate::scans::{ScanStatus, infect, known_infection, require_clean};
use crate::workflows::WorkflowRegistry;

/// A correction asked of the region on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrectionRequest {
    pub kind: CorrectionKind,
    /// The day the corrected document is due by; after today in the workflow's time zone.
    pub due_on: NaiveDate,
    /// Pause the deadline of the project's stage until the region answers.
    pub pause_stage_clock: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewDecision {
    Accepted,
    Rejected,
    CorrectionRequested(CorrectionRequest),
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::CorrectionRequested(_) => "correction_requested",
        }
    }
}

/// Records a document whose bytes are already stored (see `BlobStore::put`). An upload answers the
/// correction its requirement waits for.
#[derive(Debug)]
pub struct RecordDocument {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub requirement: String,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    /// The last day the evidence is valid, if it expires.
    pub expires_on: Option<NaiveDate>,
    /// A scanner is configured: the document is stored `pending` and served once found clean. Bytes
    /// found infected before are infected on arrival, scanner or not.
    pub awaits_scan: bool,
    pub actor: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for RecordDocument {
    type Output = documents::Model;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<documents::Model> {
        record_document(txn, self, None).await
    }
}

/// Records `upload` with its `document_uploaded` event; `link` names the link holder it came through. The
/// upload answers a correction owed on its requirement.
pub(crate) async fn record_document(
    txn: &DatabaseTransaction,
    upload: &RecordDocument,
    link: Option<serde_json::Value>,
) -> StoreResult<documents::Model> {
    let now = normalize(upload.now);
    let project = find(txn, upload.project_id).await?;
    let workflow = upload
        .registry
        .get(txn, &project.workflow_id, project.workflow_version)
        .await?;
    if workflow.requirement(&upload.requirement).is_none() {
        return Err(StoreError::Invalid(format!(
            "`{}` is not a requirement of workflow `{}`",
            upload.requirement, project.workflow_id
        )));
    }
    if let Some(expires_on) = upload.expires_on {
        workflow
            .check_expiry(expires_on, now)
            .map_err(StoreError::Invalid)?;
    }
    let known_infection = known_infection(txn, &upload.sha256).await?;
    let scan = if upload.awaits_scan {
        ScanStatus::Pending
    } else {
        ScanStatus::Clean
    };
    let inserted = documents::Entity::insert(documents::ActiveModel {
        id: NotSet,
        project_id: Set(project.id),
        requirement: Set(upload.requirement.clone()),
        filename: Set(upload.filename.clone()),
        media_type: Set(upload.media_type.clone()),
        size: Set(upload.size),
        sha256: Set(upload.sha256.clone()),
        uploaded_by: Set(upload.actor.clone()),
        uploaded_at: Set(now),
        expires_on: Set(upload.expires_on),
        scan_status: Set(scan.as_str().to_owned()),
        scan_attempts: Set(0),
        scan_due_at: Set(None),
        scan_error: Set(None),
        scan_signature: Set(None),
        scanned_at: Set(None),
    })
    .exec(txn)
    .await?;
    let reason = format!(
        "the region answered the correction of `{}` (document {})",
        upload.requirement, inserted.last_insert_id
    );
    let answered = close_correction(
        txn,
        &workflow,
        &project,
        &upload.requirement,
        reason,
        &upload.actor,
        now,
    )
    .await?;
    let current = requirement_status(txn, project.id, &upload.requirement).await?;
    // A newer upload waits for review without undoing an acceptance.
    if current != RequirementStatus::Accepted {
        set_requirement(
            txn,
            project.id,
            &upload.requirement,
            RequirementStatus::Pending,
            None,
            None,
            now,
        )
        .await?;
    }
    let mut changes = json!({ "document_id": inserted.last_insert_id, "requirement": upload.requirement,
                              "filename": upload.filename, "sha256": upload.sha256, "size": upload.size,
                              "expires_on": upload.expires_on, "answers_correction": answered,
                              "scan_status": scan.as_str() });
    if let Some(link) = link {
        changes["link"] = link;
    }
    // The correction's answer may have resumed a clock, which moved the project's chain on.
    let project = find(txn, project.id).await?;
    let event = NewEvent::other("document_uploaded", &upload.actor, None, changes);
    record(txn, &project, event, now, |u| u).await?;
    let document = documents::Entity::find_by_id(inserted.last_insert_id)
        .one(txn)
        .await?
        .ok_or(StoreError::DocumentNotFound(inserted.last_insert_id))?;
    // The same bytes are never a clean document once found infected: the caller quarantines them again.
    let Some(signature) = known_infection else {
        return Ok(document);
    };
    infect(txn, &document, &signature, now).await?;
    get(txn, document.id).await
}

/// The digests whose bytes some document row names.
pub(crate) async fn stored_digests(db: &impl ConnectionTrait) -> StoreResult<HashSet<String>> {
    Ok(documents::Entity::find()
        .select_only()
        .column(documents::Column::Sha256)
        .distinct()
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Whether a document row names the bytes of `sha256`.
pub(crate) async fn names_digest(db: &impl ConnectionTrait, sha256: &str) -> StoreResult<bool> {
    Ok(documents::Entity::find()
        .filter(documents::Column::Sha256.eq(sha256))
        .one(db)
        .await?
        .is_some())
}

/// An officer's decision on a document; mails the council. Accepting or rejecting ends the correction the
/// requirement waited for; asking for one sets its deadline and, when asked, pauses the stage's clock.
#[derive(Debug)]
pub struct ReviewDocument {
    pub registry: Arc<WorkflowRegistry>,
    /// The document's project: reviews queue behind the project's other writes (the writer lane).
    pub project_id: i64,
    pub document_id: i64,
    pub decision: ReviewDecision,
    pub comment: Option<String>,
    pub actor: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for ReviewDocument {
    type Output = RequirementStatus;

    // Without it a review ran on another lane than an upload or a patch of the same project, and on
    // PostgreSQL the two could take the same event number: one of them failed (found by the soak run).
    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<RequirementStatus> {
        let now = normalize(self.now);
        let document = documents::Entity::find_by_id(self.document_id)
            .one(txn)
            .await?
            .filter(|d| d.project_id == self.project_id)
            .ok_or(StoreError::DocumentNotFound(self.document_id))?;
        // A decision needs the officer to have read the bytes: served only once scanned clean.
        require_clean(&document)?;
        let comment = self
            .comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        match self.decision {
            ReviewDecision::Rejected if comment.is_none() => {
                return Err(StoreError::Invalid(
                    "a rejection needs a comment telling the region what to fix".into(),
                ));
            }
            ReviewDecision::CorrectionRequested(_) if comment.is_none() => {
                return Err(StoreError::Invalid(
                    "a correction request needs a comment telling the region what to correct"
                        .into(),
                ));
            }
            _ => {}
        }
        let project = find(txn, document.project_id).await?;
        let workflow = self
            .registry
            .get(txn, &project.workflow_id, project.workflow_version)
            .await?;
        let open = open_correction(txn, project.id, &document.requirement).await?;
        if let ReviewDecision::CorrectionRequested(asked) = self.decision {
            check_correction(
                txn,
                &workflow,
                &project,
                &document,
                open.as_ref(),
                asked,
                now,
            )
            .await?;
        }
        let correction = match self.decision {
            ReviewDecision::CorrectionRequested(asked) => Some(asked),
            _ => None,
        };
        let review = document_reviews::Entity::insert(document_reviews::ActiveModel {
            id: NotSet,
            document_id: Set(document.id),
            decision: Set(self.decision.as_str().into()),
            comment: Set(comment.clone()),
            reviewer: Set(self.actor.clone()),
            reviewed_at: Set(now),
            correction_kind: Set(correction.map(|c| c.kind.as_str().to_owned())),
            due_on: Set(correction.map(|c| c.due_on)),
            paused_deadline: Set(correction
                .filter(|c| c.pause_stage_clock)
                .map(|_| project.state.clone())),
        })
        .exec(txn)
        .await?
        .last_insert_id;
        if open.is_some() && correction.is_none() {
            let reason = format!(
                "the officer reviewed `{}` (document {}): the correction asked is closed",
                document.requirement, document.id
            );
            close_correction(
                txn,
                &workflow,
                &project,
                &document.requirement,
                reason,
                &self.actor,
                now,
            )
            .await?;
        }
        let (status, accepted_document, correction_review) = match self.decision {
            ReviewDecision::Accepted => (RequirementStatus::Accepted, Some(document.id), None),
            ReviewDecision::Rejected if newer_unreviewed(txn, &document).await? => {
                (RequirementStatus::Pending, None, None)
            }
            ReviewDecision::Rejected => (RequirementStatus::Rejected, None, None),
            ReviewDecision::CorrectionRequested(_) => {
                (RequirementStatus::CorrectionRequested, None, Some(review))
            }
        };
        set_requirement(
            txn,
            project.id,
            &document.requirement,
            status,
            accepted_document,
            correction_review,
            now,
        )
        .await?;
        let mut changes = json!({ "document_id": document.id, "requirement": document.requirement,
                                  "decision": self.decision.as_str(), "status": status_name(status) });
        if let Some(asked) = correction {
            changes["correction"] = json!({ "kind": asked.kind, "due_on": asked.due_on,
                                            "pause_stage_clock": asked.pause_stage_clock });
        }
        // Closing a correction may have resumed a clock, which moved the project's chain on.
        let project = find(txn, project.id).await?;
        let event = NewEvent::other("document_reviewed", &self.actor, comment.clone(), changes);
        let (_, seq) = record(txn, &project, event, now, |u| u).await?;
        let template = match self.decision {
            ReviewDecision::Accepted => "document_accepted",
            ReviewDecision::Rejected => "document_rejected",
            ReviewDecision::CorrectionRequested(_) => "correction_requested",
        };
        let mut context = json!({
            "project_id": project.id, "region_code": project.region_code, "workflow_id": project.workflow_id,
            "workflow_version": project.workflow_version, "document_id": document.id,
            "requirement": document.requirement, "filename": document.filename, "reviewer": self.actor,
            "comment": comment, "at": now,
        });
        if let Some(asked) = correction {
            context["correction_kind"] = json!(asked.kind);
            context["due_on"] = json!(asked.due_on);
            context["stage_clock_paused"] = json!(asked.pause_stage_clock);
        }
        let mail = crate::outbox::RoleMail {
            project: &project,
            event_seq: Some(seq),
            template,
            roles: &["council".to_owned()],
            context: &context,
        };
        crate::outbox::enqueue(txn, mail, now).await?;
        if let Some(asked) = correction {
            let key = correction_key(&document.requirement);
            set_deadline(
                txn,
                project.id,
                &key,
                workflow.correction_due(asked.due_on),
                now,
            )
            .await?;
            if asked.pause_stage_clock {
                hold_stage_clock(
                    txn,
                    &workflow,
                    &project,
                    &document.requirement,
                    asked,
                    &self.actor,
                    now,
                )
                .await?;
            }
        }
        Ok(status)
    }
}

/// Refuses a correction request the region could not answer as asked: on a closed project, with a due
/// day not after today, on a document a newer upload already replaced, with a correction already open, or
/// pausing a stage clock that cannot be paused for it.
async fn check_correction(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project: &projects::Model,
    document: &documents::Model,
    open: Option<&Correction>,
    asked: CorrectionRequest,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if workflow
        .state(&project.state)
        .is_some_and(|s| s.is_terminal())
    {
        return Err(StoreError::Invalid(format!(
            "project {} is closed (`{}`): the region owes no correction any more",
            project.id, project.state
        )));
    }
    let today = workflow.local_day(now);
    if asked.due_on <= today {
        return Err(StoreError::Invalid(format!(
            "`due_on` {} is not in the future (today is {today} in {}): give a day after today",
            asked.due_on,
            workflow.timezone()
        )));
    }
    if let Some(open) = open {
        return Err(StoreError::Invalid(format!(
            "a correction of `{}` is already asked (on document {}, due {}): the region's next upload \
             answers it, or accept or reject the document to close it",
            document.requirement, open.document_id, open.due_on
        )));
    }
    if let Some(newer) = newer_unreviewed_id(txn, document).await? {
        return Err(StoreError::Invalid(format!(
            "document {} was replaced by document {newer}, which waits for review: ask the correction \
             on that one",
            document.id
        )));
    }
    if asked.pause_stage_clock {
        // Only "no such deadline" is the request's fault; a database error stays one.
        let deadline = match live_deadline(txn, project, &project.state).await {
            Err(StoreError::Invalid(_)) => {
                return Err(StoreError::Invalid(format!(
                    "stage `{}` has no deadline to pause: ask the correction without \
                     `pause_stage_clock`",
                    project.state
                )));
            }
            found => found?,
        };
        if deadline.paused_at.is_some() && stage_clock_holders(txn, project).await?.is_empty() {
            return Err(StoreError::Invalid(format!(
                "the deadline of stage `{}` is paused already, not for a correction: resume it first, or \
                 ask the correction without `pause_stage_clock`",
                project.state
            )));
        }
    }
    Ok(())
}

/// Pauses the stage's clock for a correction; when another correction holds it paused already, this one
/// holds it too, so the clock resumes only once both are answered.
async fn hold_stage_clock(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project: &projects::Model,
    requirement: &str,
    asked: CorrectionRequest,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let deadline = live_deadline(txn, project, &project.state).await?;
    if deadline.paused_at.is_some() {
        return Ok(());
    }
    let project = find(txn, project.id).await?;
    let reason = format!(
        "waiting for the region's correction of `{requirement}` ({}, due {})",
        asked.kind.as_str(),
        asked.due_on
    );
    pause(txn, workflow, &project, &project.state, reason, actor, now).await?;
    Ok(())
}

/// The correction the requirement waits for, if any.
async fn open_correction(
    txn: &impl ConnectionTrait,
    project_id: i64,
    requirement: &str,
) -> StoreResult<Option<Correction>> {
    let review_id = requirements::Entity::find_by_id((project_id, requirement.to_owned()))
        .one(txn)
        .await?
        .and_then(|r| r.correction_review_id);
    let Some(review_id) = review_id else {
        return Ok(None);
    };
    let review = document_reviews::Entity::find_by_id(review_id)
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("correction review {review_id} is gone")))?;
    correction_of(review).map(Some)
}

/// The requirements whose open correction holds the project's stage clock paused.
async fn stage_clock_holders(
    txn: &impl ConnectionTrait,
    project: &projects::Model,
) -> StoreResult<Vec<String>> {
    let waiting = requirements::Entity::find()
        .filter(requirements::Column::ProjectId.eq(project.id))
        .filter(requirements::Column::CorrectionReviewId.is_not_null())
        .all(txn)
        .await?;
    let mut holders = Vec::new();
    for row in waiting {
        if let Some(c) = open_correction(txn, project.id, &row.key).await?
            && c.paused_deadline.as_deref() == Some(project.state.as_str())
        {
            holders.push(row.key);
        }
    }
    Ok(holders)
}

/// Ends the correction `requirement` waits for, if one: its deadline is cleared and the stage clock it
/// paused resumes (as the workflow says), unless another open correction still holds it. Returns the
/// review that asked it. The caller sets the requirement's new status.
async fn close_correction(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project: &projects::Model,
    requirement: &str,
    reason: String,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let Some(row) = requirements::Entity::find_by_id((project.id, requirement.to_owned()))
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    let Some(review_id) = row.correction_review_id else {
        return Ok(None);
    };
    let correction = open_correction(txn, project.id, requirement).await?;
    requirements::Entity::update_many()
        .col_expr(
            requirements::Column::CorrectionReviewId,
            Expr::value(Option::<i64>::None),
        )
        .filter(requirements::Column::ProjectId.eq(project.id))
        .filter(requirements::Column::Key.eq(requirement))
        .exec(txn)
        .await?;
    clear_deadlines(txn, project.id, &[correction_key(requirement)], now).await?;
    let paused = correction.and_then(|c| c.paused_deadline);
    // The project may have left the stage meanwhile: its deadline is gone, nothing to resume.
    if let Some(key) = paused.filter(|key| *key == project.state)
        && stage_clock_holders(txn, project).await?.is_empty()
        && live_deadline(txn, project, &key)
            .await
            .is_ok_and(|d| d.paused_at.is_some())
    {
        resume(txn, workflow, project, &key, reason, actor, now).await?;
    }
    Ok(Some(review_id))
}

async fn requirement_status(
    txn: &impl ConnectionTrait,
    project_id: i64,
    key: &str,
) -> StoreResult<RequirementStatus> {
    match requirements::Entity::find_by_id((project_id, key.to_owned()))
        .one(txn)
        .await?
    {
        Some(row) => parse_status(&row.status),
        None => Ok(RequirementStatus::Missing),
    }
}

pub(crate) async fn set_requirement(
    txn: &impl ConnectionTrait,
    project_id: i64,
    key: &str,
    status: RequirementStatus,
    accepted_document_id: Option<i64>,
    correction_review_id: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    requirements::Entity::insert(requirements::ActiveModel {
        project_id: Set(project_id),
        key: Set(key.to_owned()),
        status: Set(status_name(status).into()),
        accepted_document_id: Set(accepted_document_id),
        updated_at: Set(now),
        correction_review_id: Set(correction_review_id),
    })
    .on_conflict(
        OnConflict::columns([requirements::Column::ProjectId, requirements::Column::Key])
            .update_columns([
                requirements::Column::Status,
                requirements::Column::AcceptedDocumentId,
                requirements::Column::UpdatedAt,
                requirements::Column::CorrectionReviewId,
            ])
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Whether a document newer than this one, for the same requirement, still waits for its review.
async fn newer_unreviewed(
    txn: &impl ConnectionTrait,
    document: &documents::Model,
) -> StoreResult<bool> {
    Ok(newer_unreviewed_id(txn, document).await?.is_some())
}

/// The first document newer than this one, for the same requirement, that still waits for its review.
async fn newer_unreviewed_id(
    txn: &impl ConnectionTrait,
    document: &documents::Model,
) -> StoreResult<Option<i64>> {
    let newer = documents::Entity::find()
        .filter(documents::Column::ProjectId.eq(document.project_id))
        .filter(documents::Column::Requirement.eq(document.requirement.as_str()))
        .filter(documents::Column::Id.gt(document.id))
        .all(txn)
        .await?;
    for doc in newer {
        let reviewed = document_reviews::Entity::find()
            .filter(document_reviews::Column::DocumentId.eq(doc.id))
            .one(txn)
            .await?;
        if reviewed.is_none() {
            return Ok(Some(doc.id));
        }
    }
    Ok(None)
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> StoreResult<documents::Model> {
    documents::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(StoreError::DocumentNotFound(id))
}

pub async fn list(
    db: &impl ConnectionTrait,
    project_id: i64,
) -> StoreResult<Vec<documents::Model>> {
    Ok(documents::Entity::find()
        .filter(documents::Column::ProjectId.eq(project_id))
        .order_by_asc(documents::Column::Id)
        .all(db)
        .await?)
}

/// A project's documents, oldest first, each with its latest review if any: two statements whatever
/// their number (the documents' list and the region page show them all).
pub async fn list_reviewed(
    db: &impl ConnectionTrait,
    project_id: i64,
) -> StoreResult<Vec<(documents::Model, Option<document_reviews::Model>)>> {
    let listed = list(db, project_id).await?;
    let of_project = Query::select()
        .column(documents::Column::Id)
        .from(documents::Entity)
        .and_where(documents::Column::ProjectId.eq(project_id))
        .to_owned();
    let reviews = document_reviews::Entity::find()
        .filter(document_reviews::Column::DocumentId.in_subquery(of_project))
        .order_by_asc(document_reviews::Column::Id)
        .all(db)
        .await?;
    // Oldest first, so each document keeps its latest.
    let mut latest: HashMap<i64, document_reviews::Model> = HashMap::new();
    for review in reviews {
        latest.insert(review.document_id, review);
    }
    Ok(listed
        .into_iter()
        .map(|document| {
            let review = latest.remove(&document.id);
            (document, review)
        })
        .collect())
}

/// The latest review of a document, if any.
pub async fn latest_review(
    db: &impl ConnectionTrait,
    document_id: i64,
) -> StoreResult<Option<document_reviews::Model>> {
    Ok(document_reviews::Entity::find()
        .filter(document_reviews::Column::DocumentId.eq(document_id))
        .order_by_desc(document_reviews::Column::Id)
        .one(db)
        .await?)
}
