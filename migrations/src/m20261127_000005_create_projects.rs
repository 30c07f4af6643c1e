use sea_orm_migration::prelude::*;

use super::m20261127_000001_create_regions::Regions;
use super::m20261127_000003_create_workflow_versions::WorkflowVersions;
use super::m20261127_000004_create_cohorts::Cohorts;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(
                        ColumnDef::new(Projects::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Projects::RegionCode)
                            .string_len(3)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Projects::WorkflowId).string().not_null())
                    .col(
                        ColumnDef::new(Projects::WorkflowVersion)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Projects::State).string().not_null())
                    .col(
                        ColumnDef::new(Projects::StateEnteredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // The typed facts as a JSON object; the workflow definition gives their types.
                    .col(ColumnDef::new(Projects::Facts).text().not_null())
                    .col(ColumnDef::new(Projects::CohortId).big_integer().null())
                    .col(ColumnDef::new(Projects::Version).big_integer().not_null())
                    // Hash of the newest event, so appending to the chain needs no extra read.
                    .col(
                        ColumnDef::new(Projects::LastEventHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Projects::LastEventSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Projects::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Projects::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Projects::Table, Projects::RegionCode)
                            .to(Regions::Table, Regions::Code),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                Projects::Table,
                                (Projects::WorkflowId, Projects::WorkflowVersion),
                            )
                            .to(
                                WorkflowVersions::Table,
                                (WorkflowVersions::WorkflowId, WorkflowVersions::Version),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Projects::Table, Projects::CohortId)
                            .to(Cohorts::Table, Cohorts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_projects_region_workflow")
                    .table(Projects::Table)
                    .col(Projects::RegionCode)
                    .col(Projects::WorkflowId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Projects::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Projects {
    Table,
    Id,
    RegionCode,
    WorkflowId,
    WorkflowVersion,
    State,
    StateEnteredAt,
    Facts,
    CohortId,
    Version,
    LastEventHash,
    LastEventSeq,
    CreatedAt,
    UpdatedAt,
}
