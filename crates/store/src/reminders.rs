//! What the scheduler reads and writes: deadlines due for a look, the unique keys of reminders sent, the
//! reminder mails queued with them, and when to look at each deadline next. The plan itself (which step is
//! due when) is the engine's; the pass that ties both together is the mailer's.
//!
//! Every function works on a page of rows in a few statements, whatever the page's size, so that a pass
//! over a million deadlines costs what its due rows cost.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Statement,
    Value,
};
use serde_json::{Value as Json, json};

use crate::audit::normalize;
use crate::entities::{deadlines, outbox, projects, reminders_sent};
use crate::error::{StoreError, StoreResult};
use crate::outbox::PENDING;

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
    let mut by_id: HashMap<i64, ProjectPart> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let select = Query::select()
            .columns([
                projects::Column::Id,
                projects::Column::RegionCode,
                projects::Column::WorkflowId,
                projects::Column::WorkflowVersion,
                projects::Column::State,
            ])
            .from(projects::Entity)
            .and_where(projects::Column::Id.is_in(chunk.iter().copied()))
            .to_owned();
        for project in ProjectPart::find_by_statement(backend.build(&select))
            .all(db)
            .await?
        {
            by_id.insert(project.id, project);
        }
    }
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

/// Records the keys as sent (`INSERT … ON CONFLICT DO NOTHING`) and returns those that were not yet: only
/// those may be mailed, in the same transaction. Keys are inserted in one order, so two replicas inserting
/// overlapping pages wait for each other instead of deadlocking.
pub async fn record_sent(
    db: &impl ConnectionTrait,
    keys: &[ReminderKey],
    now: DateTime<Utc>,
) -> StoreResult<Vec<ReminderKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut sorted: Vec<&ReminderKey> = keys.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut insert = Query::insert();
    insert.into_table(reminders_sent::Entity).columns([
        reminders_sent::Column::ProjectId,
        reminders_sent::Column::DeadlineKey,
        reminders_sent::Column::DueAt,
        reminders_sent::Column::Step,
        reminders_sent::Column::SentAt,
    ]);
    let now = normalize(now);
    for key in sorted {
        insert.values_panic([
            key.project_id.into(),
            key.deadline_key.clone().into(),
            normalize(key.due_at).into(),
            key.step.clone().into(),
            now.into(),
        ]);
    }
    insert
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
        .returning(Query::returning().columns([
            reminders_sent::Column::ProjectId,
            reminders_sent::Column::DeadlineKey,
            reminders_sent::Column::DueAt,
            reminders_sent::Column::Step,
        ]));
    let backend = db.get_database_backend();
    Ok(ReminderKey::find_by_statement(backend.build(&insert))
        .all(db)
        .await?)
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
/// `(lang, [{email, name}])` per recipient language.
type ByLang = Vec<(String, Json)>;

/// Accounts reached by (region, roles), looked up once per combination and kept for a pass.
#[derive(Debug, Default)]
pub struct RecipientCache {
    by_audience: HashMap<Audience, ByLang>,
}

impl RecipientCache {
    /// The recipients grouped by language, as `[{email, name}]` lists, like [`crate::outbox::enqueue`].
    async fn resolve(
        &mut self,
        db: &impl ConnectionTrait,
        region_code: Option<&str>,
        roles: &[String],
    ) -> StoreResult<&[(String, Json)]> {
        let mut roles = roles.to_vec();
        roles.sort();
        let audience = (region_code.map(str::to_owned), roles);
        if !self.by_audience.contains_key(&audience) {
            // No region reaches no council: a programme-wide mail goes to officers only.
            let users =
                crate::projects::recipients(db, region_code.unwrap_or(""), &audience.1).await?;
            let mut by_lang: BTreeMap<String, Vec<Json>> = BTreeMap::new();
            for user in users {
                by_lang
                    .entry(user.lang)
                    .or_default()
                    .push(json!({ "email": user.email, "name": user.name }));
            }
            let grouped = by_lang
                .into_iter()
                .map(|(lang, list)| (lang, Json::Array(list)))
                .collect();
            self.by_audience.insert(audience.clone(), grouped);
        }
        Ok(&self.by_audience[&audience])
    }
}

/// Queues the mails, one outbox row per recipient language, in one `INSERT` per page. Returns the number
/// of rows written (a mail whose roles no account holds writes none).
pub async fn enqueue_many(
    db: &impl ConnectionTrait,
    cache: &mut RecipientCache,
    mails: &[NewMail],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let now = normalize(now);
    let mut rows = Vec::new();
    for mail in mails {
        let context = mail.context.to_string();
        for (lang, recipients) in cache
            .resolve(db, mail.region_code.as_deref(), &mail.roles)
            .await?
        {
            rows.push(outbox::ActiveModel {
                id: sea_orm::ActiveValue::NotSet,
                project_id: sea_orm::Set(mail.project_id),
                event_seq: sea_orm::Set(None),
                template: sea_orm::Set(mail.template.clone()),
                lang: sea_orm::Set(lang.clone()),
                recipients: sea_orm::Set(recipients.to_string()),
                context: sea_orm::Set(context.clone()),
                status: sea_orm::Set(PENDING.into()),
                attempts: sea_orm::Set(0),
                next_attempt_at: sea_orm::Set(now),
                lease_until: sea_orm::Set(None),
                leased_by: sea_orm::Set(None),
                last_error: sea_orm::Set(None),
                created_at: sea_orm::Set(now),
                sent_at: sea_orm::Set(None),
            });
        }
    }
    let written = rows.len();
    // Bounded statements: SQLite and PostgreSQL cap the number of bound values.
    for chunk in rows.chunks(1000) {
        outbox::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(written)
}

/// Sets each deadline's next look (`None`: no step remains, the index forgets it), up to a thousand per
/// statement: `UPDATE … SET next_check_at = CASE id WHEN … END WHERE id IN (…)`.
pub async fn set_next_checks(
    db: &impl ConnectionTrait,
    next: &[(i64, Option<DateTime<Utc>>)],
) -> StoreResult<()> {
    for chunk in next.chunks(1000) {
        let mut case = CaseStatement::new();
        for (id, at) in chunk {
            case = case.case(
                Expr::col(deadlines::Column::Id).eq(*id),
                Expr::val(at.map(normalize)),
            );
        }
        let update = Query::update()
            .table(deadlines::Entity)
            .value(deadlines::Column::NextCheckAt, Expr::expr(case))
            .and_where(deadlines::Column::Id.is_in(chunk.iter().map(|(id, _)| *id)))
            .to_owned();
        db.execute(db.get_database_backend().build(&update)).await?;
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
