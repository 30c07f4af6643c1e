//! The 18 regions and where each stands.

use axum::Json;
use axum::extract::State;
use incubator_store::projects::{self, ProjectFilter};
use incubator_store::regions;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiQuery;
use crate::access::Caller;
use crate::app::AppState;
use crate::error::ApiError;
use crate::openapi::{
    BadRequestProblem, InternalProblem, TimeoutProblem, UnauthorizedProblem, UnavailableProblem,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct RegionView {
    /// INSEE COG region code.
    #[schema(example = "53")]
    pub code: String,
    #[schema(example = "Bretagne")]
    pub name: String,
    /// The region's project, `null` when it has none (or none the caller may see).
    pub project_id: Option<i64>,
    pub state: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegionQuery {
    /// Only projects of this workflow; by default each region's oldest project.
    pub workflow: Option<String>,
}

/// The 18 regions, each with its project's id and state.
#[utoipa::path(
    get,
    path = "/api/v1/regions",
    tag = "regions",
    security(("bearer" = [])),
    params(RegionQuery),
    responses(
        (status = 200, description = "The 18 regions", body = Vec<RegionView>),
        BadRequestProblem, UnauthorizedProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_regions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> Result<Json<Vec<RegionView>>, ApiError> {
    let db = state.store().db();
    let filter = ProjectFilter {
        workflow_id: query.workflow,
        ..ProjectFilter::default()
    };
    let mut projects = projects::list(db, &filter).await?;
    projects.sort_by_key(|p| p.id);
    let regions = regions::list(db).await?;
    let view = regions
        .into_iter()
        .map(|region| {
            let project = projects
                .iter()
                .filter(|p| caller.sees_region(&p.region_code))
                .find(|p| p.region_code == region.code);
            RegionView {
                project_id: project.map(|p| p.id),
                state: project.map(|p| p.state.clone()),
                code: region.code,
                name: region.name,
            }
        })
        .collect();
    Ok(Json(view))
}
