//! The server-rendered pages: French first with an English switch, usable without JavaScript, every asset
//! served by the service itself. Sign-in opens a cookie session ([`session`]); every form carries the
//! session's CSRF token and is refused without it. Who sees what is decided by [`crate::access`], as for the
//! API: a council account only ever sees its own region.

pub mod admin;
pub mod assets;
pub mod cohorts;
pub mod dashboard;
pub mod exports;
pub mod links;
mod map;
pub mod programme;
pub mod region;
pub mod session;
pub mod signin;
pub mod templates;
mod timeline;
pub mod workflows;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use incubator_engine::model::Labels;
use serde::Serialize;

use crate::app::{AppState, time_limit};
use crate::error::{ApiError, cause_chain};
use session::Viewer;

pub use templates::{PageTemplateError, Pages};

/// Multipart framing around the file, as for the API's upload.
const MULTIPART_SLACK: usize = 64 * 1024;

/// The language of a page: `?lang=` when given (and then remembered in a cookie), else the cookie, else
/// French.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fr" => Some(Self::Fr),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::En => "en",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Fr => 0,
            Self::En => 1,
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::Fr => Self::En,
            Self::En => Self::Fr,
        }
    }

    /// The workflow's label in this language.
    pub fn pick(self, labels: &Labels) -> String {
        match self {
            Self::Fr => labels.fr.clone(),
            Self::En => labels.en.clone(),
        }
    }

    fn of_request(uri: &Uri, headers: &HeaderMap) -> (Self, bool) {
        if let Some(lang) = query_param(uri, "lang").and_then(|l| Self::parse(&l)) {
            return (lang, true);
        }
        let lang = session::cookie(headers, LANG_COOKIE)
            .and_then(|l| Self::parse(&l))
            .unwrap_or(Self::Fr);
        (lang, false)
    }
}

const LANG_COOKIE: &str = "lang";

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of_request(&parts.uri, &parts.headers).0)
    }
}

pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Outcomes a page reports after a form, by catalog key (`notice.<key>`), passed as `?notice=` / `?error=`
/// on the redirect: only these keys are ever shown, so the query string cannot inject text.
const NOTICES: &[&str] = &[
    "transition_fired",
    "document_uploaded",
    "document_reviewed",
    "fields_saved",
    "cohort_assigned",
    "cohort_created",
    "project_opened",
    "account_created",
    "account_disabled",
    "account_enabled",
    "password_reset",
    "mail_retried",
];

const ERRORS: &[&str] = &[
    "version_conflict",
    "conditions_unmet",
    "comment_required",
    "file_refused",
    "file_too_large",
    "invalid",
    "forbidden",
    "already_exists",
    "not_retryable",
];

/// The frame every page shares: language switch, stylesheet, who is signed in, the form token, notices.
#[derive(Debug, Serialize)]
pub struct Frame {
    pub lang: Lang,
    pub other_lang: Lang,
    /// This page in the other language.
    pub switch_url: String,
    pub stylesheet: String,
    pub icon: String,
    pub viewer: Option<ViewerView>,
    pub csrf_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// The navigation entry of this page, to mark it current.
    pub section: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ViewerView {
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub is_officer: bool,
    pub is_council: bool,
    pub is_admin: bool,
    /// A council account's own region page.
    pub home: String,
}

impl Frame {
    pub fn new(
        lang: Lang,
        uri: &Uri,
        viewer: Option<&Viewer>,
        csrf_token: String,
        section: &'static str,
    ) -> Self {
        let pick = |name: &str, known: &[&str]| {
            query_param(uri, name).filter(|k| known.contains(&k.as_str()))
        };
        Self {
            lang,
            other_lang: lang.other(),
            switch_url: format!("{}?lang={}", uri.path(), lang.other().code()),
            stylesheet: assets::stylesheet_url(),
            icon: assets::icon_url(),
            viewer: viewer.map(|v| {
                let role = v.caller.role;
                ViewerView {
                    name: v.caller.name.clone(),
                    email: v.caller.email.clone(),
                    role: role.as_str(),
                    is_officer: role == crate::access::Role::Officer,
                    is_council: role == crate::access::Role::Council,
                    is_admin: role == crate::access::Role::Admin,
                    home: v
                        .caller
                        .region_scope()
                        .map_or_else(|| "/".to_owned(), |r| format!("/regions/{r}")),
                }
            }),
            csrf_token,
            notice: pick("notice", NOTICES),
            error: pick("error", ERRORS),
            section,
        }
    }

    pub fn signed_in(lang: Lang, uri: &Uri, viewer: &Viewer, section: &'static str) -> Self {
        Self::new(lang, uri, Some(viewer), viewer.csrf_token.clone(), section)
    }
}

/// What a page template receives: the frame's members at the top level, the page's own under `page`.
#[derive(Serialize)]
struct PageData<'a, T: Serialize> {
    #[serde(flatten)]
    frame: &'a Frame,
    page: &'a T,
}

/// Renders a page as the HTML answer.
pub fn render(
    state: &AppState,
    name: &str,
    frame: &Frame,
    page: &impl Serialize,
) -> Result<Response, PageError> {
    let html = state
        .pages()
        .render(frame.lang, name, &PageData { frame, page })
        .map_err(|e| PageError::Api(ApiError::internal(e)))?;
    Ok(html_response(StatusCode::OK, html))
}

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response()
}

/// After a form: back to a page, with an outcome to show.
pub fn see_other(path: &str, key: &str, ok: bool) -> Response {
    let param = if ok { "notice" } else { "error" };
    let separator = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{separator}{param}={key}")).into_response()
}

/// The catalog key that tells a user why a form was refused.
pub fn error_key(error: &ApiError) -> Option<&'static str> {
    use incubator_engine::Refusal;
    Some(match error {
        ApiError::VersionConflict { .. } => "version_conflict",
        // As the API's 403: the role may not fire it, whatever the project's state.
        ApiError::Refused(Refusal::RoleNotAllowed { .. }) | ApiError::Forbidden(_) => "forbidden",
        ApiError::Refused(_) => "conditions_unmet",
        ApiError::PayloadTooLarge(_) => "file_too_large",
        ApiError::UnsupportedMediaType { .. } => "file_refused",
        ApiError::Invalid { .. } | ApiError::BadRequest(_) | ApiError::MalformedBody(_) => {
            "invalid"
        }
        ApiError::AlreadyExists(_) => "already_exists",
        _ => return None,
    })
}

/// Why a page could not be shown. Rendered as an HTML page by [`page_layer`], which knows the language.
#[derive(Debug)]
pub enum PageError {
    Api(ApiError),
    /// Not signed in (or the session ended): to the sign-in page, then back.
    SignIn {
        next: String,
    },
    /// A form without its session's token, or posted from another site: refused, nothing changed.
    Csrf,
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<incubator_store::StoreError> for PageError {
    fn from(error: incubator_store::StoreError) -> Self {
        Self::Api(error.into())
    }
}

/// Marks a response for [`page_layer`] to fill with the error page.
#[derive(Debug, Clone, Copy)]
struct PageFailure {
    kind: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, kind) = match self {
            Self::SignIn { next } => {
                let target = if next == "/" {
                    "/login".to_owned()
                } else {
                    format!(
                        "/login?{}",
                        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
                    )
                };
                return Redirect::to(&target).into_response();
            }
            Self::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            Self::Api(error) => {
                let status = error.status();
                if status.is_server_error() {
                    tracing::error!(error = %cause_chain(&error), status = status.as_u16(), "page failed");
                }
                let kind = match status {
                    StatusCode::NOT_FOUND => "not_found",
                    StatusCode::FORBIDDEN => "forbidden",
                    StatusCode::UNAUTHORIZED => "forbidden",
                    StatusCode::CONFLICT => "conflict",
                    StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                    StatusCode::REQUEST_TIMEOUT => "timeout",
                    StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                    s if s.is_client_error() => "bad_request",
                    _ => "internal",
                };
                (status, kind)
            }
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(PageFailure { kind });
        response
    }
}

#[derive(Serialize)]
struct ErrorPage {
    kind: &'static str,
    status: u16,
}

/// Around every page: renders [`PageError`]s in the request's language, remembers `?lang=` in a cookie, and
/// sets the pages' content security policy (own styles and images only; no script is needed) and referrer
/// policy.
async fn page_layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (lang, chosen) = Lang::of_request(request.uri(), request.headers());
    let uri = request.uri().clone();
    let mut response = next.run(request).await;
    if let Some(failure) = response.extensions().get::<PageFailure>().copied() {
        let status = response.status();
        let frame = Frame::new(lang, &uri, None, String::new(), "");
        let page = ErrorPage {
            kind: failure.kind,
            status: status.as_u16(),
        };
        let html = state
            .pages()
            .render(
                lang,
                "error",
                &PageData {
                    frame: &frame,
                    page: &page,
                },
            )
            .unwrap_or_else(|e| {
                tracing::error!(error = %cause_chain(&e), "the error page failed");
                String::from("error")
            });
        response = html_response(status, html);
    }
    let headers = response.headers_mut();
    // A handler's own policy (the document download's sandbox) is kept.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ));
    // `no-referrer` (the API's) makes browsers send `Origin: null` with our own forms, which the CSRF check
    // then refuses; `same-origin` still sends nothing to other sites.
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    if chosen {
        let cookie = session::cookie_header(
            &state,
            LANG_COOKIE,
            lang.code(),
            Some(365 * 24 * 3600),
            "Lax",
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Declares a set of page routes once: the router and the list the access tests walk are made from the
/// same lines, so a new page cannot escape those tests.
macro_rules! page_routes {
    ($list:ident, $router:ident: $($method:ident $path:literal => $handler:expr,)*) => {
        const $list: &[(&str, &str)] = &[$((page_routes!(@upper $method), $path),)*];

        fn $router() -> Router<AppState> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
}

page_routes! {
    FORM_ROUTES, form_routes:
    get "/" => dashboard::show,
    get "/login" => signin::form,
    post "/login" => signin::submit,
    post "/logout" => signin::logout,
    get "/regions/{code}" => region::show,
    post "/regions/{code}/project" => region::open_project,
    post "/regions/{code}/transitions" => region::fire,
    post "/regions/{code}/fields" => region::save_fields,
    post "/regions/{code}/cohort" => region::assign_cohort,
    post "/documents/{id}/review" => region::review,
    get "/documents/{id}/content" => region::download,
    get "/cohorts" => cohorts::list,
    post "/cohorts" => cohorts::create,
    get "/admin/accounts" => admin::accounts,
    post "/admin/accounts" => admin::create_account,
    post "/admin/accounts/{id}/disable" => admin::disable,
    post "/admin/accounts/{id}/enable" => admin::enable,
    post "/admin/accounts/{id}/password" => admin::reset_password,
    get "/admin/outbox" => admin::outbox,
    post "/admin/outbox/{id}/retry" => admin::retry,
    get "/admin/workflows" => workflows::show,
    post "/admin/workflows/{id}/migrations" => workflows::submit,
    get "/exports/regions.csv" => exports::regions_csv,
    get "/feeds/{user}/{key}/regions/{file}" => exports::region_calendar,
    get "/assets/{file}" => assets::serve,
}

page_routes! {
    UPLOAD_ROUTES, upload_routes:
    post "/regions/{code}/documents" => region::upload,
    get "/links/{token}" => links::show,
    post "/links/{token}" => links::submit,
}

/// Every page route as `METHOD /path`, in the router's own path syntax.
pub fn routes() -> impl Iterator<Item = String> {
    FORM_ROUTES
        .iter()
        .chain(UPLOAD_ROUTES)
        .map(|(method, path)| format!("{method} {path}"))
}

/// The pages' routes, with the same body and time limits as the API's.
pub fn router(state: &AppState) -> Router<AppState> {
    let config = state.config();
    let forms = form_routes()
        .layer(DefaultBodyLimit::max(config.max_json_bytes))
        .layer(middleware::from_fn_with_state(
            config.request_timeout,
            time_limit,
        ));
    let uploads = upload_routes()
        .layer(DefaultBodyLimit::max(
            config.max_upload_bytes.saturating_add(MULTIPART_SLACK),
        ))
        .layer(middleware::from_fn_with_state(
            config.upload_timeout,
            time_limit,
        ));
    forms
        .merge(uploads)
        .layer(middleware::from_fn_with_state(state.clone(), page_layer))
}
