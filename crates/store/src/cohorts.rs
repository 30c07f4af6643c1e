//! Incubation sessions (cohorts) and the projects assigned to them.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::NotSet, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryOrder, Set,
};
use serde_json::json;

use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::entities::{cohorts, projects};
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::projects::{decision_view_by_id, instance_of, record, set_deadline};
use crate::workflows::WorkflowRegistry;

#[derive(Debug)]
pub struct CreateCohort {
    pub name: String,
    pub starts_on: NaiveDate,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for CreateCohort {
    type Output = cohorts::Model;

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<cohorts::Model> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a cohort needs a name".into()));
        }
        let inserted = cohorts::Entity::insert(cohorts::ActiveModel {
            id: NotSet,
            name: Set(name.to_owned()),
            starts_on: Set(self.starts_on),
            created_at: Set(normalize(self.now)),
        })
        .exec(txn)
        .await?;
        get(txn, inserted.last_insert_id).await
    }
}

/// Assigns a project to a cohort (or removes it); a deadline counted from the cohort's start is set now.
#[derive(Debug)]
pub struct AssignCohort {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub cohort_id: Option<i64>,
    pub actor: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for AssignCohort {
    type Output = i64;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<i64> {
        let now = normalize(self.now);
        let mut snap = decision_view_by_id(txn, self.project_id).await?;
        snap.cohort = match self.cohort_id {
            Some(id) => Some(get(txn, id).await?),
            None => None,
        };
        let project = &snap.project;
        let changes =
            json!({ "cohort_id": self.cohort_id, "previous_cohort_id": project.cohort_id });
        let event = NewEvent::other("cohort_assigned", &self.actor, None, changes);
        let cohort_id = self.cohort_id;
        let (version, _) = record(txn, project, event, now, |u| {
            u.col_expr(projects::Column::CohortId, Expr::value(cohort_id))
        })
        .await?;
        let workflow = self
            .registry
            .get(txn, &project.workflow_id, project.workflow_version)
            .await?;
        let instance = instance_of(txn, &self.registry, &workflow, &snap, now).await?;
        if let Some(due) =
            workflow.deadline_for(&project.state, &instance, project.state_entered_at)
        {
            set_deadline(txn, project.id, &project.state, normalize(due), now).await?;
        }
        Ok(version)
    }
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> StoreResult<cohorts::Model> {
    cohorts::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(StoreError::CohortNotFound(id))
}

pub async fn list(db: &impl ConnectionTrait) -> StoreResult<Vec<cohorts::Model>> {
    Ok(cohorts::Entity::find()
        .order_by_asc(cohorts::Column::StartsOn)
        .all(db)
        .await?)
}
