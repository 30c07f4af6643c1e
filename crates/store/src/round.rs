//! PostgreSQL: the writes of decided transitions of up to [`ROUND_MAX`] projects as one statement whose text
//! never changes. Their rows travel as JSON parameters, one per table, and each write takes the rows of every
//! project at once: PostgreSQL plans and starts each write once per round, where one data-modifying CTE per
//! write and project had it start a plan node for each (the server's CPU per transition's writes halved,
//! measured with `examples/pg_round_forms.py`: BENCHMARKS.md, session 10). The text being fixed, every
//! connection keeps it prepared whatever the round's size.
//!
//! Every write holds only for the projects whose version bump held: a project that moved since its decision
//! writes nothing, and the round's answer lacks its row.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Statement, Value};
use serde_json::{Value as Json, json};

use crate::entities::{events, projects};
use crate::error::StoreResult;
use crate::outbox;
use crate::projects::addressed;

/// The most decided writes one round carries: it bounds the round's statement and the work one failed
/// round must do again.
pub(crate) const ROUND_MAX: usize = 16;

/// A transition's writes as rows, decided once; SQLite writes them as statements of their own
/// (`projects::Writes`), PostgreSQL as a round.
#[derive(Debug)]
pub(crate) struct TransitionRows {
    /// The event, chained to the project's last one (its sequence number and hash go on the project row).
    pub(crate) event: events::Model,
    pub(crate) state: String,
    /// When the decision was taken: the state's entry, the deadlines' setting and clearing, the mails'.
    pub(crate) at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    /// Live deadlines to clear, none of them among those set (no row may change twice in one statement).
    pub(crate) clear: Vec<String>,
    /// Deadlines set (each replaces its key's row whole), with their due times.
    pub(crate) set: Vec<(String, DateTime<Utc>)>,
    pub(crate) mails: Vec<Mail>,
}

/// A mail a transition sends to the accounts that hold some roles on its project's region.
#[derive(Debug)]
pub(crate) struct Mail {
    pub(crate) template: String,
    pub(crate) context: Json,
    pub(crate) roles: Vec<String>,
}

/// Runs the writes of `units` (projects as their decisions read them, with their rows) as one statement;
/// returns the project rows whose bump held, then, when `read_deadlines`, their live deadlines as the writes
/// left them, in no order.
pub(crate) async fn write(
    txn: &DatabaseTransaction,
    units: &[(&projects::Model, &TransitionRows)],
    read_deadlines: bool,
) -> StoreResult<Vec<QueryResult>> {
    debug_assert!(units.len() <= ROUND_MAX, "a round of {} units", units.len());
    let mut rows = txn
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            writes_sql(),
            parameters(units),
        ))
        .await?;
    if read_deadlines && !rows.is_empty() {
        let ids = Json::from(units.iter().map(|(p, _)| p.id).collect::<Vec<_>>());
        rows.extend(
            txn.query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT * FROM deadlines WHERE cleared_at IS NULL AND project_id IN \
                 (SELECT value::bigint FROM json_array_elements_text($1::json))",
                [ids.to_string().into()],
            ))
            .await?,
        );
    }
    Ok(rows)
}

/// The round's text: `$1` the bumps, `$2` the events, `$3` the deadlines cleared, `$4` those set, `$5` the
/// mails, each a JSON array of objects ([`parameters`]).
fn writes_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let bumped = "IN (SELECT id FROM w0)";
        format!(
            "WITH b AS (SELECT * FROM json_to_recordset($1::json) AS b(id bigint, version bigint, \
             seq bigint, hash text, updated_at timestamptz, state text, at timestamptz)), \
             w0 AS (UPDATE projects SET version = b.version + 1, last_event_seq = b.seq, \
             last_event_hash = b.hash, updated_at = b.updated_at, state = b.state, state_entered_at = b.at \
             FROM b WHERE projects.id = b.id AND projects.version = b.version RETURNING projects.*), \
             w1 AS (INSERT INTO events (project_id, seq, at, actor, kind, transition, from_state, \
             to_state, comment, changes, prev_hash, hash) \
             SELECT project_id, seq, at, actor, kind, transition, from_state, to_state, comment, changes, \
             prev_hash, hash FROM json_to_recordset($2::json) AS e(project_id bigint, seq bigint, \
             at timestamptz, actor text, kind text, transition text, from_state text, to_state text, \
             comment text, changes text, prev_hash text, hash text) WHERE project_id {bumped}), \
             w2 AS (UPDATE deadlines SET cleared_at = c.at \
             FROM json_to_recordset($3::json) AS c(project_id bigint, key text, at timestamptz) \
             WHERE deadlines.project_id = c.project_id AND deadlines.key = c.key \
             AND deadlines.cleared_at IS NULL AND c.project_id {bumped}), \
             w3 AS (INSERT INTO deadlines (project_id, key, due_at, set_at, cleared_at, paused_at) \
             SELECT project_id, key, due_at, at, NULL, NULL FROM json_to_recordset($4::json) \
             AS s(project_id bigint, key text, due_at timestamptz, at timestamptz) \
             WHERE project_id {bumped} \
             ON CONFLICT (project_id, key) DO UPDATE SET due_at = excluded.due_at, \
             set_at = excluded.set_at, cleared_at = excluded.cleared_at, paused_at = excluded.paused_at \
             RETURNING id, set_at), \
             w4 AS (INSERT INTO deadline_checks (next_check_at, deadline_id) SELECT set_at, id FROM w3 \
             ON CONFLICT DO NOTHING), \
             w5 AS (INSERT INTO outbox (project_id, event_seq, template, lang, recipients, context, \
             status, attempts, next_attempt_at, created_at) \
             SELECT m.project_id, m.event_seq, m.template, users.lang, {recipients}, m.context, '{pending}', \
             0, m.at, m.at FROM json_to_recordset($5::json) AS m(n bigint, project_id bigint, \
             event_seq bigint, template text, context text, region_code text, council boolean, \
             officer boolean, at timestamptz) \
             JOIN users ON NOT users.disabled AND ((m.council AND users.role = 'council' \
             AND users.region_code = m.region_code) OR (m.officer AND users.role = 'officer')) \
             WHERE m.project_id {bumped} ORDER BY m.n, users.id) \
             SELECT * FROM w0",
            recipients = outbox::recipients_sql(DbBackend::Postgres),
            pending = outbox::PENDING,
        )
    })
}

/// The round's rows as its five JSON parameters.
fn parameters(units: &[(&projects::Model, &TransitionRows)]) -> Vec<Value> {
    let (mut bumps, mut events, mut clears, mut sets, mut mails) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (project, rows) in units {
        let event = &rows.event;
        bumps.push(json!({
            "id": project.id,
            "version": project.version,
            "seq": event.seq,
            "hash": event.hash,
            "updated_at": rows.updated_at,
            "state": rows.state,
            "at": rows.at,
        }));
        events.push(json!(event));
        for key in &rows.clear {
            clears.push(json!({ "project_id": project.id, "key": key, "at": rows.at }));
        }
        for (key, due_at) in &rows.set {
            sets.push(
                json!({ "project_id": project.id, "key": key, "due_at": due_at, "at": rows.at }),
            );
        }
        for mail in &rows.mails {
            let (council, officer) = addressed(&mail.roles);
            mails.push(json!({
                "n": mails.len(),
                "project_id": project.id,
                "event_seq": event.seq,
                "template": mail.template,
                "context": mail.context.to_string(),
                "region_code": project.region_code,
                "council": council,
                "officer": officer,
                "at": rows.at,
            }));
        }
    }
    [bumps, events, clears, sets, mails]
        .into_iter()
        .map(|rows| Json::Array(rows).to_string().into())
        .collect()
}
