//! The programme's durable record: sea-orm entities, repository functions taking `&impl ConnectionTrait`
//! (so they run inside or outside a transaction), and [`Store`], which writes through a group committer.

pub mod account_admin;
pub mod audit;
mod batch;
pub mod blobs;
pub mod clocks;
pub mod cohorts;
mod committer;
pub mod db;
pub mod delivery;
pub mod documents;
pub mod entities;
mod error;
pub mod events;
pub mod fields;
mod gathered;
pub mod gauges;
mod id_lists;
pub mod links;
pub mod outbox;
mod prepared;
pub mod projects;
pub mod regions;
pub mod reminders;
mod round;
pub mod scans;
pub mod sessions;
pub mod tokens;
pub mod transfer;
pub mod users;
pub mod versions;
mod wal;
pub mod workflows;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};

pub use committer::{Committer, UnitOfWork};
pub use db::{DbConfig, SqliteSync};
pub use error::{StoreError, StoreResult};
pub use workflows::{Deployed, DeployedVersion, WorkflowRegistry};

/// A gathered read's function on its own handle of the pool.
fn reading<K, F>(
    db: &DatabaseConnection,
    read: impl Fn(DatabaseConnection, Vec<K>) -> F + Send + Sync + 'static,
) -> impl Fn(Vec<K>) -> F + Send + Sync + 'static {
    let db = db.clone();
    move |keys| read(db.clone(), keys)
}

/// Concurrent write transactions on PostgreSQL; each groups the units that arrive while the last commits.
const POSTGRES_WRITER_LANES: u32 = 4;

/// The database, the deployed workflows and the writer, shared by every request of a process.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    committer: Committer,
    workflows: Arc<WorkflowRegistry>,
    blobs: blobs::BlobStore,
    decision_views: gathered::Gathered<i64, projects::Snapshot>,
    relatives: gathered::Gathered<projects::Kin, projects::Relatives>,
    tokens: gathered::Gathered<String, entities::users::Model>,
}

impl Store {
    /// Opens (creating and migrating as needed) the configured database.
    pub async fn open(config: &DbConfig, data_dir: &Path) -> StoreResult<Self> {
        let db = db::open(config, data_dir).await?;
        Ok(Self::with_connection(db, data_dir))
    }

    pub fn with_connection(db: DatabaseConnection, data_dir: &Path) -> Self {
        // Writers on connections of their own (`db::writer`): SQLite has one, and its log is checkpointed
        // off the commit path (`wal`); PostgreSQL commits on several lanes and checkpoints by itself.
        let (lanes, commits) = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => (POSTGRES_WRITER_LANES, None),
            _ => (1, Some(wal::checkpoint_after_commits(db.clone()))),
        };
        Self {
            committer: Committer::start(db::writer(&db, lanes), lanes as usize, commits),
            decision_views: gathered::Gathered::start(reading(&db, |db, ids| async move {
                projects::decision_views(&db, ids).await
            })),
            relatives: gathered::Gathered::start(reading(&db, |db, kin| async move {
                Ok(projects::relatives_of_many(&db, kin)
                    .await?
                    .into_iter()
                    .map(|(kin, relatives)| (kin, Ok(relatives)))
                    .collect())
            })),
            tokens: gathered::Gathered::start(reading(&db, |db, digests| async move {
                tokens::authenticate_many(&db, digests, Utc::now()).await
            })),
            db,
            workflows: Arc::default(),
            blobs: blobs::BlobStore::new(data_dir),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn workflows(&self) -> &Arc<WorkflowRegistry> {
        &self.workflows
    }

    pub fn blobs(&self) -> &blobs::BlobStore {
        &self.blobs
    }

    /// The project's row, facts, requirements and cohort as committed, without its deadlines: what a
    /// decision is taken on. Read together with the views other requests ask for at the same time.
    pub async fn decision_view(&self, project_id: i64) -> StoreResult<projects::Snapshot> {
        self.decision_views
            .get(project_id)
            .await?
            .ok_or(StoreError::ProjectNotFound(project_id))
    }

    /// The project's parent, children and links as committed, read together with those other requests ask
    /// for at the same time.
    pub async fn relatives(
        &self,
        project: &entities::projects::Model,
    ) -> StoreResult<projects::Relatives> {
        Ok(self
            .relatives
            .get(projects::Kin::of(project))
            .await?
            .unwrap_or_default())
    }

    /// The account an API token (its SHA-256) authenticates now, if the token is live and the account
    /// enabled (see [`tokens::authenticate`]). Read together with the tokens of requests arriving at the
    /// same time: every API request asks.
    pub async fn authenticate(
        &self,
        token_sha256: &str,
    ) -> StoreResult<Option<entities::users::Model>> {
        self.tokens.get(token_sha256.to_owned()).await
    }

    /// Runs a unit of work in the next group commit and returns once it is durable (or refused).
    pub async fn write<U: UnitOfWork>(&self, unit: U) -> StoreResult<U::Output> {
        self.committer.submit(unit).await
    }

    pub async fn deploy_workflow(
        &self,
        source: &str,
        file: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Deployed> {
        self.workflows.deploy(&self.db, source, file, now).await
    }
}
