//! Antivirus scan status of each document: `clean` (served), `pending` (waiting for the scanner) or
//! `infected` (quarantined, never served). Documents stored before scanning existed are clean, as they were
//! served until now.

use sea_orm_migration::prelude::*;

use super::m20261127_000007_create_documents::Documents;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        let columns = [
            ColumnDef::new(DocumentScan::ScanStatus)
                .string_len(16)
                .not_null()
                .default("clean")
                .to_owned(),
            ColumnDef::new(DocumentScan::ScanAttempts)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            // When a worker may next try: after a failure (backoff) or after a claim (its lease).
            ColumnDef::new(DocumentScan::ScanDueAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(DocumentScan::ScanError)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(DocumentScan::ScanSignature)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(DocumentScan::ScannedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Documents::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_documents_scan_status")
                    .table(Documents::Table)
                    .col(DocumentScan::ScanStatus)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_documents_scan_status")
                    .table(Documents::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            DocumentScan::ScannedAt,
            DocumentScan::ScanSignature,
            DocumentScan::ScanError,
            DocumentScan::ScanDueAt,
            DocumentScan::ScanAttempts,
            DocumentScan::ScanStatus,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Documents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum DocumentScan {
    ScanStatus,
    ScanAttempts,
    ScanDueAt,
    ScanError,
    ScanSignature,
    ScannedAt,
}
