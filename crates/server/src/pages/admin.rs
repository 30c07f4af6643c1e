//! Administration (admins only): accounts (create, disable, enable, reset the password) and the email
//! outbox (pending, sent, dead; retry a dead one).

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use chrono::Utc;
use incubator_store::users::{self as users_repo, NewUser};
use incubator_store::{account_admin, delivery, outbox, regions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::session::{Submitted, Viewer};
use super::signin::Nothing;
use super::{Frame, Lang, PageError, error_key, query_param, render, see_other};
use crate::access::Role;
use crate::app::AppState;
use crate::auth::{hash_password, new_token};
use crate::error::ApiError;

/// Rows of the outbox shown at once.
const OUTBOX_PAGE: u64 = 100;
/// Characters of a generated password (hexadecimal: 80 bits).
const PASSWORD_CHARS: usize = 20;

#[derive(Serialize)]
struct AccountsPage {
    accounts: Vec<AccountRow>,
    regions: Vec<RegionChoice>,
    /// A password just set, shown this once.
    secret: Option<Secret>,
}

#[derive(Serialize)]
struct Secret {
    email: String,
    password: String,
}

#[derive(Serialize)]
struct AccountRow {
    id: i64,
    email: String,
    name: String,
    role: String,
    region: Option<String>,
    lang: String,
    disabled: bool,
    is_self: bool,
}

#[derive(Serialize)]
struct RegionChoice {
    code: String,
    name: String,
}

fn admin_only(viewer: &Viewer) -> Result<(), PageError> {
    viewer
        .caller
        .require(&[Role::Admin], "administration")
        .map_err(PageError::from)
}

async fn accounts_page(
    state: &AppState,
    viewer: &Viewer,
    lang: Lang,
    uri: &Uri,
    secret: Option<Secret>,
) -> Result<Response, PageError> {
    let db = state.store().db();
    let regions = regions::list(db).await?;
    let name_of = |code: &str| {
        regions
            .iter()
            .find(|r| r.code == code)
            .map_or_else(|| code.to_owned(), |r| r.name.clone())
    };
    let accounts = users_repo::list(db)
        .await?
        .into_iter()
        .map(|u| AccountRow {
            id: u.id,
            region: u.region_code.as_deref().map(name_of),
            is_self: u.id == viewer.caller.user_id,
            email: u.email,
            name: u.name,
            role: u.role,
            lang: u.lang,
            disabled: u.disabled,
        })
        .collect();
    let page = AccountsPage {
        accounts,
        regions: regions
            .iter()
            .map(|r| RegionChoice {
                code: r.code.clone(),
                name: r.name.clone(),
            })
            .collect(),
        secret,
    };
    let frame = Frame::signed_in(lang, uri, viewer, "accounts");
    render(state, "accounts", &frame, &page)
}

pub async fn accounts(
    State(state): State<AppState>,
    viewer: Viewer,
    lang: Lang,
    uri: Uri,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    accounts_page(&state, &viewer, lang, &uri, None).await
}

fn generated_password() -> Result<String, ApiError> {
    let mut password = new_token().map_err(ApiError::internal)?;
    password.truncate(PASSWORD_CHARS);
    Ok(password)
}

async fn hashed(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

#[derive(Debug, Deserialize)]
pub struct NewAccount {
    email: String,
    name: String,
    role: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    lang: String,
}

/// Creates an account with a generated password, shown once on the answer.
pub async fn create_account(
    State(state): State<AppState>,
    lang: Lang,
    uri: Uri,
    submitted: Submitted<NewAccount>,
) -> Result<Response, PageError> {
    admin_only(&submitted.viewer)?;
    let form = submitted.form;
    let result = async {
        if !form.email.contains('@') || form.name.trim().is_empty() {
            return Err(ApiError::invalid("an account needs an email and a name"));
        }
        let password = generated_password()?;
        let user = users_repo::create(
            state.store().db(),
            NewUser {
                email: form.email.trim().to_owned(),
                name: form.name.trim().to_owned(),
                role: form.role.clone(),
                region_code: Some(form.region.trim().to_owned()).filter(|r| !r.is_empty()),
                password_hash: hashed(password.clone()).await?,
                lang: Lang::parse(&form.lang)
                    .unwrap_or(Lang::Fr)
                    .code()
                    .to_owned(),
            },
            Utc::now(),
        )
        .await?;
        tracing::info!(
            admin = submitted.viewer.caller.user_id,
            account = user.id,
            "account created"
        );
        Ok(Secret {
            email: user.email,
            password,
        })
    }
    .await;
    match result {
        Ok(secret) => accounts_page(&state, &submitted.viewer, lang, &uri, Some(secret)).await,
        Err(error) => match error_key(&error) {
            Some(key) => Ok(see_other("/admin/accounts", key, false)),
            None => Err(error.into()),
        },
    }
}

async fn set_disabled(
    state: &AppState,
    submitted: &Submitted<Nothing>,
    id: i64,
    disabled: bool,
) -> Result<Response, PageError> {
    admin_only(&submitted.viewer)?;
    if id == submitted.viewer.caller.user_id {
        return Ok(see_other("/admin/accounts", "forbidden", false));
    }
    account_admin::set_disabled(state.store().db(), id, disabled, Utc::now())
        .await
        .map_err(|_| ApiError::NotFound(format!("account {id} not found")))?;
    tracing::info!(
        admin = submitted.viewer.caller.user_id,
        account = id,
        disabled,
        "account access changed"
    );
    let notice = if disabled {
        "account_disabled"
    } else {
        "account_enabled"
    };
    Ok(see_other("/admin/accounts", notice, true))
}

/// Disables an account: its sessions end and its API tokens are revoked at once.
pub async fn disable(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    submitted: Submitted<Nothing>,
) -> Result<Response, PageError> {
    set_disabled(&state, &submitted, id, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    submitted: Submitted<Nothing>,
) -> Result<Response, PageError> {
    set_disabled(&state, &submitted, id, false).await
}

/// Gives an account a new generated password, shown once; its sessions and tokens end.
pub async fn reset_password(
    State(state): State<AppState>,
    lang: Lang,
    uri: Uri,
    Path(id): Path<i64>,
    submitted: Submitted<Nothing>,
) -> Result<Response, PageError> {
    admin_only(&submitted.viewer)?;
    let password = generated_password()?;
    let hash = hashed(password.clone()).await?;
    let user = account_admin::set_password_hash(state.store().db(), id, &hash, Utc::now())
        .await
        .map_err(|_| ApiError::NotFound(format!("account {id} not found")))?;
    tracing::info!(
        admin = submitted.viewer.caller.user_id,
        account = id,
        "password reset"
    );
    let secret = Secret {
        email: user.email,
        password,
    };
    let uri: Uri = format!("{}?notice=password_reset", uri.path())
        .parse()
        .unwrap_or(uri);
    accounts_page(&state, &submitted.viewer, lang, &uri, Some(secret)).await
}

#[derive(Serialize)]
struct OutboxPage {
    status: Option<String>,
    filters: Vec<Filter>,
    rows: Vec<OutboxRow>,
}

#[derive(Serialize)]
struct Filter {
    status: String,
    count: u64,
    current: bool,
}

#[derive(Serialize)]
struct OutboxRow {
    id: i64,
    created: String,
    template: String,
    lang: String,
    recipients: String,
    status: String,
    attempts: i32,
    next_attempt: String,
    last_error: Option<String>,
    sent: Option<String>,
    dead: bool,
}

const STATUSES: [&str; 3] = [outbox::PENDING, delivery::SENT, delivery::DEAD];

pub async fn outbox(
    State(state): State<AppState>,
    viewer: Viewer,
    lang: Lang,
    uri: Uri,
) -> Result<Response, PageError> {
    admin_only(&viewer)?;
    let db = state.store().db();
    let status = query_param(&uri, "status").filter(|s| STATUSES.contains(&s.as_str()));
    let mut filters = Vec::new();
    for s in STATUSES {
        filters.push(Filter {
            status: s.to_owned(),
            count: delivery::count(db, s).await?,
            current: status.as_deref() == Some(s),
        });
    }
    let time = |at: chrono::DateTime<Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
    let rows = delivery::list(db, status.as_deref(), None, OUTBOX_PAGE)
        .await?
        .into_iter()
        .map(|row| {
            let recipients: Value = serde_json::from_str(&row.recipients).unwrap_or(Value::Null);
            let emails: Vec<&str> = recipients
                .as_array()
                .map(|a| a.iter().filter_map(|r| r["email"].as_str()).collect())
                .unwrap_or_default();
            OutboxRow {
                id: row.id,
                created: time(row.created_at),
                template: row.template,
                lang: row.lang,
                recipients: emails.join(", "),
                dead: row.status == delivery::DEAD,
                status: row.status,
                attempts: row.attempts,
                next_attempt: time(row.next_attempt_at),
                last_error: row.last_error,
                sent: row.sent_at.map(time),
            }
        })
        .collect();
    let page = OutboxPage {
        status,
        filters,
        rows,
    };
    let frame = Frame::signed_in(lang, &uri, &viewer, "outbox");
    render(&state, "outbox", &frame, &page)
}

/// Queues a dead mail again, due now, with a fresh count of attempts.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    submitted: Submitted<Nothing>,
) -> Result<Response, PageError> {
    admin_only(&submitted.viewer)?;
    let retried = delivery::retry(state.store().db(), id, Utc::now()).await?;
    tracing::info!(
        admin = submitted.viewer.caller.user_id,
        outbox_id = id,
        retried,
        "outbox retry"
    );
    Ok(if retried {
        see_other("/admin/outbox?status=dead", "mail_retried", true)
    } else {
        see_other("/admin/outbox?status=dead", "not_retryable", false)
    })
}
