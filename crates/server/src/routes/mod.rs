//! The API's routes, each annotated for the OpenAPI document, and the extractors that turn every rejection
//! into an [`ApiError`] (so malformed JSON is a problem document like any other error).

pub mod auth;
pub mod cohorts;
pub mod documents;
pub mod links;
pub mod ops;
pub mod outbox;
pub mod projects;
pub mod regions;
pub mod workflows;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::ApiError;

/// Every route but the upload, with the JSON body limit and the request time limit.
pub fn json_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::issue_token, auth::revoke_token))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::list_accounts))
        .routes(routes!(auth::revoke_account_tokens))
        .routes(routes!(regions::list_regions))
        .routes(routes!(projects::create_project, projects::list_projects))
        .routes(routes!(projects::get_project))
        .routes(routes!(projects::patch_fields))
        .routes(routes!(projects::fire_transition))
        .routes(routes!(projects::list_events))
        .routes(routes!(projects::assign_cohort))
        .routes(routes!(links::issue_link))
        .routes(routes!(links::revoke_link))
        .routes(routes!(documents::list_documents))
        .routes(routes!(documents::document_content))
        .routes(routes!(documents::review_document))
        .routes(routes!(cohorts::create_cohort, cohorts::list_cohorts))
        .routes(routes!(outbox::list_outbox))
        .routes(routes!(outbox::retry_mail))
        .routes(routes!(workflows::list_workflows))
        .routes(routes!(workflows::migrate_projects))
        .routes(routes!(workflows::pause_deadline))
        .routes(routes!(workflows::resume_deadline))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
}

/// The evidence upload, with its own (larger) body and time limits.
pub fn upload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(documents::upload_document))
}

/// `axum::Json`, with rejections as problems: 400 malformed, 415 not JSON, 422 wrong shape, 413 too large.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path`, with rejections as 400 problems.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query`, with rejections as 400 problems.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// A page of a list, and where the next one is (a `Link` header with `rel="next"`, RFC 8288) when more
/// follow: the list's JSON stays an array, and a client that ignores the header still gets a whole page.
#[derive(Debug)]
pub struct Paged<T> {
    items: Vec<T>,
    next: Option<String>,
}

impl<T> Paged<T> {
    /// `rows` read with one more than `limit`: that one, when there, says a next page exists; `next` makes
    /// its address from the last row of this page.
    pub fn of<R>(
        mut rows: Vec<R>,
        limit: u64,
        next: impl FnOnce(&R) -> String,
        item: impl FnMut(R) -> T,
    ) -> Self {
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = rows.last().filter(|_| more).map(next);
        Self {
            items: rows.into_iter().map(item).collect(),
            next,
        }
    }
}

impl<T: Serialize> IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        match self.next {
            Some(next) => (
                [(LINK, format!("<{next}>; rel=\"next\""))],
                Json(self.items),
            )
                .into_response(),
            None => Json(self.items).into_response(),
        }
    }
}

/// `axum::extract::Multipart`; a body that is not `multipart/form-data` is a 415 problem.
#[derive(Debug)]
pub struct ApiMultipart(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Multipart::from_request(request, state).await?))
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        ApiError::UnsupportedMediaType {
            detail: format!(
                "send the evidence as multipart/form-data: {}",
                rejection.body_text()
            ),
            accepted: vec!["multipart/form-data".into()],
        }
    }
}
