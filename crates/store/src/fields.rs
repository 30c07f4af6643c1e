//! Typed facts of a project, edited by officers and councils.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use sea_orm::sea_query::Expr;
use serde_json::{Value, json};

use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::entities::projects;
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::projects::{decision_view_by_id, record};
use crate::workflows::WorkflowRegistry;

/// Sets (or, with `null`, clears) fields; every value is checked against the workflow's types first and
/// one wrong value changes nothing.
#[derive(Debug)]
pub struct PatchFields {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub patch: BTreeMap<String, Value>,
    pub actor: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for PatchFields {
    type Output = i64;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<i64> {
        let now = normalize(self.now);
        let snap = decision_view_by_id(txn, self.project_id).await?;
        let project = &snap.project;
        let workflow = self
            .registry
            .get(txn, &project.workflow_id, project.workflow_version)
            .await?;
        let mut facts = snap.facts.clone();
        let mut problems = Vec::new();
        let mut changes = serde_json::Map::new();
        for (key, value) in &self.patch {
            match workflow.parse_field(key, value) {
                Ok(Some(parsed)) => {
                    changes.insert(key.clone(), json!({ "from": facts.get(key), "to": parsed }));
                    facts.insert(key.clone(), parsed);
                }
                Ok(None) => {
                    changes.insert(key.clone(), json!({ "from": facts.get(key), "to": null }));
                    facts.remove(key);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems.join("; ")));
        }
        let serialized =
            serde_json::to_string(&facts).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let event = NewEvent::other("fields_changed", &self.actor, None, Value::Object(changes));
        let (version, _) = record(txn, project, event, now, |u| {
            u.col_expr(projects::Column::Facts, Expr::value(serialized))
        })
        .await?;
        Ok(version)
    }
}
