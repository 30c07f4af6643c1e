//! What the scheduler reads and writes: deadlines due for a look, the unique keys of reminders sent, the
//! reminder mails queued with them, and when to look at each deadline next. The plan itself (which step is
//! due when) is the engine's; the pass that ties both together is the mailer's.
//!
//! Every function works on a page of rows in a few statements, whatever the page's size, so that a pass
//! over a million deadlines costs what its due rows cost. Their SQL text does not depend on the page
//! either (lists travel as one JSON parameter, per-row statements are the same text each time): sqlx
//! prepares each distinct text anew, and a page-sized statement would be prepared once per page.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Statement,
    Value,
};
use serde_json::Value as Json;

use crate::audit::normalize;
use crate::batch::param;
use crate::entities::reminders_sent;
use crate::error::{StoreError, StoreResult};
use crate::id_lists::{id_list, in_id_list};
use crate::outbox::{self, Addressee, NewRow};

/// A deadline whose look has come (a row of the `deadline_checks` queue at or before the pass's `now`), with
/// what the scheduler needs of its project. The queue is never searched by deadline, so a deadline cleared,
/// paused or moved since its row was queued still comes up: `running` says whether to plan it at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDeadline {
    pub id: i64,
    pub project_id: i64,
    pub key: String,
    pub due_at: DateTime<Utc>,
    /// The queue row's instant: with `id`, where a page ends and which row a pass takes off the queue.
    pub next_check_at: DateTime<Utc>,
    /// Neither cleared nor paused: only a running deadline is planned; the others wait to be set, moved or
    /// resumed again, which queues a new look.
    pub running: bool,
    pub region_code: String,
    pub workflow_id: String,
    pub workflow_version: i32,
}

/// Where a page of due deadlines ended: the next page starts after it.
pub type PageCursor = (DateTime<Utc>, i64);

/// Up to `limit` rows of the `deadline_checks` queue at or before `now`, in `(next_check_at, deadline_id)`
/// order after `after`, with their deadlines and projects. With `lock` on PostgreSQL the queue rows are
/// locked for the caller's transaction and rows another replica holds are skipped, so replicas share the
/// work instead of repeating it (the unique key of `reminders_sent` is what guarantees once, not the lock).
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
            if lock {
                " FOR UPDATE OF c SKIP LOCKED"
            } else {
                ""
            },
        ),
        _ => (["?", "?", "?", "?", "?"], ""),
    };
    let (cursor_at, cursor_id) = after.unwrap_or((DateTime::<Utc>::UNIX_EPOCH, i64::MIN));
    // The queue's primary key is the order asked for, so the plan reads the head of one B-tree and looks
    // each deadline and project up by its key.
    let sql = format!(
        "SELECT c.next_check_at, d.id, d.project_id, d.key, d.due_at, \
         (d.cleared_at IS NULL AND d.paused_at IS NULL) AS running, \
         p.region_code, p.workflow_id, p.workflow_version \
         FROM deadline_checks c JOIN deadlines d ON d.id = c.deadline_id JOIN projects p ON p.id = d.project_id \
         WHERE c.next_check_at <= {} \
         AND (c.next_check_at > {} OR (c.next_check_at = {} AND c.deadline_id > {})) \
         ORDER BY c.next_check_at, c.deadline_id LIMIT {}{lock_clause}",
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
    Ok(rows
        .into_iter()
        .map(|row| DueDeadline {
            id: row.id,
            project_id: row.project_id,
            key: row.key,
            due_at: row.due_at,
            next_check_at: row.next_check_at,
            running: row.running,
            region_code: row.region_code,
            workflow_id: row.workflow_id,
            workflow_version: row.workflow_version,
        })
        .collect())
}

#[derive(Debug, FromQueryResult)]
struct DueRow {
    next_check_at: DateTime<Utc>,
    id: i64,
    project_id: i64,
    key: String,
    due_at: DateTime<Utc>,
    running: bool,
    region_code: String,
    workflow_id: String,
    workflow_version: i32,
}

/// The unique key of one reminder: it goes out once per (project, deadline, due time, step).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, FromQueryResult)]
pub struct ReminderKey {
    pub project_id: i64,
    pub deadline_key: String,
    pub due_at: DateTime<Utc>,
    pub step: String,
}

/// Records the keys as sent and says, in the order of `keys`, which were not recorded yet: only those may be
/// mailed, in the same transaction. One `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING` for the whole
/// list: the rows it returns are the keys it recorded. Keys go in sorted, so two replicas inserting
/// overlapping pages wait for each other instead of deadlocking.
pub async fn record_sent(
    db: &impl ConnectionTrait,
    keys: &[ReminderKey],
    now: DateTime<Utc>,
) -> StoreResult<Vec<bool>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO reminders_sent (project_id, deadline_key, due_at, step, sent_at) \
             SELECT (r->>0)::bigint, r->>1, (r->>2)::timestamptz, r->>3, $1 \
             FROM json_array_elements($2::json) WITH ORDINALITY AS k(r, n) ORDER BY n \
             ON CONFLICT DO NOTHING RETURNING project_id, deadline_key, due_at, step"
        }
        _ => {
            "INSERT INTO reminders_sent (project_id, deadline_key, due_at, step, sent_at) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), ?1 FROM json_each(?2) WHERE true ORDER BY key \
             ON CONFLICT DO NOTHING RETURNING project_id, deadline_key, due_at, step"
        }
    };
    let normalized: Vec<ReminderKey> = keys
        .iter()
        .map(|k| ReminderKey {
            due_at: normalize(k.due_at),
            ..k.clone()
        })
        .collect();
    let mut sorted = normalized.clone();
    sorted.sort();
    let encoded = Json::Array(
        sorted
            .iter()
            .map(|k| {
                // The text SQLite stores for an instant bound as a parameter, so that a key written here
                // and one written through a bound parameter are the same key.
                let due_at = k.due_at.to_rfc3339_opts(SecondsFormat::AutoSi, false);
                serde_json::json!([k.project_id, k.deadline_key, due_at, k.step])
            })
            .collect(),
    )
    .to_string();
    let values: [Value; 2] = [normalize(now).into(), encoded.into()];
    let recorded: HashSet<ReminderKey> =
        ReminderKey::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(db)
            .await?
            .into_iter()
            .collect();
    Ok(normalized.iter().map(|k| recorded.contains(k)).collect())
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

/// Takes a page's rows off the queue and queues each deadline's next look (`None`: no step remains, or the
/// deadline no longer runs). The rows taken lie together at the queue's head, between the page's first and
/// last instants; the rows put back, one `INSERT … SELECT` per distinct instant (a page's deadlines mostly
/// share a few), lie together at theirs.
pub async fn set_next_checks(
    db: &impl ConnectionTrait,
    taken: &[DueDeadline],
    next: &[(i64, Option<DateTime<Utc>>)],
) -> StoreResult<()> {
    let backend = db.get_database_backend();
    if let (Some(first), Some(last)) = (taken.first(), taken.last()) {
        let ids: Vec<i64> = taken.iter().map(|d| d.id).collect();
        let sql = format!(
            "DELETE FROM deadline_checks WHERE next_check_at >= {} AND next_check_at <= {} \
             AND deadline_id {}",
            placeholder(backend, 1),
            placeholder(backend, 2),
            in_id_list(backend, 3)
        );
        let values: [Value; 3] = [
            normalize(first.next_check_at).into(),
            normalize(last.next_check_at).into(),
            id_list(&ids),
        ];
        db.execute(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    let mut by_instant: BTreeMap<DateTime<Utc>, Vec<i64>> = BTreeMap::new();
    for (id, at) in next {
        if let Some(at) = at {
            by_instant.entry(normalize(*at)).or_default().push(*id);
        }
    }
    let sql = format!(
        "INSERT INTO deadline_checks (next_check_at, deadline_id) \
         SELECT {}, d.id FROM deadlines d WHERE d.id {} ON CONFLICT DO NOTHING",
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

/// Queues a look at the live deadline `key` of a project at `at` (a deadline set, moved or resumed: the
/// scheduler looks at it then and plans its next look itself).
pub(crate) async fn look_at(
    db: &impl ConnectionTrait,
    project_id: i64,
    key: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let backend = db.get_database_backend();
    db.execute(look_at_statement(backend, "deadlines", project_id, key, at))
        .await?;
    Ok(())
}

/// [`look_at`]'s insert, for a caller that sends it with other writes (its parameters are plain, see
/// [`Batch`](crate::batch::Batch)), reading the deadline from `deadlines`: the table, or the rows an
/// earlier write of the same statement returned.
pub(crate) fn look_at_statement(
    backend: DbBackend,
    deadlines: &str,
    project_id: i64,
    key: &str,
    at: DateTime<Utc>,
) -> Statement {
    let sql = format!(
        "INSERT INTO deadline_checks (next_check_at, deadline_id) \
         SELECT {}, id FROM {deadlines} WHERE project_id = {} AND key = {} AND cleared_at IS NULL \
         ON CONFLICT DO NOTHING",
        param(backend, 1),
        param(backend, 2),
        param(backend, 3)
    );
    let values: [Value; 3] = [normalize(at).into(), project_id.into(), key.into()];
    Statement::from_sql_and_values(backend, sql, values)
}

/// The looks queued for a deadline, earliest first: none when it waits for nothing (cleared, paused, or no
/// reminder left). Rows the queue still holds for a deadline that no longer runs are not looks: the pass
/// drops them. Several looks are harmless (looking is idempotent); the earliest is when the scheduler comes.
pub async fn queued_looks(
    db: &impl ConnectionTrait,
    deadline_id: i64,
) -> StoreResult<Vec<DateTime<Utc>>> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT c.next_check_at FROM deadline_checks c JOIN deadlines d ON d.id = c.deadline_id \
         WHERE c.deadline_id = {} AND d.cleared_at IS NULL AND d.paused_at IS NULL \
         ORDER BY c.next_check_at",
        placeholder(backend, 1)
    );
    #[derive(FromQueryResult)]
    struct Look {
        next_check_at: DateTime<Utc>,
    }
    let looks = Look::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [deadline_id.into()],
    ))
    .all(db)
    .await?;
    Ok(looks.into_iter().map(|l| l.next_check_at).collect())
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
