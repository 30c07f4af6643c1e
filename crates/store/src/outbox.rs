//! The email outbox: rows written in the transaction of the event that causes them; a worker delivers.
//!
//! One row is one recipient. A server that refuses one address (a 5xx at `RCPT TO`) then kills that row
//! only: the others are delivered, retried and given up on each on its own, and the admins' outbox view says
//! which address failed. A row's `recipients` column stays a JSON list (of one) so that rows written before
//! the fan-out are still delivered as they were.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, Statement, Value};
use serde_json::{Value as Json, json};

use crate::audit::normalize;
use crate::entities::{outbox, projects, users};
use crate::error::StoreResult;
use crate::prepared::Prepared;

pub const PENDING: &str = "pending";

/// One outbox row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow<'a> {
    pub project_id: Option<i64>,
    pub event_seq: Option<i64>,
    pub template: &'a str,
    pub addressee: &'a Addressee,
    /// The template's context as JSON text.
    pub context: &'a str,
}

/// One recipient as an outbox row names it: the language their mail is written in and the row's
/// `recipients` JSON (`[{email, name}]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    pub lang: String,
    pub recipients: String,
}

/// The accounts' addressees, in the order of the accounts.
pub(crate) fn addressees(users: &[users::Model]) -> Vec<Addressee> {
    users
        .iter()
        .map(|user| Addressee {
            lang: user.lang.clone(),
            recipients: json!([{ "email": user.email, "name": user.name }]).to_string(),
        })
        .collect()
}

/// Queues one row per account that holds one of the given roles, in one statement that reads the accounts
/// itself (a transition's mail costs no round trip of its own). Each row's `recipients` is written as
/// [`addressees`] writes it.
pub async fn enqueue(
    txn: &impl ConnectionTrait,
    mail: RoleMail<'_>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if let Some(insert) = enqueue_statement(txn.get_database_backend(), mail, now) {
        txn.execute(insert).await?;
    }
    Ok(())
}

/// A mail for the accounts that hold some roles on a project's region.
#[derive(Debug, Clone, Copy)]
pub struct RoleMail<'a> {
    pub project: &'a projects::Model,
    /// The event that sent it, if one.
    pub event_seq: Option<i64>,
    pub template: &'a str,
    pub roles: &'a [String],
    pub context: &'a Json,
}

/// [`enqueue`]'s insert, for a caller that sends it with other writes; none when the roles name nobody.
pub(crate) fn enqueue_statement(
    backend: DbBackend,
    mail: RoleMail<'_>,
    now: DateTime<Utc>,
) -> Option<Statement> {
    let RoleMail {
        project,
        event_seq,
        template,
        roles,
        context,
    } = mail;
    let audience = crate::projects::audience(&project.region_code, roles)?;
    // One text per audience's shape (council accounts, officers or both) and backend.
    static INSERTS: [Prepared; 3] = [Prepared::new(), Prepared::new(), Prepared::new()];
    let now = normalize(now);
    let context = context.to_string();
    let mut values: Vec<Value> = vec![
        project.id.into(),
        event_seq.into(),
        template.into(),
        context.clone().into(),
        PENDING.into(),
        0.into(),
        now.into(),
        now.into(),
    ];
    values.extend(audience.values);
    values.push(false.into());
    let insert = INSERTS[audience.shape].statement(backend, values, |backend| {
        insert_for(
            backend,
            project,
            event_seq,
            template,
            &audience.condition,
            &context,
            now,
        )
    });
    Some(insert)
}

/// An account's row's `recipients`, written by the database as [`addressees`] writes it, from the columns
/// of `users`.
pub(crate) fn recipients_sql(backend: DbBackend) -> String {
    // Each string quoted by the database's JSON function, as serde_json quotes it.
    let quote = match backend {
        DbBackend::Postgres => "to_json",
        _ => "json_quote",
    };
    let recipients = format!(
        r#"'[{{"email":' || {quote}("users"."email") || ',"name":' || {quote}("users"."name") || '}}]'"#
    );
    match backend {
        DbBackend::Postgres => format!("({recipients})::text"),
        _ => recipients,
    }
}

/// [`enqueue_statement`]'s insert, written anew.
fn insert_for(
    backend: DbBackend,
    project: &projects::Model,
    event_seq: Option<i64>,
    template: &str,
    audience: &sea_orm::Condition,
    context: &str,
    now: DateTime<Utc>,
) -> Statement {
    let accounts = Query::select()
        .expr(Expr::val(project.id))
        .expr(Expr::val(event_seq))
        .expr(Expr::val(template))
        .column((users::Entity, users::Column::Lang))
        .expr(Expr::cust(recipients_sql(backend)))
        .expr(Expr::val(context))
        .expr(Expr::val(PENDING))
        .expr(Expr::val(0))
        .expr(Expr::val(now))
        .expr(Expr::val(now))
        .from(users::Entity)
        .cond_where(audience.clone())
        .and_where(users::Column::Disabled.eq(false))
        .order_by((users::Entity, users::Column::Id), Order::Asc)
        .to_owned();
    let insert = Query::insert()
        .into_table(outbox::Entity)
        .columns([
            outbox::Column::ProjectId,
            outbox::Column::EventSeq,
            outbox::Column::Template,
            outbox::Column::Lang,
            outbox::Column::Recipients,
            outbox::Column::Context,
            outbox::Column::Status,
            outbox::Column::Attempts,
            outbox::Column::NextAttemptAt,
            outbox::Column::CreatedAt,
        ])
        .select_from(accounts)
        // Only a select whose columns differ in number from the insert's is refused: these are fixed.
        .expect("the select gives every column of the insert")
        .to_owned();
    backend.build(&insert)
}

/// Writes pending rows, due at `now`, in one statement whose text never changes: the rows travel as one
/// JSON parameter, so the statement is prepared once per connection and no per-row values are bound.
pub async fn insert(
    db: &impl ConnectionTrait,
    rows: &[NewRow<'_>],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO outbox (project_id, event_seq, template, lang, recipients, context, status, \
             attempts, next_attempt_at, created_at) \
             SELECT (r->>0)::bigint, (r->>1)::bigint, r->>2, r->>3, r->>4, r->>5, $1, 0, $2, $2 \
             FROM json_array_elements($3::json) AS r"
        }
        _ => {
            "INSERT INTO outbox (project_id, event_seq, template, lang, recipients, context, status, \
             attempts, next_attempt_at, created_at) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
             ?1, 0, ?2, ?2 FROM json_each(?3)"
        }
    };
    let encoded = Json::Array(
        rows.iter()
            .map(|row| {
                json!([
                    row.project_id,
                    row.event_seq,
                    row.template,
                    row.addressee.lang,
                    row.addressee.recipients,
                    row.context
                ])
            })
            .collect(),
    )
    .to_string();
    let values: Vec<Value> = vec![PENDING.into(), normalize(now).into(), encoded.into()];
    db.execute(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}
