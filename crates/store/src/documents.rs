//! Evidence: document metadata, reviews, and the derived status of each requirement.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use incubator_engine::RequirementStatus;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::entities::{document_reviews, documents, requirements};
use crate::error::{StoreError, StoreResult};
use crate::events::{NewEvent, append};
use crate::projects::{bump, find, parse_status, status_name};
use crate::workflows::WorkflowRegistry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Accepted,
    Rejected,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
}

/// Records a document whose bytes are already stored (see `BlobStore::put`).
#[derive(Debug)]
pub struct RecordDocument {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub requirement: String,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
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

/// Records `upload` with its `document_uploaded` event; `link` names the link holder it came through.
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
        expires_on: Set(None),
    })
    .exec(txn)
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
            now,
        )
        .await?;
    }
    let mut changes = json!({ "document_id": inserted.last_insert_id, "requirement": upload.requirement,
                              "filename": upload.filename, "sha256": upload.sha256, "size": upload.size });
    if let Some(link) = link {
        changes["link"] = link;
    }
    let (seq, hash) = append(
        txn,
        &project,
        NewEvent::other("document_uploaded", &upload.actor, None, changes),
        now,
    )
    .await?;
    bump(txn, &project, seq, &hash, |u| u).await?;
    documents::Entity::find_by_id(inserted.last_insert_id)
        .one(txn)
        .await?
        .ok_or(StoreError::DocumentNotFound(inserted.last_insert_id))
}

/// An officer's decision on a document; mails the council.
#[derive(Debug)]
pub struct ReviewDocument {
    pub document_id: i64,
    pub decision: ReviewDecision,
    pub comment: Option<String>,
    pub actor: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for ReviewDocument {
    type Output = RequirementStatus;

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<RequirementStatus> {
        let now = normalize(self.now);
        let document = documents::Entity::find_by_id(self.document_id)
            .one(txn)
            .await?
            .ok_or(StoreError::DocumentNotFound(self.document_id))?;
        if self.decision == ReviewDecision::Rejected
            && self.comment.as_deref().is_none_or(|c| c.trim().is_empty())
        {
            return Err(StoreError::Invalid(
                "a rejection needs a comment telling the region what to fix".into(),
            ));
        }
        let project = find(txn, document.project_id).await?;
        document_reviews::Entity::insert(document_reviews::ActiveModel {
            id: NotSet,
            document_id: Set(document.id),
            decision: Set(self.decision.as_str().into()),
            comment: Set(self.comment.clone()),
            reviewer: Set(self.actor.clone()),
            reviewed_at: Set(now),
        })
        .exec_without_returning(txn)
        .await?;
        let status = match self.decision {
            ReviewDecision::Accepted => {
                set_requirement(
                    txn,
                    project.id,
                    &document.requirement,
                    RequirementStatus::Accepted,
                    Some(document.id),
                    now,
                )
                .await?;
                RequirementStatus::Accepted
            }
            ReviewDecision::Rejected => {
                let status = if newer_unreviewed(txn, &document).await? {
                    RequirementStatus::Pending
                } else {
                    RequirementStatus::Rejected
                };
                set_requirement(txn, project.id, &document.requirement, status, None, now).await?;
                status
            }
        };
        let changes = json!({ "document_id": document.id, "requirement": document.requirement,
                              "decision": self.decision.as_str(), "status": status_name(status) });
        let (seq, hash) = append(
            txn,
            &project,
            NewEvent::other(
                "document_reviewed",
                &self.actor,
                self.comment.clone(),
                changes,
            ),
            now,
        )
        .await?;
        bump(txn, &project, seq, &hash, |u| u).await?;
        let template = match self.decision {
            ReviewDecision::Accepted => "document_accepted",
            ReviewDecision::Rejected => "document_rejected",
        };
        let context = json!({
            "project_id": project.id, "region_code": project.region_code, "workflow_id": project.workflow_id,
            "workflow_version": project.workflow_version, "document_id": document.id,
            "requirement": document.requirement, "filename": document.filename, "reviewer": self.actor,
            "comment": self.comment, "at": now,
        });
        crate::outbox::enqueue(
            txn,
            &project,
            Some(seq),
            template,
            &["council".to_owned()],
            &context,
            now,
        )
        .await?;
        Ok(status)
    }
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

async fn set_requirement(
    txn: &impl ConnectionTrait,
    project_id: i64,
    key: &str,
    status: RequirementStatus,
    accepted_document_id: Option<i64>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    requirements::Entity::insert(requirements::ActiveModel {
        project_id: Set(project_id),
        key: Set(key.to_owned()),
        status: Set(status_name(status).into()),
        accepted_document_id: Set(accepted_document_id),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([requirements::Column::ProjectId, requirements::Column::Key])
            .update_columns([
                requirements::Column::Status,
                requirements::Column::AcceptedDocumentId,
                requirements::Column::UpdatedAt,
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
            return Ok(true);
        }
    }
    Ok(false)
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
