use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DocumentReviews {
    Table,
    /// `incorrect`, `incomplete` or `outdated`, on a `correction_requested` review.
    CorrectionKind,
    /// The day the correction is due by.
    DueOn,
    /// The stage deadline this correction paused, so the answer resumes it.
    PausedDeadline,
}

#[derive(DeriveIden)]
enum Requirements {
    Table,
    /// The review asking for the correction the requirement waits for.
    CorrectionReviewId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        let columns = [
            (
                DocumentReviews::Table.into_iden(),
                ColumnDef::new(DocumentReviews::CorrectionKind)
                    .string_len(32)
                    .null()
                    .to_owned(),
            ),
            (
                DocumentReviews::Table.into_iden(),
                ColumnDef::new(DocumentReviews::DueOn)
                    .date()
                    .null()
                    .to_owned(),
            ),
            (
                DocumentReviews::Table.into_iden(),
                ColumnDef::new(DocumentReviews::PausedDeadline)
                    .string()
                    .null()
                    .to_owned(),
            ),
            (
                Requirements::Table.into_iden(),
                ColumnDef::new(Requirements::CorrectionReviewId)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (
                DocumentReviews::Table.into_iden(),
                DocumentReviews::CorrectionKind.into_iden(),
            ),
            (
                DocumentReviews::Table.into_iden(),
                DocumentReviews::DueOn.into_iden(),
            ),
            (
                DocumentReviews::Table.into_iden(),
                DocumentReviews::PausedDeadline.into_iden(),
            ),
            (
                Requirements::Table.into_iden(),
                Requirements::CorrectionReviewId.into_iden(),
            ),
        ];
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
