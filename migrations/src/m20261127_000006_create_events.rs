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
                    .table(Events::Table)
                    .col(
                        ColumnDef::new(Events::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Events::ProjectId).big_integer().not_null())
                    .col(ColumnDef::new(Events::Seq).big_integer().not_null())
                    .col(
                        ColumnDef::new(Events::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Events::Actor).string().not_null())
                    .col(ColumnDef::new(Events::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(Events::Transition).string().null())
                    .col(ColumnDef::new(Events::FromState).string().null())
                    .col(ColumnDef::new(Events::ToState).string().null())
                    .col(ColumnDef::new(Events::Comment).text().null())
                    .col(ColumnDef::new(Events::Changes).text().not_null())
                    .col(ColumnDef::new(Events::PrevHash).string_len(64).not_null())
                    .col(ColumnDef::new(Events::Hash).string_len(64).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Events::Table, Events::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_events_project_seq")
                    .table(Events::Table)
                    .col(Events::ProjectId)
                    .col(Events::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Events {
    Table,
    Id,
    ProjectId,
    Seq,
    At,
    Actor,
    Kind,
    Transition,
    FromState,
    ToState,
    Comment,
    Changes,
    PrevHash,
    Hash,
}
