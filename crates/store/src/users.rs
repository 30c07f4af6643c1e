//! Accounts. Passwords arrive already hashed: hashing belongs to the authentication layer.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::Expr,
};

use crate::audit::normalize;
use crate::entities::{regions, users};
use crate::error::{StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: String,
    pub region_code: Option<String>,
    pub password_hash: String,
    pub lang: String,
}

pub const ROLES: [&str; 3] = ["officer", "council", "admin"];

pub async fn create(
    db: &impl ConnectionTrait,
    user: NewUser,
    now: DateTime<Utc>,
) -> StoreResult<users::Model> {
    if !ROLES.contains(&user.role.as_str()) {
        return Err(StoreError::Invalid(format!(
            "role `{}` is not one of {}",
            user.role,
            ROLES.join(", ")
        )));
    }
    match (&user.region_code, user.role.as_str()) {
        (None, "council") => {
            return Err(StoreError::Invalid(
                "a council account needs its region (--region)".into(),
            ));
        }
        (Some(_), "officer" | "admin") => {
            return Err(StoreError::Invalid(format!(
                "an {} account sees every region: give no region",
                user.role
            )));
        }
        (Some(code), _)
            if regions::Entity::find_by_id(code.clone())
                .one(db)
                .await?
                .is_none() =>
        {
            return Err(StoreError::UnknownRegion(code.clone()));
        }
        _ => {}
    }
    let email = user.email.trim().to_lowercase();
    if find_by_email(db, &email).await?.is_some() {
        return Err(StoreError::Invalid(format!(
            "an account with the email {email} exists already"
        )));
    }
    let inserted = users::Entity::insert(users::ActiveModel {
        id: NotSet,
        email: Set(email),
        name: Set(user.name),
        role: Set(user.role),
        region_code: Set(user.region_code),
        password_hash: Set(user.password_hash),
        lang: Set(user.lang),
        disabled: Set(false),
        created_at: Set(normalize(now)),
    })
    .exec(db)
    .await?;
    users::Entity::find_by_id(inserted.last_insert_id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt("account vanished after insert".into()))
}

pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> StoreResult<Option<users::Model>> {
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email.trim().to_lowercase()))
        .one(db)
        .await?)
}

/// Replaces a password hash made with weaker parameters by one of the current strength, at sign-in: only if
/// the stored hash is still `old` (a password changed meanwhile wins), and sessions and tokens stay, since
/// the password itself did not change. Whether it was replaced.
pub async fn upgrade_password_hash(
    db: &impl ConnectionTrait,
    user_id: i64,
    old: &str,
    new: &str,
) -> StoreResult<bool> {
    let updated = users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(new))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::PasswordHash.eq(old))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

pub async fn list(db: &impl ConnectionTrait) -> StoreResult<Vec<users::Model>> {
    Ok(users::Entity::find()
        .order_by_asc(users::Column::Id)
        .all(db)
        .await?)
}
