//! Where each region stands, as the pages and exports show it: its project, the workflow's reading of it
//! (stage, deadlines, forecast from the critical path), always filtered through [`Caller::sees_region`].

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use incubator_engine::{Forecast, Instance, Workflow};
use incubator_store::projects::{self, ProjectFilter, Snapshot};
use incubator_store::regions;
use serde::Serialize;

use super::Lang;
use crate::access::Caller;
use crate::app::AppState;
use crate::error::ApiError;

/// A region the caller may see, with its project (each region's oldest, or the one of the chosen workflow).
#[derive(Debug)]
pub struct RegionStatus {
    pub code: String,
    pub name: String,
    pub project: Option<ProjectStatus>,
}

#[derive(Debug)]
pub struct ProjectStatus {
    pub snapshot: Snapshot,
    pub workflow: Arc<Workflow>,
    /// What the engine decides on, as of the page's moment.
    pub instance: Instance,
    /// `None` once success is out of reach (or reached).
    pub forecast: Option<Forecast>,
}

impl ProjectStatus {
    pub fn state(&self) -> &str {
        &self.snapshot.project.state
    }

    pub fn state_label(&self, lang: Lang) -> String {
        self.workflow
            .state(self.state())
            .map_or_else(|| self.state().to_owned(), |s| lang.pick(&s.labels))
    }

    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        local_date(&self.workflow, at)
    }
}

pub fn local_date(workflow: &Workflow, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&workflow.timezone()).date_naive()
}

/// Every region the caller may see (a council account: its own only), in code order.
pub async fn visible_regions(
    state: &AppState,
    caller: &Caller,
    workflow: Option<&str>,
) -> Result<Vec<RegionStatus>, ApiError> {
    let db = state.store().db();
    let filter = ProjectFilter {
        workflow_id: workflow.map(str::to_owned),
        ..ProjectFilter::default()
    };
    let mut all_projects = projects::list(db, &filter).await?;
    all_projects.sort_by_key(|p| p.id);
    let regions: Vec<_> = regions::list(db)
        .await?
        .into_iter()
        .filter(|r| caller.sees_region(&r.code))
        .collect();
    // Each region's first project, all read together.
    let shown: Vec<_> = regions
        .iter()
        .filter_map(|r| {
            all_projects
                .iter()
                .find(|p| p.region_code == r.code)
                .cloned()
        })
        .collect();
    let mut read = projects::snapshots_of_many(db, shown)
        .await?
        .into_iter()
        .peekable();
    let now = state.programme_now();
    let mut out = Vec::with_capacity(regions.len());
    for region in regions {
        let project = match read.next_if(|(s, _)| s.project.region_code == region.code) {
            Some((snapshot, relatives)) => {
                Some(project_status(state, snapshot, &relatives, now).await?)
            }
            None => None,
        };
        out.push(RegionStatus {
            code: region.code,
            name: region.name,
            project,
        });
    }
    Ok(out)
}

/// One region the caller may see; any other answers exactly as an unknown one.
pub async fn visible_region(
    state: &AppState,
    caller: &Caller,
    code: &str,
    workflow: Option<&str>,
) -> Result<RegionStatus, ApiError> {
    let not_found = || ApiError::NotFound(format!("region {code} not found"));
    if !caller.sees_region(code) {
        return Err(not_found());
    }
    let db = state.store().db();
    let region = regions::list(db)
        .await?
        .into_iter()
        .find(|r| r.code == code)
        .ok_or_else(not_found)?;
    let filter = ProjectFilter {
        region_code: Some(region.code.clone()),
        workflow_id: workflow.map(str::to_owned),
        ..ProjectFilter::default()
    };
    let project = projects::list(db, &filter)
        .await?
        .into_iter()
        .min_by_key(|p| p.id);
    let project = match project {
        Some(p) => {
            let (snapshot, relatives) = projects::snapshots_of_many(db, vec![p])
                .await?
                .pop()
                .ok_or_else(not_found)?;
            Some(project_status(state, snapshot, &relatives, state.programme_now()).await?)
        }
        None => None,
    };
    Ok(RegionStatus {
        code: region.code,
        name: region.name,
        project,
    })
}

async fn project_status(
    state: &AppState,
    snapshot: projects::Snapshot,
    relatives: &projects::Relatives,
    now: DateTime<Utc>,
) -> Result<ProjectStatus, ApiError> {
    let db = state.store().db();
    let project = &snapshot.project;
    let workflow = state
        .store()
        .workflows()
        .get(db, &project.workflow_id, project.workflow_version)
        .await?;
    let completed = projects::child_completed_among(
        db,
        state.store().workflows(),
        &workflow,
        project,
        &relatives.children,
    )
    .await?;
    let instance = snapshot.instance(&workflow, now, completed);
    let forecast = workflow.forecast(&instance, now);
    Ok(ProjectStatus {
        snapshot,
        workflow,
        instance,
        forecast,
    })
}

/// The workflow's main way, from its initial state to success along the critical path: the order stages
/// are shown in (the definition's own order is alphabetical).
pub fn main_path(workflow: &Workflow) -> Vec<String> {
    workflow
        .critical_path(&workflow.initial_state().id)
        .map(|p| p.longest.states)
        .unwrap_or_else(|| vec![workflow.initial_state().id.clone()])
}

/// The colour class of a stage: `p0`…`p7` along the main way, `success`, or `failure`.
pub fn stage_class(workflow: &Workflow, path: &[String], state: &str) -> String {
    let Some(s) = workflow.state(state) else {
        return "none".into();
    };
    if s.is_success() {
        return "success".into();
    }
    if s.is_terminal() {
        return "failure".into();
    }
    let steps = path.len().saturating_sub(1).max(1);
    match path.iter().position(|p| p == state) {
        Some(i) if steps > 1 => format!("p{}", i * 7 / (steps - 1)),
        Some(_) => "p0".into(),
        None => "p3".into(),
    }
}

/// The label of a deadline key (see `Workflow::deadline_labels`), or the key itself.
pub fn deadline_label(workflow: &Workflow, key: &str, lang: Lang) -> String {
    workflow
        .deadline_labels(key)
        .map_or_else(|| key.to_owned(), |labels| lang.pick(&labels))
}

/// One open deadline, as the dashboard and the region page list it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineRow {
    pub region_code: String,
    pub region_name: String,
    pub key: String,
    pub label: String,
    /// `YYYY-MM-DD` in the workflow's time zone.
    pub due: String,
    pub due_at: DateTime<Utc>,
    /// Past due and not a milestone (a milestone passing is not lateness).
    pub overdue: bool,
    /// Past its date: overdue, or a milestone the programme has passed.
    pub passed: bool,
    /// Whole days late (overdue), left, or since a milestone passed.
    pub days: i64,
}

pub fn deadlines(region: &RegionStatus, lang: Lang, now: DateTime<Utc>) -> Vec<DeadlineRow> {
    let Some(project) = &region.project else {
        return Vec::new();
    };
    project
        .snapshot
        .deadlines
        .iter()
        .map(|d| {
            let overdue = d.due_at < now && !incubator_engine::is_milestone_key(&d.key);
            let days = (d.due_at - now).num_days().abs();
            DeadlineRow {
                region_code: region.code.clone(),
                region_name: region.name.clone(),
                key: d.key.clone(),
                label: deadline_label(&project.workflow, &d.key, lang),
                due: due_day(project, d.due_at).to_string(),
                due_at: d.due_at,
                overdue,
                passed: d.due_at < now,
                days,
            }
        })
        .collect()
}

/// The day a deadline falls on: one due at local midnight (the end of a day, as dated deadlines and goals
/// are) is shown on the day it ends, not the next one.
pub fn due_day(project: &ProjectStatus, due_at: DateTime<Utc>) -> NaiveDate {
    project.local_date(due_at - chrono::Duration::seconds(1))
}

/// The forecast as the pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastView {
    pub earliest: String,
    pub latest: String,
    pub goal_label: Option<String>,
    pub goal_due: Option<String>,
    /// The earliest forecast meets the programme's deadline.
    pub can_make_it: bool,
    /// Even the latest forecast (the critical path) meets it.
    pub on_time_at_latest: bool,
}

pub fn forecast_view(project: &ProjectStatus, lang: Lang) -> Option<ForecastView> {
    let forecast = project.forecast.as_ref()?;
    let goal = forecast.goal.as_ref();
    let goal_def = goal.and_then(|g| project.workflow.goals().iter().find(|d| d.id == g.goal));
    Some(ForecastView {
        earliest: project.local_date(forecast.earliest).to_string(),
        latest: project.local_date(forecast.latest).to_string(),
        goal_label: goal_def.map(|g| lang.pick(&g.labels)),
        goal_due: goal_def.map(|g| g.by.to_string()),
        can_make_it: goal.is_none_or(|g| g.can_make_it),
        on_time_at_latest: goal.is_none_or(|g| g.on_time_at_latest),
    })
}
