//! Operations: health, metrics and the OpenAPI document. None needs an account's token; metrics may be
//! closed with a token of their own (`metrics.bearer_token`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::bearer_token;
use crate::error::ApiError;
use crate::openapi::{InternalProblem, TimeoutProblem, UnauthorizedProblem, UnavailableProblem};
use crate::pages::session::same_secret;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
}

/// Whether the service can reach its database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = Health),
        UnavailableProblem, TimeoutProblem,
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let db = state.store().db();
    db.ping().await.map_err(|e| {
        tracing::error!(error = %e, "health check: database unreachable");
        ApiError::database_unreachable()
    })?;
    Ok(Json(Health {
        status: "ok".into(),
        database: incubator_store::db::backend_name(db).into(),
    }))
}

/// Metrics in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
         content_type = "text/plain; version=0.0.4; charset=utf-8"),
        UnauthorizedProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    // Open unless the deployment set a token: then only a scraper that has it gets through.
    if let Some(expected) = &state.config().metrics_bearer_token
        && !bearer_token(&headers).is_some_and(|given| same_secret(given, expected))
    {
        return Err(ApiError::Unauthenticated);
    }
    let gauges = incubator_store::gauges::read(state.store().db(), state.programme_now()).await?;
    let text = state.metrics().render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json().to_owned(),
    )
}
