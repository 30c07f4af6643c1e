//! The append-only history of each project.

use chrono::{DateTime, Utc};
use incubator_engine::Decision;
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, Statement,
};
use serde_json::Value;

use crate::audit::event_hash;
use crate::entities::{events, projects};
use crate::error::StoreResult;
use crate::prepared::Prepared;

/// An event about to be appended; the chain fields are filled in when its insert is built.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: String,
    pub actor: String,
    pub transition: Option<String>,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub comment: Option<String>,
    /// What the event changed, as a JSON object (keys sorted, so the hash is stable).
    pub changes: Value,
}

impl NewEvent {
    pub fn transition(kind: &str, decision: &Decision, changes: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            actor: decision.actor.clone(),
            transition: Some(decision.transition.clone()),
            from_state: Some(decision.from.clone()),
            to_state: Some(decision.to.clone()),
            comment: decision.comment.clone(),
            changes,
        }
    }

    /// An event that changes no state: fields edited, a document uploaded or reviewed, a cohort assigned.
    pub fn other(kind: &str, actor: &str, comment: Option<String>, changes: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            transition: None,
            from_state: None,
            to_state: None,
            comment,
            changes,
        }
    }
}

/// The event as appended to the project's chain: its sequence number follows the project's last, and its
/// hash covers the last one's, which the caller stores on the project row in the same transaction (see
/// `projects::record`).
pub(crate) fn chained(
    project: &projects::Model,
    event: NewEvent,
    at: DateTime<Utc>,
) -> events::Model {
    let mut model = events::Model {
        id: 0,
        project_id: project.id,
        seq: project.last_event_seq + 1,
        at,
        actor: event.actor,
        kind: event.kind,
        transition: event.transition,
        from_state: event.from_state,
        to_state: event.to_state,
        comment: event.comment,
        changes: event.changes.to_string(),
        prev_hash: project.last_event_hash.clone(),
        hash: String::new(),
    };
    model.hash = event_hash(&model);
    model
}

/// The insert of a [`chained`] event.
pub(crate) fn insert_statement(backend: DbBackend, model: &events::Model) -> Statement {
    static INSERT: Prepared = Prepared::new();
    let values = vec![
        model.project_id.into(),
        model.seq.into(),
        model.at.into(),
        model.actor.clone().into(),
        model.kind.clone().into(),
        model.transition.clone().into(),
        model.from_state.clone().into(),
        model.to_state.clone().into(),
        model.comment.clone().into(),
        model.changes.clone().into(),
        model.prev_hash.clone().into(),
        model.hash.clone().into(),
    ];
    INSERT.statement(backend, values, |backend| {
        let model = model.clone();
        events::Entity::insert(events::ActiveModel {
            id: NotSet,
            project_id: Set(model.project_id),
            seq: Set(model.seq),
            at: Set(model.at),
            actor: Set(model.actor),
            kind: Set(model.kind),
            transition: Set(model.transition),
            from_state: Set(model.from_state),
            to_state: Set(model.to_state),
            comment: Set(model.comment),
            changes: Set(model.changes),
            prev_hash: Set(model.prev_hash),
            hash: Set(model.hash),
        })
        .build(backend)
    })
}

/// A page of the project's history, oldest first: at most `limit` events after `after_seq`.
pub async fn list_after(
    db: &impl ConnectionTrait,
    project_id: i64,
    after_seq: Option<i64>,
    limit: u64,
) -> StoreResult<Vec<events::Model>> {
    Ok(events::Entity::find()
        .filter(events::Column::ProjectId.eq(project_id))
        .apply_if(after_seq, |q, seq| q.filter(events::Column::Seq.gt(seq)))
        .order_by_asc(events::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

pub async fn list(db: &impl ConnectionTrait, project_id: i64) -> StoreResult<Vec<events::Model>> {
    Ok(events::Entity::find()
        .filter(events::Column::ProjectId.eq(project_id))
        .order_by_asc(events::Column::Seq)
        .all(db)
        .await?)
}
