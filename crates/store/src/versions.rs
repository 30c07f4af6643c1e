//! Moving running projects to another version of their workflow. A dry run and the real run compute each
//! project's report with the same function, [`plan_project`]; the real run then applies exactly that report
//! in the project's own transaction, with one `workflow.migrated` event carrying it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use incubator_engine::{
    DeadlineChange, Facts, LiveDeadline, MigrationPlan, MigrationRefused, plan_migration,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde::Serialize;

use crate::Store;
use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::entities::{deadlines, projects};
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::projects::{instance_of, record, snapshot_of};
use crate::reminders::{carry_sent, sent_steps};
use crate::workflows::WorkflowRegistry;

/// Which projects of a workflow move to which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRequest {
    pub workflow_id: String,
    pub to_version: i32,
    /// Every project of the workflow when `None`.
    pub projects: Option<Vec<i64>>,
    /// Explicit state mapping (`old → new`), consulted before the new definition's `migrations:`.
    pub map: BTreeMap<String, String>,
    pub actor: String,
    pub now: DateTime<Utc>,
}

/// One project's migration as planned (dry run) or applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectMigration {
    pub project_id: i64,
    pub region_code: String,
    #[serde(flatten)]
    pub plan: MigrationPlan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    pub workflow_id: String,
    pub to_version: i32,
    pub dry_run: bool,
    pub projects: Vec<ProjectMigration>,
    /// Projects already on the target version: nothing to do.
    pub unchanged: Vec<i64>,
}

/// Plans (`dry_run`) or applies the migration. Every project is planned first: when any is refused (a state
/// with no counterpart) nothing is written and the refusal lists every such state. Each project is then
/// migrated in its own transaction.
pub async fn migrate(
    store: &Store,
    request: &MigrationRequest,
    dry_run: bool,
) -> StoreResult<MigrationReport> {
    let db = store.db();
    let registry = store.workflows();
    // The target must exist before anything else is said about it.
    registry
        .get(db, &request.workflow_id, request.to_version)
        .await?;
    let selected = select(db, request).await?;
    let (todo, unchanged): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|p| p.workflow_version != request.to_version);
    let mut planned = Vec::with_capacity(todo.len());
    let mut unmapped = BTreeSet::new();
    for project in todo {
        match plan_project(db, registry, project, request).await {
            Ok(report) => planned.push(report),
            Err(StoreError::MigrationRefused(MigrationRefused::Unmapped { states, .. })) => {
                unmapped.extend(states);
            }
            Err(other) => return Err(other),
        }
    }
    if !unmapped.is_empty() {
        return Err(StoreError::MigrationRefused(MigrationRefused::Unmapped {
            to_version: u32::try_from(request.to_version).unwrap_or_default(),
            states: unmapped.into_iter().collect(),
        }));
    }
    let mut projects = Vec::with_capacity(planned.len());
    for report in planned {
        if dry_run {
            projects.push(report);
            continue;
        }
        let applied = store
            .write(MigrateProject {
                registry: registry.clone(),
                project_id: report.project_id,
                request: request.clone(),
            })
            .await?;
        projects.push(applied);
    }
    Ok(MigrationReport {
        workflow_id: request.workflow_id.clone(),
        to_version: request.to_version,
        dry_run,
        projects,
        unchanged: unchanged.iter().map(|p| p.id).collect(),
    })
}

/// The projects a request names, all on its workflow; an unknown id or a project of another workflow is
/// refused before anything is planned.
async fn select(
    db: &impl ConnectionTrait,
    request: &MigrationRequest,
) -> StoreResult<Vec<projects::Model>> {
    let mut query =
        projects::Entity::find().filter(projects::Column::WorkflowId.eq(&request.workflow_id));
    if let Some(ids) = &request.projects {
        if ids.is_empty() {
            return Err(StoreError::Invalid(
                "no project named: give at least one project id, or none to migrate them all"
                    .into(),
            ));
        }
        for &id in ids {
            let project = crate::projects::find(db, id).await?;
            if project.workflow_id != request.workflow_id {
                return Err(StoreError::Invalid(format!(
                    "project {id} runs workflow `{}`, not `{}`",
                    project.workflow_id, request.workflow_id
                )));
            }
        }
        query = query.filter(projects::Column::Id.is_in(ids.iter().copied()));
    }
    let mut found = query.all(db).await?;
    found.sort_by_key(|p| p.id);
    Ok(found)
}

/// One project's report: what its migration changes, read from the database as it stands. The dry run
/// shows it; [`MigrateProject`] applies it.
pub async fn plan_project(
    db: &impl ConnectionTrait,
    registry: &WorkflowRegistry,
    project: projects::Model,
    request: &MigrationRequest,
) -> StoreResult<ProjectMigration> {
    let now = normalize(request.now);
    let old = registry
        .get(db, &project.workflow_id, project.workflow_version)
        .await?;
    let new = registry
        .get(db, &request.workflow_id, request.to_version)
        .await?;
    let snap = snapshot_of(db, project).await?;
    let mut live = Vec::with_capacity(snap.deadlines.len());
    for d in &snap.deadlines {
        live.push(LiveDeadline {
            key: d.key.clone(),
            due_at: d.due_at,
            paused_at: d.paused_at,
            sent: sent_steps(db, d.project_id, &d.key, d.due_at).await?,
        });
    }
    let instance = instance_of(db, registry, &old, &snap, now).await?;
    let plan = plan_migration(&old, &new, &instance, &live, &request.map, now)?;
    Ok(ProjectMigration {
        project_id: snap.project.id,
        region_code: snap.project.region_code.clone(),
        plan,
    })
}

/// Migrates one project: plans it inside the transaction, then re-pins the version, maps the state, drops
/// the values of removed fields, moves, sets and clears deadlines, carries over the reminders already
/// sent, and appends one `workflow.migrated` event carrying the report.
#[derive(Debug)]
pub struct MigrateProject {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub request: MigrationRequest,
}

#[async_trait::async_trait]
impl UnitOfWork for MigrateProject {
    type Output = ProjectMigration;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<ProjectMigration> {
        let now = normalize(self.request.now);
        let project = crate::projects::find(txn, self.project_id).await?;
        let report = plan_project(txn, &self.registry, project.clone(), &self.request).await?;
        let plan = &report.plan;
        let mut facts: Facts = serde_json::from_str(&project.facts)
            .map_err(|e| StoreError::Corrupt(format!("facts of project {}: {e}", project.id)))?;
        facts.retain(|k, _| !plan.dropped_values.contains_key(k));
        let facts = serde_json::to_string(&facts)
            .map_err(|e| StoreError::Corrupt(format!("facts of project {}: {e}", project.id)))?;
        let changes = serde_json::to_value(&report)
            .map_err(|e| StoreError::Corrupt(format!("migration report: {e}")))?;
        let event = NewEvent {
            kind: "workflow.migrated".into(),
            actor: self.request.actor.clone(),
            transition: None,
            from_state: Some(plan.from_state.clone()),
            to_state: Some(plan.to_state.clone()),
            comment: None,
            changes,
        };
        record(txn, &project, event, now, |update| {
            update
                .col_expr(
                    projects::Column::WorkflowVersion,
                    Expr::value(self.request.to_version),
                )
                .col_expr(projects::Column::State, Expr::value(plan.to_state.clone()))
                .col_expr(projects::Column::Facts, Expr::value(facts))
        })
        .await?;
        for change in &plan.deadlines {
            apply_deadline(txn, project.id, change, now).await?;
        }
        Ok(report)
    }
}

/// Writes one deadline change: cleared, set, or moved with its sent reminders carried over.
async fn apply_deadline(
    txn: &DatabaseTransaction,
    project_id: i64,
    change: &DeadlineChange,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let of_project = deadlines::Column::ProjectId.eq(project_id);
    let this_key = deadlines::Column::Key.eq(change.key.as_str());
    match (change.old_due, change.new_due) {
        (_, None) => {
            deadlines::Entity::update_many()
                .col_expr(deadlines::Column::ClearedAt, Expr::value(Some(now)))
                .filter(of_project)
                .filter(this_key)
                .filter(deadlines::Column::ClearedAt.is_null())
                .exec(txn)
                .await?;
        }
        (None, Some(due)) => {
            crate::projects::set_deadline(txn, project_id, &change.key, normalize(due), now)
                .await?;
        }
        (Some(old_due), Some(new_due)) => {
            move_deadline(
                txn,
                project_id,
                &change.key,
                old_due,
                new_due,
                change.paused_at,
                &change.reminders.carried,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// Moves a live deadline to `new_due` (keeping or ending its pause) and records the `carried` steps as sent
/// for the new due time. The scheduler looks at it again at `now`, unless it is paused.
#[allow(clippy::too_many_arguments)] // One statement's worth of columns; a struct would only rename them.
pub(crate) async fn move_deadline(
    txn: &DatabaseTransaction,
    project_id: i64,
    key: &str,
    old_due: DateTime<Utc>,
    new_due: DateTime<Utc>,
    paused_at: Option<DateTime<Utc>>,
    carried: &[String],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let new_due = normalize(new_due);
    deadlines::Entity::update_many()
        .col_expr(deadlines::Column::DueAt, Expr::value(new_due))
        .col_expr(deadlines::Column::PausedAt, Expr::value(paused_at))
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::Key.eq(key))
        .filter(deadlines::Column::ClearedAt.is_null())
        .exec(txn)
        .await?;
    if paused_at.is_none() {
        crate::reminders::look_at(txn, project_id, key, now).await?;
    }
    if new_due != old_due {
        carry_sent(txn, project_id, key, old_due, new_due, carried).await?;
    }
    Ok(())
}
