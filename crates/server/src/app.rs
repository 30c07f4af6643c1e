//! Start-up as a value: [`Application::build`] opens the store, deploys the workflows, binds the socket and
//! assembles the router; `main` and the tests then call [`Application::run`] on the very same thing.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use incubator_antivirus::Scanner;
use incubator_store::{Store, StoreError};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{LoginThrottle, hash_password};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pages::{self, Pages};
use crate::{openapi, routes};

/// Multipart framing around the file (boundaries, part headers, the `requirement` field) is allowed on top
/// of the file limit, so that a file of exactly the limit still fits.
const MULTIPART_SLACK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error("cannot read the workflows folder {}", path.display())]
    WorkflowsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot deploy the workflow {}", path.display())]
    Workflow { path: PathBuf, source: StoreError },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot prepare the password check: {0}")]
    Auth(String),
    #[error("cannot load the page templates")]
    Pages(#[from] crate::pages::PageTemplateError),
    #[error("antivirus: {0}")]
    Antivirus(String),
}

/// What every request shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    config: ServerConfig,
    throttle: LoginThrottle,
    metrics: Metrics,
    /// Checked against when the email is unknown, so that both answers take as long.
    dummy_hash: String,
    openapi_json: String,
    pages: Pages,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The programme's "now": what deadlines, transitions and forecasts are dated by (see
    /// [`ServerConfig::programme_clock_offset`]).
    pub fn programme_now(&self) -> chrono::DateTime<Utc> {
        Utc::now() + self.0.config.programme_clock_offset
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.0.throttle
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn dummy_hash(&self) -> &str {
        &self.0.dummy_hash
    }

    pub fn openapi_json(&self) -> &str {
        &self.0.openapi_json
    }

    pub fn pages(&self) -> &Pages {
        &self.0.pages
    }
}

/// The service, built and bound, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    port: u16,
    router: Router,
    state: AppState,
    scanner: Option<Scanner>,
}

impl Application {
    pub async fn build(config: ServerConfig) -> Result<Self, StartupError> {
        let store = Store::open(&config.db, &config.data_dir).await?;
        // Files left by uploads a crash cut before their row: not fatal, the next start tries again.
        match store.blobs().sweep(store.db(), config.upload_timeout).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed evidence files no document names"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sweep the evidence files no document names")
            }
        }
        let scanner = config
            .antivirus
            .clone()
            .map(|mut antivirus| {
                antivirus.programme_clock_offset = config.programme_clock_offset;
                Scanner::new(store.clone(), antivirus)
            })
            .transpose()
            .map_err(StartupError::Antivirus)?;
        if let Some(dir) = &config.workflows_dir {
            deploy_workflows(&store, dir).await?;
        }
        let dummy_hash =
            tokio::task::spawn_blocking(|| hash_password("no account has this password"))
                .await
                .map_err(|e| StartupError::Auth(e.to_string()))?
                .map_err(|e| StartupError::Auth(e.to_string()))?;
        let pages = Pages::load()?;
        let openapi_json = openapi::document(&config)
            .to_pretty_json()
            .map_err(|e| StartupError::Auth(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.bind,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: config.bind,
                source,
            })?
            .port();
        let state = AppState(Arc::new(Inner {
            store,
            throttle: LoginThrottle::new(config.login_throttle),
            metrics: Metrics::default(),
            dummy_hash,
            openapi_json,
            pages,
            config,
        }));
        let router = router(state.clone());
        tracing::info!(port, config = ?state.config(), "listening");
        Ok(Self {
            listener,
            port,
            router,
            state,
            scanner,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and lets requests in flight finish. The
    /// antivirus scanner, when configured, runs as long: what it has not scanned stays pending for the next
    /// start (or another replica).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_scanner, scanner_shutdown) = tokio::sync::watch::channel(false);
        let scanner = self
            .scanner
            .map(|scanner| tokio::spawn(scanner.run(scanner_shutdown)));
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_scanner.send(true);
        if let Some(task) = scanner
            && let Err(error) = task.await
        {
            tracing::error!(%error, "antivirus scanner ended abnormally");
        }
        served
    }
}

/// The workflow definitions of a folder: its `*.yaml` / `*.yml` files, in name order.
pub fn workflow_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Deploys every definition of the folder ([`workflow_files`]); an unchanged definition is a no-op.
async fn deploy_workflows(store: &Store, dir: &Path) -> Result<(), StartupError> {
    let files = workflow_files(dir).map_err(|source| StartupError::WorkflowsDir {
        path: dir.into(),
        source,
    })?;
    for path in files {
        let source =
            std::fs::read_to_string(&path).map_err(|source| StartupError::WorkflowsDir {
                path: path.clone(),
                source,
            })?;
        let deployed = store
            .deploy_workflow(&source, &path.display().to_string(), Utc::now())
            .await
            .map_err(|source| StartupError::Workflow {
                path: path.clone(),
                source,
            })?;
        tracing::info!(workflow = %deployed.id, version = deployed.version, created = deployed.created, "workflow deployed");
    }
    Ok(())
}

/// The full router: the API (from [`routes::api`], which also yields the OpenAPI document), the pages and
/// the layers.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    let (api, _) = api_router(&config).split_for_parts();
    let headers = SecurityHeaders {
        hsts: config.behind_https(),
    };
    let mut router = api
        .merge(pages::router(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(middleware::from_fn_with_state(headers, security_headers))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        );
    if !config.cors_allowed_origins.is_empty() {
        let origins: Vec<HeaderValue> = config
            .cors_allowed_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    router.with_state(state)
}

/// The routes with their per-group limits, as one OpenAPI-aware router.
pub fn api_router(config: &ServerConfig) -> OpenApiRouter<AppState> {
    let json = routes::json_routes()
        .layer(DefaultBodyLimit::max(config.max_json_bytes))
        .layer(middleware::from_fn_with_state(
            config.request_timeout,
            time_limit,
        ));
    let uploads = routes::upload_routes()
        .layer(DefaultBodyLimit::max(
            config.max_upload_bytes.saturating_add(MULTIPART_SLACK),
        ))
        .layer(middleware::from_fn_with_state(
            config.upload_timeout,
            time_limit,
        ));
    OpenApiRouter::with_openapi(openapi::base())
        .merge(json)
        .merge(uploads)
}

pub(crate) async fn time_limit(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

#[derive(Debug, Clone, Copy)]
struct SecurityHeaders {
    hsts: bool,
}

/// Set on every response unless the handler chose otherwise (the evidence download sets its own CSP).
async fn security_headers(
    State(config): State<SecurityHeaders>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    // Answers carry a programme's confidential record: no shared cache may keep them.
    set(header::CACHE_CONTROL, "no-store");
    if config.hsts {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::internal("a request handler panicked").into_response()
}
