use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub region_code: String,
    pub workflow_id: String,
    pub workflow_version: i32,
    pub state: String,
    pub state_entered_at: DateTimeUtc,
    /// JSON object of typed facts.
    pub facts: String,
    pub cohort_id: Option<i64>,
    pub version: i64,
    pub last_event_hash: String,
    pub last_event_seq: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The project whose transition started this one as its child workflow; exports made before child
    /// projects existed have none.
    #[serde(default)]
    pub parent_project_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::requirements::Entity")]
    Requirements,
}

impl Related<super::requirements::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Requirements.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
