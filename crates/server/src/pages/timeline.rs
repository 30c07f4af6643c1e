//! A region's stages on a time axis: planned (the critical path counted from the project's creation),
//! actual (from its history) and forecast (from today, for the stages still ahead). Only the geometry and
//! dates are here; the `timeline` partial writes the SVG and the table that says the same in words.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use incubator_store::entities::events;
use serde::Serialize;

use super::Lang;
use super::programme::{ProjectStatus, local_date, main_path, stage_class};

const LABEL_WIDTH: f32 = 270.0;
const CHART_WIDTH: f32 = 560.0;
const ROW_HEIGHT: f32 = 30.0;
const TOP: f32 = 34.0;
const BOTTOM: f32 = 16.0;

#[derive(Debug, Serialize)]
pub struct Timeline {
    pub width: f32,
    pub height: f32,
    pub chart_x: f32,
    pub top: f32,
    pub row_height: f32,
    pub chart_bottom: f32,
    /// Baseline of the « today » label, under the chart.
    pub label_bottom: f32,
    pub ticks: Vec<Tick>,
    pub rows: Vec<Row>,
    pub today_x: f32,
    pub goal: Option<Marker>,
}

#[derive(Debug, Serialize)]
pub struct Tick {
    pub x: f32,
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct Marker {
    pub x: f32,
    pub date: String,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub label: String,
    pub class: String,
    pub y: f32,
    pub text_y: f32,
    pub current: bool,
    pub planned: Option<Bar>,
    pub actual: Option<Bar>,
    pub forecast: Option<Bar>,
}

#[derive(Debug, Serialize)]
pub struct Bar {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    /// `YYYY-MM-DD`
    pub start: String,
    /// `YYYY-MM-DD`; `None` while the stage is not left.
    pub end: Option<String>,
}

struct Scale {
    from: i64,
    to: i64,
}

impl Scale {
    fn x(&self, at: DateTime<Utc>) -> f32 {
        let span = (self.to - self.from).max(1) as f32;
        LABEL_WIDTH + ((at.timestamp() - self.from) as f32 / span).clamp(0.0, 1.0) * CHART_WIDTH
    }
}

/// When the project entered and left each state, from its history (`created` and `transition` events).
fn actual_stays(history: &[events::Model]) -> Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> {
    let entries: Vec<(&str, DateTime<Utc>)> = history
        .iter()
        .filter_map(|e| e.to_state.as_deref().map(|s| (s, e.at)))
        .collect();
    entries
        .iter()
        .enumerate()
        .map(|(i, (state, at))| ((*state).to_owned(), *at, entries.get(i + 1).map(|n| n.1)))
        .collect()
}

pub fn build(
    project: &ProjectStatus,
    history: &[events::Model],
    lang: Lang,
    now: DateTime<Utc>,
) -> Timeline {
    let workflow = &project.workflow;
    let path = main_path(workflow);
    let created = project.snapshot.project.created_at;
    let stays = actual_stays(history);
    let mut states = path.clone();
    for (state, _, _) in &stays {
        if !states.contains(state) {
            states.push(state.clone());
        }
    }
    let plan = workflow.plan(&workflow.initial_state().id, created);
    let planned_entries: Vec<(String, DateTime<Utc>)> = plan
        .as_ref()
        .map(|p| {
            p.timeline
                .iter()
                .map(|s| (s.state.clone(), s.latest_entry))
                .collect()
        })
        .unwrap_or_default();
    let forecast_entries: Vec<(String, DateTime<Utc>)> = project
        .forecast
        .as_ref()
        .map(|f| {
            f.timeline
                .iter()
                .map(|s| (s.state.clone(), s.latest_entry))
                .collect()
        })
        .unwrap_or_default();
    let goal = workflow.goals().iter().min_by_key(|g| g.due);

    let mut instants = vec![created, now];
    instants.extend(planned_entries.iter().map(|e| e.1));
    instants.extend(forecast_entries.iter().map(|e| e.1));
    instants.extend(goal.map(|g| g.due));
    let first = instants.iter().min().copied().unwrap_or(now);
    let last = instants.iter().max().copied().unwrap_or(now);
    let margin = ((last - first).num_seconds() / 30).max(86_400);
    let scale = Scale {
        from: first.timestamp() - margin,
        to: last.timestamp() + margin,
    };
    let bar = |start: DateTime<Utc>, end: Option<DateTime<Utc>>, y: f32, h: f32| {
        let x = scale.x(start);
        let x_end = scale.x(end.unwrap_or(now));
        Bar {
            x,
            y,
            // A stage left on the day it was entered still shows as a sliver.
            width: (x_end - x).max(3.0),
            height: h,
            start: local_date(workflow, start).to_string(),
            end: end.map(|e| local_date(workflow, e).to_string()),
        }
    };
    let stay_of = |entries: &[(String, DateTime<Utc>)], state: &str| {
        let i = entries.iter().position(|(s, _)| s == state)?;
        Some((entries[i].1, entries.get(i + 1).map(|e| e.1)))
    };
    let current = project.state();
    let rows = states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let y = TOP + i as f32 * ROW_HEIGHT;
            let label = workflow
                .state(state)
                .map_or_else(|| state.clone(), |s| lang.pick(&s.labels));
            let planned = stay_of(&planned_entries, state)
                .map(|(start, end)| bar(start, Some(end.unwrap_or(start)), y + 4.0, 8.0));
            let visits: Vec<_> = stays.iter().filter(|(s, _, _)| s == state).collect();
            let actual = visits.first().map(|(_, entered, _)| {
                let left = visits.last().and_then(|(_, _, left)| *left);
                bar(*entered, left, y + 13.0, 12.0)
            });
            let ahead = state != current && actual.is_none();
            let forecast = stay_of(&forecast_entries, state)
                .filter(|_| ahead)
                .map(|(start, end)| bar(start, Some(end.unwrap_or(start)), y + 13.0, 12.0));
            Row {
                label,
                class: stage_class(workflow, &path, state),
                y,
                text_y: y + ROW_HEIGHT / 2.0 + 4.0,
                current: state == current,
                planned,
                actual,
                forecast,
            }
        })
        .collect::<Vec<_>>();
    let chart_bottom = TOP + rows.len() as f32 * ROW_HEIGHT;
    let ticks = (first.year()..=last.year() + 1)
        .filter_map(|year| {
            let at =
                Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(year, 1, 1)?.and_hms_opt(0, 0, 0)?);
            (at.timestamp() > scale.from && at.timestamp() < scale.to).then(|| Tick {
                x: scale.x(at),
                label: year.to_string(),
            })
        })
        .collect();
    Timeline {
        width: LABEL_WIDTH + CHART_WIDTH + 10.0,
        height: chart_bottom + BOTTOM + 4.0,
        chart_x: LABEL_WIDTH,
        top: TOP - 4.0,
        row_height: ROW_HEIGHT,
        chart_bottom,
        label_bottom: chart_bottom + 12.0,
        ticks,
        rows,
        today_x: scale.x(now),
        goal: goal.map(|g| Marker {
            x: scale.x(g.due),
            date: g.by.to_string(),
        }),
    }
}
