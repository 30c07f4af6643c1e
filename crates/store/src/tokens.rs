//! Bearer tokens of the API. The caller hashes the token; only its SHA-256 reaches the database, so a leaked
//! copy of the table cannot be replayed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait, Set,
};

use crate::audit::normalize;
use crate::entities::{api_tokens, users};
use crate::error::{StoreError, StoreResult};
use crate::prepared::Prepared;

/// Records a token issued to `user_id`, valid until `expires_at`.
pub async fn issue(
    db: &impl ConnectionTrait,
    user_id: i64,
    token_sha256: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<api_tokens::Model> {
    let inserted = api_tokens::Entity::insert(api_tokens::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        token_sha256: Set(token_sha256.to_owned()),
        created_at: Set(normalize(now)),
        expires_at: Set(normalize(expires_at)),
        revoked_at: Set(None),
    })
    .exec(db)
    .await?;
    api_tokens::Entity::find_by_id(inserted.last_insert_id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt("token vanished after insert".into()))
}

/// The account a token authenticates, if the token is known, neither revoked nor expired, and the account
/// is not disabled. One indexed statement, run for every API request: a revocation holds from the next one.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    token_sha256: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<users::Model>> {
    static TEXT: Prepared = Prepared::new();
    let now = normalize(now);
    let backend = db.get_database_backend();
    let values = vec![token_sha256.into(), now.into(), false.into()];
    let statement = TEXT.statement(backend, values, |backend| {
        let live_token = Query::select()
            .column(api_tokens::Column::UserId)
            .from(api_tokens::Entity)
            .and_where(api_tokens::Column::TokenSha256.eq(token_sha256))
            .and_where(api_tokens::Column::RevokedAt.is_null())
            .and_where(api_tokens::Column::ExpiresAt.gt(now))
            .to_owned();
        users::Entity::find()
            .filter(users::Column::Id.in_subquery(live_token))
            .filter(users::Column::Disabled.eq(false))
            .build(backend)
    });
    Ok(users::Entity::find()
        .from_raw_sql(statement)
        .one(db)
        .await?)
}

/// Revokes one token; false when it was unknown or revoked already.
pub async fn revoke(
    db: &impl ConnectionTrait,
    token_sha256: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let result = api_tokens::Entity::update_many()
        .col_expr(
            api_tokens::Column::RevokedAt,
            Expr::value(Some(normalize(now))),
        )
        .filter(api_tokens::Column::TokenSha256.eq(token_sha256))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Revokes every token of an account (password changed, account disabled); returns how many.
pub async fn revoke_all_of(
    db: &impl ConnectionTrait,
    user_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let result = api_tokens::Entity::update_many()
        .col_expr(
            api_tokens::Column::RevokedAt,
            Expr::value(Some(normalize(now))),
        )
        .filter(api_tokens::Column::UserId.eq(user_id))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
