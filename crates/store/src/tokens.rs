//! Bearer tokens of the API. The caller hashes the token; only its SHA-256 reaches the database, so a leaked
//! copy of the table cannot be replayed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait, Set,
};

use crate::audit::normalize;
use crate::entities::{api_tokens, users};
use crate::error::{StoreError, StoreResult};
use crate::id_lists::in_texts;
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

/// [`authenticate`] of several tokens, in one statement: what the store runs for the requests that arrive
/// at the same time ([`crate::Store::authenticate`]). A token that authenticates no one is left out.
pub async fn authenticate_many(
    db: &impl ConnectionTrait,
    tokens_sha256: Vec<String>,
    now: DateTime<Utc>,
) -> StoreResult<HashMap<String, StoreResult<users::Model>>> {
    if let [one] = &tokens_sha256[..] {
        // Alone, the statement of one token, prepared once for every request.
        return Ok(authenticate(db, one, now)
            .await?
            .map(|user| (one.clone(), Ok(user)))
            .into_iter()
            .collect());
    }
    let backend = db.get_database_backend();
    let live = api_tokens::Entity::find()
        .filter(in_texts(
            backend,
            api_tokens::Column::TokenSha256,
            &tokens_sha256,
        ))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .filter(api_tokens::Column::ExpiresAt.gt(normalize(now)))
        .find_also_related(users::Entity)
        .filter(users::Column::Disabled.eq(false))
        .all(db)
        .await?;
    Ok(live
        .into_iter()
        .filter_map(|(token, user)| Some((token.token_sha256, Ok(user?))))
        .collect())
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
