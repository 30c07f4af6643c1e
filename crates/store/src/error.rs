use incubator_engine::{MigrationRefused, Refusal};
use sea_orm::DbErr;

/// Everything the storage layer can refuse or fail with. The web layer maps each variant to HTTP once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// The batch this write belonged to could not be committed; nothing of it was written.
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    /// The database could not be reached (see [`crate::db::is_unreachable`]): the write was not
    /// acknowledged, and the same request may succeed once the database is back.
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
    #[error("project {0} not found")]
    ProjectNotFound(i64),
    #[error("document {0} not found")]
    DocumentNotFound(i64),
    /// Its bytes are not handed out: the antivirus has not scanned them yet, or found them infected.
    #[error("{}", not_clean(*document_id, *status))]
    NotClean {
        document_id: i64,
        status: crate::scans::ScanStatus,
    },
    #[error("cohort {0} not found")]
    CohortNotFound(i64),
    #[error("region `{0}` is not one of the 18 regions")]
    UnknownRegion(String),
    #[error(
        "project {project_id} is at version {current}, not {expected}: reload it and try again"
    )]
    Conflict {
        project_id: i64,
        expected: i64,
        current: i64,
    },
    #[error("a project of region {region} on workflow `{workflow}` exists already (id {existing})")]
    ProjectExists {
        region: String,
        workflow: String,
        existing: i64,
    },
    #[error(
        "entering `{state}` starts a `{workflow}` project, but the region has one already (id {existing}) \
         that no transition of this project started"
    )]
    ChildExists {
        state: String,
        workflow: String,
        existing: i64,
    },
    #[error("workflow `{id}` version {version} is not deployed")]
    WorkflowNotDeployed { id: String, version: i32 },
    #[error("workflow `{0}` has no deployed version")]
    UnknownWorkflow(String),
    #[error(
        "workflow `{id}` version {version} is deployed already with other content; a deployed version is \
         immutable: raise `version` in the file"
    )]
    VersionImmutable { id: String, version: i32 },
    #[error("the stored definition of `{id}` version {version} no longer loads: {message}")]
    CorruptWorkflow {
        id: String,
        version: i32,
        message: String,
    },
    #[error("this link is not valid: it was altered, or never issued here; ask for a new one")]
    LinkInvalid,
    #[error("link {0} not found")]
    LinkNotFound(i64),
    #[error("this link was used already, at {used_at}: each link serves once; ask for a new one")]
    LinkUsed {
        used_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("this link expired at {expires_at}; ask for a new one")]
    LinkExpired {
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("this link was withdrawn at {revoked_at}; ask for a new one")]
    LinkRevoked {
        revoked_at: chrono::DateTime<chrono::Utc>,
    },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("migration refused: {0}")]
    MigrationRefused(#[from] MigrationRefused),
    #[error("{0}")]
    Invalid(String),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

fn not_clean(document_id: i64, status: crate::scans::ScanStatus) -> String {
    match status {
        crate::scans::ScanStatus::Infected => format!(
            "document {document_id} was found infected by the antivirus and is quarantined: it is never \
             served; ask the region for a clean copy"
        ),
        _ => format!(
            "document {document_id} waits for its antivirus scan: it is served once found clean; try again \
             shortly"
        ),
    }
}
