//! Deadlines lose their index on `due_at`. Every transition re-sets some deadlines (an upsert that moves
//! `due_at`) and clears others: with `due_at` indexed, each re-set is a new row version in all three of the
//! table's indexes, and PostgreSQL cannot update it in place (HOT). No statement needs the index: the
//! scheduler reads its queue (`deadline_checks`), views read a project's deadlines by `(project_id, key)`,
//! and the one scan by due date (the overdue gauge, per metrics scrape) reads a table of a few thousand rows.

use sea_orm_migration::prelude::*;

use super::m20261127_000008_create_deadlines::Deadlines;

const INDEX: &str = "idx_deadlines_due";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Deadlines::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Deadlines::Table)
                    .col(Deadlines::DueAt)
                    .to_owned(),
            )
            .await
    }
}
