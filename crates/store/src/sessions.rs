//! Browser sessions of the pages. The caller draws the session id and hashes it; only the SHA-256 reaches
//! the database. A session ends at the first of: sign-out, its idle timeout, its absolute timeout, or its
//! account being disabled or its password reset.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::audit::normalize;
use crate::entities::{sessions, users};
use crate::error::{StoreError, StoreResult};

/// Records a new session of `user_id`, ending at `expires_at` at the latest.
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: i64,
    session_sha256: &str,
    csrf_token: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<sessions::Model> {
    let now = normalize(now);
    let inserted = sessions::Entity::insert(sessions::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        session_sha256: Set(session_sha256.to_owned()),
        csrf_token: Set(csrf_token.to_owned()),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(normalize(expires_at)),
    })
    .exec(db)
    .await?;
    sessions::Entity::find_by_id(inserted.last_insert_id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt("session vanished after insert".into()))
}

/// The session and its account, if the session is known, seen within `idle` and not past its absolute end,
/// and the account is not disabled.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    session_sha256: &str,
    now: DateTime<Utc>,
    idle: Duration,
) -> StoreResult<Option<(sessions::Model, users::Model)>> {
    let now = normalize(now);
    let Some(session) = sessions::Entity::find()
        .filter(sessions::Column::SessionSha256.eq(session_sha256))
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(sessions::Column::LastSeenAt.gt(now - idle))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let user = users::Entity::find_by_id(session.user_id).one(db).await?;
    Ok(user.filter(|u| !u.disabled).map(|u| (session, u)))
}

/// Moves the idle timeout forward.
pub async fn touch(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::LastSeenAt, Expr::value(normalize(now)))
        .filter(sessions::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends one session (sign-out); false when it was unknown.
pub async fn delete(db: &impl ConnectionTrait, session_sha256: &str) -> StoreResult<bool> {
    let result = sessions::Entity::delete_many()
        .filter(sessions::Column::SessionSha256.eq(session_sha256))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Ends every session of an account; returns how many.
pub async fn delete_all_of(db: &impl ConnectionTrait, user_id: i64) -> StoreResult<u64> {
    let result = sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Forgets sessions that can no longer be used; returns how many.
pub async fn purge_expired(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    idle: Duration,
) -> StoreResult<u64> {
    let now = normalize(now);
    let result = sessions::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(sessions::Column::ExpiresAt.lte(now))
                .add(sessions::Column::LastSeenAt.lte(now - idle)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
