//! Tokens for the API, and the admin's view of accounts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use incubator_store::entities::users;
use incubator_store::{account_admin, tokens, users as users_repo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath};
use crate::access::{Caller, Role};
use crate::app::AppState;
use crate::auth::{ClientIp, check_credentials, hash_password, new_token, token_digest};
use crate::error::{ApiError, FieldProblem};
use crate::openapi::{
    BadRequestProblem, ForbiddenProblem, InternalProblem, NotFoundProblem, TimeoutProblem,
    TooLargeProblem, UnauthorizedProblem, UnavailableProblem, UnprocessableProblem,
    UnsupportedProblem,
};
use crate::password_policy;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(example = "officer@anssi.example")]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// A council account's region.
    pub region_code: Option<String>,
    pub lang: String,
    pub disabled: bool,
}

impl AccountView {
    fn of(user: users::Model) -> Result<Self, ApiError> {
        let role = Role::parse(&user.role).ok_or_else(|| {
            ApiError::internal(format!(
                "account {} has an unknown role `{}`",
                user.id, user.role
            ))
        })?;
        Ok(Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role,
            region_code: user.region_code,
            lang: user.lang,
            disabled: user.disabled,
        })
    }
}

/// Exchanges an email and password for a bearer token.
///
/// Wrong credentials get 401, and repeated failures from one address for one email are answered more and
/// more slowly (the account is never locked).
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "A new token", body = TokenResponse),
        BadRequestProblem, UnauthorizedProblem, TooLargeProblem, UnsupportedProblem, UnprocessableProblem,
        TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn issue_token(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Json<TokenResponse>, ApiError> {
    let user = check_credentials(&state, &credentials.email, credentials.password, client).await?;
    let token = new_token().map_err(ApiError::internal)?;
    let now = Utc::now();
    let lifetime =
        chrono::Duration::from_std(state.config().token_lifetime).map_err(ApiError::internal)?;
    let issued = tokens::issue(
        state.store().db(),
        user.id,
        &token_digest(&token),
        now,
        now + lifetime,
    )
    .await?;
    tracing::info!(user_id = user.id, "token issued");
    Ok(Json(TokenResponse {
        token,
        token_type: "Bearer".into(),
        expires_at: issued.expires_at,
    }))
}

/// Revokes the token this request is made with.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/token",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked: the token no longer works"),
        UnauthorizedProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    tokens::revoke(state.store().db(), &caller.token_sha256, Utc::now()).await?;
    tracing::info!(user_id = caller.user_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// The account behind the token.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = AccountView),
        UnauthorizedProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AccountView>, ApiError> {
    let user = users_repo::find_by_email(state.store().db(), &caller.email)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Json(AccountView::of(user)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// Asked again, so that a session left open is not enough to take the account.
    pub current_password: String,
    /// At least 12 characters, at most 128; not a common password, nor one guessable from the account's name
    /// or address. No other rule: a phrase of several words is best.
    pub new_password: String,
}

/// Changes the caller's own password. Every session and token of the account ends, this one included:
/// sign in again with the new password.
#[utoipa::path(
    put,
    path = "/api/v1/me/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; every session and token of the account ended"),
        BadRequestProblem, UnauthorizedProblem, TooLargeProblem, UnsupportedProblem, UnprocessableProblem,
        TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ClientIp(client): ClientIp,
    ApiJson(change): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    // The same check, throttle and timing as a sign-in: a wrong current password is a failed sign-in.
    let user = check_credentials(&state, &caller.email, change.current_password, client).await?;
    if user.id != caller.user_id {
        return Err(ApiError::Unauthenticated);
    }
    password_policy::check(&change.new_password, &[&user.email, &user.name]).map_err(|weak| {
        ApiError::Invalid {
            detail: weak.to_string(),
            errors: vec![FieldProblem {
                field: "new_password".into(),
                detail: weak.to_string(),
            }],
        }
    })?;
    let password = change.new_password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    account_admin::set_password_hash(state.store().db(), user.id, &hash, Utc::now()).await?;
    tracing::info!(user_id = user.id, "password changed by its owner");
    Ok(StatusCode::NO_CONTENT)
}

/// Every account (admin only).
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every account", body = Vec<AccountView>),
        UnauthorizedProblem, ForbiddenProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    caller.require(&[Role::Admin], "managing accounts")?;
    let users = users_repo::list(state.store().db()).await?;
    Ok(Json(
        users
            .into_iter()
            .map(AccountView::of)
            .collect::<Result<_, _>>()?,
    ))
}

/// Revokes every token of an account (admin only), e.g. when a laptop is lost.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{id}/tokens",
    tag = "auth",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 204, description = "Every token of the account revoked"),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn revoke_account_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin], "managing accounts")?;
    let exists = users_repo::list(state.store().db())
        .await?
        .iter()
        .any(|u| u.id == id);
    if !exists {
        return Err(ApiError::NotFound(format!("account {id} not found")));
    }
    let revoked = tokens::revoke_all_of(state.store().db(), id, Utc::now()).await?;
    tracing::info!(
        admin = caller.user_id,
        account = id,
        revoked,
        "account tokens revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}
