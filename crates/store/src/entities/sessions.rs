use sea_orm::entity::prelude::*;

/// A browser session of the pages. The cookie carries the session id; only its SHA-256 is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    #[sea_orm(unique)]
    pub session_sha256: String,
    /// The synchronizer token every form posted in this session must carry.
    pub csrf_token: String,
    pub created_at: DateTimeUtc,
    /// Moved forward as the session is used; the idle timeout counts from it.
    pub last_seen_at: DateTimeUtc,
    /// The absolute end of the session, however active.
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
