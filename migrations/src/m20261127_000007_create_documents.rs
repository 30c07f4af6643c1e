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
                    .table(Documents::Table)
                    .col(
                        ColumnDef::new(Documents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Documents::ProjectId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Documents::Requirement).string().not_null())
                    // Shown to people only; never used as a path (the bytes live under their SHA-256).
                    .col(ColumnDef::new(Documents::Filename).string().not_null())
                    .col(ColumnDef::new(Documents::MediaType).string().not_null())
                    .col(ColumnDef::new(Documents::Size).big_integer().not_null())
                    .col(ColumnDef::new(Documents::Sha256).string_len(64).not_null())
                    .col(ColumnDef::new(Documents::UploadedBy).string().not_null())
                    .col(
                        ColumnDef::new(Documents::UploadedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Documents::ExpiresOn).date().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Documents::Table, Documents::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_documents_project_requirement")
                    .table(Documents::Table)
                    .col(Documents::ProjectId)
                    .col(Documents::Requirement)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DocumentReviews::Table)
                    .col(
                        ColumnDef::new(DocumentReviews::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DocumentReviews::DocumentId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DocumentReviews::Decision)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(DocumentReviews::Comment).text().null())
                    .col(
                        ColumnDef::new(DocumentReviews::Reviewer)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DocumentReviews::ReviewedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DocumentReviews::Table, DocumentReviews::DocumentId)
                            .to(Documents::Table, Documents::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_document_reviews_document")
                    .table(DocumentReviews::Table)
                    .col(DocumentReviews::DocumentId)
                    .to_owned(),
            )
            .await?;
        // The derived status of each requirement, kept beside the documents so a transition reads one row
        // per requirement instead of replaying every review.
        manager
            .create_table(
                Table::create()
                    .table(Requirements::Table)
                    .col(
                        ColumnDef::new(Requirements::ProjectId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Requirements::Key).string().not_null())
                    .col(
                        ColumnDef::new(Requirements::Status)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Requirements::AcceptedDocumentId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Requirements::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(Requirements::ProjectId)
                            .col(Requirements::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Requirements::Table, Requirements::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Requirements::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DocumentReviews::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Documents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Documents {
    Table,
    Id,
    ProjectId,
    Requirement,
    Filename,
    MediaType,
    Size,
    Sha256,
    UploadedBy,
    UploadedAt,
    ExpiresOn,
}

#[derive(DeriveIden)]
pub enum DocumentReviews {
    Table,
    Id,
    DocumentId,
    Decision,
    Comment,
    Reviewer,
    ReviewedAt,
}

#[derive(DeriveIden)]
pub enum Requirements {
    Table,
    ProjectId,
    Key,
    Status,
    AcceptedDocumentId,
    UpdatedAt,
}
