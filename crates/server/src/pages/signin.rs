//! Sign-in and sign-out of the pages, on the accounts of the API (same passwords, same throttling).

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use incubator_store::sessions;
use serde::{Deserialize, Serialize};

use super::session::{
    Submitted, Viewer, cookie, cookie_header, local_path, login_cookie_name, same_origin,
    same_secret, session_cookie_name,
};
use super::{Frame, Lang, PageError, query_param, render};
use crate::access::Role;
use crate::app::AppState;
use crate::auth::{ClientIp, check_credentials, new_token, token_digest};
use crate::error::ApiError;

/// The sign-in form's token lives this long in its cookie.
const LOGIN_FORM_SECS: i64 = 3600;

#[derive(Serialize)]
struct LoginPage {
    next: String,
    email: String,
    failed: bool,
}

fn home_of(role: Role, region: Option<&str>) -> String {
    match (role, region) {
        (Role::Council, Some(code)) => format!("/regions/{code}"),
        _ => "/".to_owned(),
    }
}

/// The sign-in form; a viewer already signed in goes home.
pub async fn form(
    State(state): State<AppState>,
    lang: Lang,
    uri: Uri,
    mut parts: Parts,
) -> Result<Response, PageError> {
    if let Ok(viewer) = Viewer::from_request_parts(&mut parts, &state).await {
        return Ok(Redirect::to(&home_of(
            viewer.caller.role,
            viewer.caller.region.as_deref(),
        ))
        .into_response());
    }
    let next = local_path(&query_param(&uri, "next").unwrap_or_else(|| "/".into()));
    login_page(&state, lang, &uri, next, String::new(), false)
}

fn login_page(
    state: &AppState,
    lang: Lang,
    uri: &Uri,
    next: String,
    email: String,
    failed: bool,
) -> Result<Response, PageError> {
    let token = new_token().map_err(ApiError::internal)?;
    let frame = Frame::new(lang, uri, None, token.clone(), "login");
    let mut response = render(
        state,
        "login",
        &frame,
        &LoginPage {
            next,
            email,
            failed,
        },
    )?;
    if failed {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
    }
    let cookie = cookie_header(
        state,
        login_cookie_name(state.config()),
        &token,
        Some(LOGIN_FORM_SECS),
        "Strict",
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// The sign-in form. Its `Debug` leaves the password out.
#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf_token: String,
}

/// Checks the credentials and opens a session with a fresh id (never one the browser brought).
pub async fn submit(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    lang: Lang,
    uri: Uri,
    headers: axum::http::HeaderMap,
    Form(credentials): Form<Credentials>,
) -> Result<Response, PageError> {
    let expected = cookie(&headers, login_cookie_name(state.config()));
    let token_ok = expected.is_some_and(|e| same_secret(&e, &credentials.csrf_token));
    if !token_ok || !same_origin(&headers, state.config()) {
        tracing::warn!(ip = %client, "sign-in form without its token refused");
        return Err(PageError::Csrf);
    }
    let next = local_path(&credentials.next);
    let user =
        match check_credentials(&state, &credentials.email, credentials.password, client).await {
            Ok(user) => user,
            Err(ApiError::BadCredentials) => {
                return login_page(&state, lang, &uri, next, credentials.email, true);
            }
            Err(other) => return Err(other.into()),
        };
    let db = state.store().db();
    let now = Utc::now();
    let idle = chrono::Duration::from_std(state.config().session_idle_timeout)
        .map_err(ApiError::internal)?;
    let lifetime =
        chrono::Duration::from_std(state.config().session_lifetime).map_err(ApiError::internal)?;
    sessions::purge_expired(db, now, idle).await?;
    if let Some(old) = cookie(&headers, session_cookie_name(state.config())) {
        sessions::delete(db, &token_digest(&old)).await?;
    }
    let id = new_token().map_err(ApiError::internal)?;
    let csrf = new_token().map_err(ApiError::internal)?;
    sessions::create(db, user.id, &token_digest(&id), &csrf, now, now + lifetime).await?;
    tracing::info!(user_id = user.id, "signed in");
    let role = Role::parse(&user.role).unwrap_or(Role::Officer);
    let target = if next == "/" {
        home_of(role, user.region_code.as_deref())
    } else {
        next
    };
    let mut response = Redirect::to(&target).into_response();
    let session_cookie = cookie_header(
        &state,
        session_cookie_name(state.config()),
        &id,
        Some(lifetime.num_seconds()),
        "Lax",
    );
    let clear_login = cookie_header(
        &state,
        login_cookie_name(state.config()),
        "",
        Some(0),
        "Strict",
    );
    for value in [session_cookie, clear_login] {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&value).map_err(ApiError::internal)?,
        );
    }
    Ok(response)
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// A form with no field but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// Ends the session: the row is deleted, so the cookie is worthless even if kept.
pub async fn logout(
    State(state): State<AppState>,
    submitted: Submitted<Nothing>,
) -> Result<Response, PageError> {
    sessions::delete(state.store().db(), submitted.viewer.session_sha256()).await?;
    tracing::info!(user_id = submitted.viewer.caller.user_id, "signed out");
    let mut response = Redirect::to("/login").into_response();
    let clear = cookie_header(
        &state,
        session_cookie_name(state.config()),
        "",
        Some(0),
        "Lax",
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(ApiError::internal)?,
    );
    Ok(response)
}
