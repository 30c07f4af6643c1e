use sea_orm::entity::prelude::*;

/// A signed link granting one person without an account one action on a project (uploading the evidence
/// of one requirement), once, until it expires. The token itself is never stored: it is recomputed from
/// the id and expiry with the shared link secret.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "links")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    /// The workflow role the holder acts in (held by `link` in the workflow).
    pub role: String,
    pub requirement: String,
    pub email: String,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    /// The document uploaded through the link.
    pub document_id: Option<i64>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
