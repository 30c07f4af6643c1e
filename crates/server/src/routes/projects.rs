//! Projects: creation, the project as the caller sees it, its fields, its transitions, its cohort and its
//! audit trail.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use chrono::{DateTime, NaiveDate, Utc};
use incubator_engine::{CorrectionKind, FireRequest};
use incubator_store::cohorts::AssignCohort;
use incubator_store::events;
use incubator_store::fields::PatchFields;
use incubator_store::projects::{
    self, CreateProject, FireTransition, FireTransitionAndRead, ProjectFilter, Relatives, Snapshot,
    status_name,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::links::LinkView;
use super::{ApiJson, ApiPath, ApiQuery, Paged};
use crate::access::{Caller, Role, visible_project};
use crate::app::AppState;
use crate::error::{ApiError, FieldProblem, UnmetCondition};
use crate::openapi::{
    BadRequestProblem, ConflictProblem, ForbiddenProblem, InternalProblem, NotFoundProblem,
    TimeoutProblem, TooLargeProblem, UnauthorizedProblem, UnavailableProblem, UnprocessableProblem,
    UnsupportedProblem,
};

/// A project as the caller sees it: which transitions it may fire now, and what is missing for the others.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: i64,
    pub region_code: String,
    /// Workflow id, e.g. `csirt-incubation`.
    pub workflow: String,
    pub workflow_version: i32,
    pub state: String,
    pub state_entered_at: DateTime<Utc>,
    /// Send it back as `expected_version` when firing a transition.
    pub version: i64,
    /// Typed facts, by field key.
    #[schema(value_type = Object, example = json!({"legal_form": "GIP", "subsidy_amount_eur": 250000}))]
    pub fields: BTreeMap<String, Value>,
    pub cohort_id: Option<i64>,
    /// Every requirement of the workflow with its review status.
    pub requirements: Vec<RequirementView>,
    /// Open deadlines: the state's own, its milestones (`state.milestone`) and the workflow's goals.
    pub deadlines: Vec<DeadlineView>,
    /// The transitions leaving the current state.
    pub transitions: Vec<TransitionOption>,
    /// The project whose transition started this one as its child workflow.
    pub parent: Option<ProjectRef>,
    /// The child workflows this project's states started, oldest first.
    pub children: Vec<ProjectRef>,
    /// Signed links issued for this project, newest first (never their tokens).
    pub links: Vec<LinkView>,
}

/// Another project, named by its id, workflow and state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectRef {
    pub id: i64,
    pub workflow: String,
    pub state: String,
}

impl From<&incubator_store::entities::projects::Model> for ProjectRef {
    fn from(project: &incubator_store::entities::projects::Model) -> Self {
        Self {
            id: project.id,
            workflow: project.workflow_id.clone(),
            state: project.state.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequirementView {
    pub key: String,
    /// `missing`, `pending`, `accepted`, `rejected`, `correction_requested` or `expired`.
    pub status: String,
    /// Document kinds accepted as evidence for it.
    pub documents: Vec<String>,
    /// The correction the region owes on it (status `correction_requested`).
    pub correction: Option<CorrectionView>,
    /// The last day its accepted evidence is valid; past it the requirement reads `expired`.
    pub expires_on: Option<NaiveDate>,
}

/// A correction an officer asked for on a document.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionView {
    /// `incorrect`, `incomplete` or `outdated`.
    #[schema(value_type = String, example = "incomplete")]
    pub kind: CorrectionKind,
    /// What the region must correct.
    pub comment: String,
    /// The day the corrected document is due by (end of day, in the workflow's time zone).
    pub due_on: NaiveDate,
    /// The document the correction was asked on.
    pub document_id: i64,
    /// The stage deadline paused until the region answers, if one was.
    pub paused_deadline: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadlineView {
    /// The deadline's key: a state id, `state.milestone`, or a goal id.
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub overdue: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionOption {
    pub id: String,
    pub to: String,
    /// The caller may fire it now.
    pub allowed: bool,
    /// The caller's role is among the transition's roles.
    pub role_allowed: bool,
    /// A comment (the reason) must be sent when firing it.
    pub comment_required: bool,
    /// Every condition not met yet.
    pub unmet: Vec<UnmetCondition>,
}

/// Builds the view of a project the caller may see.
pub async fn view_of(
    state: &AppState,
    caller: &Caller,
    snapshot: Snapshot,
) -> Result<ProjectView, ApiError> {
    let relatives = state.store().relatives(&snapshot.project).await?;
    view_with(state, caller, snapshot, relatives).await
}

/// [`view_of`], the project's relatives read already.
async fn view_with(
    state: &AppState,
    caller: &Caller,
    snapshot: Snapshot,
    relatives: Relatives,
) -> Result<ProjectView, ApiError> {
    let project = &snapshot.project;
    let workflow = state
        .store()
        .workflows()
        .get(
            state.store().db(),
            &project.workflow_id,
            project.workflow_version,
        )
        .await?;
    let now = state.programme_now();
    let completed = projects::child_completed_among(
        state.store().db(),
        state.store().workflows(),
        &workflow,
        project,
        &relatives.children,
    )
    .await?;
    let instance = snapshot.instance(&workflow, now, completed);
    let requirements = workflow
        .requirements()
        .iter()
        .map(|r| {
            let record = snapshot.requirements.get(&r.key);
            RequirementView {
                key: r.key.clone(),
                status: status_name(snapshot.requirement_status(&workflow, &r.key, now)).to_owned(),
                documents: r.documents.clone(),
                correction: record
                    .and_then(|c| c.correction.as_ref())
                    .map(|c| CorrectionView {
                        kind: c.kind,
                        comment: c.comment.clone(),
                        due_on: c.due_on,
                        document_id: c.document_id,
                        paused_deadline: c.paused_deadline.clone(),
                    }),
                expires_on: record.and_then(|c| c.expires_on),
            }
        })
        .collect();
    let deadlines = snapshot
        .deadlines
        .iter()
        .map(|d| DeadlineView {
            state: d.key.clone(),
            due_at: d.due_at,
            overdue: d.due_at < now && !incubator_engine::is_milestone_key(&d.key),
        })
        .collect();
    let transitions = workflow
        .evaluate(&instance, &caller.actor())
        .into_iter()
        .map(|t| TransitionOption {
            id: t.id,
            to: t.to,
            allowed: t.allowed,
            role_allowed: t.role_allowed,
            comment_required: t.comment_required,
            unmet: t.unmet.into_iter().map(UnmetCondition::from).collect(),
        })
        .collect();
    let fields = snapshot
        .facts
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                serde_json::to_value(v).map_err(ApiError::internal)?,
            ))
        })
        .collect::<Result<_, ApiError>>()?;
    let parent = relatives.parent.as_ref().map(ProjectRef::from);
    let children = relatives.children.iter().map(ProjectRef::from).collect();
    let links = relatives
        .links
        .into_iter()
        .map(|l| LinkView::of(l, now))
        .collect();
    Ok(ProjectView {
        id: project.id,
        region_code: project.region_code.clone(),
        workflow: project.workflow_id.clone(),
        workflow_version: project.workflow_version,
        state: project.state.clone(),
        state_entered_at: project.state_entered_at,
        version: project.version,
        fields,
        cohort_id: project.cohort_id,
        requirements,
        deadlines,
        transitions,
        parent,
        children,
        links,
    })
}

/// The project, checked visible to the caller (404 otherwise), as the caller sees it.
pub async fn project_view(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<ProjectView, ApiError> {
    let snapshot = projects::snapshot(state.store().db(), id).await?;
    caller.project_visible(&snapshot.project)?;
    view_of(state, caller, snapshot).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    #[schema(example = "53")]
    pub region_code: String,
    #[schema(example = "csirt-incubation")]
    pub workflow: String,
}

/// Opens a region's project on the newest version of a workflow, in its initial state (officer only).
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    tag = "projects",
    security(("bearer" = [])),
    request_body = NewProject,
    responses(
        (status = 201, description = "The project", body = ProjectView,
         headers(("location" = String, description = "The project's URL"))),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, ConflictProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewProject>,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, String); 1],
        Json<ProjectView>,
    ),
    ApiError,
> {
    caller.require(&[Role::Officer], "opening a project")?;
    let id = state
        .store()
        .write(CreateProject {
            registry: state.store().workflows().clone(),
            region_code: new.region_code,
            workflow_id: new.workflow,
            actor: caller.actor(),
            now: state.programme_now(),
        })
        .await?;
    let view = project_view(&state, &caller, id).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/projects/{id}"))],
        Json(view),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectQuery {
    /// Only projects in this state.
    pub state: Option<String>,
    /// Only projects of this region (INSEE code).
    pub region_code: Option<String>,
    /// Only projects of this workflow.
    pub workflow: Option<String>,
}

/// The projects the caller may see, by region.
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    tag = "projects",
    security(("bearer" = [])),
    params(ProjectQuery),
    responses(
        (status = 200, description = "The projects", body = Vec<ProjectView>),
        BadRequestProblem, UnauthorizedProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ProjectQuery>,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    let filter = ProjectFilter {
        state: query.state,
        region_code: query.region_code,
        workflow_id: query.workflow,
    };
    let db = state.store().db();
    let mut visible = projects::list(db, &filter).await?;
    visible.retain(|p| caller.sees_region(&p.region_code));
    let mut views = Vec::with_capacity(visible.len());
    for (snapshot, relatives) in projects::snapshots_of_many(db, visible).await? {
        views.push(view_with(&state, &caller, snapshot, relatives).await?);
    }
    Ok(Json(views))
}

/// One project as the caller sees it.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}",
    tag = "projects",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        BadRequestProblem, UnauthorizedProblem, NotFoundProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(project_view(&state, &caller, id).await?))
}

/// Sets fields, typed per the workflow; `null` clears one. One wrong value and nothing changes.
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{id}/fields",
    tag = "projects",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id")),
    request_body(content = Object, description = "Field key → value (text, integer, `YYYY-MM-DD` date, boolean, \
        or a choice's key); `null` clears the field.",
        example = json!({"legal_form": "GIP", "subsidy_amount_eur": 250000})),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn patch_fields(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<BTreeMap<String, Value>>,
) -> Result<Json<ProjectView>, ApiError> {
    let project = visible_project(&state, &caller, id).await?;
    caller.require(
        &[Role::Officer, Role::Council],
        "editing a project's fields",
    )?;
    if patch.is_empty() {
        return Err(ApiError::invalid(
            "nothing to change: send at least one field",
        ));
    }
    // Checked here too so that every wrong field is named in the answer; the store checks again, atomically.
    let workflow = state
        .store()
        .workflows()
        .get(
            state.store().db(),
            &project.workflow_id,
            project.workflow_version,
        )
        .await?;
    let errors: Vec<FieldProblem> = patch
        .iter()
        .filter_map(|(key, value)| {
            workflow
                .parse_field(key, value)
                .err()
                .map(|e| FieldProblem {
                    field: key.clone(),
                    detail: e.to_string(),
                })
        })
        .collect();
    if !errors.is_empty() {
        let names: BTreeSet<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!(
            "invalid field(s): {}; nothing was changed",
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
        return Err(ApiError::Invalid { detail, errors });
    }
    state
        .store()
        .write(PatchFields {
            registry: state.store().workflows().clone(),
            project_id: id,
            patch,
            actor: caller.actor_id(),
            now: state.programme_now(),
        })
        .await?;
    Ok(Json(project_view(&state, &caller, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    #[schema(example = "express_interest")]
    pub transition: String,
    /// The `version` of the project the caller saw; a newer one answers 409.
    pub expected_version: i64,
    /// The reason, mandatory for some transitions (`comment_required`).
    pub comment: Option<String>,
}

/// Fires a transition at the version the caller saw.
///
/// 409 when the version is stale; 422 when the transition is unknown, not possible from the current state,
/// or its conditions are unmet (every one listed in `unmet`, with French and English text); 403 when the
/// caller's role may not fire it.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/transitions",
    tag = "projects",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id")),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "The project after the transition", body = ProjectView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, ConflictProblem,
        TooLargeProblem, UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn fire_transition(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<TransitionRequest>,
) -> Result<Json<ProjectView>, ApiError> {
    // Decided on this request's task, on the committed project; the writer only writes.
    let fired = projects::fire(
        state.store(),
        FireTransitionAndRead {
            fire: FireTransition {
                registry: state.store().workflows().clone(),
                project_id: id,
                expected_version: request.expected_version,
                request: FireRequest {
                    transition: request.transition,
                    comment: request.comment,
                },
                actor: caller.actor(),
                now: state.programme_now(),
            },
            // Checked on the read the decision is taken on: no separate query to learn the project's region.
            region_scope: caller.region_scope().map(str::to_owned),
        },
    )
    .await?;
    let relatives = match fired.relatives {
        Some(relatives) => relatives,
        None => state.store().relatives(&fired.snapshot.project).await?,
    };
    Ok(Json(
        view_with(&state, &caller, fired.snapshot, relatives).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CohortAssignment {
    /// The session, or `null` to take the project out of its session.
    pub cohort_id: Option<i64>,
}

/// Assigns the project to an incubation session (officer only).
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/cohort",
    tag = "projects",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id")),
    request_body = CohortAssignment,
    responses(
        (status = 200, description = "The project", body = ProjectView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn assign_cohort(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(assignment): ApiJson<CohortAssignment>,
) -> Result<Json<ProjectView>, ApiError> {
    visible_project(&state, &caller, id).await?;
    caller.require(&[Role::Officer], "assigning a project to a session")?;
    state
        .store()
        .write(AssignCohort {
            registry: state.store().workflows().clone(),
            project_id: id,
            cohort_id: assignment.cohort_id,
            actor: caller.actor_id(),
            now: state.programme_now(),
        })
        .await?;
    Ok(Json(project_view(&state, &caller, id).await?))
}

/// One entry of a project's tamper-evident audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// Who: `user:42`, `scheduler`, `antivirus`, …
    pub actor: String,
    /// `created`, `transition`, `fields_changed`, `document_uploaded`, `document_reviewed`,
    /// `document_infected` (by the antivirus), `cohort_assigned`, …
    pub kind: String,
    pub transition: Option<String>,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub comment: Option<String>,
    /// What the event changed.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Which page of a project's audit trail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this sequence number (the next page: the last `seq` of the previous one, as the
    /// `Link` header says).
    pub after_seq: Option<i64>,
    /// At most this many events (default 500, at most 1,000).
    pub limit: Option<u64>,
}

/// The project's audit trail, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/events",
    tag = "projects",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id"), EventsQuery),
    responses(
        (status = 200, description = "A page of the audit trail", body = Vec<EventView>,
         headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when more events follow"))),
        BadRequestProblem, UnauthorizedProblem, NotFoundProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Paged<EventView>, ApiError> {
    visible_project(&state, &caller, id).await?;
    let limit = query.limit.unwrap_or(500).clamp(1, 1_000);
    let events = events::list_after(state.store().db(), id, query.after_seq, limit + 1).await?;
    Ok(Paged::of(
        events,
        limit,
        |last| {
            format!(
                "/api/v1/projects/{id}/events?after_seq={}&limit={limit}",
                last.seq
            )
        },
        |e| EventView {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            transition: e.transition,
            from_state: e.from_state,
            to_state: e.to_state,
            comment: e.comment,
            changes: serde_json::from_str(&e.changes).unwrap_or(Value::String(e.changes)),
            prev_hash: e.prev_hash,
            hash: e.hash,
        },
    ))
}
