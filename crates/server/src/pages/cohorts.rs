//! Incubation sessions: the list with each session's six-month calendar and its regions, creating a
//! session, assigning regions to it (officers; admins read).

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use chrono::{Datelike, NaiveDate};
use incubator_engine::{Anchor, DeadlineRule, Workflow, start_of_local_day};
use incubator_store::cohorts::{self as cohorts_repo, CreateCohort};
use serde::{Deserialize, Serialize};

use super::programme::{local_date, visible_regions};
use super::session::{Submitted, Viewer};
use super::{Frame, Lang, PageError, error_key, render, see_other};
use crate::access::Role;
use crate::app::AppState;
use crate::error::ApiError;

const CALENDAR_LEFT: f32 = 10.0;
const CALENDAR_WIDTH: f32 = 680.0;

/// A session's calendar: its months and the milestones the workflow sets from the session's start.
#[derive(Debug, Serialize)]
pub struct CalendarView {
    pub width: f32,
    pub height: f32,
    /// The stage the session is (e.g. « Incubation »).
    pub stage: String,
    pub ends_on: String,
    pub months: Vec<CalendarMonth>,
    pub milestones: Vec<CalendarMilestone>,
}

#[derive(Debug, Serialize)]
pub struct CalendarMonth {
    /// `YYYY-MM`
    pub month: String,
    pub x: f32,
    pub width: f32,
    pub text_x: f32,
    /// Every other month shaded apart.
    pub alt: bool,
}

#[derive(Debug, Serialize)]
pub struct CalendarMilestone {
    pub label: String,
    /// `YYYY-MM-DD`
    pub date: String,
    pub x: f32,
    /// Points of the diamond marking it.
    pub points: String,
}

/// The calendar of a session starting on `starts_on`, from the first state of `workflow` whose deadline
/// counts from the session's start; `None` when the workflow has none.
pub fn calendar(workflow: &Workflow, starts_on: NaiveDate, lang: Lang) -> Option<CalendarView> {
    let (state, duration) = workflow.states().iter().find_map(|s| match &s.deadline {
        Some(d) => match &d.rule {
            DeadlineRule::After {
                duration,
                from: Anchor::CohortStart,
            } => Some((s, *duration)),
            _ => None,
        },
        None => None,
    })?;
    let tz = workflow.timezone();
    let start = start_of_local_day(starts_on, tz);
    let end = duration.after(start, tz);
    let ends_on = local_date(workflow, end);
    let span = (end - start).num_seconds().max(1) as f32;
    let x_of = |date: NaiveDate| {
        let at = start_of_local_day(date, tz);
        CALENDAR_LEFT + ((at - start).num_seconds() as f32 / span).clamp(0.0, 1.0) * CALENDAR_WIDTH
    };
    let mut months = Vec::new();
    let mut first = starts_on.with_day(1)?;
    while first <= ends_on {
        let next = first.checked_add_months(chrono::Months::new(1))?;
        let x = x_of(first.max(starts_on));
        let x_end = x_of(next.min(ends_on));
        months.push(CalendarMonth {
            month: first.format("%Y-%m").to_string(),
            x,
            width: (x_end - x).max(0.0),
            text_x: x + 4.0,
            alt: months.len() % 2 == 1,
        });
        first = next;
    }
    let milestones = state
        .milestones
        .iter()
        .map(|m| {
            let date = local_date(workflow, m.after.after(start, tz));
            let x = x_of(date);
            CalendarMilestone {
                label: lang.pick(&m.labels),
                date: date.to_string(),
                x,
                points: format!("{x},40 {},50 {x},60 {},50", x + 10.0, x - 10.0, x = x),
            }
        })
        .collect();
    Some(CalendarView {
        width: CALENDAR_LEFT * 2.0 + CALENDAR_WIDTH,
        height: 70.0,
        stage: lang.pick(&state.labels),
        ends_on: ends_on.to_string(),
        months,
        milestones,
    })
}

#[derive(Serialize)]
struct CohortsPage {
    can_edit: bool,
    cohorts: Vec<CohortRow>,
}

#[derive(Serialize)]
struct CohortRow {
    id: i64,
    name: String,
    starts_on: String,
    calendar: Option<CalendarView>,
    regions: Vec<RegionLink>,
    /// Regions with a project that may join it.
    candidates: Vec<RegionLink>,
}

#[derive(Serialize)]
struct RegionLink {
    code: String,
    name: String,
    stage: String,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    lang: Lang,
    uri: Uri,
) -> Result<Response, PageError> {
    viewer
        .caller
        .require(&[Role::Officer, Role::Admin], "the incubation sessions")?;
    let regions = visible_regions(&state, &viewer.caller, None).await?;
    let default_workflow: Option<Arc<Workflow>> = regions
        .iter()
        .filter_map(|r| r.project.as_ref())
        .min_by_key(|p| p.snapshot.project.id)
        .map(|p| p.workflow.clone());
    let cohorts = cohorts_repo::list(state.store().db()).await?;
    let rows = cohorts
        .into_iter()
        .map(|c| {
            let members: Vec<_> = regions
                .iter()
                .filter(|r| {
                    r.project
                        .as_ref()
                        .is_some_and(|p| p.snapshot.project.cohort_id == Some(c.id))
                })
                .collect();
            let workflow = members
                .iter()
                .find_map(|r| r.project.as_ref().map(|p| p.workflow.clone()))
                .or_else(|| default_workflow.clone());
            let link = |r: &super::programme::RegionStatus| RegionLink {
                code: r.code.clone(),
                name: r.name.clone(),
                stage: r
                    .project
                    .as_ref()
                    .map(|p| p.state_label(lang))
                    .unwrap_or_default(),
            };
            CohortRow {
                id: c.id,
                name: c.name.clone(),
                starts_on: c.starts_on.to_string(),
                calendar: workflow.and_then(|w| calendar(&w, c.starts_on, lang)),
                regions: members.iter().map(|r| link(r)).collect(),
                candidates: regions
                    .iter()
                    .filter(|r| {
                        r.project.as_ref().is_some_and(|p| {
                            p.snapshot.project.cohort_id != Some(c.id)
                                && !p.workflow.state(p.state()).is_some_and(|s| s.is_terminal())
                        })
                    })
                    .map(link)
                    .collect(),
            }
        })
        .collect();
    let page = CohortsPage {
        can_edit: viewer.is(Role::Officer),
        cohorts: rows,
    };
    let frame = Frame::signed_in(lang, &uri, &viewer, "cohorts");
    render(&state, "cohorts", &frame, &page)
}

#[derive(Debug, Deserialize)]
pub struct NewCohort {
    name: String,
    starts_on: String,
}

/// Creates a session (officer only).
pub async fn create(
    State(state): State<AppState>,
    submitted: Submitted<NewCohort>,
) -> Result<Response, PageError> {
    let caller = &submitted.viewer.caller;
    caller.require(&[Role::Officer], "creating an incubation session")?;
    let result = async {
        let starts_on = NaiveDate::parse_from_str(submitted.form.starts_on.trim(), "%Y-%m-%d")
            .map_err(|_| ApiError::invalid("starts_on is not a date"))?;
        let cohort = state
            .store()
            .write(CreateCohort {
                name: submitted.form.name.clone(),
                starts_on,
                now: state.programme_now(),
            })
            .await?;
        tracing::info!(actor = %caller.actor_id(), cohort_id = cohort.id, "cohort created");
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(see_other("/cohorts", "cohort_created", true)),
        Err(error) => match error_key(&error) {
            Some(key) => Ok(see_other("/cohorts", key, false)),
            None => Err(error.into()),
        },
    }
}
