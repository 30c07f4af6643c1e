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
    #[error("project {0} not found")]
    ProjectNotFound(i64),
    #[error("document {0} not found")]
    DocumentNotFound(i64),
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
