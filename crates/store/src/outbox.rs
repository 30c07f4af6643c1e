//! The email outbox: rows written in the transaction of the event that causes them; a worker delivers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::NotSet, ConnectionTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::entities::{outbox, projects};
use crate::error::StoreResult;

pub const PENDING: &str = "pending";

/// Queues one message per recipient language, addressed to the accounts that hold the given roles.
pub async fn enqueue(
    txn: &impl ConnectionTrait,
    project: &projects::Model,
    event_seq: Option<i64>,
    template: &str,
    roles: &[String],
    context: &Value,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let users = crate::projects::recipients(txn, &project.region_code, roles).await?;
    let mut by_lang: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for user in &users {
        by_lang
            .entry(user.lang.as_str())
            .or_default()
            .push(json!({ "email": user.email, "name": user.name }));
    }
    let rows: Vec<outbox::ActiveModel> = by_lang
        .into_iter()
        .map(|(lang, recipients)| outbox::ActiveModel {
            id: NotSet,
            project_id: Set(Some(project.id)),
            event_seq: Set(event_seq),
            template: Set(template.to_owned()),
            lang: Set(lang.to_owned()),
            recipients: Set(Value::Array(recipients).to_string()),
            context: Set(context.to_string()),
            status: Set(PENDING.into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            leased_by: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
        })
        .collect();
    if !rows.is_empty() {
        outbox::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
