//! What the scheduler reads and writes: deadlines due for a look, the unique keys of reminders sent, the
//! reminder mails queued with them, and when to look at each deadline next. The plan itself (which step is
//! due when) is the engine's; the pass that ties both together is the mailer's.
//!
//! Every function works on a page of rows in a few statements, whatever the page's size, so that a pass
//! over a million deadlines costs what its due rows cost. Their SQL text does not depend on the page
//! either (lists travel as one JSON parameter, per-row statements are the same text each time): sqlx
//! prepares each distinct text anew, and a page-sized statement would be prepared once per page.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Statement,
    Value,
};
use serde_json::Value as Json;

use crate::audit::normalize;
use crate::entities::reminders_sent;
use crate::error::{StoreError, StoreResult};
use crate::outbox::{self, Addressee, NewRow};

/// A live deadline whose `next_check_at` has come, with what the scheduler needs of its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDeadline {
    pub id: i64,
    pub project_id: i64,
    pub key: String,
    pub due_at: DateTime<Utc>,
    pub next_check_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub region_code: String,
    pub workflow_id: String,
    pub workflow_version: i32,
    pub state: String,
}

/// Where a page of due deadlines ended: the next page starts after it.
pub type PageCursor = (DateTime<Utc>, i64);

/// Up to `limit` live deadlines with `next_check_at <= now`, in `(next_check_at, id)` order after `after`,
/// through the `next_check_at` index. With `lock` on PostgreSQL the rows are locked for the caller's
/// transaction and rows another replica holds are skipped, so replicas share the work instead of
/// repeating it (the unique key of `reminders_sent` is what guarantees once, not the lock).
pub async fn due_deadlines(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after: Option<PageCursor>,
    limit: u64,
    lock: bool,
) -> StoreResult<Vec<DueDeadline>> {
    let backend = db.get_database_backend();
    let (p, lock_clause) = match backend {
        DbBackend::Postgres => (
            ["$1", "$2", "$3", "$4", "$5"],
            if lock { " FOR UPDATE SKIP LOCKED" } else { "" },
        ),
        _ => (["?", "?", "?", "?", "?"], ""),
    };
    let (cursor_at, cursor_id) = after.unwrap_or((DateTime::<Utc>::UNIX_EPOCH, i64::MIN));
    // Deadlines alone, so that the plan is the `next_check_at` index whatever the planner thinks of the join;
    // their projects are read by primary key below.
    let sql = format!(
        "SELECT id, project_id, key, due_at, next_check_at, paused_at FROM deadlines \
         WHERE next_check_at <= {} AND cleared_at IS NULL \
         AND (next_check_at > {} OR (next_check_at = {} AND id > {})) \
         ORDER BY next_check_at, id LIMIT {}{lock_clause}",
        p[0], p[1], p[2], p[3], p[4]
    );
    let values: Vec<Value> = vec![
        normalize(now).into(),
        normalize(cursor_at).into(),
        normalize(cursor_at).into(),
        cursor_id.into(),
        i64::try_from(limit).unwrap_or(i64::MAX).into(),
    ];
    let rows = DueRow::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    let mut ids: Vec<i64> = rows.iter().map(|r| r.project_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let sql = format!(
        "SELECT id, region_code, workflow_id, workflow_version, state FROM projects WHERE id {}",
        in_id_list(backend, 1)
    );
    let by_id: HashMap<i64, ProjectPart> = ProjectPart::find_by_statement(
        Statement::from_sql_and_values(backend, sql, [id_list(&ids)]),
    )
    .all(db)
    .await?
    .into_iter()
    .map(|project| (project.id, project))
    .collect();
    rows.into_iter()
        .map(|row| {
            let project = by_id.get(&row.project_id).ok_or_else(|| {
                StoreError::Corrupt(format!("deadline {} of a missing project", row.id))
            })?;
            Ok(DueDeadline {
                id: row.id,
                project_id: row.project_id,
                key: row.key,
                due_at: row.due_at,
                next_check_at: row.next_check_at,
                paused_at: row.paused_at,
                region_code: project.region_code.clone(),
                workflow_id: project.workflow_id.clone(),
                workflow_version: project.workflow_version,
                state: project.state.clone(),
            })
        })
        .collect()
}

#[derive(Debug, FromQueryResult)]
struct DueRow {
    id: i64,
    project_id: i64,
    key: String,
    due_at: DateTime<Utc>,
    next_check_at: DateTime<Utc>,
    paused_at: Option<DateTime<Utc>>,
}

#[derive(Debug, FromQueryResult)]
struct ProjectPart {
    id: i64,
    region_code: String,
    workflow_id: String,
    workflow_version: i32,
    state: String,
}

/// The unique key of one reminder: it goes out once per (project, deadline, due time, step).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, FromQueryResult)]
pub struct ReminderKey {
    pub project_id: i64,
    pub deadline_key: String,
    pub due_at: DateTime<Utc>,
    pub step: String,
}

/// Records the keys as sent (`INSERT … ON CONFLICT DO NOTHING`, one prepared statement per key) and says,
/// in the order of `keys`, which were not recorded yet: only those may be mailed, in the same transaction.
/// Keys are inserted in one order, so two replicas inserting overlapping pages wait for each other instead
/// of deadlocking.
pub async fn record_sent(
    db: &impl ConnectionTrait,
    keys: &[ReminderKey],
    now: DateTime<Utc>,
) -> StoreResult<Vec<bool>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO reminders_sent (project_id, deadline_key, due_at, step, sent_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
        }
        _ => {
            "INSERT INTO reminders_sent (project_id, deadline_key, due_at, step, sent_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        }
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    let now = normalize(now);
    let mut fresh = vec![false; keys.len()];
    for i in order {
        let key = &keys[i];
        let values: [Value; 5] = [
            key.project_id.into(),
            key.deadline_key.as_str().into(),
            normalize(key.due_at).into(),
            key.step.as_str().into(),
            now.into(),
        ];
        fresh[i] = db
            .execute(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .rows_affected()
            == 1;
    }
    Ok(fresh)
}

/// Which of the keys are recorded already (for a dry run, which writes nothing).
pub async fn already_sent(
    db: &impl ConnectionTrait,
    keys: &[ReminderKey],
) -> StoreResult<Vec<ReminderKey>> {
    let mut found = Vec::new();
    let mut by_project: BTreeMap<i64, Vec<&ReminderKey>> = BTreeMap::new();
    for key in keys {
        by_project.entry(key.project_id).or_default().push(key);
    }
    for chunk in by_project.keys().copied().collect::<Vec<_>>().chunks(500) {
        let rows = reminders_sent::Entity::find()
            .filter(reminders_sent::Column::ProjectId.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        for row in rows {
            let key = ReminderKey {
                project_id: row.project_id,
                deadline_key: row.deadline_key,
                due_at: row.due_at,
                step: row.step,
            };
            if keys.contains(&key) {
                found.push(key);
            }
        }
    }
    Ok(found)
}

/// A mail the scheduler queues: a template addressed to workflow roles of a project (or, with no project,
/// to every officer, as the digest is).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMail {
    pub project_id: Option<i64>,
    pub region_code: Option<String>,
    pub template: String,
    pub roles: Vec<String>,
    pub context: Json,
}

/// A region (none for programme-wide mails) and sorted workflow roles.
type Audience = (Option<String>, Vec<String>);

/// Accounts reached by (region, roles), looked up once per combination and kept for a pass.
#[derive(Debug, Default)]
pub struct RecipientCache {
    index: HashMap<Audience, usize>,
    /// One addressee per account, like [`crate::outbox::enqueue`], per audience.
    lists: Vec<Vec<Addressee>>,
}

impl RecipientCache {
    /// Where the audience's addressees are in `lists`.
    async fn resolve(
        &mut self,
        db: &impl ConnectionTrait,
        region_code: Option<&str>,
        roles: &[String],
    ) -> StoreResult<usize> {
        let mut roles = roles.to_vec();
        roles.sort();
        let audience = (region_code.map(str::to_owned), roles);
        if let Some(found) = self.index.get(&audience) {
            return Ok(*found);
        }
        // No region reaches no council: a programme-wide mail goes to officers only.
        let users = crate::projects::recipients(db, region_code.unwrap_or(""), &audience.1).await?;
        self.lists.push(outbox::addressees(&users));
        self.index.insert(audience, self.lists.len() - 1);
        Ok(self.lists.len() - 1)
    }
}

/// Queues the mails, one outbox row per recipient, in one statement. Returns the number of rows written
/// (a mail whose roles no account holds writes none).
pub async fn enqueue_many(
    db: &impl ConnectionTrait,
    cache: &mut RecipientCache,
    mails: &[NewMail],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let mut audiences = Vec::with_capacity(mails.len());
    for mail in mails {
        audiences.push(
            cache
                .resolve(db, mail.region_code.as_deref(), &mail.roles)
                .await?,
        );
    }
    let contexts: Vec<String> = mails.iter().map(|m| m.context.to_string()).collect();
    let rows: Vec<NewRow> = mails
        .iter()
        .zip(&contexts)
        .zip(audiences)
        .flat_map(|((mail, context), audience)| {
            cache.lists[audience].iter().map(move |addressee| NewRow {
                project_id: mail.project_id,
                event_seq: None,
                template: &mail.template,
                addressee,
                context,
            })
        })
        .collect();
    outbox::insert(db, &rows, now).await?;
    Ok(rows.len())
}

/// Sets each deadline's next look (`None`: no step remains, the index forgets it): one `UPDATE` per
/// distinct instant, since the deadlines of a page mostly share a few.
pub async fn set_next_checks(
    db: &impl ConnectionTrait,
    next: &[(i64, Option<DateTime<Utc>>)],
) -> StoreResult<()> {
    let mut by_instant: BTreeMap<Option<DateTime<Utc>>, Vec<i64>> = BTreeMap::new();
    for (id, at) in next {
        by_instant.entry(at.map(normalize)).or_default().push(*id);
    }
    let backend = db.get_database_backend();
    let sql = format!(
        "UPDATE deadlines SET next_check_at = {} WHERE id {}",
        placeholder(backend, 1),
        in_id_list(backend, 2)
    );
    for (at, ids) in by_instant {
        let values: [Value; 2] = [at.into(), id_list(&ids)];
        db.execute(Statement::from_sql_and_values(backend, &sql, values))
            .await?;
    }
    Ok(())
}

/// The steps recorded as sent for one deadline at one due time.
pub async fn sent_steps(
    db: &impl ConnectionTrait,
    project_id: i64,
    key: &str,
    due_at: DateTime<Utc>,
) -> StoreResult<BTreeSet<String>> {
    Ok(reminders_sent::Entity::find()
        .filter(reminders_sent::Column::ProjectId.eq(project_id))
        .filter(reminders_sent::Column::DeadlineKey.eq(key))
        .filter(reminders_sent::Column::DueAt.eq(normalize(due_at)))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.step)
        .collect())
}

/// Records `steps`, sent for a deadline due at `old_due`, as sent for its new due time too, with the
/// instant they really went out: the unique key names the due time, and these must not go out again.
pub async fn carry_sent(
    db: &impl ConnectionTrait,
    project_id: i64,
    key: &str,
    old_due: DateTime<Utc>,
    new_due: DateTime<Utc>,
    steps: &[String],
) -> StoreResult<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let rows = reminders_sent::Entity::find()
        .filter(reminders_sent::Column::ProjectId.eq(project_id))
        .filter(reminders_sent::Column::DeadlineKey.eq(key))
        .filter(reminders_sent::Column::DueAt.eq(normalize(old_due)))
        .filter(reminders_sent::Column::Step.is_in(steps.iter().map(String::as_str)))
        .all(db)
        .await?;
    if rows.len() != steps.len() {
        return Err(StoreError::Corrupt(format!(
            "project {project_id}, deadline `{key}`: {} of the steps {steps:?} are recorded as sent",
            rows.len()
        )));
    }
    let carried = rows.into_iter().map(|r| reminders_sent::ActiveModel {
        project_id: sea_orm::Set(project_id),
        deadline_key: sea_orm::Set(r.deadline_key),
        due_at: sea_orm::Set(normalize(new_due)),
        step: sea_orm::Set(r.step),
        sent_at: sea_orm::Set(r.sent_at),
    });
    reminders_sent::Entity::insert_many(carried)
        .on_conflict(
            OnConflict::columns([
                reminders_sent::Column::ProjectId,
                reminders_sent::Column::DeadlineKey,
                reminders_sent::Column::DueAt,
                reminders_sent::Column::Step,
            ])
            .do_nothing()
            .to_owned(),
        )
        .do_nothing()
        .exec_without_returning(db)
        .await?;
    Ok(())
}

fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// `IN (…)` over the integers of parameter `n`, a JSON list ([`id_list`]): one SQL text for any length.
fn in_id_list(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => {
            format!("IN (SELECT value::bigint FROM json_array_elements_text(${n}::json))")
        }
        _ => format!("IN (SELECT value FROM json_each(?{n}))"),
    }
}

fn id_list(ids: &[i64]) -> Value {
    Json::from(ids).to_string().into()
}
