use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "documents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    pub requirement: String,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub uploaded_by: String,
    pub uploaded_at: DateTimeUtc,
    pub expires_on: Option<Date>,
    /// `clean`, `pending` or `infected` (see [`crate::scans`]); exports older than scanning are clean.
    #[serde(default = "clean")]
    pub scan_status: String,
    #[serde(default)]
    pub scan_attempts: i32,
    /// When a scanner may next try: after a failure (its backoff) or a claim (its lease).
    #[serde(default)]
    pub scan_due_at: Option<DateTimeUtc>,
    /// Why the last try failed (the scanner unreachable, …), shown to admins.
    #[serde(default)]
    pub scan_error: Option<String>,
    /// The signature an infected document matched.
    #[serde(default)]
    pub scan_signature: Option<String>,
    #[serde(default)]
    pub scanned_at: Option<DateTimeUtc>,
}

fn clean() -> String {
    "clean".to_owned()
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
