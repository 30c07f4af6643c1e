//! Deployed workflow versions: stored once, immutable, parsed once per process and shared.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use incubator_engine::Workflow;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use sha2::{Digest, Sha256};

use crate::entities::workflow_versions;
use crate::error::{StoreError, StoreResult};

type Key = (String, i32);

/// Parsed definitions by (id, version). A deployed version never changes, so a cached one is never stale.
#[derive(Debug, Default)]
pub struct WorkflowRegistry {
    parsed: RwLock<HashMap<Key, Arc<Workflow>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub id: String,
    pub version: i32,
    /// False when the same content was deployed before: deploying is idempotent.
    pub created: bool,
}

/// A stored version, without its source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeployedVersion {
    pub id: String,
    pub version: i32,
    pub sha256: String,
    pub deployed_at: DateTime<Utc>,
}

impl WorkflowRegistry {
    /// Stores a definition as a new version; the same content again is a no-op, other content under a
    /// deployed version is refused.
    pub async fn deploy(
        &self,
        db: &impl ConnectionTrait,
        source: &str,
        file: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Deployed> {
        let workflow =
            Workflow::from_yaml(source, file).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let id = workflow.id().to_owned();
        let version = i32::try_from(workflow.version()).map_err(|_| {
            StoreError::Invalid(format!(
                "{file}: version {} is too large",
                workflow.version()
            ))
        })?;
        let sha256 = hex::encode(Sha256::digest(source.as_bytes()));
        // Replicas starting together deploy the same files at the same moment: the insert decides, not a
        // read before it.
        let inserted = workflow_versions::Entity::insert(workflow_versions::ActiveModel {
            workflow_id: Set(id.clone()),
            version: Set(version),
            source: Set(source.to_owned()),
            sha256: Set(sha256.clone()),
            deployed_at: Set(crate::audit::normalize(now)),
        })
        .on_conflict(
            OnConflict::columns([
                workflow_versions::Column::WorkflowId,
                workflow_versions::Column::Version,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        let created = inserted > 0;
        if !created {
            let deployed = workflow_versions::Entity::find_by_id((id.clone(), version))
                .one(db)
                .await?;
            if deployed.is_none_or(|row| row.sha256 != sha256) {
                return Err(StoreError::VersionImmutable { id, version });
            }
        }
        self.remember((id.clone(), version), Arc::new(workflow));
        Ok(Deployed {
            id,
            version,
            created,
        })
    }

    /// The definition a project is pinned to.
    pub async fn get(
        &self,
        db: &impl ConnectionTrait,
        id: &str,
        version: i32,
    ) -> StoreResult<Arc<Workflow>> {
        if let Some(found) = self.cached(id, version) {
            return Ok(found);
        }
        let row = workflow_versions::Entity::find_by_id((id.to_owned(), version))
            .one(db)
            .await?
            .ok_or_else(|| StoreError::WorkflowNotDeployed {
                id: id.to_owned(),
                version,
            })?;
        let file = format!("{id}@v{version}");
        let workflow =
            Workflow::from_yaml(&row.source, &file).map_err(|e| StoreError::CorruptWorkflow {
                id: id.to_owned(),
                version,
                message: e.to_string(),
            })?;
        let workflow = Arc::new(workflow);
        self.remember((id.to_owned(), version), workflow.clone());
        Ok(workflow)
    }

    /// The newest deployed version of a workflow, which new projects start on.
    pub async fn latest(&self, db: &impl ConnectionTrait, id: &str) -> StoreResult<Arc<Workflow>> {
        let row = workflow_versions::Entity::find()
            .filter(workflow_versions::Column::WorkflowId.eq(id))
            .order_by_desc(workflow_versions::Column::Version)
            .one(db)
            .await?
            .ok_or_else(|| StoreError::UnknownWorkflow(id.to_owned()))?;
        self.get(db, id, row.version).await
    }

    /// Every deployed version, by workflow id then version.
    pub async fn list(db: &impl ConnectionTrait) -> StoreResult<Vec<DeployedVersion>> {
        Ok(workflow_versions::Entity::find()
            .order_by_asc(workflow_versions::Column::WorkflowId)
            .order_by_asc(workflow_versions::Column::Version)
            .all(db)
            .await?
            .into_iter()
            .map(|row| DeployedVersion {
                id: row.workflow_id,
                version: row.version,
                sha256: row.sha256,
                deployed_at: row.deployed_at,
            })
            .collect())
    }

    fn cached(&self, id: &str, version: i32) -> Option<Arc<Workflow>> {
        let parsed = self
            .parsed
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        parsed.get(&(id.to_owned(), version)).cloned()
    }

    fn remember(&self, key: Key, workflow: Arc<Workflow>) {
        let mut parsed = self
            .parsed
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        parsed.entry(key).or_insert(workflow);
    }
}
