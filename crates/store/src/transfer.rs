//! Export and import of the whole programme as one JSON document, for backups and moves between databases.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryOrder, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::entities::*;
use crate::error::{StoreError, StoreResult};

pub const FORMAT: &str = "csirt-incubator-export";
pub const FORMAT_VERSION: u32 = 1;

/// Every table but the regions (seeded by the program itself), rows ordered by primary key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub format: String,
    pub format_version: u32,
    pub exported_at: DateTime<Utc>,
    pub workflow_versions: Vec<workflow_versions::Model>,
    pub users: Vec<users::Model>,
    pub cohorts: Vec<cohorts::Model>,
    pub projects: Vec<projects::Model>,
    pub events: Vec<events::Model>,
    pub documents: Vec<documents::Model>,
    pub document_reviews: Vec<document_reviews::Model>,
    pub requirements: Vec<requirements::Model>,
    pub deadlines: Vec<deadlines::Model>,
    pub reminders_sent: Vec<reminders_sent::Model>,
    pub outbox: Vec<outbox::Model>,
    /// Without the signing key, which is not exported: links issued before a restore no longer open.
    #[serde(default)]
    pub links: Vec<links::Model>,
}

async fn all<E, C>(db: &impl ConnectionTrait, order: C) -> StoreResult<Vec<E::Model>>
where
    E: EntityTrait,
    C: sea_orm::ColumnTrait,
{
    Ok(E::find().order_by_asc(order).all(db).await?)
}

/// Reads everything in one transaction, so the export is one consistent picture.
pub async fn export(db: &DatabaseConnection, now: DateTime<Utc>) -> StoreResult<Export> {
    let txn = db.begin().await?;
    let export = Export {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        exported_at: now,
        workflow_versions: all::<workflow_versions::Entity, _>(
            &txn,
            workflow_versions::Column::WorkflowId,
        )
        .await?,
        users: all::<users::Entity, _>(&txn, users::Column::Id).await?,
        cohorts: all::<cohorts::Entity, _>(&txn, cohorts::Column::Id).await?,
        projects: all::<projects::Entity, _>(&txn, projects::Column::Id).await?,
        events: all::<events::Entity, _>(&txn, events::Column::Id).await?,
        documents: all::<documents::Entity, _>(&txn, documents::Column::Id).await?,
        document_reviews: all::<document_reviews::Entity, _>(&txn, document_reviews::Column::Id)
            .await?,
        requirements: all::<requirements::Entity, _>(&txn, requirements::Column::ProjectId).await?,
        deadlines: all::<deadlines::Entity, _>(&txn, deadlines::Column::Id).await?,
        reminders_sent: all::<reminders_sent::Entity, _>(&txn, reminders_sent::Column::ProjectId)
            .await?,
        outbox: all::<outbox::Entity, _>(&txn, outbox::Column::Id).await?,
        links: all::<links::Entity, _>(&txn, links::Column::Id).await?,
    };
    txn.commit().await?;
    Ok(export)
}

async fn insert_all<E>(txn: &impl ConnectionTrait, rows: Vec<E::Model>) -> StoreResult<()>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel>,
{
    // Chunks keep each statement under the databases' bound-parameter limits.
    let mut rows = rows
        .into_iter()
        .map(IntoActiveModel::into_active_model)
        .peekable();
    while rows.peek().is_some() {
        let chunk: Vec<E::ActiveModel> = rows.by_ref().take(200).collect();
        E::insert_many(chunk).exec_without_returning(txn).await?;
    }
    Ok(())
}

/// Restores an export into a database that has no projects, users or workflows yet; all or nothing.
pub async fn import(db: &DatabaseConnection, data: Export) -> StoreResult<()> {
    if data.format != FORMAT || data.format_version != FORMAT_VERSION {
        return Err(StoreError::Invalid(format!(
            "not a {FORMAT} version {FORMAT_VERSION} file (found `{}` version {})",
            data.format, data.format_version
        )));
    }
    let txn = db.begin().await?;
    let occupied = projects::Entity::find().count(&txn).await?
        + users::Entity::find().count(&txn).await?
        + workflow_versions::Entity::find().count(&txn).await?;
    if occupied > 0 {
        return Err(StoreError::Invalid(
            "the target database is not empty: import restores into an empty database only".into(),
        ));
    }
    insert_all::<workflow_versions::Entity>(&txn, data.workflow_versions).await?;
    insert_all::<users::Entity>(&txn, data.users).await?;
    insert_all::<cohorts::Entity>(&txn, data.cohorts).await?;
    insert_all::<projects::Entity>(&txn, data.projects).await?;
    insert_all::<events::Entity>(&txn, data.events).await?;
    insert_all::<documents::Entity>(&txn, data.documents).await?;
    insert_all::<document_reviews::Entity>(&txn, data.document_reviews).await?;
    insert_all::<requirements::Entity>(&txn, data.requirements).await?;
    insert_all::<deadlines::Entity>(&txn, data.deadlines).await?;
    // When to look at each deadline next is the scheduler's working state, not part of the record: it looks
    // at every running deadline once after an import and plans from there (the steps already sent came
    // with the record, so nothing goes out twice).
    let backend = txn.get_database_backend();
    txn.execute(Statement::from_sql_and_values(
        backend,
        match backend {
            DbBackend::Postgres => {
                "INSERT INTO deadline_checks (next_check_at, deadline_id) SELECT $1, id FROM deadlines \
                 WHERE cleared_at IS NULL AND paused_at IS NULL"
            }
            _ => {
                "INSERT INTO deadline_checks (next_check_at, deadline_id) SELECT ?, id FROM deadlines \
                 WHERE cleared_at IS NULL AND paused_at IS NULL"
            }
        },
        [crate::audit::normalize(data.exported_at).into()],
    ))
    .await?;
    insert_all::<reminders_sent::Entity>(&txn, data.reminders_sent).await?;
    insert_all::<outbox::Entity>(&txn, data.outbox).await?;
    insert_all::<links::Entity>(&txn, data.links).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // Rows came with their ids: move each sequence past them so new rows do not collide.
        for table in [
            "users",
            "cohorts",
            "projects",
            "events",
            "documents",
            "document_reviews",
            "deadlines",
            "outbox",
            "links",
        ] {
            txn.execute(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ),
            ))
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}
