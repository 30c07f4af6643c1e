//! The email outbox as admins see it: what waits, what went out, what is dead; and a retry for the dead.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use incubator_store::delivery;
use incubator_store::entities::outbox;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiPath, ApiQuery, Paged};
use crate::access::{Caller, Role};
use crate::app::AppState;
use crate::error::ApiError;
use crate::openapi::{
    BadRequestProblem, ForbiddenProblem, InternalProblem, NotFoundProblem, TimeoutProblem,
    UnauthorizedProblem, UnavailableProblem, UnprocessableProblem,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    Pending,
    Sent,
    Dead,
}

impl MailStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => incubator_store::outbox::PENDING,
            Self::Sent => delivery::SENT,
            Self::Dead => delivery::DEAD,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only mails with this status.
    pub status: Option<MailStatus>,
    /// Only mails older than this id (the next page: the smallest id of the previous one, as the `Link`
    /// header says).
    pub before_id: Option<i64>,
    /// At most this many mails (default 100, at most 500).
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailView {
    pub id: i64,
    pub project_id: Option<i64>,
    pub template: String,
    pub lang: String,
    /// The addresses the mail goes to.
    pub recipients: Vec<String>,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl MailView {
    fn of(row: outbox::Model) -> Self {
        #[derive(Deserialize)]
        struct Recipient {
            email: String,
        }
        // Rows are written by the store as a JSON list; a row that is not is shown with no address.
        let recipients = serde_json::from_str::<Vec<Recipient>>(&row.recipients)
            .map(|list| list.into_iter().map(|r| r.email).collect())
            .unwrap_or_default();
        Self {
            id: row.id,
            project_id: row.project_id,
            template: row.template,
            lang: row.lang,
            recipients,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            created_at: row.created_at,
            sent_at: row.sent_at,
        }
    }
}

/// The outbox, newest first (admin only).
#[utoipa::path(
    get,
    path = "/api/v1/outbox",
    tag = "outbox",
    security(("bearer" = [])),
    params(OutboxQuery),
    responses(
        (status = 200, description = "A page of mails, newest first", body = Vec<MailView>,
         headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when more mails follow"))),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_outbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<OutboxQuery>,
) -> Result<Paged<MailView>, ApiError> {
    caller.require(&[Role::Admin], "managing the outbox")?;
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let status = query.status.map(MailStatus::as_str);
    let rows = delivery::list(state.store().db(), status, query.before_id, limit + 1).await?;
    let status = status.map(|s| format!("status={s}&")).unwrap_or_default();
    Ok(Paged::of(
        rows,
        limit,
        |last| format!("/api/v1/outbox?{status}before_id={}&limit={limit}", last.id),
        MailView::of,
    ))
}

/// Sends a dead mail again, with a fresh count of attempts (admin only).
#[utoipa::path(
    post,
    path = "/api/v1/outbox/{id}/retry",
    tag = "outbox",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Outbox mail id")),
    responses(
        (status = 200, description = "The mail, pending again", body = MailView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, UnprocessableProblem,
        TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn retry_mail(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<MailView>, ApiError> {
    caller.require(&[Role::Admin], "managing the outbox")?;
    let db = state.store().db();
    let Some(row) = delivery::get(db, id).await? else {
        return Err(ApiError::NotFound(format!("mail {id} not found")));
    };
    if !delivery::retry(db, id, Utc::now()).await? {
        return Err(ApiError::invalid(format!(
            "mail {id} is {}: only a dead mail can be retried",
            row.status
        )));
    }
    tracing::info!(admin = caller.user_id, mail = id, "dead mail queued again");
    let row = delivery::get(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("mail {id} not found")))?;
    Ok(Json(MailView::of(row)))
}
