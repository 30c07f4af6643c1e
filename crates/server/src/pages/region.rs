//! A region's page: its stage on a timeline, the checklist of evidence with uploads and reviews, the
//! transitions the viewer may fire (and what is missing for the others), its fields, its cohort, its
//! deadlines and its history. Every form comes through [`Submitted`] / [`SubmittedUpload`].

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use incubator_engine::model::FieldType;
use incubator_engine::{CorrectionKind, FieldValue, FireRequest};
use incubator_store::cohorts::{self as cohorts_repo, AssignCohort};
use incubator_store::documents::{self as documents_repo, ReviewDecision, ReviewDocument};
use incubator_store::entities::workflow_versions;
use incubator_store::fields::PatchFields;
use incubator_store::projects::{
    self, CreateProject, FireTransition, FireTransitionAndRead, status_name,
};
use incubator_store::scans::ScanStatus;
use incubator_store::{events, users as users_repo};
use sea_orm::{EntityTrait, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cohorts::{CalendarView, calendar};
use super::exports::feed_path;
use super::programme::{
    DeadlineRow, ForecastView, ProjectStatus, RegionStatus, deadlines, forecast_view, main_path,
    stage_class, visible_region,
};
use super::session::{Submitted, SubmittedUpload, Viewer};
use super::timeline::{self, Timeline};
use super::{Frame, Lang, PageError, error_key, render, see_other};
use crate::access::{Caller, Role, visible_document};
use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::documents::{
    Evidence, correction_request, parse_day, serve_document, store_evidence,
};

#[derive(Serialize)]
struct RegionPage {
    code: String,
    name: String,
    project: Option<ProjectPage>,
    can_open_project: bool,
    workflows: Vec<Choice>,
}

#[derive(Serialize)]
struct ProjectPage {
    id: i64,
    version: i64,
    workflow_label: String,
    stage: String,
    class: String,
    entered_on: String,
    operational: bool,
    failed: bool,
    forecast: Option<ForecastView>,
    timeline: Timeline,
    transitions: Vec<TransitionButton>,
    eligibility: Vec<RequirementRow>,
    other_requirements: Vec<RequirementRow>,
    can_upload: bool,
    can_review: bool,
    can_edit_fields: bool,
    can_assign_cohort: bool,
    upload_choices: Vec<Choice>,
    accept: String,
    /// What a correction request may say is wrong, and the first day it may be due (tomorrow).
    correction_kinds: Vec<Choice>,
    correction_first_day: String,
    fields: Vec<FieldRow>,
    cohort: Option<CohortPanel>,
    cohorts: Vec<Choice>,
    deadlines: Vec<DeadlineRow>,
    history: Vec<HistoryRow>,
    feed_url: String,
    /// The child workflows the project's stages started (InterCERT-FR's application), and where they are.
    children: Vec<ChildRow>,
}

#[derive(Serialize)]
struct ChildRow {
    workflow_label: String,
    stage: String,
    /// Links issued on the child not used yet, for the sponsors' answers still awaited.
    open_links: usize,
}

#[derive(Serialize)]
struct Choice {
    key: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct TransitionButton {
    id: String,
    label: String,
    allowed: bool,
    comment_required: bool,
    /// Leads to a terminal failure (decline, withdraw): shown apart.
    ends_badly: bool,
    unmet: Vec<String>,
}

#[derive(Serialize)]
struct RequirementRow {
    key: String,
    label: String,
    hint: Option<String>,
    status: &'static str,
    kinds: String,
    documents: Vec<DocumentRow>,
    correction: Option<CorrectionRow>,
    /// `YYYY-MM-DD`: the last day the accepted evidence is valid.
    expires_on: Option<String>,
}

/// The correction the region owes on a requirement, as the checklist shows it.
#[derive(Serialize)]
struct CorrectionRow {
    kind: String,
    comment: String,
    /// `YYYY-MM-DD`.
    due_on: String,
    stage_clock_paused: bool,
}

#[derive(Serialize)]
struct DocumentRow {
    id: i64,
    filename: String,
    uploaded_on: String,
    uploaded_by: String,
    /// `pending`, `accepted`, `rejected` or `correction_requested`.
    status: String,
    comment: Option<String>,
    /// Only for bytes the antivirus found clean: the others are never linked to.
    href: Option<String>,
    /// `pending` or `infected` while the antivirus withholds the bytes; unset once clean.
    scan: Option<&'static str>,
    /// Waits for review, and may be reviewed (its bytes are clean).
    pending: bool,
    /// `YYYY-MM-DD`: the last day the evidence is valid.
    expires_on: Option<String>,
}

#[derive(Serialize)]
struct FieldRow {
    key: String,
    label: String,
    value: String,
    is_text: bool,
    is_integer: bool,
    is_date: bool,
    is_boolean: bool,
    is_choice: bool,
    checked: bool,
    choices: Vec<Choice>,
    /// The shown value of a choice (its label) or of a boolean.
    display: String,
}

#[derive(Serialize)]
struct CohortPanel {
    name: String,
    starts_on: String,
    calendar: Option<CalendarView>,
}

#[derive(Serialize)]
struct HistoryRow {
    on: String,
    time: String,
    actor: String,
    kind: &'static str,
    detail: Option<String>,
    comment: Option<String>,
}

const EVENT_KINDS: [&str; 8] = [
    "created",
    "transition",
    "fields_changed",
    "document_uploaded",
    "document_reviewed",
    "cohort_assigned",
    "link_issued",
    "link_revoked",
];

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    lang: Lang,
    uri: Uri,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    let region = visible_region(&state, &viewer.caller, &code, None).await?;
    let project = match &region.project {
        Some(project) => {
            Some(project_page(&state, &viewer, &region, project, lang, &headers).await?)
        }
        None => None,
    };
    let workflows = if project.is_none() && viewer.is(Role::Officer) {
        deployed_workflows(&state, lang).await?
    } else {
        Vec::new()
    };
    let page = RegionPage {
        code: region.code.clone(),
        name: region.name.clone(),
        can_open_project: project.is_none() && viewer.is(Role::Officer),
        project,
        workflows,
    };
    let frame = Frame::signed_in(lang, &uri, &viewer, "region");
    render(&state, "region", &frame, &page)
}

async fn deployed_workflows(state: &AppState, lang: Lang) -> Result<Vec<Choice>, ApiError> {
    let db = state.store().db();
    let rows = workflow_versions::Entity::find()
        .order_by_asc(workflow_versions::Column::WorkflowId)
        .all(db)
        .await?;
    let mut ids: Vec<String> = rows.into_iter().map(|r| r.workflow_id).collect();
    ids.dedup();
    let mut choices = Vec::new();
    for id in ids {
        let workflow = state.store().workflows().latest(db, &id).await?;
        choices.push(Choice {
            selected: choices.is_empty(),
            label: lang.pick(workflow.labels()),
            key: id,
        });
    }
    Ok(choices)
}

async fn project_page(
    state: &AppState,
    viewer: &Viewer,
    region: &RegionStatus,
    project: &ProjectStatus,
    lang: Lang,
    headers: &HeaderMap,
) -> Result<ProjectPage, ApiError> {
    let db = state.store().db();
    let caller = &viewer.caller;
    let workflow = &project.workflow;
    let snapshot = &project.snapshot;
    let now = state.programme_now();
    let path = main_path(workflow);
    let events = events::list(db, snapshot.project.id).await?;
    let current = workflow.state(project.state());

    let transitions = workflow
        .evaluate(&project.instance, &caller.actor())
        .into_iter()
        .filter(|t| t.role_allowed)
        .map(|t| {
            let def = workflow.transition(&t.id);
            TransitionButton {
                label: def.map_or_else(|| t.id.clone(), |d| lang.pick(&d.labels)),
                ends_badly: workflow
                    .state(&t.to)
                    .is_some_and(|s| s.is_terminal() && !s.is_success()),
                allowed: t.allowed,
                comment_required: t.comment_required,
                unmet: t
                    .unmet
                    .into_iter()
                    .filter(|u| u.code != "comment_missing")
                    .map(|u| match lang {
                        Lang::Fr => u.fr,
                        Lang::En => u.en,
                    })
                    .collect(),
                id: t.id,
            }
        })
        .collect();

    let documents = documents_repo::list_reviewed(db, snapshot.project.id).await?;
    let mut by_requirement: BTreeMap<String, Vec<DocumentRow>> = BTreeMap::new();
    let names = account_names(state).await?;
    for (document, review) in documents {
        let (status, comment) = match review {
            Some(r) => (r.decision, r.comment),
            None => ("pending".to_owned(), None),
        };
        let scan = ScanStatus::of(&document)?;
        let clean = scan == ScanStatus::Clean;
        by_requirement
            .entry(document.requirement.clone())
            .or_default()
            .push(DocumentRow {
                id: document.id,
                filename: document.filename,
                uploaded_on: project.local_date(document.uploaded_at).to_string(),
                uploaded_by: actor_name(&names, &document.uploaded_by),
                pending: status == "pending" && clean,
                status,
                comment,
                href: clean.then(|| format!("/documents/{}/content", document.id)),
                scan: (!clean).then(|| scan.as_str()),
                expires_on: document.expires_on.map(|d| d.to_string()),
            });
    }
    let (mut eligibility, mut other_requirements) = (Vec::new(), Vec::new());
    for requirement in workflow.requirements() {
        let status = snapshot.requirement_status(workflow, &requirement.key, now);
        let record = snapshot.requirements.get(&requirement.key);
        let row = RequirementRow {
            key: requirement.key.clone(),
            label: lang.pick(&requirement.labels),
            hint: requirement.hint.as_ref().map(|h| lang.pick(h)),
            status: status_name(status),
            kinds: requirement.documents.join(", ").to_uppercase(),
            documents: by_requirement.remove(&requirement.key).unwrap_or_default(),
            correction: record.and_then(|r| r.correction.as_ref()).map(|c| {
                let (fr, en) = c.kind.words();
                CorrectionRow {
                    kind: match lang {
                        Lang::Fr => fr.to_owned(),
                        Lang::En => en.to_owned(),
                    },
                    comment: c.comment.clone(),
                    due_on: c.due_on.to_string(),
                    stage_clock_paused: c.paused_deadline.is_some(),
                }
            }),
            expires_on: record.and_then(|r| r.expires_on).map(|d| d.to_string()),
        };
        if requirement.eligibility {
            eligibility.push(row);
        } else {
            other_requirements.push(row);
        }
    }
    let mut kinds: Vec<String> = workflow
        .requirements()
        .iter()
        .flat_map(|r| r.documents.iter().map(|k| format!(".{k}")))
        .collect();
    if kinds.iter().any(|k| k == ".jpeg") {
        kinds.push(".jpg".into());
    }
    kinds.sort();
    kinds.dedup();

    let fields = workflow
        .fields()
        .iter()
        .map(|field| {
            let value = snapshot.facts.get(&field.key);
            let text = match value {
                Some(FieldValue::Text(t)) => t.clone(),
                Some(FieldValue::Integer(i)) => i.to_string(),
                Some(FieldValue::Date(d)) => d.to_string(),
                Some(FieldValue::Boolean(b)) => b.to_string(),
                None => String::new(),
            };
            let choices: Vec<Choice> = field
                .choices
                .iter()
                .map(|(key, labels)| Choice {
                    key: key.clone(),
                    label: lang.pick(labels),
                    selected: *key == text,
                })
                .collect();
            let display = choices
                .iter()
                .find(|c| c.selected)
                .map_or_else(|| text.clone(), |c| c.label.clone());
            FieldRow {
                key: field.key.clone(),
                label: lang.pick(&field.labels),
                is_text: field.kind == FieldType::Text,
                is_integer: field.kind == FieldType::Integer,
                is_date: field.kind == FieldType::Date,
                is_boolean: field.kind == FieldType::Boolean,
                is_choice: field.kind == FieldType::Choice,
                checked: matches!(value, Some(FieldValue::Boolean(true))),
                choices,
                display,
                value: text,
            }
        })
        .collect();

    let cohort = snapshot.cohort.as_ref().map(|c| CohortPanel {
        name: c.name.clone(),
        starts_on: c.starts_on.to_string(),
        calendar: calendar(workflow, c.starts_on, lang),
    });
    let can_assign_cohort = viewer.is(Role::Officer);
    let cohorts = if can_assign_cohort {
        cohorts_repo::list(db)
            .await?
            .into_iter()
            .map(|c| Choice {
                selected: snapshot.project.cohort_id == Some(c.id),
                key: c.id.to_string(),
                label: format!("{} ({})", c.name, c.starts_on),
            })
            .collect()
    } else {
        Vec::new()
    };

    let history = events
        .iter()
        .rev()
        .map(|e| {
            let local = e.at.with_timezone(&workflow.timezone());
            let changes: Value = serde_json::from_str(&e.changes).unwrap_or(Value::Null);
            let detail = match e.kind.as_str() {
                "created" | "transition" => e.to_state.as_deref().map(|s| {
                    workflow
                        .state(s)
                        .map_or_else(|| s.to_owned(), |st| lang.pick(&st.labels))
                }),
                "document_uploaded" | "document_reviewed" => {
                    changes["requirement"].as_str().map(|r| {
                        workflow
                            .requirement(r)
                            .map_or_else(|| r.to_owned(), |req| lang.pick(&req.labels))
                    })
                }
                "fields_changed" => changes.as_object().map(|o| {
                    o.keys()
                        .map(|k| {
                            workflow
                                .field(k)
                                .map_or_else(|| k.clone(), |f| lang.pick(&f.labels))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
                _ => None,
            };
            let kind = EVENT_KINDS
                .iter()
                .find(|k| **k == e.kind)
                .copied()
                .unwrap_or("other");
            let kind = match (kind, changes["decision"].as_str()) {
                ("document_reviewed", Some("accepted")) => "document_accepted",
                ("document_reviewed", Some("rejected")) => "document_rejected",
                ("document_reviewed", Some("correction_requested")) => "correction_requested",
                (kind, _) => kind,
            };
            HistoryRow {
                on: local.date_naive().to_string(),
                time: local.format("%H:%M").to_string(),
                actor: actor_name(&names, &e.actor),
                kind,
                detail,
                comment: e.comment.clone(),
            }
        })
        .collect();

    let user = incubator_store::account_admin::find(db, caller.user_id).await?;
    let feed_url = format!(
        "{}{}",
        base_url(state, headers),
        feed_path(&user, &region.code)
    );
    let mut children = Vec::new();
    for child in projects::children(db, snapshot.project.id).await? {
        let definition = state
            .store()
            .workflows()
            .get(db, &child.workflow_id, child.workflow_version)
            .await?;
        let open_links = incubator_store::links::list(db, child.id)
            .await?
            .iter()
            .filter(|l| l.used_at.is_none() && l.revoked_at.is_none() && l.expires_at > now)
            .count();
        children.push(ChildRow {
            workflow_label: lang.pick(definition.labels()),
            stage: definition
                .state(&child.state)
                .map_or_else(|| child.state.clone(), |s| lang.pick(&s.labels)),
            open_links,
        });
    }
    let may_edit = matches!(caller.role, Role::Officer | Role::Council);
    Ok(ProjectPage {
        id: snapshot.project.id,
        version: snapshot.project.version,
        workflow_label: lang.pick(workflow.labels()),
        stage: project.state_label(lang),
        class: stage_class(workflow, &path, project.state()),
        entered_on: project
            .local_date(snapshot.project.state_entered_at)
            .to_string(),
        operational: current.is_some_and(|s| s.is_success()),
        failed: current.is_some_and(|s| s.is_terminal() && !s.is_success()),
        forecast: forecast_view(project, lang),
        timeline: timeline::build(project, &events, lang, now),
        transitions,
        eligibility,
        other_requirements,
        can_upload: may_edit,
        can_review: viewer.is(Role::Officer),
        can_edit_fields: may_edit,
        can_assign_cohort,
        upload_choices: workflow
            .requirements()
            .iter()
            .map(|r| Choice {
                key: r.key.clone(),
                label: lang.pick(&r.labels),
                selected: false,
            })
            .collect(),
        accept: kinds.join(","),
        correction_kinds: CorrectionKind::ALL
            .into_iter()
            .map(|kind| {
                let (fr, en) = kind.words();
                Choice {
                    key: kind.as_str().to_owned(),
                    label: match lang {
                        Lang::Fr => fr.to_owned(),
                        Lang::En => en.to_owned(),
                    },
                    selected: false,
                }
            })
            .collect(),
        correction_first_day: workflow
            .local_day(now)
            .succ_opt()
            .map_or_else(String::new, |d| d.to_string()),
        fields,
        cohort,
        cohorts,
        deadlines: deadlines(region, lang, now),
        history,
        feed_url,
        children,
    })
}

/// `user:42` → the account's name; the scheduler and others as recorded.
async fn account_names(state: &AppState) -> Result<HashMap<String, String>, ApiError> {
    Ok(users_repo::list(state.store().db())
        .await?
        .into_iter()
        .map(|u| (format!("user:{}", u.id), u.name))
        .collect())
}

fn actor_name(names: &HashMap<String, String>, actor: &str) -> String {
    names
        .get(actor)
        .cloned()
        .unwrap_or_else(|| actor.to_owned())
}

/// The address users reach the service at: the configured public URL, else the request's own host.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config().public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn region_path(code: &str) -> String {
    format!("/regions/{code}")
}

/// The region's project the viewer may act on, or 404 (as a missing one).
async fn project_of(
    state: &AppState,
    caller: &Caller,
    code: &str,
) -> Result<ProjectStatus, ApiError> {
    visible_region(state, caller, code, None)
        .await?
        .project
        .ok_or_else(|| ApiError::NotFound(format!("region {code} has no project")))
}

/// Turns a refusal into a notice on the region page; anything else is an error page.
fn outcome(back: &str, result: Result<&'static str, ApiError>) -> Result<Response, PageError> {
    match result {
        Ok(notice) => Ok(see_other(back, notice, true)),
        Err(error) => match error_key(&error) {
            Some(key) if error.status() != StatusCode::NOT_FOUND => Ok(see_other(back, key, false)),
            _ => Err(error.into()),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct OpenProject {
    workflow: String,
}

/// Opens the region's project (officer only).
pub async fn open_project(
    State(state): State<AppState>,
    Path(code): Path<String>,
    submitted: Submitted<OpenProject>,
) -> Result<Response, PageError> {
    let caller = &submitted.viewer.caller;
    visible_region(&state, caller, &code, None).await?;
    let result = async {
        caller.require(&[Role::Officer], "opening a project")?;
        state
            .store()
            .write(CreateProject {
                registry: state.store().workflows().clone(),
                region_code: code.clone(),
                workflow_id: submitted.form.workflow.clone(),
                actor: caller.actor(),
                now: state.programme_now(),
            })
            .await?;
        Ok("project_opened")
    }
    .await;
    outcome(&region_path(&code), result)
}

#[derive(Debug, Deserialize)]
pub struct Fire {
    transition: String,
    expected_version: i64,
    #[serde(default)]
    comment: String,
}

/// Fires a transition at the version the viewer saw.
pub async fn fire(
    State(state): State<AppState>,
    Path(code): Path<String>,
    submitted: Submitted<Fire>,
) -> Result<Response, PageError> {
    let caller = &submitted.viewer.caller;
    let project = project_of(&state, caller, &code).await?;
    let form = submitted.form;
    let comment = Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty());
    // Decided on this request's task, as the API's transitions are; the writer only writes.
    let fire = FireTransitionAndRead {
        fire: FireTransition {
            registry: state.store().workflows().clone(),
            project_id: project.snapshot.project.id,
            expected_version: form.expected_version,
            request: FireRequest {
                transition: form.transition,
                comment,
            },
            actor: caller.actor(),
            now: state.programme_now(),
        },
        region_scope: caller.region_scope().map(str::to_owned),
    };
    let result = projects::fire(state.store(), fire)
        .await
        .map(|_| "transition_fired")
        .map_err(ApiError::from);
    if let Err(ApiError::Refused(incubator_engine::Refusal::Unmet { unmet, .. })) = &result
        && unmet.iter().all(|u| u.code == "comment_missing")
    {
        return Ok(see_other(&region_path(&code), "comment_required", false));
    }
    outcome(&region_path(&code), result)
}

/// Sets the fields whose value changed; an emptied field is cleared. One wrong value and nothing changes.
pub async fn save_fields(
    State(state): State<AppState>,
    Path(code): Path<String>,
    submitted: Submitted<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let caller = &submitted.viewer.caller;
    let project = project_of(&state, caller, &code).await?;
    let result = async {
        caller.require(
            &[Role::Officer, Role::Council],
            "editing a project's fields",
        )?;
        let workflow = &project.workflow;
        let mut patch = BTreeMap::new();
        for field in workflow.fields() {
            let submitted_text = submitted.form.get(&field.key).map(|v| v.trim().to_owned());
            let new = match field.kind {
                // An unticked box sends nothing.
                FieldType::Boolean => Value::Bool(submitted_text.is_some()),
                _ => match submitted_text {
                    None => continue,
                    Some(text) if text.is_empty() => Value::Null,
                    Some(text) if field.kind == FieldType::Integer => text
                        .replace([' ', '\u{a0}', '\u{202f}'], "")
                        .parse::<i64>()
                        .map(Value::from)
                        .map_err(|_| ApiError::invalid(format!("{} is not a number", field.key)))?,
                    Some(text) => Value::String(text),
                },
            };
            let old = project
                .snapshot
                .facts
                .get(&field.key)
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            let unchanged = old == new || (old.is_null() && new == Value::Bool(false));
            if !unchanged {
                workflow
                    .parse_field(&field.key, &new)
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
                patch.insert(field.key.clone(), new);
            }
        }
        if !patch.is_empty() {
            state
                .store()
                .write(PatchFields {
                    registry: state.store().workflows().clone(),
                    project_id: project.snapshot.project.id,
                    patch,
                    actor: caller.actor_id(),
                    now: state.programme_now(),
                })
                .await?;
        }
        Ok("fields_saved")
    }
    .await;
    outcome(&region_path(&code), result)
}

#[derive(Debug, Deserialize)]
pub struct CohortChoice {
    #[serde(default)]
    cohort_id: String,
    /// `/cohorts` when assigned from the sessions page, to go back there.
    #[serde(default)]
    back: String,
}

/// Assigns the region's project to a session, or takes it out (officer only).
pub async fn assign_cohort(
    State(state): State<AppState>,
    Path(code): Path<String>,
    submitted: Submitted<CohortChoice>,
) -> Result<Response, PageError> {
    let caller = &submitted.viewer.caller;
    let project = project_of(&state, caller, &code).await?;
    let result = async {
        caller.require(&[Role::Officer], "assigning a project to a session")?;
        let cohort_id = match submitted.form.cohort_id.trim() {
            "" => None,
            id => Some(
                id.parse::<i64>()
                    .map_err(|_| ApiError::invalid("not a cohort id"))?,
            ),
        };
        state
            .store()
            .write(AssignCohort {
                registry: state.store().workflows().clone(),
                project_id: project.snapshot.project.id,
                cohort_id,
                actor: caller.actor_id(),
                now: state.programme_now(),
            })
            .await?;
        Ok("cohort_assigned")
    }
    .await;
    let back = if submitted.form.back == "/cohorts" {
        "/cohorts".to_owned()
    } else {
        region_path(&code)
    };
    outcome(&back, result)
}

/// Uploads evidence for one requirement (council or officer), checked as the API checks it.
pub async fn upload(
    State(state): State<AppState>,
    Path(code): Path<String>,
    submitted: SubmittedUpload,
) -> Result<Response, PageError> {
    let caller = &submitted.viewer.caller;
    let project = project_of(&state, caller, &code).await?;
    let result = async {
        caller.require(&[Role::Officer, Role::Council], "uploading evidence")?;
        let requirement = submitted
            .fields
            .get("requirement")
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::invalid("no requirement chosen"))?;
        let (claimed_name, bytes) = submitted
            .file
            .ok_or_else(|| ApiError::invalid("no file chosen"))?;
        let expires_on = submitted
            .fields
            .get("expires_on")
            .filter(|d| !d.trim().is_empty())
            .map(|d| parse_day("expires_on", d))
            .transpose()?;
        let evidence = Evidence {
            requirement,
            claimed_name,
            bytes,
            expires_on,
        };
        store_evidence(&state, caller, &project.snapshot.project, evidence).await?;
        Ok("document_uploaded")
    }
    .await;
    outcome(&region_path(&code), result)
}

#[derive(Debug, Deserialize)]
pub struct Review {
    decision: String,
    #[serde(default)]
    comment: String,
    /// For a correction request: its kind, due day and whether the stage's clock pauses.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    due_on: String,
    #[serde(default)]
    pause_stage_clock: Option<String>,
}

/// Accepts or rejects a document, or asks for a correction (officer only); a rejection and a correction
/// need a comment.
pub async fn review(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    submitted: Submitted<Review>,
) -> Result<Response, PageError> {
    let caller = &submitted.viewer.caller;
    let (_, project) = visible_document(&state, caller, id).await?;
    let code = project.region_code.clone();
    let form = submitted.form;
    let comment = Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty());
    let result = async {
        caller.require(&[Role::Officer], "reviewing evidence")?;
        let decision = match form.decision.as_str() {
            "accepted" => ReviewDecision::Accepted,
            "rejected" => ReviewDecision::Rejected,
            "correction_requested" => ReviewDecision::CorrectionRequested(correction_request(
                Some(&form.kind),
                Some(&form.due_on),
                form.pause_stage_clock.is_some(),
            )?),
            _ => {
                return Err(ApiError::invalid(
                    "decision is accepted, rejected or correction_requested",
                ));
            }
        };
        if decision != ReviewDecision::Accepted && comment.is_none() {
            return Ok("comment_required");
        }
        state
            .store()
            .write(ReviewDocument {
                registry: state.store().workflows().clone(),
                project_id: project.id,
                document_id: id,
                decision,
                comment,
                actor: caller.actor_id(),
                now: state.programme_now(),
            })
            .await?;
        Ok(match decision {
            ReviewDecision::CorrectionRequested(_) => "correction_requested",
            _ => "document_reviewed",
        })
    }
    .await;
    match result {
        Ok("comment_required") => Ok(see_other(&region_path(&code), "comment_required", false)),
        other => outcome(&region_path(&code), other),
    }
}

/// A document's bytes, as an attachment no browser renders in place, once the antivirus found them clean.
pub async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let (document, _) = visible_document(&state, &viewer.caller, id).await?;
    Ok(serve_document(&state, document).await?)
}
