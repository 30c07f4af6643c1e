//! The one mapping from everything that can go wrong to HTTP: each variant a deliberate status and an
//! RFC 9457 `application/problem+json` body with a stable `type`. Server errors are logged with their cause
//! chain and never shown: no SQL, no paths, no stack traces reach a client.

use std::error::Error as StdError;

use axum::extract::multipart::MultipartError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use incubator_engine::{Refusal, Unmet};
use incubator_store::StoreError;
use incubator_store::scans::ScanStatus;
use sea_orm::{DbErr, SqlErr};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_PREFIX: &str = "urn:csirt-incubator:problem:";

/// An RFC 9457 problem. `type` is stable and names the kind of problem; `detail` explains this occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    /// Stable URI of the kind of problem, e.g. `urn:csirt-incubator:problem:guard-unmet`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Every unmet condition of a refused transition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<UnmetCondition>,
    /// Every invalid field of a refused change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// On a version conflict: the project's current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// On a refused upload: the document kinds accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_kinds: Vec<String>,
    /// On a refused transition for lack of role: the roles allowed to fire it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_roles: Vec<String>,
}

/// One unmet guard condition, with its stable code and a French and English sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UnmetCondition {
    /// `requirement_not_accepted`, `field_missing`, `field_compare`, `cohort_missing`, `comment_missing`, …
    pub code: String,
    /// The requirement or field the condition is about, when there is one.
    pub subject: Option<String>,
    pub fr: String,
    pub en: String,
}

impl From<Unmet> for UnmetCondition {
    fn from(u: Unmet) -> Self {
        Self {
            code: u.code,
            subject: u.subject,
            fr: u.fr,
            en: u.en,
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub detail: String,
}

type BoxError = Box<dyn StdError + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required: send `Authorization: Bearer <token>`")]
    Unauthenticated,
    #[error("wrong email or password")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    /// The request is well-formed but asks for something invalid; nothing was changed.
    #[error("{detail}")]
    Invalid {
        detail: String,
        errors: Vec<FieldProblem>,
    },
    #[error("{0}")]
    Refused(Refusal),
    #[error("the project is at version {current}, not {expected}: reload it and try again")]
    VersionConflict { expected: i64, current: i64 },
    #[error("{0}")]
    AlreadyExists(String),
    /// A document whose bytes the antivirus withholds: not scanned yet, or infected.
    #[error("{detail}")]
    Withheld { slug: &'static str, detail: String },
    /// A link that was used, expired or withdrawn: it will never work again.
    #[error("{detail}")]
    Gone { slug: &'static str, detail: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{detail}")]
    UnsupportedMediaType {
        detail: String,
        accepted: Vec<String>,
    },
    #[error("the request took longer than the server allows")]
    Timeout,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    /// The same answer for a project that does not exist and one the caller may not see: existence is not
    /// disclosed across regions.
    pub fn project_not_found(id: i64) -> Self {
        Self::NotFound(format!("project {id} not found"))
    }

    pub fn document_not_found(id: i64) -> Self {
        Self::NotFound(format!("document {id} not found"))
    }

    pub fn too_large(limit: usize) -> Self {
        Self::PayloadTooLarge(format!(
            "the file is larger than the {limit} bytes accepted"
        ))
    }

    pub fn database_unreachable() -> Self {
        Self::Unavailable("the database cannot be reached: try again shortly".into())
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::Invalid {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn internal(error: impl Into<BoxError>) -> Self {
        Self::Internal(error.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MalformedBody(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Refused(Refusal::RoleNotAllowed { .. }) => StatusCode::FORBIDDEN,
            Self::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::VersionConflict { .. } | Self::AlreadyExists(_) | Self::Withheld { .. } => {
                StatusCode::CONFLICT
            }
            Self::Gone { .. } => StatusCode::GONE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable slug of the problem type and its title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::Unauthenticated => ("unauthenticated", "Authentication required"),
            Self::BadCredentials => ("bad-credentials", "Wrong email or password"),
            Self::Forbidden(_) => ("forbidden", "Not allowed for your role"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MalformedBody(_) => ("malformed-body", "Malformed request body"),
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::Invalid { .. } => ("invalid-request", "Invalid request"),
            Self::Refused(Refusal::UnknownTransition { .. }) => {
                ("unknown-transition", "Unknown transition")
            }
            Self::Refused(Refusal::WrongState { .. }) => (
                "transition-not-possible",
                "Transition not possible from this state",
            ),
            Self::Refused(Refusal::RoleNotAllowed { .. }) => {
                ("role-not-allowed", "Role not allowed")
            }
            Self::Refused(Refusal::Unmet { .. }) => ("guard-unmet", "Conditions not met"),
            Self::VersionConflict { .. } => ("version-conflict", "Stale version"),
            Self::AlreadyExists(_) => ("already-exists", "Already exists"),
            Self::Withheld { slug, .. } => (slug, "Document withheld by the antivirus"),
            Self::Gone { slug, .. } => (slug, "Link no longer usable"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType { .. } => {
                ("unsupported-media-type", "Unsupported media type")
            }
            Self::Timeout => ("timeout", "Request timeout"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::Internal(_) => ("internal", "Internal server error"),
        }
    }

    pub fn problem(&self) -> Problem {
        let (slug, title) = self.kind();
        let status = self.status();
        let detail = match self {
            Self::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let mut problem = Problem {
            kind: format!("{TYPE_PREFIX}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            unmet: Vec::new(),
            errors: Vec::new(),
            current_version: None,
            accepted_kinds: Vec::new(),
            allowed_roles: Vec::new(),
        };
        match self {
            Self::Invalid { errors, .. } => problem.errors = errors.clone(),
            Self::Refused(Refusal::Unmet { unmet, .. }) => {
                problem.unmet = unmet.iter().cloned().map(UnmetCondition::from).collect();
            }
            Self::Refused(Refusal::RoleNotAllowed { allowed, .. }) => {
                problem.allowed_roles = allowed.clone()
            }
            Self::VersionConflict { current, .. } => problem.current_version = Some(*current),
            Self::UnsupportedMediaType { accepted, .. } => {
                problem.accepted_kinds = accepted.clone()
            }
            _ => {}
        }
        problem
    }
}

/// The one mapping of storage outcomes to API errors.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ProjectNotFound(id) => Self::project_not_found(id),
            StoreError::DocumentNotFound(id) => Self::document_not_found(id),
            e @ StoreError::NotClean { status, .. } => Self::Withheld {
                slug: match status {
                    ScanStatus::Infected => "document-infected",
                    _ => "document-scan-pending",
                },
                detail: e.to_string(),
            },
            StoreError::CohortNotFound(id) => Self::invalid(format!("cohort {id} does not exist")),
            StoreError::UnknownRegion(code) => Self::Invalid {
                detail: format!("region `{code}` is not one of the 18 regions"),
                errors: vec![FieldProblem {
                    field: "region_code".into(),
                    detail: "unknown region".into(),
                }],
            },
            StoreError::Conflict {
                expected, current, ..
            } => Self::VersionConflict { expected, current },
            e @ (StoreError::ProjectExists { .. } | StoreError::ChildExists { .. }) => {
                Self::AlreadyExists(e.to_string())
            }
            e @ (StoreError::LinkInvalid | StoreError::LinkNotFound(_)) => {
                Self::NotFound(e.to_string())
            }
            e @ StoreError::LinkUsed { .. } => Self::Gone {
                slug: "link-used",
                detail: e.to_string(),
            },
            e @ StoreError::LinkExpired { .. } => Self::Gone {
                slug: "link-expired",
                detail: e.to_string(),
            },
            e @ StoreError::LinkRevoked { .. } => Self::Gone {
                slug: "link-revoked",
                detail: e.to_string(),
            },
            e @ (StoreError::WorkflowNotDeployed { .. } | StoreError::UnknownWorkflow(_)) => {
                Self::invalid(e.to_string())
            }
            e @ StoreError::VersionImmutable { .. } => Self::AlreadyExists(e.to_string()),
            StoreError::Refused(refusal) => Self::Refused(refusal),
            e @ StoreError::MigrationRefused(_) => Self::invalid(e.to_string()),
            StoreError::Invalid(message) => Self::invalid(message),
            StoreError::Db(db) => Self::from(db),
            StoreError::Unavailable(_) => Self::database_unreachable(),
            e @ (StoreError::NotCommitted(_)
            | StoreError::CorruptWorkflow { .. }
            | StoreError::Corrupt(_)) => Self::internal(e),
        }
    }
}

/// Unique-constraint violations are the client's doing (a name taken twice): 409, without the SQL. A
/// database out of reach is a 503: nothing was written, and the same request may succeed later.
impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> Self {
        if incubator_store::db::is_unreachable(&error) {
            tracing::warn!(error = %error, "database unreachable");
            return Self::database_unreachable();
        }
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::AlreadyExists("a record with the same unique value exists already".into())
            }
            _ => Self::internal(error),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("the body is larger than the server accepts".into())
            }
            JsonRejection::JsonSyntaxError(e) => {
                Self::MalformedBody(format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => Self::invalid(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType {
                detail: "send the body as `Content-Type: application/json`".into(),
                accepted: vec!["application/json".into()],
            },
            other => Self::MalformedBody(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(error: MultipartError) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge("the body is larger than the server accepts".into())
        } else {
            Self::MalformedBody(format!("malformed multipart body: {}", error.body_text()))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %cause_chain(&self), status = status.as_u16(), "request failed");
        }
        let mut response = (status, problem_body(&self.problem())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(self, Self::Unauthenticated) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn problem_body(problem: &Problem) -> String {
    serde_json::to_string(problem)
        .unwrap_or_else(|_| r#"{"type":"about:blank","title":"error"}"#.to_owned())
}

/// `error: cause: cause…`, for the log only.
pub fn cause_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
