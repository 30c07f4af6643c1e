//! Workflow versions and project migration (admins only): the deployed versions of each workflow with the
//! projects on each, and a form that migrates chosen projects to another version — first as a dry run whose
//! report shows, per project, the state mapping, the requirements and fields that appear or vanish, and
//! every deadline and pending reminder recomputed; then for real, one transaction and one audit event per
//! project. The same planning function serves the CLI and the API, so the page shows what they would.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use chrono::{DateTime, Utc};
use incubator_engine::{MigrationRefused, Workflow};
use incubator_store::projects::{self as projects_repo, ProjectFilter};
use incubator_store::versions::{MigrationReport, MigrationRequest, migrate};
use incubator_store::{StoreError, WorkflowRegistry, regions};
use serde::Serialize;

use super::session::{Submitted, Viewer};
use super::{Frame, Lang, PageError, render};
use crate::access::Role;
use crate::app::AppState;
use crate::error::ApiError;

#[derive(Serialize)]
struct WorkflowsPage {
    workflows: Vec<WorkflowSection>,
    /// The report of the migration just simulated or applied.
    report: Option<ReportView>,
    /// Why the migration just asked for was refused; nothing was written.
    refusal: Option<RefusalView>,
}

#[derive(Serialize)]
struct WorkflowSection {
    id: String,
    label: String,
    versions: Vec<VersionRow>,
    projects: Vec<ProjectChoice>,
    /// The version the form proposes: the one just asked for, else the newest.
    target: i32,
    /// The state mapping as typed, kept across a dry run.
    map: String,
}

#[derive(Serialize)]
struct VersionRow {
    version: i32,
    deployed_at: String,
    sha256: String,
    projects: usize,
    selected: bool,
}

#[derive(Serialize)]
struct ProjectChoice {
    id: i64,
    region: String,
    version: i32,
    state: String,
    checked: bool,
}

#[derive(Serialize)]
struct ReportView {
    workflow_id: String,
    to_version: i32,
    dry_run: bool,
    projects: Vec<ProjectReport>,
    unchanged: Vec<String>,
}

#[derive(Serialize)]
struct ProjectReport {
    region: String,
    from_version: u32,
    from_state: String,
    to_state: String,
    state_changes: bool,
    requirements_added: Vec<String>,
    requirements_removed: Vec<String>,
    fields_added: Vec<String>,
    fields_removed: Vec<String>,
    dropped_values: Vec<DroppedValue>,
    deadlines: Vec<DeadlineRow>,
}

#[derive(Serialize)]
struct DroppedValue {
    field: String,
    value: String,
}

#[derive(Serialize)]
struct DeadlineRow {
    key: String,
    old_due: Option<String>,
    new_due: Option<String>,
    paused: bool,
    reminders: Vec<ReminderRow>,
}

#[derive(Serialize)]
struct ReminderRow {
    step: String,
    old_send_at: Option<String>,
    new_send_at: Option<String>,
}

#[derive(Serialize)]
struct RefusalView {
    /// States with no counterpart in the target version, when that is the reason.
    unmapped: Vec<String>,
    detail: String,
}

/// What the admin asked for, as the form sent it (checkboxes repeat `project`).
#[derive(Debug, Default)]
struct MigrationForm {
    to_version: Option<i32>,
    projects: Vec<i64>,
    map: String,
    apply: bool,
}

impl MigrationForm {
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut form = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "to_version" => {
                    form.to_version = Some(value.trim().parse().map_err(|_| {
                        ApiError::invalid(format!("to_version `{value}` is not a version number"))
                    })?);
                }
                "project" => form.projects.push(value.trim().parse().map_err(|_| {
                    ApiError::invalid(format!("project `{value}` is not a project id"))
                })?),
                "map" => form.map = value.clone(),
                "action" => form.apply = value == "apply",
                _ => {}
            }
        }
        Ok(form)
    }

    /// `old=new` pairs, one per line or separated by commas.
    fn mapping(&self) -> Result<BTreeMap<String, String>, ApiError> {
        self.map
            .split(['\n', ','])
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| {
                line.split_once('=')
                    .map(|(old, new)| (old.trim().to_owned(), new.trim().to_owned()))
                    .filter(|(old, new)| !old.is_empty() && !new.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "state mapping `{line}` is not `old_state=new_state`"
                        ))
                    })
            })
            .collect()
    }
}

fn admin_only(viewer: &Viewer) -> Result<(), PageError> {
    viewer
        .caller
        .require(&[Role::Admin], "migrating projects")
        .map_err(PageError::from)
}

/// The page, with nothing asked yet.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    lang: Lang,
    uri: Uri,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    let names = region_names(&state).await?;
    let page = page(&state, &names, lang, None, None, None).await?;
    render(
        &state,
        "workflows",
        &Frame::signed_in(lang, &uri, &viewer, "workflows"),
        &page,
    )
}

/// Simulates or applies a migration of the chosen projects, then shows the page with the report.
pub async fn submit(
    State(state): State<AppState>,
    Path(workflow_id): Path<String>,
    lang: Lang,
    uri: Uri,
    submitted: Submitted<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    admin_only(&submitted.viewer)?;
    let form = MigrationForm::parse(&submitted.form)?;
    let to_version = form
        .to_version
        .ok_or_else(|| ApiError::invalid("choose the version to migrate to"))?;
    if form.projects.is_empty() {
        return Err(ApiError::invalid("choose at least one project to migrate").into());
    }
    let request = MigrationRequest {
        workflow_id: workflow_id.clone(),
        to_version,
        projects: Some(form.projects.clone()),
        map: form.mapping()?,
        actor: submitted.viewer.caller.actor_id(),
        now: state.programme_now(),
    };
    let (report, refusal) = match migrate(state.store(), &request, !form.apply).await {
        Ok(report) => {
            if !report.dry_run {
                tracing::info!(admin = submitted.viewer.caller.user_id, workflow = %workflow_id,
                               to_version, projects = report.projects.len(), "projects migrated from the page");
            }
            (Some(report), None)
        }
        Err(error @ StoreError::MigrationRefused(_)) => (None, Some(refusal(error))),
        Err(error) => return Err(ApiError::from(error).into()),
    };
    let names = region_names(&state).await?;
    let report = match report {
        Some(report) => Some(report_view(&state, &names, lang, report).await?),
        None => None,
    };
    let asked = (workflow_id, form);
    let page = page(&state, &names, lang, Some(&asked), report, refusal).await?;
    render(
        &state,
        "workflows",
        &Frame::signed_in(lang, &uri, &submitted.viewer, "workflows"),
        &page,
    )
}

fn refusal(error: StoreError) -> RefusalView {
    let unmapped = match &error {
        StoreError::MigrationRefused(MigrationRefused::Unmapped { states, .. }) => states.clone(),
        _ => Vec::new(),
    };
    RefusalView {
        unmapped,
        detail: error.to_string(),
    }
}

async fn page(
    state: &AppState,
    region_names: &BTreeMap<String, String>,
    lang: Lang,
    asked: Option<&(String, MigrationForm)>,
    report: Option<ReportView>,
    refusal: Option<RefusalView>,
) -> Result<WorkflowsPage, PageError> {
    let db = state.store().db();
    let registry = state.store().workflows();
    let deployed = WorkflowRegistry::list(db).await?;
    let mut ids: Vec<&str> = deployed.iter().map(|v| v.id.as_str()).collect();
    ids.dedup();
    let mut workflows = Vec::new();
    for id in ids {
        let versions: Vec<_> = deployed.iter().filter(|v| v.id == id).collect();
        let newest = versions.iter().map(|v| v.version).max().unwrap_or(1);
        let label = lang.pick(registry.get(db, id, newest).await?.labels());
        let projects = projects_repo::list(
            db,
            &ProjectFilter {
                workflow_id: Some(id.to_owned()),
                ..ProjectFilter::default()
            },
        )
        .await?;
        let form = asked.filter(|(w, _)| w == id).map(|(_, form)| form);
        let target = form.and_then(|f| f.to_version).unwrap_or(newest);
        let mut choices = Vec::new();
        for p in &projects {
            let workflow = registry.get(db, id, p.workflow_version).await?;
            choices.push(ProjectChoice {
                id: p.id,
                region: region_of(region_names, &p.region_code),
                version: p.workflow_version,
                state: state_label(&workflow, &p.state, lang),
                checked: form.is_some_and(|f| f.projects.contains(&p.id)),
            });
        }
        workflows.push(WorkflowSection {
            id: id.to_owned(),
            label,
            versions: versions
                .iter()
                .map(|v| VersionRow {
                    version: v.version,
                    deployed_at: v.deployed_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                    sha256: v.sha256.chars().take(12).collect(),
                    projects: projects
                        .iter()
                        .filter(|p| p.workflow_version == v.version)
                        .count(),
                    selected: v.version == target,
                })
                .collect(),
            projects: choices,
            target,
            map: form.map(|f| f.map.clone()).unwrap_or_default(),
        });
    }
    Ok(WorkflowsPage {
        workflows,
        report,
        refusal,
    })
}

async fn region_names(state: &AppState) -> Result<BTreeMap<String, String>, PageError> {
    Ok(regions::list(state.store().db())
        .await?
        .into_iter()
        .map(|r| (r.code, r.name))
        .collect())
}

fn region_of(names: &BTreeMap<String, String>, code: &str) -> String {
    names.get(code).cloned().unwrap_or_else(|| code.to_owned())
}

fn state_label(workflow: &Workflow, state: &str, lang: Lang) -> String {
    workflow
        .state(state)
        .map_or_else(|| state.to_owned(), |s| lang.pick(&s.labels))
}

async fn report_view(
    state: &AppState,
    names: &BTreeMap<String, String>,
    lang: Lang,
    report: MigrationReport,
) -> Result<ReportView, PageError> {
    let db = state.store().db();
    let registry = state.store().workflows();
    let target: Arc<Workflow> = registry
        .get(db, &report.workflow_id, report.to_version)
        .await?;
    let time = |at: Option<DateTime<Utc>>| {
        at.map(|at| {
            at.with_timezone(&target.timezone())
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
    };
    let mut projects = Vec::new();
    for migration in report.projects {
        let plan = migration.plan;
        let source = registry
            .get(db, &plan.workflow_id, plan.from_version as i32)
            .await?;
        projects.push(ProjectReport {
            region: region_of(names, &migration.region_code),
            from_version: plan.from_version,
            state_changes: plan.from_state != plan.to_state,
            from_state: state_label(&source, &plan.from_state, lang),
            to_state: state_label(&target, &plan.to_state, lang),
            requirements_added: plan.requirements_added,
            requirements_removed: plan.requirements_removed,
            fields_added: plan.fields_added,
            fields_removed: plan.fields_removed,
            dropped_values: plan
                .dropped_values
                .into_iter()
                .map(|(field, value)| DroppedValue {
                    field,
                    value: value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned),
                })
                .collect(),
            deadlines: plan
                .deadlines
                .into_iter()
                .map(|d| DeadlineRow {
                    key: d.key,
                    old_due: time(d.old_due),
                    new_due: time(d.new_due),
                    paused: d.paused_at.is_some(),
                    reminders: d
                        .reminders
                        .pending
                        .into_iter()
                        .map(|s| ReminderRow {
                            step: s.step,
                            old_send_at: time(s.old_send_at),
                            new_send_at: time(s.new_send_at),
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    let mut unchanged = Vec::new();
    for id in report.unchanged {
        let project = projects_repo::find(db, id).await?;
        unchanged.push(region_of(names, &project.region_code));
    }
    Ok(ReportView {
        workflow_id: report.workflow_id,
        to_version: report.to_version,
        dry_run: report.dry_run,
        projects,
        unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_form_reads_repeated_projects_and_a_mapping() {
        let form = MigrationForm::parse(&pairs(&[
            ("csrf_token", "x"),
            ("to_version", "3"),
            ("project", "4"),
            ("project", "9"),
            (
                "map",
                "awaiting_incubation = awaiting_session\r\n\r\nold=new",
            ),
            ("action", "apply"),
        ]))
        .unwrap();
        assert_eq!(form.to_version, Some(3));
        assert_eq!(form.projects, [4, 9]);
        assert!(form.apply);
        let map = form.mapping().unwrap();
        assert_eq!(map["awaiting_incubation"], "awaiting_session");
        assert_eq!(map["old"], "new");
    }

    #[test]
    fn a_malformed_form_says_what_is_wrong() {
        let err = MigrationForm::parse(&pairs(&[("project", "x")])).unwrap_err();
        assert!(err.to_string().contains("project `x`"), "{err}");
        let form = MigrationForm::parse(&pairs(&[("map", "no arrow here")])).unwrap();
        let err = form.mapping().unwrap_err();
        assert!(err.to_string().contains("no arrow here"), "{err}");
        assert!(
            !MigrationForm::parse(&pairs(&[("action", "dry_run")]))
                .unwrap()
                .apply
        );
    }
}
