use sea_orm_migration::prelude::*;

use super::m20261127_000005_create_projects::Projects;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Deadlines::Table)
                    .col(
                        ColumnDef::new(Deadlines::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Deadlines::ProjectId)
                            .big_integer()
                            .not_null(),
                    )
                    // The state the deadline belongs to, or a workflow goal's id.
                    .col(ColumnDef::new(Deadlines::Key).string().not_null())
                    .col(
                        ColumnDef::new(Deadlines::DueAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // When the scheduler must look at this deadline next (first reminder, next repeat);
                    // null once cleared, so the index holds only live deadlines worth scanning.
                    .col(
                        ColumnDef::new(Deadlines::NextCheckAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Deadlines::SetAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Deadlines::ClearedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Deadlines::PausedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Deadlines::Table, Deadlines::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_deadlines_project_key")
                    .table(Deadlines::Table)
                    .col(Deadlines::ProjectId)
                    .col(Deadlines::Key)
                    .unique()
                    .to_owned(),
            )
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
            .create_index(
                Index::create()
                    .name("idx_deadlines_due")
                    .table(Deadlines::Table)
                    .col(Deadlines::DueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RemindersSent::Table)
                    .col(
                        ColumnDef::new(RemindersSent::ProjectId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RemindersSent::DeadlineKey)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RemindersSent::Step).string().not_null())
                    .col(
                        ColumnDef::new(RemindersSent::DueAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RemindersSent::SentAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // The unique key is what makes a reminder go out once, whatever the replicas and restarts.
                    .primary_key(
                        Index::create()
                            .col(RemindersSent::ProjectId)
                            .col(RemindersSent::DeadlineKey)
                            .col(RemindersSent::DueAt)
                            .col(RemindersSent::Step),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RemindersSent::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Deadlines::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Deadlines {
    Table,
    Id,
    ProjectId,
    Key,
    DueAt,
    NextCheckAt,
    SetAt,
    ClearedAt,
    PausedAt,
}

#[derive(DeriveIden)]
pub enum RemindersSent {
    Table,
    ProjectId,
    DeadlineKey,
    Step,
    DueAt,
    SentAt,
}
