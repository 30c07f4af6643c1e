//! The scheduler pass: for every deadline whose `next_check_at` has come, the reminder plan of its workflow
//! says which steps are due; each step's unique key (project, deadline, due time, step) is recorded with
//! `ON CONFLICT DO NOTHING`, and only a newly recorded key queues mails, in the same transaction. So a step
//! goes out once however often the pass runs, on however many replicas, across restarts. The deadline's
//! row in the `deadline_checks` queue then moves to its next step's send time (or leaves the queue when
//! none remains), so a pass reads only due rows, page by page, from the head of the queue.
//!
//! Leaving a state clears its deadline (`cleared_at`, in the transition's transaction), which is how its
//! pending reminders are cancelled: the pass that reaches its queued look finds it cleared and drops it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use incubator_engine::{ReminderPlan, ReminderStep, Workflow};
use incubator_store::reminders::{self, DueDeadline, NewMail, RecipientCache, ReminderKey};
use incubator_store::{Store, StoreError};
use sea_orm::TransactionTrait;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::error::MailResult;

/// Deadlines handled per transaction: memory and lock time stay bounded whatever the number due.
const PAGE: u64 = 1000;
/// Day boundaries and the digest's send time are those of the programme.
pub const PROGRAMME_TIMEZONE: Tz = chrono_tz::Europe::Paris;
pub const DIGEST_TEMPLATE: &str = "officers_digest";
/// The digest's key in `reminders_sent`: project 0 (programme-wide), this deadline key, the ISO week as step.
pub const DIGEST_KEY: &str = "officers_digest";
const DIGEST_SEND_TIME: NaiveTime = match NaiveTime::from_hms_opt(8, 0, 0) {
    Some(time) => time,
    None => panic!("08:00 is a time"),
};
/// Attempts at a page that failed on a transient conflict (a deadlock or a busy SQLite snapshot).
const PAGE_ATTEMPTS: u32 = 3;

/// One reminder step of one deadline, as a pass found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedReminder {
    pub project_id: i64,
    pub region_code: String,
    pub deadline_key: String,
    pub due_at: DateTime<Utc>,
    pub step: String,
    pub send_at: DateTime<Utc>,
    pub template: String,
    pub to_roles: Vec<String>,
    /// False when its key was recorded by an earlier pass: nothing goes out.
    pub new: bool,
}

/// What a pass did (or, dry, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PassReport {
    pub dry_run: bool,
    /// Due deadlines looked at (running ones: a queued look at a cleared or paused one is only dropped).
    pub examined: usize,
    /// Reminder steps recorded now (each queues its mails).
    pub reminders: usize,
    /// Steps due but recorded by an earlier pass.
    pub already_sent: usize,
    /// Outbox rows written (one per recipient).
    pub mails: usize,
    /// The ISO week (`2024-W05`) whose digest this pass queued.
    pub digest: Option<String>,
}

/// When a deadline must be looked at next: the first step of its plan after `now`, or `None` when no step
/// remains (and the deadline leaves the index).
pub fn next_check(
    plan: &ReminderPlan,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if now < due_at {
        // Every step before the deadline, and the first overdue round at the deadline itself.
        return plan
            .schedule(due_at, due_at)
            .into_iter()
            .map(|s| s.send_at)
            .filter(|at| *at > now)
            .min();
    }
    let every = plan.overdue_every?;
    let round: u32 = plan
        .due_steps(due_at, now)
        .iter()
        .find_map(|s| s.step.strip_prefix("overdue:").and_then(|k| k.parse().ok()))?;
    let next = every.times(round + 1).after(due_at, plan.timezone);
    (next > now).then_some(next)
}

#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Store,
}

impl Scheduler {
    pub fn new(store: Store) -> Scheduler {
        Scheduler { store }
    }

    /// One pass at `now`: due reminders, then the week's digest. A dry pass writes nothing and reports
    /// through `seen` what would go out.
    pub async fn pass(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
        mut seen: impl FnMut(&PlannedReminder),
    ) -> MailResult<PassReport> {
        let mut report = PassReport {
            dry_run,
            ..PassReport::default()
        };
        let mut recipients = RecipientCache::default();
        let mut workflows: HashMap<(String, i32), Arc<Workflow>> = HashMap::new();
        let mut cursor = None;
        loop {
            let mut attempt = 1;
            let page = loop {
                match self
                    .page(
                        now,
                        dry_run,
                        cursor,
                        &mut workflows,
                        &mut recipients,
                        &mut seen,
                    )
                    .await
                {
                    Ok(page) => break page,
                    Err(error) if attempt < PAGE_ATTEMPTS && is_conflict(&error) => {
                        tracing::warn!(error = %error, attempt, "scheduler page conflicted; trying it again");
                        attempt += 1;
                    }
                    Err(error) => return Err(error),
                }
            };
            let Some(page) = page else { break };
            report.examined += page.examined;
            report.reminders += page.reminders;
            report.already_sent += page.already_sent;
            report.mails += page.mails;
            cursor = Some(page.cursor);
        }
        report.digest = self.digest(now, dry_run, &mut recipients).await?;
        Ok(report)
    }

    async fn page(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
        after: Option<reminders::PageCursor>,
        workflows: &mut HashMap<(String, i32), Arc<Workflow>>,
        recipients: &mut RecipientCache,
        seen: &mut impl FnMut(&PlannedReminder),
    ) -> MailResult<Option<PageOutcome>> {
        let txn = if dry_run {
            self.store.db().begin().await?
        } else {
            incubator_store::db::begin_write(self.store.db()).await?
        };
        let due = reminders::due_deadlines(&txn, now, after, PAGE, !dry_run).await?;
        let Some(last) = due.last() else {
            txn.commit().await?;
            return Ok(None);
        };
        let cursor = (last.next_check_at, last.id);
        let mut planned: Vec<(ReminderKey, PlannedReminder, serde_json::Value)> = Vec::new();
        let mut next_checks = Vec::with_capacity(due.len());
        for deadline in &due {
            let key = (deadline.workflow_id.clone(), deadline.workflow_version);
            let workflow = match workflows.get(&key) {
                Some(found) => found.clone(),
                None => {
                    let found = self.store.workflows().get(&txn, &key.0, key.1).await?;
                    workflows.insert(key, found.clone());
                    found
                }
            };
            let plan = workflow
                .reminder_plan(&deadline.key)
                .filter(|_| deadline.running);
            let Some(plan) = plan else {
                // No plan (a milestone), cleared or paused: nothing to send until the deadline is set,
                // moved or resumed again, which queues its next look.
                next_checks.push((deadline.id, None));
                continue;
            };
            for step in plan.due_steps(deadline.due_at, now) {
                planned.push(plan_step(deadline, &workflow, step));
            }
            next_checks.push((deadline.id, next_check(plan, deadline.due_at, now)));
        }
        let keys: Vec<ReminderKey> = planned.iter().map(|(k, _, _)| k.clone()).collect();
        let mut outcome = PageOutcome {
            examined: due.iter().filter(|d| d.running).count(),
            cursor,
            ..PageOutcome::default()
        };
        let fresh: Vec<bool> = if dry_run {
            let old: HashSet<ReminderKey> = reminders::already_sent(&txn, &keys)
                .await?
                .into_iter()
                .collect();
            keys.iter().map(|k| !old.contains(k)).collect()
        } else {
            reminders::record_sent(&txn, &keys, now).await?
        };
        let mut mails = Vec::new();
        for ((_, mut reminder, context), new) in planned.into_iter().zip(fresh) {
            reminder.new = new;
            if new {
                outcome.reminders += 1;
                mails.push(NewMail {
                    project_id: Some(reminder.project_id),
                    region_code: Some(reminder.region_code.clone()),
                    template: reminder.template.clone(),
                    roles: reminder.to_roles.clone(),
                    context,
                });
            } else {
                outcome.already_sent += 1;
            }
            seen(&reminder);
        }
        if dry_run {
            txn.rollback().await?;
        } else {
            outcome.mails = reminders::enqueue_many(&txn, recipients, &mails, now).await?;
            reminders::set_next_checks(&txn, &due, &next_checks).await?;
            txn.commit().await?;
        }
        Ok(Some(outcome))
    }

    /// Queues the officers' digest of the current ISO week once, from Monday 08:00 (Europe/Paris) on.
    async fn digest(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
        recipients: &mut RecipientCache,
    ) -> MailResult<Option<String>> {
        let local = now.with_timezone(&PROGRAMME_TIMEZONE);
        let week = local.iso_week();
        let monday = NaiveDate::from_isoywd_opt(week.year(), week.week(), Weekday::Mon)
            .ok_or_else(|| StoreError::Invalid(format!("no Monday in week {week:?}")))?;
        let send_at = local_instant(monday, DIGEST_SEND_TIME);
        if now < send_at {
            return Ok(None);
        }
        let label = format!("{}-W{:02}", week.year(), week.week());
        let key = ReminderKey {
            project_id: 0,
            deadline_key: DIGEST_KEY.into(),
            due_at: local_instant(monday, NaiveTime::MIN),
            step: label.clone(),
        };
        let txn = if dry_run {
            self.store.db().begin().await?
        } else {
            incubator_store::db::begin_write(self.store.db()).await?
        };
        if dry_run {
            let sent = !reminders::already_sent(&txn, std::slice::from_ref(&key))
                .await?
                .is_empty();
            txn.rollback().await?;
            return Ok((!sent).then_some(label));
        }
        if !reminders::record_sent(&txn, std::slice::from_ref(&key), now).await?[0] {
            txn.commit().await?;
            return Ok(None);
        }
        let mail = NewMail {
            project_id: None,
            region_code: None,
            template: DIGEST_TEMPLATE.into(),
            roles: vec!["officer".into()],
            context: json!({ "week_of": monday, "iso_week": label, "at": now }),
        };
        reminders::enqueue_many(&txn, recipients, &[mail], now).await?;
        txn.commit().await?;
        Ok(Some(label))
    }

    /// Runs a pass every `interval` until `shutdown` turns true, on the programme's clock (the real one
    /// shifted by `clock_offset`).
    pub async fn run(
        self,
        interval: std::time::Duration,
        clock_offset: chrono::TimeDelta,
        mut shutdown: watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            match self.pass(Utc::now() + clock_offset, false, |_| {}).await {
                Ok(report) if report.reminders > 0 || report.digest.is_some() => {
                    tracing::info!(reminders = report.reminders, mails = report.mails, digest = ?report.digest,
                                   "scheduler pass queued mails");
                }
                Ok(_) => {}
                Err(error) => tracing::error!(error = %error, "scheduler pass failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[derive(Debug, Default)]
struct PageOutcome {
    examined: usize,
    reminders: usize,
    already_sent: usize,
    mails: usize,
    cursor: reminders::PageCursor,
}

fn plan_step(
    deadline: &DueDeadline,
    workflow: &Workflow,
    step: ReminderStep,
) -> (ReminderKey, PlannedReminder, serde_json::Value) {
    let key = ReminderKey {
        project_id: deadline.project_id,
        deadline_key: deadline.key.clone(),
        due_at: deadline.due_at,
        step: step.step.clone(),
    };
    let context = json!({
        "project_id": deadline.project_id,
        "region_code": deadline.region_code,
        "workflow_id": workflow.id(),
        "workflow_version": deadline.workflow_version,
        "deadline_key": deadline.key,
        "due_at": deadline.due_at,
        "step": step.step,
        "send_at": step.send_at,
        "escalation": step.escalation,
    });
    let reminder = PlannedReminder {
        project_id: deadline.project_id,
        region_code: deadline.region_code.clone(),
        deadline_key: deadline.key.clone(),
        due_at: deadline.due_at,
        step: step.step,
        send_at: step.send_at,
        template: step.template,
        // Whom the mail reaches: the account roles holding the plan's workflow roles.
        to_roles: workflow.account_roles(&step.to_roles),
        new: false,
    };
    (key, reminder, context)
}

/// A local wall-clock time in the programme's zone; the earlier instant when a change of time repeats it,
/// the instant after the gap when it skips it.
fn local_instant(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    match PROGRAMME_TIMEZONE.from_local_datetime(&local).earliest() {
        Some(at) => at.with_timezone(&Utc),
        None => {
            incubator_engine::start_of_local_day(date, PROGRAMME_TIMEZONE) + (time - NaiveTime::MIN)
        }
    }
}

/// Errors worth retrying a page for: another transaction got in the way.
fn is_conflict(error: &crate::error::MailError) -> bool {
    let text = error.to_string().to_lowercase();
    text.contains("deadlock")
        || text.contains("database is locked")
        || text.contains("busy")
        || text.contains("could not serialize")
}
