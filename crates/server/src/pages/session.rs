//! Browser sessions and CSRF protection.
//!
//! Sign-in draws a fresh random session id; the cookie carries it (HttpOnly, SameSite=Lax, Secure and
//! `__Host-` prefixed behind HTTPS) and the database keeps only its SHA-256, with an idle and an absolute
//! timeout. Each session has its own random synchronizer token, which every form sends back: the one form
//! extractor, [`Submitted`] (and [`SubmittedUpload`] for files), checks it, and `Origin` / `Sec-Fetch-Site`
//! when the browser sends them, before a handler runs. The sign-in form, which has no session yet, is
//! protected by a double-submit cookie.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use chrono::Utc;
use incubator_store::sessions;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::PageError;
use crate::access::{Caller, Role};
use crate::app::AppState;
use crate::auth::token_digest;
use crate::config::ServerConfig;
use crate::error::ApiError;

/// The session is "seen" at most this often, so that browsing does not write on every request.
const TOUCH_EVERY_SECS: i64 = 60;

pub fn session_cookie_name(config: &ServerConfig) -> &'static str {
    if config.behind_https() {
        "__Host-incubator_session"
    } else {
        "incubator_session"
    }
}

pub fn login_cookie_name(config: &ServerConfig) -> &'static str {
    if config.behind_https() {
        "__Host-incubator_login"
    } else {
        "incubator_login"
    }
}

/// A cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// A `Set-Cookie` value: always HttpOnly and on the whole site; Secure once users come over HTTPS.
pub fn cookie_header(
    state: &AppState,
    name: &str,
    value: &str,
    max_age_secs: Option<i64>,
    same_site: &str,
) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if state.config().behind_https() {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age_secs {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    cookie
}

/// Compares secrets without an early exit on the first differing byte.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether the browser says the request comes from our own pages. Browsers that send neither header
/// (old ones, or non-browser clients) are judged on the CSRF token alone.
pub fn same_origin(headers: &HeaderMap, config: &ServerConfig) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(authority) = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority.to_ascii_lowercase())
    else {
        // `Origin: null` (a sandboxed frame, a redirect across sites) is never our page.
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let public = config
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| {
            rest.split('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        });
    host.as_deref() == Some(authority.as_str()) || public.as_deref() == Some(authority.as_str())
}

/// The signed-in account behind a page request, with its session's form token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// `token_sha256` holds the session id's digest.
    pub caller: Caller,
    pub csrf_token: String,
}

impl Viewer {
    pub fn session_sha256(&self) -> &str {
        &self.caller.token_sha256
    }

    pub fn is(&self, role: Role) -> bool {
        self.caller.role == role
    }
}

/// A local path to come back to after sign-in; anything else (another site, `//host`) goes home.
pub fn local_path(next: &str) -> String {
    let safe = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if safe {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let next = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned()
        } else {
            "/".to_owned()
        };
        let sign_in = || PageError::SignIn {
            next: local_path(&next),
        };
        let id = cookie(&parts.headers, session_cookie_name(state.config())).ok_or_else(sign_in)?;
        let digest = token_digest(&id);
        let now = Utc::now();
        let idle = chrono::Duration::from_std(state.config().session_idle_timeout)
            .map_err(ApiError::internal)?;
        let (session, user) = sessions::authenticate(state.store().db(), &digest, now, idle)
            .await?
            .ok_or_else(sign_in)?;
        if (now - session.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
            sessions::touch(state.store().db(), session.id, now).await?;
        }
        let role = Role::parse(&user.role).ok_or_else(|| {
            ApiError::internal(format!(
                "account {} has an unknown role `{}`",
                user.id, user.role
            ))
        })?;
        Ok(Viewer {
            caller: Caller {
                user_id: user.id,
                email: user.email,
                name: user.name,
                role,
                region: user.region_code,
                token_sha256: digest,
            },
            csrf_token: session.csrf_token,
        })
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf_token: Option<String>,
}

/// A form posted by a signed-in viewer, its CSRF token and origin checked: the only way a page handler
/// receives a form, so no handler can forget the check.
#[derive(Debug)]
pub struct Submitted<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Submitted<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers, state.config()) {
            tracing::warn!(user_id = viewer.caller.user_id, "cross-site form refused");
            return Err(PageError::Csrf);
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|r| {
                if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge("the form is larger than the server accepts".into())
                } else {
                    ApiError::BadRequest(r.body_text())
                }
            })?;
        let token = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
            .ok()
            .and_then(|f| f.csrf_token);
        if !token.is_some_and(|t| same_secret(&t, &viewer.csrf_token)) {
            tracing::warn!(
                user_id = viewer.caller.user_id,
                "form without its CSRF token refused"
            );
            return Err(PageError::Csrf);
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed form: {e}")))?;
        Ok(Self { viewer, form })
    }
}

/// A file form (`multipart/form-data`) posted by a signed-in viewer, read whole (within the upload limit)
/// and its CSRF token and origin checked before anything is kept.
#[derive(Debug)]
pub struct SubmittedUpload {
    pub viewer: Viewer,
    pub fields: BTreeMap<String, String>,
    pub file: Option<FilePart>,
}

impl FromRequest<AppState> for SubmittedUpload {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers, state.config()) {
            tracing::warn!(user_id = viewer.caller.user_id, "cross-site upload refused");
            return Err(PageError::Csrf);
        }
        let mut multipart = Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(ApiError::from)?;
        let (fields, file) = read_form(state, &mut multipart).await?;
        let token = fields.get("csrf_token");
        if !token.is_some_and(|t| same_secret(t, &viewer.csrf_token)) {
            tracing::warn!(
                user_id = viewer.caller.user_id,
                "upload without its CSRF token refused"
            );
            return Err(PageError::Csrf);
        }
        Ok(Self {
            viewer,
            fields,
            file,
        })
    }
}

/// The file part of a form: the name the browser gave and the bytes.
pub type FilePart = (Option<String>, Vec<u8>);

/// Reads a `multipart/form-data` body whole: its text fields by name and its `file` part, refusing a file
/// over the upload limit as soon as it grows past it.
pub(crate) async fn read_form(
    state: &AppState,
    multipart: &mut Multipart,
) -> Result<(BTreeMap<String, String>, Option<FilePart>), ApiError> {
    let limit = state.config().max_upload_bytes;
    let mut fields = BTreeMap::new();
    let mut file = None;
    while let Some(mut field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let claimed_name = field.file_name().map(str::to_owned);
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await? {
                if bytes.len() + chunk.len() > limit {
                    state.metrics().upload_refused("too_large");
                    return Err(ApiError::too_large(limit));
                }
                bytes.extend_from_slice(&chunk);
            }
            // A file input left empty still sends a part, with no name and no bytes.
            if !bytes.is_empty() || claimed_name.as_deref().is_some_and(|n| !n.is_empty()) {
                file = Some((claimed_name, bytes));
            }
        } else {
            fields.insert(name, field.text().await?);
        }
    }
    Ok((fields, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn only_our_own_pages_may_post() {
        let config = ServerConfig::new("/tmp/x");
        let ok = |h: &[(&'static str, &str)]| same_origin(&headers(h), &config);
        assert!(ok(&[("host", "127.0.0.1:8080")]));
        assert!(ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "null")]));
        assert!(!ok(&[
            ("host", "a.example"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!ok(&[
            ("host", "a.example"),
            ("sec-fetch-site", "same-site")
        ]));
    }

    #[test]
    fn cookies_and_next_paths_are_read_safely() {
        let h = headers(&[("cookie", "a=1; incubator_session=abc; lang=en")]);
        assert_eq!(cookie(&h, "incubator_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "lang").as_deref(), Some("en"));
        assert_eq!(cookie(&h, "missing"), None);
        assert_eq!(local_path("/regions/53"), "/regions/53");
        assert_eq!(local_path("//evil.example/x"), "/");
        assert_eq!(local_path("https://evil.example"), "/");
        assert_eq!(local_path("/\\evil"), "/");
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
