//! When the scheduler looks at each deadline next moves out of the wide `deadlines` table into a narrow
//! queue keyed by that instant. A pass moves every due deadline's next look: in `deadlines`, each move
//! rewrote a table page of its own (due rows lie scattered among all the others) and an index entry; in this
//! queue, the rows a pass takes lie together at its head and the ones it puts back lie together at their
//! next instant, so a pass writes a few pages whatever the table's size.
//!
//! Rows are never looked up by deadline: a row whose deadline was cleared, paused or moved meanwhile is
//! dropped by the pass that reaches it (looking at a deadline is idempotent), so clearing a deadline costs
//! the queue nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let create = match backend {
            // Without a rowid the table is its primary key's B-tree: the queue and its order in one.
            DbBackend::Sqlite => {
                "CREATE TABLE deadline_checks (\
                   next_check_at timestamp_with_timezone_text NOT NULL, \
                   deadline_id bigint NOT NULL REFERENCES deadlines (id), \
                   PRIMARY KEY (next_check_at, deadline_id)) WITHOUT ROWID"
            }
            _ => {
                "CREATE TABLE deadline_checks (\
                   next_check_at timestamp with time zone NOT NULL, \
                   deadline_id bigint NOT NULL REFERENCES deadlines (id), \
                   PRIMARY KEY (next_check_at, deadline_id))"
            }
        };
        db.execute(Statement::from_string(backend, create)).await?;
        db.execute(Statement::from_string(
            backend,
            "INSERT INTO deadline_checks (next_check_at, deadline_id) \
             SELECT next_check_at, id FROM deadlines \
             WHERE next_check_at IS NOT NULL AND cleared_at IS NULL AND paused_at IS NULL",
        ))
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_deadlines_next_check")
                    .table(Deadlines::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deadlines::Table)
                    .drop_column(Deadlines::NextCheckAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deadlines::Table)
                    .add_column(
                        ColumnDef::new(Deadlines::NextCheckAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        db.execute(Statement::from_string(
            backend,
            "UPDATE deadlines SET next_check_at = \
             (SELECT MIN(c.next_check_at) FROM deadline_checks c WHERE c.deadline_id = deadlines.id) \
             WHERE cleared_at IS NULL AND paused_at IS NULL",
        ))
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deadlines_next_check")
                    .table(Deadlines::Table)
                    .col(Deadlines::NextCheckAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(DeadlineChecks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Deadlines {
    Table,
    NextCheckAt,
}

#[derive(DeriveIden)]
enum DeadlineChecks {
    Table,
}
