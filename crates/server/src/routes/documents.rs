//! Evidence: uploads recognised by their content, downloads served as attachments, officers' reviews.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use incubator_engine::CorrectionKind;
use incubator_store::documents::{
    self, CorrectionRequest, RecordDocument, ReviewDecision, ReviewDocument,
};
use incubator_store::entities::projects;
use incubator_store::entities::{document_reviews, documents as document_rows};
use incubator_store::projects::status_name;
use incubator_store::scans::{ScanStatus, require_clean};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiMultipart, ApiPath};
use crate::access::{Caller, Role, visible_document, visible_project};
use crate::app::AppState;
use crate::error::{ApiError, FieldProblem};
use crate::openapi::{
    BadRequestProblem, ConflictProblem, ForbiddenProblem, InternalProblem, NotFoundProblem,
    TimeoutProblem, TooLargeProblem, UnauthorizedProblem, UnavailableProblem, UnprocessableProblem,
    UnsupportedProblem,
};
use crate::sniff::{display_filename, sniff};

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: i64,
    pub project_id: i64,
    pub requirement: String,
    /// The name the file was uploaded with, for display only.
    pub filename: String,
    /// The media type recognised from the content.
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    /// `pending` until reviewed, then `accepted`, `rejected` or `correction_requested`.
    pub status: String,
    /// The reviewer's comment (the reason of a rejection, what a correction asks).
    pub review_comment: Option<String>,
    /// The antivirus's word: `pending` (waiting for its scan: not served, not reviewable), `clean`
    /// (served; also every document when no antivirus is configured) or `infected` (quarantined: never
    /// served, never accepted).
    #[schema(example = "clean")]
    pub scan_status: String,
    /// On an infected document: the signature it matched.
    pub scan_signature: Option<String>,
    /// While pending: why the last scan gave no verdict (the antivirus unreachable, …) and how many tries
    /// were made. Shown to officers and admins only: it names the service's own infrastructure.
    pub scan_error: Option<String>,
    pub scan_attempts: Option<i32>,
    /// The last day the evidence is valid, if it expires.
    pub expires_on: Option<NaiveDate>,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
}

async fn document_view(
    state: &AppState,
    caller: &Caller,
    document: document_rows::Model,
) -> Result<DocumentView, ApiError> {
    let review = documents::latest_review(state.store().db(), document.id).await?;
    reviewed_view(caller, document, review)
}

/// A document as `caller` may see it, given its latest review.
fn reviewed_view(
    caller: &Caller,
    document: document_rows::Model,
    review: Option<document_reviews::Model>,
) -> Result<DocumentView, ApiError> {
    let operator = matches!(caller.role, Role::Officer | Role::Admin);
    let pending = ScanStatus::of(&document)? == ScanStatus::Pending;
    let (status, review_comment) = match review {
        Some(r) => (r.decision, r.comment),
        None => ("pending".to_owned(), None),
    };
    Ok(DocumentView {
        id: document.id,
        project_id: document.project_id,
        requirement: document.requirement,
        filename: document.filename,
        media_type: document.media_type,
        size: document.size,
        sha256: document.sha256,
        status,
        review_comment,
        scan_status: document.scan_status,
        scan_signature: document.scan_signature,
        scan_error: document.scan_error.filter(|_| operator && pending),
        scan_attempts: (operator && pending).then_some(document.scan_attempts),
        expires_on: document.expires_on,
        uploaded_by: document.uploaded_by,
        uploaded_at: document.uploaded_at,
    })
}

/// The multipart form of an upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Documents the form; the handler reads the parts as they stream in.
pub struct UploadForm {
    /// The requirement the document is evidence for, e.g. `council_backed`.
    requirement: String,
    /// PDF, ODT, ODS, DOCX, XLSX, PNG or JPEG, recognised by its content; at most the configured size.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The last day the evidence is valid (`YYYY-MM-DD`), if it expires: past it the requirement reads
    /// `expired` and no longer satisfies a transition.
    expires_on: Option<NaiveDate>,
}

/// Uploads evidence for a requirement (officer or council).
///
/// The kind is recognised from the bytes, never from the name or the claimed type: anything but PDF, ODT,
/// ODS, DOCX, XLSX, PNG and JPEG, or a kind the requirement does not accept, is 415; a file over the limit is
/// 413. The same bytes uploaded twice are stored once. With an antivirus configured the document is
/// `scan_status: pending` until scanned, and neither served nor reviewable before it is found `clean`;
/// bytes found infected before are `infected` on arrival.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/documents",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The document, waiting for review", body = DocumentView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, TooLargeProblem,
        UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn upload_document(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiMultipart(mut multipart): ApiMultipart,
) -> Result<(StatusCode, Json<DocumentView>), ApiError> {
    let project = visible_project(&state, &caller, id).await?;
    caller.require(&[Role::Officer, Role::Council], "uploading evidence")?;
    let limit = state.config().max_upload_bytes;
    let mut requirement: Option<String> = None;
    let mut expires_on: Option<NaiveDate> = None;
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    while let Some(mut field) = multipart.next_field().await? {
        match field.name() {
            Some("requirement") => requirement = Some(field.text().await?.trim().to_owned()),
            Some("expires_on") => {
                let text = field.text().await?;
                expires_on = (!text.trim().is_empty())
                    .then(|| parse_day("expires_on", &text))
                    .transpose()?;
            }
            Some("file") => {
                let claimed_name = field.file_name().map(str::to_owned);
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await? {
                    if bytes.len() + chunk.len() > limit {
                        state.metrics().upload_refused("too_large");
                        return Err(ApiError::too_large(limit));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((claimed_name, bytes));
            }
            // Other parts are ignored: their bytes count against the body limit all the same.
            _ => {}
        }
    }
    let missing = |field: &str| ApiError::Invalid {
        detail: format!("the form has no `{field}` part"),
        errors: vec![FieldProblem {
            field: field.into(),
            detail: "missing".into(),
        }],
    };
    let requirement = requirement.ok_or_else(|| missing("requirement"))?;
    let (claimed_name, bytes) = file.ok_or_else(|| missing("file"))?;
    let evidence = Evidence {
        requirement,
        claimed_name,
        bytes,
        expires_on,
    };
    let document = store_evidence(&state, &caller, &project, evidence).await?;
    Ok((
        StatusCode::CREATED,
        Json(document_view(&state, &caller, document).await?),
    ))
}

/// One piece of evidence as a form sent it.
#[derive(Debug)]
pub(crate) struct Evidence {
    pub requirement: String,
    pub claimed_name: Option<String>,
    pub bytes: Vec<u8>,
    pub expires_on: Option<NaiveDate>,
}

/// A day written `YYYY-MM-DD` in the form part `field`, or a 422 naming it.
pub(crate) fn parse_day(field: &str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| ApiError::Invalid {
        detail: format!(
            "`{field}` must be a day written YYYY-MM-DD, not `{}`",
            text.trim()
        ),
        errors: vec![FieldProblem {
            field: field.into(),
            detail: "not a date (YYYY-MM-DD)".into(),
        }],
    })
}

/// Checks and keeps one piece of evidence (the API's upload and the pages' share it): the kind is recognised
/// from the bytes and must be one the requirement accepts; the bytes are durable before the row names them.
pub(crate) async fn store_evidence(
    state: &AppState,
    caller: &Caller,
    project: &projects::Model,
    evidence: Evidence,
) -> Result<document_rows::Model, ApiError> {
    let upload = checked_evidence(state, project, evidence, caller.actor_id()).await?;
    let document = state.store().write(upload).await?;
    settle_upload(state, document).await
}

/// After an upload is recorded: bytes found infected before leave the blob store again at once.
pub(crate) async fn settle_upload(
    state: &AppState,
    document: document_rows::Model,
) -> Result<document_rows::Model, ApiError> {
    if ScanStatus::of(&document)? == ScanStatus::Infected {
        state
            .store()
            .blobs()
            .quarantine(&document.sha256)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(document)
}

/// The checks of [`store_evidence`] and the durable bytes, as the unit that records the document.
pub(crate) async fn checked_evidence(
    state: &AppState,
    project: &projects::Model,
    evidence: Evidence,
    actor: String,
) -> Result<RecordDocument, ApiError> {
    let Evidence {
        requirement,
        claimed_name,
        bytes,
        expires_on,
    } = evidence;
    let id = project.id;
    let workflow = state
        .store()
        .workflows()
        .get(
            state.store().db(),
            &project.workflow_id,
            project.workflow_version,
        )
        .await?;
    let accepted = workflow
        .requirement(&requirement)
        .ok_or_else(|| ApiError::Invalid {
            detail: format!(
                "`{requirement}` is not a requirement of workflow `{}`",
                project.workflow_id
            ),
            errors: vec![FieldProblem {
                field: "requirement".into(),
                detail: "unknown requirement".into(),
            }],
        })?
        .documents
        .clone();
    // Office documents are expanded to check their real size: CPU work, off the async workers.
    let (bytes, sniffed) = tokio::task::spawn_blocking(move || {
        let sniffed = sniff(&bytes);
        (bytes, sniffed)
    })
    .await
    .map_err(ApiError::internal)?;
    let kind = match sniffed {
        Ok(kind) => kind,
        Err(unaccepted) => {
            state.metrics().upload_refused(unaccepted.label());
            return Err(ApiError::UnsupportedMediaType {
                detail: format!(
                    "{unaccepted}; `{requirement}` accepts: {}",
                    accepted.join(", ")
                ),
                accepted,
            });
        }
    };
    if !accepted.iter().any(|k| k == kind.name()) {
        state.metrics().upload_refused("kind_not_accepted");
        return Err(ApiError::UnsupportedMediaType {
            detail: format!(
                "a {} file is not accepted for `{requirement}`: send {}",
                kind.name(),
                accepted.join(", ")
            ),
            accepted,
        });
    }
    // Checked before the bytes are kept: a refused upload leaves nothing behind.
    if let Some(expires_on) = expires_on {
        workflow
            .check_expiry(expires_on, state.programme_now())
            .map_err(|detail| ApiError::Invalid {
                detail,
                errors: vec![FieldProblem {
                    field: "expires_on".into(),
                    detail: "already past".into(),
                }],
            })?;
    }
    let filename = display_filename(claimed_name.as_deref(), kind);
    let size = i64::try_from(bytes.len()).map_err(ApiError::internal)?;
    // The bytes are durable before any row names them; a failure here is the server's, never the client's.
    let sha256 = state
        .store()
        .blobs()
        .put(bytes)
        .await
        .map_err(ApiError::internal)?;
    Ok(RecordDocument {
        registry: state.store().workflows().clone(),
        project_id: id,
        requirement,
        filename,
        media_type: kind.media_type().to_owned(),
        size,
        sha256,
        expires_on,
        awaits_scan: state.config().antivirus.is_some(),
        actor,
        now: state.programme_now(),
    })
}

/// The project's documents, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/documents",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Project id")),
    responses(
        (status = 200, description = "The documents", body = Vec<DocumentView>),
        BadRequestProblem, UnauthorizedProblem, NotFoundProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn list_documents(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    visible_project(&state, &caller, id).await?;
    let views = documents::list_reviewed(state.store().db(), id)
        .await?
        .into_iter()
        .map(|(document, review)| reviewed_view(&caller, document, review))
        .collect::<Result<_, _>>()?;
    Ok(Json(views))
}

/// A binary document.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// The document's bytes, as an attachment that no browser renders in place.
///
/// Only once the antivirus found them clean: a document waiting for its scan is 409
/// `document-scan-pending` (try again shortly), an infected one 409 `document-infected` (never served).
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}/content",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The bytes, with the media type recognised at upload",
         content(
             (Binary = "application/pdf"),
             (Binary = "application/vnd.oasis.opendocument.text"),
             (Binary = "application/vnd.oasis.opendocument.spreadsheet"),
             (Binary = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
             (Binary = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
             (Binary = "image/png"),
             (Binary = "image/jpeg"),
         ),
         headers(("content-disposition" = String, description = "attachment; filename=…"))),
        BadRequestProblem, UnauthorizedProblem, NotFoundProblem, ConflictProblem, TimeoutProblem,
        InternalProblem, UnavailableProblem,
    )
)]
pub async fn document_content(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let (document, _) = visible_document(&state, &caller, id).await?;
    serve_document(&state, document).await
}

/// A document's bytes as an attachment (the API and the pages share it), once the antivirus found them
/// clean.
pub(crate) async fn serve_document(
    state: &AppState,
    document: document_rows::Model,
) -> Result<Response, ApiError> {
    require_clean(&document)?;
    let bytes = state
        .store()
        .blobs()
        .get(&document.sha256)
        .await
        .map_err(ApiError::internal)?;
    let media_type = HeaderValue::from_str(&document.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&content_disposition(&document.filename))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        // Should a browser render it anyway, a sandbox without scripts.
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        )
        .body(Body::from(bytes))
        .map_err(ApiError::internal)
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266).
pub(crate) fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in filename.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    Rejected,
    /// Ask the region for a corrected document by `due_on`.
    CorrectionRequested,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub decision: Decision,
    /// Mandatory for a rejection or a correction request: what the region must fix.
    pub comment: Option<String>,
    /// For a correction request: `incorrect`, `incomplete` or `outdated`.
    #[schema(example = "incomplete")]
    pub kind: Option<String>,
    /// For a correction request: the day the corrected document is due by (`YYYY-MM-DD`, after today;
    /// due at the end of that day in the workflow's time zone).
    #[schema(example = "2026-12-31")]
    pub due_on: Option<String>,
    /// For a correction request: pause the deadline of the project's stage until the region answers
    /// (it resumes, as the workflow says, on the region's next upload for that requirement).
    #[serde(default)]
    pub pause_stage_clock: bool,
}

impl ReviewRequest {
    /// The store's decision, or a 422 naming every part of a correction request that is missing or wrong.
    pub(crate) fn decision(&self) -> Result<ReviewDecision, ApiError> {
        let correction_only = |field: &str| FieldProblem {
            field: field.into(),
            detail: "only for decision `correction_requested`".into(),
        };
        match self.decision {
            Decision::Accepted | Decision::Rejected => {
                let stray: Vec<FieldProblem> = [
                    ("kind", self.kind.is_some()),
                    ("due_on", self.due_on.is_some()),
                    ("pause_stage_clock", self.pause_stage_clock),
                ]
                .into_iter()
                .filter(|(_, given)| *given)
                .map(|(field, _)| correction_only(field))
                .collect();
                if !stray.is_empty() {
                    return Err(ApiError::Invalid {
                        detail: "`kind`, `due_on` and `pause_stage_clock` belong to a correction request"
                            .into(),
                        errors: stray,
                    });
                }
                Ok(match self.decision {
                    Decision::Accepted => ReviewDecision::Accepted,
                    _ => ReviewDecision::Rejected,
                })
            }
            Decision::CorrectionRequested => {
                let request = correction_request(
                    self.kind.as_deref(),
                    self.due_on.as_deref(),
                    self.pause_stage_clock,
                )?;
                Ok(ReviewDecision::CorrectionRequested(request))
            }
        }
    }
}

/// A correction request from its form or JSON parts, or a 422 naming each missing or wrong part (the API
/// and the region page share it).
pub(crate) fn correction_request(
    kind: Option<&str>,
    due_on: Option<&str>,
    pause_stage_clock: bool,
) -> Result<CorrectionRequest, ApiError> {
    let kinds = CorrectionKind::ALL.map(CorrectionKind::as_str).join(", ");
    let mut errors = Vec::new();
    let kind = match kind.map(str::trim).filter(|k| !k.is_empty()) {
        None => {
            errors.push(FieldProblem {
                field: "kind".into(),
                detail: format!("missing: one of {kinds}"),
            });
            None
        }
        Some(text) => CorrectionKind::parse(text).or_else(|| {
            errors.push(FieldProblem {
                field: "kind".into(),
                detail: format!("unknown kind `{text}`: one of {kinds}"),
            });
            None
        }),
    };
    let due_on = match due_on.map(str::trim).filter(|d| !d.is_empty()) {
        None => {
            errors.push(FieldProblem {
                field: "due_on".into(),
                detail: "missing: the day the correction is due by (YYYY-MM-DD)".into(),
            });
            None
        }
        Some(text) => parse_day("due_on", text)
            .map_err(|_| {
                errors.push(FieldProblem {
                    field: "due_on".into(),
                    detail: format!("`{text}` is not a day written YYYY-MM-DD"),
                });
            })
            .ok(),
    };
    match (kind, due_on) {
        (Some(kind), Some(due_on)) if errors.is_empty() => Ok(CorrectionRequest {
            kind,
            due_on,
            pause_stage_clock,
        }),
        _ => Err(ApiError::Invalid {
            detail: "a correction request needs a `kind` and a `due_on` day".into(),
            errors,
        }),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    pub document: DocumentView,
    /// The requirement's status after this review.
    pub requirement_status: String,
}

/// Accepts or rejects a document, or asks the region for a correction (officer only).
///
/// A rejection needs a comment. A correction request needs a comment, a `kind` and a `due_on` day after
/// today; it sets a deadline `correction:<requirement>` with its own reminders, mails the council, and with
/// `pause_stage_clock` pauses the stage's deadline until the region uploads a new document for it. A
/// document the antivirus has not found clean is 409 (`document-scan-pending`, `document-infected`).
#[utoipa::path(
    post,
    path = "/api/v1/documents/{id}/review",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Document id")),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "The reviewed document", body = ReviewView),
        BadRequestProblem, UnauthorizedProblem, ForbiddenProblem, NotFoundProblem, ConflictProblem,
        TooLargeProblem, UnsupportedProblem, UnprocessableProblem, TimeoutProblem, InternalProblem, UnavailableProblem,
    )
)]
pub async fn review_document(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(review): ApiJson<ReviewRequest>,
) -> Result<Json<ReviewView>, ApiError> {
    let (document, _) = visible_document(&state, &caller, id).await?;
    caller.require(&[Role::Officer], "reviewing evidence")?;
    let decision = review.decision()?;
    let status = state
        .store()
        .write(ReviewDocument {
            registry: state.store().workflows().clone(),
            project_id: document.project_id,
            document_id: id,
            decision,
            comment: review.comment,
            actor: caller.actor_id(),
            now: state.programme_now(),
        })
        .await?;
    Ok(Json(ReviewView {
        document: document_view(&state, &caller, document).await?,
        requirement_status: status_name(status).to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn content_disposition_is_safe_and_keeps_the_name() {
        assert_eq!(
            content_disposition("délibération 2021.pdf"),
            "attachment; filename=\"d_lib_ration 2021.pdf\"; filename*=UTF-8''d%C3%A9lib%C3%A9ration%202021.pdf"
        );
    }
}
