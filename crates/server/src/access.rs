//! Access control, in one place. An officer sees and acts on every region; a council account only on its
//! region's projects, and any other project answers exactly as a missing one; an admin manages accounts and
//! the outbox, reads everything and fires no transition. Which roles may fire a transition is the workflow's
//! say, checked by the engine.

use incubator_engine::Actor;
use incubator_store::entities::{documents, projects};
use incubator_store::{documents as documents_repo, projects as projects_repo};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Officer,
    Council,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "officer" => Some(Self::Officer),
            "council" => Some(Self::Council),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::Council => "council",
            Self::Admin => "admin",
        }
    }
}

/// The authenticated account behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// A council account's region; `None` for officers and admins.
    pub region: Option<String>,
    /// SHA-256 of the bearer token the request came with, so that it can revoke itself.
    pub token_sha256: String,
}

impl Caller {
    /// The actor id recorded in the audit trail.
    pub fn actor_id(&self) -> String {
        format!("user:{}", self.user_id)
    }

    /// The caller as the workflow engine sees it: `admin` is a role of the service, not of any workflow.
    pub fn actor(&self) -> Actor {
        let roles = match self.role {
            Role::Officer | Role::Council => vec![self.role.as_str().to_owned()],
            Role::Admin => Vec::new(),
        };
        Actor {
            id: self.actor_id(),
            roles,
        }
    }

    /// The region the caller is confined to, if any.
    pub fn region_scope(&self) -> Option<&str> {
        match self.role {
            Role::Council => Some(self.region.as_deref().unwrap_or_default()),
            Role::Officer | Role::Admin => None,
        }
    }

    pub fn sees_region(&self, region_code: &str) -> bool {
        self.region_scope().is_none_or(|own| own == region_code)
    }

    /// A project outside the caller's region is answered exactly as a missing one.
    pub fn project_visible(&self, project: &projects::Model) -> Result<(), ApiError> {
        if self.sees_region(&project.region_code) {
            Ok(())
        } else {
            Err(ApiError::project_not_found(project.id))
        }
    }

    pub fn require(&self, allowed: &[Role], action: &str) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!(
            "{action} is for {} accounts only",
            names.join(" or ")
        )))
    }
}

/// A project the caller may see, or 404.
pub async fn visible_project(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<projects::Model, ApiError> {
    let project = projects_repo::find(state.store().db(), id).await?;
    caller.project_visible(&project)?;
    Ok(project)
}

/// A document of a project the caller may see, or 404 (the same 404 as for a missing document).
pub async fn visible_document(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(documents::Model, projects::Model), ApiError> {
    let document = documents_repo::get(state.store().db(), id).await?;
    let project = projects_repo::find(state.store().db(), document.project_id).await?;
    if !caller.sees_region(&project.region_code) {
        return Err(ApiError::document_not_found(id));
    }
    Ok((document, project))
}
