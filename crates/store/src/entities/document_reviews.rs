use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "document_reviews")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub document_id: i64,
    pub decision: String,
    pub comment: Option<String>,
    pub reviewer: String,
    pub reviewed_at: DateTimeUtc,
    /// Set on a `correction_requested` review, with its due day.
    #[serde(default)]
    pub correction_kind: Option<String>,
    #[serde(default)]
    pub due_on: Option<Date>,
    /// The stage deadline the correction paused, resumed when the region answers.
    #[serde(default)]
    pub paused_deadline: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
