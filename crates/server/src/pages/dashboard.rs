//! The national dashboard (officers and admins): the map of the regions by stage, the funnel, overdue and
//! coming deadlines, and each region's forecast. A council account is sent to its own region's page.

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use serde::Serialize;

use super::map::{self, Geometry, Tile};
use super::programme::{
    DeadlineRow, ForecastView, RegionStatus, deadlines, forecast_view, main_path, stage_class,
    visible_regions,
};
use super::session::Viewer;
use super::{Frame, Lang, PageError, query_param, render};
use crate::access::Role;
use crate::app::AppState;

/// Deadlines due within this many days are listed as coming.
const COMING_DAYS: i64 = 30;

#[derive(Serialize)]
struct Dashboard {
    workflow_label: Option<String>,
    map: MapView,
    legend: Vec<LegendEntry>,
    funnel: Funnel,
    overdue_count: usize,
    overdue: Vec<DeadlineRow>,
    coming_count: usize,
    coming: Vec<DeadlineRow>,
    regions: Vec<RegionRow>,
}

#[derive(Serialize)]
struct MapView {
    geometry: Geometry,
    tiles: Vec<MapTile>,
}

#[derive(Serialize)]
struct MapTile {
    #[serde(flatten)]
    tile: Tile,
    name: String,
    href: String,
    /// `None` when the region has no project.
    stage: Option<String>,
    class: String,
    /// The stage's number in the legend.
    number: Option<usize>,
}

#[derive(Serialize)]
struct LegendEntry {
    #[serde(skip)]
    state: String,
    number: usize,
    label: String,
    class: String,
    count: usize,
}

#[derive(Serialize)]
struct Funnel {
    width: f32,
    height: f32,
    bars: Vec<FunnelBar>,
}

#[derive(Serialize)]
struct FunnelBar {
    label: String,
    class: String,
    /// Projects in this stage now.
    count: usize,
    /// Projects in this stage or further along the main way.
    reached: usize,
    x: f32,
    y: f32,
    width: f32,
    text_y: f32,
    count_x: f32,
}

#[derive(Serialize)]
struct RegionRow {
    code: String,
    name: String,
    href: String,
    stage: Option<String>,
    class: String,
    operational: bool,
    failed: bool,
    forecast: Option<ForecastView>,
}

const FUNNEL_LABELS: f32 = 290.0;
const FUNNEL_BARS: f32 = 300.0;
const FUNNEL_ROW: f32 = 28.0;

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    lang: Lang,
    uri: Uri,
) -> Result<Response, PageError> {
    if viewer.is(Role::Council) {
        let code = viewer.caller.region.clone().unwrap_or_default();
        return Ok(Redirect::to(&format!("/regions/{code}")).into_response());
    }
    let workflow_id = query_param(&uri, "workflow");
    let mut regions = visible_regions(&state, &viewer.caller, workflow_id.as_deref()).await?;
    // One programme at a time: by default the workflow of the oldest project.
    let programme = regions
        .iter()
        .filter_map(|r| r.project.as_ref())
        .min_by_key(|p| p.snapshot.project.id)
        .map(|p| p.workflow.clone());
    if let Some(workflow) = &programme {
        for region in &mut regions {
            if region
                .project
                .as_ref()
                .is_some_and(|p| p.workflow.id() != workflow.id())
            {
                region.project = None;
            }
        }
    }
    let now = state.programme_now();
    let mut legend = Vec::new();
    let mut path = Vec::new();
    if let Some(workflow) = &programme {
        path = main_path(workflow);
        let failures = workflow
            .states()
            .iter()
            .filter(|s| s.is_terminal() && !s.is_success())
            .map(|s| s.id.clone());
        for (i, id) in path.iter().cloned().chain(failures).enumerate() {
            let label = workflow
                .state(&id)
                .map_or_else(|| id.clone(), |s| lang.pick(&s.labels));
            let count = regions
                .iter()
                .filter(|r| r.project.as_ref().is_some_and(|p| p.state() == id))
                .count();
            legend.push(LegendEntry {
                state: id.clone(),
                number: i + 1,
                label,
                class: stage_class(workflow, &path, &id),
                count,
            });
        }
    }
    let number_of = |region: &RegionStatus| {
        let project = region.project.as_ref()?;
        legend
            .iter()
            .find(|e| e.state == project.state())
            .map(|e| e.number)
    };
    let (tiles, geometry) = map::layout();
    let map_tiles = tiles
        .into_iter()
        .filter_map(|tile| {
            let region = regions.iter().find(|r| r.code == tile.code)?;
            Some(MapTile {
                name: region.name.clone(),
                href: format!("/regions/{}", region.code),
                stage: region.project.as_ref().map(|p| p.state_label(lang)),
                class: class_of(region, &path),
                number: number_of(region),
                tile,
            })
        })
        .collect();
    let funnel = funnel(&regions, &path, &legend);
    let mut rows: Vec<DeadlineRow> = regions
        .iter()
        .flat_map(|r| deadlines(r, lang, now))
        .collect();
    rows.sort_by_key(|d| d.due_at);
    let (overdue, rest): (Vec<_>, Vec<_>) = rows.into_iter().partition(|d| d.overdue);
    let coming: Vec<DeadlineRow> = rest
        .into_iter()
        // Milestones already passed are neither late nor coming.
        .filter(|d| now <= d.due_at && d.due_at <= now + Duration::days(COMING_DAYS))
        .collect();
    let region_rows = regions
        .iter()
        .map(|r| {
            let terminal = r.project.as_ref().and_then(|p| {
                p.workflow
                    .state(p.state())
                    .map(|s| (s.is_success(), s.is_terminal()))
            });
            RegionRow {
                code: r.code.clone(),
                name: r.name.clone(),
                href: format!("/regions/{}", r.code),
                stage: r.project.as_ref().map(|p| p.state_label(lang)),
                class: class_of(r, &path),
                operational: terminal.is_some_and(|(success, _)| success),
                failed: terminal.is_some_and(|(success, terminal)| terminal && !success),
                forecast: r.project.as_ref().and_then(|p| forecast_view(p, lang)),
            }
        })
        .collect();
    let page = Dashboard {
        workflow_label: programme.as_ref().map(|w| lang.pick(w.labels())),
        map: MapView {
            geometry,
            tiles: map_tiles,
        },
        legend,
        funnel,
        overdue_count: overdue.len(),
        overdue,
        coming_count: coming.len(),
        coming,
        regions: region_rows,
    };
    let frame = Frame::signed_in(lang, &uri, &viewer, "dashboard");
    render(&state, "dashboard", &frame, &page)
}

fn class_of(region: &RegionStatus, path: &[String]) -> String {
    region.project.as_ref().map_or_else(
        || "none".to_owned(),
        |p| stage_class(&p.workflow, path, p.state()),
    )
}

/// One bar per stage of the main way, as wide as the share of projects that reached it, centred.
fn funnel(regions: &[RegionStatus], path: &[String], legend: &[LegendEntry]) -> Funnel {
    let projects: Vec<_> = regions.iter().filter_map(|r| r.project.as_ref()).collect();
    let total = projects.len().max(1) as f32;
    let bars = path
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let count = projects.iter().filter(|p| p.state() == state).count();
            let reached = projects
                .iter()
                .filter(|p| {
                    path.iter()
                        .position(|s| s == p.state())
                        .is_some_and(|at| at >= i)
                })
                .count();
            let width = (reached as f32 / total * FUNNEL_BARS).max(2.0);
            let y = i as f32 * FUNNEL_ROW;
            FunnelBar {
                label: legend[i].label.clone(),
                class: legend[i].class.clone(),
                count,
                reached,
                x: FUNNEL_LABELS + (FUNNEL_BARS - width) / 2.0,
                y: y + 3.0,
                width,
                text_y: y + FUNNEL_ROW / 2.0 + 5.0,
                count_x: FUNNEL_LABELS + FUNNEL_BARS + 50.0,
            }
        })
        .collect::<Vec<_>>();
    Funnel {
        width: FUNNEL_LABELS + FUNNEL_BARS + 60.0,
        height: bars.len() as f32 * FUNNEL_ROW + 4.0,
        bars,
    }
}
