//! What an admin does to an existing account. Each change that takes access away also ends the account's
//! browser sessions and revokes its API tokens, in the same transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use crate::entities::users;
use crate::error::{StoreError, StoreResult};
use crate::{sessions, tokens};

/// Disables (or enables again) an account; disabling ends its sessions and revokes its tokens.
pub async fn set_disabled(
    db: &(impl TransactionTrait + Sync),
    user_id: i64,
    disabled: bool,
    now: DateTime<Utc>,
) -> StoreResult<users::Model> {
    let txn = db.begin().await?;
    let updated = users::Entity::update_many()
        .col_expr(users::Column::Disabled, Expr::value(disabled))
        .filter(users::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(StoreError::Invalid(format!("account {user_id} not found")));
    }
    if disabled {
        sessions::delete_all_of(&txn, user_id).await?;
        tokens::revoke_all_of(&txn, user_id, now).await?;
    }
    let user = find(&txn, user_id).await?;
    txn.commit().await?;
    Ok(user)
}

/// Replaces an account's password hash; every session and token of the account ends with the old password.
pub async fn set_password_hash(
    db: &(impl TransactionTrait + Sync),
    user_id: i64,
    password_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<users::Model> {
    let txn = db.begin().await?;
    let updated = users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
        .filter(users::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(StoreError::Invalid(format!("account {user_id} not found")));
    }
    sessions::delete_all_of(&txn, user_id).await?;
    tokens::revoke_all_of(&txn, user_id, now).await?;
    let user = find(&txn, user_id).await?;
    txn.commit().await?;
    Ok(user)
}

pub async fn find(db: &impl sea_orm::ConnectionTrait, user_id: i64) -> StoreResult<users::Model> {
    users::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("account {user_id} not found")))
}
