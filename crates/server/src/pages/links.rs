//! The page a link holder opens (`/links/{token}`): no account, no cookie, the signed token is the whole
//! authority. It says what is asked, takes the one upload the link allows, and refuses a used, expired,
//! withdrawn or altered link with a page saying so (or a problem document when JSON is asked for).

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use incubator_store::entities::{links, projects, regions};
use incubator_store::links::{UseLink, resolve};
use incubator_store::projects as projects_repo;
use sea_orm::EntityTrait;
use serde::Serialize;

use super::session::read_form;
use super::{Frame, Lang};
use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::documents::{Evidence, checked_evidence, settle_upload};

/// What the page shows about the link's project, in the page's language.
#[derive(Debug, Serialize)]
struct About {
    region_name: String,
    workflow_label: String,
    holder_name: String,
    role_label: String,
    requirement_label: String,
    requirement_hint: Option<String>,
    expires_on: NaiveDate,
}

#[derive(Debug, Serialize)]
struct UploadForm {
    action: String,
    kinds: String,
}

#[derive(Debug, Serialize)]
struct LinkPage {
    /// `open`, `received`, `used`, `expired`, `revoked` or `invalid` (catalog keys `link.<status>.*`).
    status: &'static str,
    about: Option<About>,
    form: Option<UploadForm>,
    /// Why the last upload was refused (`link.error.<key>`); the link still works.
    error: Option<&'static str>,
}

/// The same facts as JSON, for a client that asks for it.
#[derive(Debug, Serialize)]
struct LinkFacts {
    region_code: String,
    workflow: String,
    role: String,
    requirement: String,
    accepted_kinds: Vec<String>,
    expires_at: DateTime<Utc>,
}

/// A client asking for JSON (and not for HTML) gets JSON and problem documents.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept.contains("json") && !accept.contains("text/html")
}

/// The answer when the link cannot be used: the error's status, with a page naming why.
fn refused(state: &AppState, lang: Lang, uri: &Uri, json: bool, error: ApiError) -> Response {
    if json {
        return error.into_response();
    }
    let status = match &error {
        ApiError::Gone {
            slug: "link-used", ..
        } => "used",
        ApiError::Gone {
            slug: "link-expired",
            ..
        } => "expired",
        ApiError::Gone { .. } => "revoked",
        ApiError::NotFound(_) => "invalid",
        _ => return super::PageError::Api(error).into_response(),
    };
    let page = LinkPage {
        status,
        about: None,
        form: None,
        error: None,
    };
    page_response(state, lang, uri, error.status(), &page)
}

fn page_response(
    state: &AppState,
    lang: Lang,
    uri: &Uri,
    status: StatusCode,
    page: &LinkPage,
) -> Response {
    let frame = Frame::new(lang, uri, None, String::new(), "");
    match super::render(state, "link", &frame, page) {
        Ok(rendered) => {
            let mut response = rendered;
            *response.status_mut() = status;
            response
        }
        Err(error) => error.into_response(),
    }
}

/// The link, its project and what the page says about them.
async fn describe(
    state: &AppState,
    lang: Lang,
    link: &links::Model,
) -> Result<(projects::Model, About, Vec<String>), ApiError> {
    let db = state.store().db();
    let project = projects_repo::find(db, link.project_id).await?;
    let workflow = state
        .store()
        .workflows()
        .get(db, &project.workflow_id, project.workflow_version)
        .await?;
    let region = regions::Entity::find_by_id(project.region_code.clone())
        .one(db)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::internal(format!("region {} missing", project.region_code)))?;
    let requirement = workflow.requirement(&link.requirement).ok_or_else(|| {
        ApiError::internal(format!(
            "link {} names requirement `{}` absent from its workflow",
            link.id, link.requirement
        ))
    })?;
    let about = About {
        region_name: region.name,
        workflow_label: lang.pick(workflow.labels()),
        holder_name: link.name.clone(),
        role_label: workflow
            .roles()
            .get(&link.role)
            .map_or_else(|| link.role.clone(), |l| lang.pick(l)),
        requirement_label: lang.pick(&requirement.labels),
        requirement_hint: requirement.hint.as_ref().map(|h| lang.pick(h)),
        expires_on: link
            .expires_at
            .with_timezone(&workflow.timezone())
            .date_naive(),
    };
    Ok((project, about, requirement.documents.clone()))
}

/// `GET /links/{token}`: what the link asks for, and the form to send it.
pub async fn show(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    lang: Lang,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let now = state.programme_now();
    let link = match resolve(state.store().db(), &token, now).await {
        Ok(link) => link,
        Err(error) => return refused(&state, lang, &uri, json, error.into()),
    };
    let (project, about, kinds) = match describe(&state, lang, &link).await {
        Ok(found) => found,
        Err(error) => return refused(&state, lang, &uri, json, error),
    };
    if json {
        return Json(LinkFacts {
            region_code: project.region_code,
            workflow: project.workflow_id,
            role: link.role,
            requirement: link.requirement,
            accepted_kinds: kinds,
            expires_at: link.expires_at,
        })
        .into_response();
    }
    let page = LinkPage {
        status: "open",
        about: Some(about),
        form: Some(UploadForm {
            action: uri.path().to_owned(),
            kinds: kinds.join(", "),
        }),
        error: None,
    };
    page_response(&state, lang, &uri, StatusCode::OK, &page)
}

/// `POST /links/{token}`: the holder's upload. The link is claimed in the transaction that records the
/// document, so of two posts of one link exactly one is kept. A refused file leaves the link usable.
///
/// No CSRF token: the request carries no cookie and no other authority than the token in its address.
pub async fn submit(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    lang: Lang,
    uri: Uri,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let json = wants_json(&headers);
    let now = state.programme_now();
    let link = match resolve(state.store().db(), &token, now).await {
        Ok(link) => link,
        Err(error) => return refused(&state, lang, &uri, json, error.into()),
    };
    let (project, about, kinds) = match describe(&state, lang, &link).await {
        Ok(found) => found,
        Err(error) => return refused(&state, lang, &uri, json, error),
    };
    let outcome = async {
        let mut multipart = multipart?;
        let (_, file) = read_form(&state, &mut multipart).await?;
        let (claimed_name, bytes) =
            file.ok_or_else(|| ApiError::invalid("the form has no `file` part"))?;
        let actor = format!("link:{}", link.id);
        let requirement = link.requirement.clone();
        let document = checked_evidence(
            &state,
            &project,
            Evidence {
                requirement,
                claimed_name,
                bytes,
                expires_on: None,
            },
            actor,
        )
        .await?;
        let document = state
            .store()
            .write(UseLink {
                link: link.clone(),
                document,
            })
            .await?;
        settle_upload(&state, document).await
    }
    .await;
    match outcome {
        Ok(document) if json => (
            StatusCode::CREATED,
            Json(serde_json::json!({
                "document_id": document.id,
                "requirement": document.requirement,
                "filename": document.filename,
                "media_type": document.media_type,
                "status": "pending",
                "scan_status": document.scan_status,
            })),
        )
            .into_response(),
        Ok(_) => {
            let page = LinkPage {
                status: "received",
                about: Some(about),
                form: None,
                error: None,
            };
            page_response(&state, lang, &uri, StatusCode::CREATED, &page)
        }
        Err(error @ (ApiError::Gone { .. } | ApiError::NotFound(_))) => {
            refused(&state, lang, &uri, json, error)
        }
        Err(error) if json => error.into_response(),
        Err(error) => {
            let key = match &error {
                ApiError::PayloadTooLarge(_) => "file_too_large",
                ApiError::UnsupportedMediaType { .. } => "file_refused",
                ApiError::Invalid { .. } => "no_file",
                _ => return super::PageError::Api(error).into_response(),
            };
            let page = LinkPage {
                status: "open",
                about: Some(about),
                form: Some(UploadForm {
                    action: uri.path().to_owned(),
                    kinds: kinds.join(", "),
                }),
                error: Some(key),
            };
            page_response(&state, lang, &uri, error.status(), &page)
        }
    }
}
