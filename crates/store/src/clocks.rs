//! Paused clocks: a deadline suspended with a reason ("waiting for the region's correction") and resumed,
//! continuing where it stopped or restarting, as its workflow says. While paused the scheduler sends
//! nothing for it; once resumed it plans from the moved due time. Each pause and resumption is an event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use incubator_engine::model::ClockOnResume;
use incubator_engine::{RebasedReminders, Workflow, is_milestone_key, rebase_reminders};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::json;

use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::entities::{deadlines, projects};
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::projects::{find, record};
use crate::reminders::sent_steps;
use crate::versions::move_deadline;
use crate::workflows::WorkflowRegistry;

/// Pauses a live deadline of a project.
#[derive(Debug)]
pub struct PauseDeadline {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub key: String,
    pub reason: String,
    pub actor: String,
    pub now: DateTime<Utc>,
}

/// Resumes a paused deadline.
#[derive(Debug)]
pub struct ResumeDeadline {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub key: String,
    pub reason: String,
    pub actor: String,
    pub now: DateTime<Utc>,
}

/// What a pause or a resumption did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockChange {
    pub project_id: i64,
    pub key: String,
    /// The project's version after the change.
    pub version: i64,
    pub paused_at: DateTime<Utc>,
    /// Set on resumption.
    pub resumed_at: Option<DateTime<Utc>>,
    pub on_resume: Option<ClockOnResume>,
    pub old_due: DateTime<Utc>,
    pub new_due: DateTime<Utc>,
    pub reminders: RebasedReminders,
    /// The stage's milestones that paused or resumed with it.
    pub milestones: Vec<MovedMilestone>,
}

/// A milestone carried along by its stage's clock: on a pause `old_due == new_due`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedMilestone {
    pub key: String,
    pub old_due: DateTime<Utc>,
    pub new_due: DateTime<Utc>,
}

fn reason_of(reason: &str, what: &str) -> StoreResult<String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(StoreError::Invalid(format!(
            "a reason is required to {what} a deadline, such as \"waiting for the region's correction\""
        )));
    }
    Ok(reason.to_owned())
}

/// The project's live deadline `key`, or a refusal naming the live ones.
pub(crate) async fn live_deadline(
    txn: &DatabaseTransaction,
    project: &projects::Model,
    key: &str,
) -> StoreResult<deadlines::Model> {
    let live = deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(project.id))
        .filter(deadlines::Column::ClearedAt.is_null())
        .all(txn)
        .await?;
    let keys: Vec<String> = live.iter().map(|d| d.key.clone()).collect();
    live.into_iter().find(|d| d.key == key).ok_or_else(|| {
        StoreError::Invalid(format!(
            "project {} has no live deadline `{key}`; its live deadlines are: {}",
            project.id,
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        ))
    })
}

#[async_trait::async_trait]
impl UnitOfWork for PauseDeadline {
    type Output = ClockChange;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<ClockChange> {
        let reason = reason_of(&self.reason, "pause")?;
        let project = find(txn, self.project_id).await?;
        let workflow = self
            .registry
            .get(txn, &project.workflow_id, project.workflow_version)
            .await?;
        pause(
            txn,
            &workflow,
            &project,
            &self.key,
            reason,
            &self.actor,
            self.now,
        )
        .await
    }
}

#[async_trait::async_trait]
impl UnitOfWork for ResumeDeadline {
    type Output = ClockChange;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<ClockChange> {
        let reason = reason_of(&self.reason, "resume")?;
        let project = find(txn, self.project_id).await?;
        let workflow = self
            .registry
            .get(txn, &project.workflow_id, project.workflow_version)
            .await?;
        resume(
            txn,
            &workflow,
            &project,
            &self.key,
            reason,
            &self.actor,
            self.now,
        )
        .await
    }
}

/// Pauses the live deadline `key` of `project`, with its event (a correction request pauses the stage's
/// clock through here too).
pub(crate) async fn pause(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project: &projects::Model,
    key: &str,
    reason: String,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<ClockChange> {
    let now = normalize(now);
    if let Some((stage, _)) = key.split_once('.').filter(|_| is_milestone_key(key)) {
        return Err(StoreError::Invalid(format!(
            "milestone `{key}` runs on the clock of stage `{stage}`: pause the stage's deadline `{stage}`"
        )));
    }
    let deadline = live_deadline(txn, project, key).await?;
    if let Some(since) = deadline.paused_at {
        return Err(StoreError::Invalid(format!(
            "deadline `{key}` of project {} is paused already (since {since}): resume it first",
            project.id
        )));
    }
    // Milestones already passed stay where they fell: only those still ahead wait with the stage.
    let milestones: Vec<MovedMilestone> = clock_milestones(txn, workflow, project.id, key)
        .await?
        .into_iter()
        .filter(|m| m.due_at > now && m.paused_at.is_none())
        .map(|m| MovedMilestone {
            key: m.key,
            old_due: m.due_at,
            new_due: m.due_at,
        })
        .collect();
    let changes = json!({ "key": key, "due_at": deadline.due_at, "milestones": milestones });
    let event = NewEvent::other("deadline.paused", actor, Some(reason), changes);
    let (version, _) = record(txn, project, event, now, |u| u).await?;
    let paused_keys =
        std::iter::once(key.to_owned()).chain(milestones.iter().map(|m| m.key.clone()));
    deadlines::Entity::update_many()
        .col_expr(deadlines::Column::PausedAt, Expr::value(Some(now)))
        .filter(deadlines::Column::ProjectId.eq(project.id))
        .filter(deadlines::Column::ClearedAt.is_null())
        .filter(deadlines::Column::Key.is_in(paused_keys))
        .exec(txn)
        .await?;
    Ok(ClockChange {
        project_id: project.id,
        key: key.to_owned(),
        version,
        paused_at: now,
        resumed_at: None,
        on_resume: None,
        old_due: deadline.due_at,
        new_due: deadline.due_at,
        reminders: RebasedReminders::default(),
        milestones,
    })
}

/// The live deadlines of the milestones that run on state deadline `key`'s clock.
async fn clock_milestones(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project_id: i64,
    key: &str,
) -> StoreResult<Vec<deadlines::Model>> {
    let keys = workflow.milestones_on_clock(key);
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    Ok(deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::ClearedAt.is_null())
        .filter(deadlines::Column::Key.is_in(keys))
        .all(txn)
        .await?)
}

/// Resumes the paused deadline `key` of `project` as `workflow` says (continue or restart), with its
/// event; the reminders already sent that still hold are carried to the new due time.
pub(crate) async fn resume(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project: &projects::Model,
    key: &str,
    reason: String,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<ClockChange> {
    let now = normalize(now);
    let deadline = live_deadline(txn, project, key).await?;
    let Some(paused_at) = deadline.paused_at else {
        return Err(StoreError::Invalid(format!(
            "deadline `{key}` of project {} is not paused",
            project.id
        )));
    };
    if now < paused_at {
        return Err(StoreError::Invalid(format!(
            "deadline `{key}` was paused at {paused_at}: it cannot resume before, at {now}"
        )));
    }
    let on_resume = workflow.on_resume(key);
    let new_due = normalize(workflow.resumed_due(key, deadline.due_at, paused_at, now));
    let plan = workflow.reminder_plan(key);
    let sent = sent_steps(txn, project.id, key, deadline.due_at).await?;
    let reminders = rebase_reminders(
        Some((plan, deadline.due_at, Some(paused_at))),
        Some((plan, new_due, None)),
        &sent,
        now,
    );
    let mut changes = json!({
        "key": key,
        "paused_at": paused_at,
        "on_resume": on_resume,
        "old_due": deadline.due_at,
        "new_due": new_due,
        "reminders": reminders,
    });
    let mut milestones = Vec::new();
    for m in clock_milestones(txn, workflow, project.id, key).await? {
        if m.paused_at != Some(paused_at) {
            continue;
        }
        let new_due = normalize(workflow.resumed_due(&m.key, m.due_at, paused_at, now));
        milestones.push(MovedMilestone {
            key: m.key,
            old_due: m.due_at,
            new_due,
        });
    }
    changes["milestones"] = json!(milestones);
    let event = NewEvent::other("deadline.resumed", actor, Some(reason), changes);
    let (version, _) = record(txn, project, event, now, |u| u).await?;
    move_deadline(
        txn,
        project.id,
        key,
        deadline.due_at,
        new_due,
        None,
        &reminders.carried,
        now,
    )
    .await?;
    for m in &milestones {
        move_deadline(
            txn,
            project.id,
            &m.key,
            m.old_due,
            m.new_due,
            None,
            &[],
            now,
        )
        .await?;
    }
    Ok(ClockChange {
        project_id: project.id,
        key: key.to_owned(),
        version,
        paused_at,
        resumed_at: Some(now),
        on_resume: Some(on_resume),
        old_due: deadline.due_at,
        new_due,
        reminders,
        milestones,
    })
}
