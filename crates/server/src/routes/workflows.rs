//! Workflows that change while projects run: the deployed versions, migrating projects to another version
//! (admin, with a dry run), and pausing and resuming a project's deadline (officer).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use incubator_store::clocks::{ClockChange, PauseDeadline, ResumeDeadline};
use incubator_store::versions::{MigrationReport, MigrationRequest, ProjectMigration, migrate};
use incubator_store::{DeployedVersion, WorkflowRegistry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath};
use crate::access::{Caller, Role, visible_project};
use crate::app::AppState;
use crate::error::ApiError;
use crate::openapi::{
    BadRequestProblem, ForbiddenProblem, InternalProblem, NotFoundProblem, TimeoutProblem,
    TooLargeProblem, UnauthorizedProblem, UnavailableProblem, UnprocessableProblem,
    UnsupportedProblem,
};

/// One deployed version of a workflow. A deployed version never changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowVersionView {
    pub id: String,
    pub version: i32,
    /// SHA-256 of the deployed source.
    pub sha256: String,
    pub deployed_at: DateTime<Utc>,
}

impl From<DeployedVersion> for WorkflowVersionView {
    fn from(v: DeployedVersion) -> Self {
        Self {
            id: v.id,
            version: v.version,
            sha256: v.sha256,
            deployed_at: v.deployed_at,
        }
    }
}

/// Every deployed version of every workflow (officers and admins).
#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    tag = "workflows",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deployed versions, by workflow id then version", body = Vec<WorkflowVersionView>),
        UnauthorizedProblem, ForbiddenProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_workflows(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WorkflowVersionView>>, ApiError> {
    caller.require(&[Role::Officer, Role::Admin], "listing workflow versions")?;
    let versions = WorkflowRegistry::list(state.store().db()).await?;
    Ok(Json(versions.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationBody {
    /// The deployed version to move the projects to.
    pub to_version: i32,
    /// Project ids; every project of the workflow when absent.
    #[serde(default)]
    pub projects: Option<Vec<i64>>,
    /// Where states that no longer exist go: `{"old_state": "new_state"}`.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Report what would change and write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a migration did (or, dry, would do), per project.
#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationReportView {
    pub workflow_id: String,
    pub to_version: i32,
    pub dry_run: bool,
    /// Per project: `project_id`, `region_code`, `from_version`, `to_version`, `from_state`, `to_state`,
    /// `requirements_added`/`removed`, `fields_added`/`removed`, `dropped_values`, and `deadlines` (each
    /// `key`, `old_due`, `new_due`, `paused_at`, `reminders: {carried, pending: [{step, old_send_at,
    /// new_send_at}]}`).
    #[schema(value_type = Vec<Object>)]
    pub projects: Vec<ProjectMigration>,
    /// Projects already on the target version.
    pub unchanged: Vec<i64>,
}

impl From<MigrationReport> for MigrationReportView {
    fn from(r: MigrationReport) -> Self {
        Self {
            workflow_id: r.workflow_id,
            to_version: r.to_version,
            dry_run: r.dry_run,
            projects: r.projects,
            unchanged: r.unchanged,
        }
    }
}

/// Migrates projects to another deployed version of their workflow (admin only). With `dry_run` nothing
/// is written; otherwise each project moves in its own transaction with one `workflow.migrated` event. A
/// state with no counterpart in the new version refuses the whole migration (422) with the list.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{id}/migrations",
    tag = "workflows",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Workflow id")),
    request_body = MigrationBody,
    responses(
        (status = 200, description = "The migration report", body = MigrationReportView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn migrate_projects(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MigrationBody>,
) -> Result<Json<MigrationReportView>, ApiError> {
    caller.require(&[Role::Admin], "migrating projects")?;
    let request = MigrationRequest {
        workflow_id: id,
        to_version: body.to_version,
        projects: body.projects,
        map: body.map,
        actor: caller.actor_id(),
        now: state.programme_now(),
    };
    let report = migrate(state.store(), &request, body.dry_run).await?;
    if !report.dry_run {
        tracing::info!(admin = caller.user_id, workflow = %report.workflow_id,
                       to_version = report.to_version, projects = report.projects.len(), "projects migrated");
    }
    Ok(Json(report.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockReason {
    /// Why, e.g. "waiting for the region's correction"; kept in the project's history.
    pub reason: String,
}

/// A pause or a resumption of a deadline.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockView {
    pub project_id: i64,
    pub key: String,
    /// The project's version after the change.
    pub version: i64,
    pub paused_at: DateTime<Utc>,
    pub resumed_at: Option<DateTime<Utc>>,
    /// `continue` or `restart`, on resumption.
    pub on_resume: Option<String>,
    pub old_due: DateTime<Utc>,
    pub new_due: DateTime<Utc>,
    /// `{carried: [step], pending: [{step, old_send_at, new_send_at}]}`.
    #[schema(value_type = Object)]
    pub reminders: serde_json::Value,
    /// The stage's milestones that paused or resumed with it (those counted from the project's own
    /// anchor; a cohort's calendar does not move).
    pub milestones: Vec<MilestoneMove>,
}

/// A milestone carried by its stage's clock; on a pause both dates are the same.
#[derive(Debug, Serialize, ToSchema)]
pub struct MilestoneMove {
    pub key: String,
    pub old_due: DateTime<Utc>,
    pub new_due: DateTime<Utc>,
}

impl From<ClockChange> for ClockView {
    fn from(c: ClockChange) -> Self {
        Self {
            project_id: c.project_id,
            key: c.key,
            version: c.version,
            paused_at: c.paused_at,
            resumed_at: c.resumed_at,
            on_resume: c.on_resume.map(|o| {
                serde_json::to_value(o)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }),
            old_due: c.old_due,
            new_due: c.new_due,
            reminders: serde_json::to_value(&c.reminders).unwrap_or_default(),
            milestones: c
                .milestones
                .into_iter()
                .map(|m| MilestoneMove {
                    key: m.key,
                    old_due: m.old_due,
                    new_due: m.new_due,
                })
                .collect(),
        }
    }
}

/// Pauses a live deadline of the project: no reminder goes out until it resumes (officer only).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/deadlines/{key}/pause",
    tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Project id"),
        ("key" = String, Path, description = "Deadline key: a state id, a goal id or `state.milestone`"),
    ),
    request_body = ClockReason,
    responses(
        (status = 200, description = "The pause", body = ClockView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn pause_deadline(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, key)): ApiPath<(i64, String)>,
    ApiJson(body): ApiJson<ClockReason>,
) -> Result<Json<ClockView>, ApiError> {
    visible_project(&state, &caller, id).await?;
    caller.require(&[Role::Officer], "pausing a deadline")?;
    let change = state
        .store()
        .write(PauseDeadline {
            registry: state.store().workflows().clone(),
            project_id: id,
            key,
            reason: body.reason,
            actor: caller.actor_id(),
            now: state.programme_now(),
        })
        .await?;
    Ok(Json(change.into()))
}

/// Resumes a paused deadline, continuing or restarting its clock as the workflow says (officer only).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/deadlines/{key}/resume",
    tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Project id"),
        ("key" = String, Path, description = "Deadline key: a state id, a goal id or `state.milestone`"),
    ),
    request_body = ClockReason,
    responses(
        (status = 200, description = "The resumption, with the moved due date and reminders", body = ClockView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn resume_deadline(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, key)): ApiPath<(i64, String)>,
    ApiJson(body): ApiJson<ClockReason>,
) -> Result<Json<ClockView>, ApiError> {
    visible_project(&state, &caller, id).await?;
    caller.require(&[Role::Officer], "resuming a deadline")?;
    let change = state
        .store()
        .write(ResumeDeadline {
            registry: state.store().workflows().clone(),
            project_id: id,
            key,
            reason: body.reason,
            actor: caller.actor_id(),
            now: state.programme_now(),
        })
        .await?;
    Ok(Json(change.into()))
}
