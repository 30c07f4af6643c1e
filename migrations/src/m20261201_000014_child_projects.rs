//! Child projects (a state starting a sub-workflow for the same region) and the signed links through which
//! people without an account, such as InterCERT-FR sponsors, act on them.

use sea_orm_migration::prelude::*;

use super::m20261127_000005_create_projects::Projects;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key: SQLite cannot add one to an existing table; the store writes the column only with
        // the id of the project whose transition started the child, in that transition's transaction.
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .add_column(
                        ColumnDef::new(ParentProject::ParentProjectId)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_projects_parent")
                    .table(Projects::Table)
                    .col(ParentProject::ParentProjectId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Links::Table)
                    .col(
                        ColumnDef::new(Links::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Links::ProjectId).big_integer().not_null())
                    .col(ColumnDef::new(Links::Role).string().not_null())
                    // What the link grants: uploading evidence for this requirement.
                    .col(ColumnDef::new(Links::Requirement).string().not_null())
                    .col(ColumnDef::new(Links::Email).string().not_null())
                    .col(ColumnDef::new(Links::Name).string().not_null())
                    .col(ColumnDef::new(Links::CreatedBy).string().not_null())
                    .col(
                        ColumnDef::new(Links::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Links::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Links::UsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Links::DocumentId).big_integer().null())
                    .col(
                        ColumnDef::new(Links::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Links::RevokedBy).string().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Links::Table, Links::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_links_project")
                    .table(Links::Table)
                    .col(Links::ProjectId)
                    .to_owned(),
            )
            .await?;
        // Secrets every replica shares, created once by whichever replica needs one first.
        manager
            .create_table(
                Table::create()
                    .table(ServiceSecrets::Table)
                    .col(
                        ColumnDef::new(ServiceSecrets::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ServiceSecrets::Value).string().not_null())
                    .col(
                        ColumnDef::new(ServiceSecrets::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ServiceSecrets::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Links::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_projects_parent")
                    .table(Projects::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .drop_column(ParentProject::ParentProjectId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ParentProject {
    ParentProjectId,
}

#[derive(DeriveIden)]
pub enum Links {
    Table,
    Id,
    ProjectId,
    Role,
    Requirement,
    Email,
    Name,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    DocumentId,
    RevokedAt,
    RevokedBy,
}

#[derive(DeriveIden)]
pub enum ServiceSecrets {
    Table,
    Name,
    Value,
    CreatedAt,
}
