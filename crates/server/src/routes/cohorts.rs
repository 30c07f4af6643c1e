//! Incubation sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use incubator_store::cohorts::{self, CreateCohort};
use incubator_store::entities::cohorts as cohort_rows;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::access::{Caller, Role};
use crate::app::AppState;
use crate::error::ApiError;
use crate::openapi::{
    BadRequestProblem, ConflictProblem, ForbiddenProblem, InternalProblem, TimeoutProblem,
    TooLargeProblem, UnauthorizedProblem, UnavailableProblem, UnprocessableProblem,
    UnsupportedProblem,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCohort {
    #[schema(example = "Session 2022-1")]
    pub name: String,
    /// The day the session starts; the six months of incubation count from it.
    pub starts_on: NaiveDate,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohortView {
    pub id: i64,
    pub name: String,
    pub starts_on: NaiveDate,
}

impl From<cohort_rows::Model> for CohortView {
    fn from(c: cohort_rows::Model) -> Self {
        Self {
            id: c.id,
            name: c.name,
            starts_on: c.starts_on,
        }
    }
}

/// Creates an incubation session (officer only).
#[utoipa::path(
    post,
    path = "/api/v1/cohorts",
    tag = "cohorts",
    security(("bearer" = [])),
    request_body = NewCohort,
    responses(
        (status = 201, description = "The session", body = CohortView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, ConflictProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn create_cohort(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewCohort>,
) -> Result<(StatusCode, Json<CohortView>), ApiError> {
    caller.require(&[Role::Officer], "creating an incubation session")?;
    let cohort = state
        .store()
        .write(CreateCohort {
            name: new.name,
            starts_on: new.starts_on,
            now: state.programme_now(),
        })
        .await?;
    tracing::info!(actor = %caller.actor_id(), cohort_id = cohort.id, "cohort created");
    Ok((StatusCode::CREATED, Json(cohort.into())))
}

/// Every incubation session, by start date.
#[utoipa::path(
    get,
    path = "/api/v1/cohorts",
    tag = "cohorts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sessions", body = Vec<CohortView>),
        UnauthorizedProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_cohorts(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<CohortView>>, ApiError> {
    let cohorts = cohorts::list(state.store().db()).await?;
    Ok(Json(cohorts.into_iter().map(CohortView::from).collect()))
}
