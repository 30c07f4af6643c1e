//! Signed links for people without an account (InterCERT-FR's sponsors): issued and withdrawn here, followed
//! on the page `/links/{token}` ([`crate::pages::links`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use incubator_engine::CalendarDuration;
use incubator_store::entities::links;
use incubator_store::links::{IssueLink, LinkHolder, RevokeLink, token_of};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath};
use crate::access::{Caller, Role, visible_project};
use crate::app::AppState;
use crate::error::{ApiError, FieldProblem};
use crate::openapi::{
    BadRequestProblem, ForbiddenProblem, GoneProblem, InternalProblem, NotFoundProblem,
    TimeoutProblem, TooLargeProblem, UnauthorizedProblem, UnavailableProblem, UnprocessableProblem,
    UnsupportedProblem,
};

/// How long a link lasts when the request names no expiry.
const DEFAULT_LIFETIME: &str = "P14D";

/// A link as listed in its project: never its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    pub id: i64,
    /// The workflow role its holder acts in, e.g. `sponsor`.
    pub role: String,
    /// The requirement it lets its holder upload evidence for.
    pub requirement: String,
    pub email: String,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `open`, `used`, `expired` or `revoked`.
    pub status: String,
    pub used_at: Option<DateTime<Utc>>,
    /// The document uploaded through it.
    pub document_id: Option<i64>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl LinkView {
    pub fn of(link: links::Model, now: DateTime<Utc>) -> Self {
        let status = if link.used_at.is_some() {
            "used"
        } else if link.revoked_at.is_some() {
            "revoked"
        } else if now >= link.expires_at {
            "expired"
        } else {
            "open"
        };
        Self {
            id: link.id,
            role: link.role,
            requirement: link.requirement,
            email: link.email,
            name: link.name,
            created_by: link.created_by,
            created_at: link.created_at,
            expires_at: link.expires_at,
            status: status.to_owned(),
            used_at: link.used_at,
            document_id: link.document_id,
            revoked_at: link.revoked_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    #[schema(example = "cert@csirt-parrain.example")]
    pub email: String,
    #[schema(example = "CERT parrain")]
    pub name: String,
    /// A role the workflow gives to link holders (`held_by: … link`), e.g. `sponsor`.
    #[schema(example = "sponsor")]
    pub role: String,
    /// The requirement the holder uploads evidence for, e.g. `first_sponsor_letter`.
    #[schema(example = "first_sponsor_letter")]
    pub requirement: String,
    /// ISO-8601 duration from now, e.g. `P14D` (the default when neither this nor `expires_at` is given).
    #[serde(default)]
    #[schema(example = "P14D")]
    pub expires_in: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Language of the mail: `fr` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

/// A link just issued: the only time its address is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedLink {
    #[serde(flatten)]
    pub link: LinkView,
    /// `/links/{token}`.
    pub path: String,
    /// The path under the configured public URL (`server.public_url`); absent when none is configured.
    pub url: Option<String>,
}

fn invalid(field: &str, detail: String) -> ApiError {
    ApiError::Invalid {
        errors: vec![FieldProblem {
            field: field.into(),
            detail: detail.clone(),
        }],
        detail,
    }
}

/// When a new link expires: `expires_at`, or `expires_in` from now (calendar days of the workflow's time
/// zone), never both.
fn expiry(new: &NewLink, now: DateTime<Utc>, timezone: Tz) -> Result<DateTime<Utc>, ApiError> {
    match (&new.expires_in, new.expires_at) {
        (Some(_), Some(_)) => Err(invalid(
            "expires_in",
            "give `expires_in` or `expires_at`, not both".into(),
        )),
        (None, Some(at)) => Ok(at),
        (text, None) => {
            let text = text.as_deref().unwrap_or(DEFAULT_LIFETIME);
            let duration: CalendarDuration = text.parse().map_err(|e| {
                invalid(
                    "expires_in",
                    format!("`{text}` is not an ISO-8601 duration such as P14D: {e}"),
                )
            })?;
            Ok(duration.after(now, timezone))
        }
    }
}

/// Issues a signed link and mails it to its holder (officer, or the project's council).
///
/// The link lets its holder upload the evidence of one requirement, once, before it expires, without an
/// account. The answer is the only place its address appears besides the holder's mail.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/links",
    tag = "projects",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id")),
    request_body = NewLink,
    responses(
        (status = 201, description = "The link, with its address", body = IssuedLink),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn issue_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(new): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<IssuedLink>), ApiError> {
    let project = visible_project(&state, &caller, id).await?;
    caller.require(&[Role::Officer, Role::Council], "issuing a link")?;
    let now = state.programme_now();
    let timezone = state
        .store()
        .workflows()
        .get(
            state.store().db(),
            &project.workflow_id,
            project.workflow_version,
        )
        .await?
        .timezone();
    let expires_at = expiry(&new, now, timezone)?;
    let holder = LinkHolder::parse(&new.email, &new.name)?;
    let link = state
        .store()
        .write(IssueLink {
            registry: state.store().workflows().clone(),
            project_id: project.id,
            role: new.role,
            requirement: new.requirement,
            holder,
            lang: new.lang.unwrap_or_else(|| "fr".to_owned()),
            expires_at,
            actor: caller.actor_id(),
            now,
        })
        .await?;
    let path = format!("/links/{}", token_of(state.store().db(), &link).await?);
    let url = state
        .config()
        .public_url
        .as_deref()
        .map(|base| format!("{}{path}", base.trim_end_matches('/')));
    Ok((
        StatusCode::CREATED,
        Json(IssuedLink {
            link: LinkView::of(link, now),
            path,
            url,
        }),
    ))
}

/// Withdraws a link not used yet (officer only); it then answers 410.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/links/{link_id}/revoke",
    tag = "projects",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Project id"),
        ("link_id" = i64, Path, description = "Link id"),
    ),
    responses(
        (status = 200, description = "The withdrawn link", body = LinkView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, GoneProblem,
        TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn revoke_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, link_id)): ApiPath<(i64, i64)>,
) -> Result<Json<LinkView>, ApiError> {
    let project = visible_project(&state, &caller, id).await?;
    caller.require(&[Role::Officer], "withdrawing a link")?;
    let now = state.programme_now();
    let link = state
        .store()
        .write(RevokeLink {
            project_id: project.id,
            link_id,
            actor: caller.actor_id(),
            now,
        })
        .await?;
    Ok(Json(LinkView::of(link, now)))
}
