//! Workflows that change while projects run: moving a project to another version of its definition, and
//! pausing a deadline's clock. Both move due dates; what becomes of the reminders of a moved deadline is
//! decided once, by [`rebase_reminders`], so that a migration and a resumption treat them alike.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::correction::correction_requirement;
use crate::definition::{Anchor, DeadlineRule, ReminderPlan, State, Workflow};
use crate::exec::milestone_key;
use crate::model::ClockOnResume;
use crate::reminder::ReminderStep;
use crate::runtime::{DeadlineSet, Instance};

/// A live deadline of a project as stored, with the reminder steps already sent for its current due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDeadline {
    pub key: String,
    pub due_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub sent: BTreeSet<String>,
}

/// One reminder step before and after a change: when it would have gone out, when it will.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepChange {
    pub step: String,
    pub old_send_at: Option<DateTime<Utc>>,
    pub new_send_at: Option<DateTime<Utc>>,
}

/// What becomes of a deadline's reminders when its due time moves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RebasedReminders {
    /// Steps sent for the old due time whose time has come again under the new one: they count as sent
    /// for the new due time, so they do not go out twice.
    pub carried: Vec<String>,
    /// Pending steps (not yet sent, or due at the next pass) before and after, paired by step key, in
    /// send order.
    pub pending: Vec<StepChange>,
}

/// One deadline of a migrated project: its due time before and after (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineChange {
    pub key: String,
    pub old_due: Option<DateTime<Utc>>,
    pub new_due: Option<DateTime<Utc>>,
    /// A paused deadline stays paused; its reminders wait for the resumption.
    pub paused_at: Option<DateTime<Utc>>,
    pub reminders: RebasedReminders,
}

/// Everything migrating one project changes. The store applies exactly this, or (dry run) only prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub workflow_id: String,
    pub from_version: u32,
    pub to_version: u32,
    pub from_state: String,
    pub to_state: String,
    pub requirements_added: Vec<String>,
    pub requirements_removed: Vec<String>,
    pub fields_added: Vec<String>,
    /// Fields of the old version absent from the new one; the project's values for them are dropped.
    pub fields_removed: Vec<String>,
    /// Values the project held for removed fields (kept in the audit event, since the facts lose them).
    pub dropped_values: BTreeMap<String, serde_json::Value>,
    /// Every deadline that is live before or after, in key order.
    pub deadlines: Vec<DeadlineChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MigrationRefused {
    #[error(
        "version {to_version} has no state {}: map each with `--map OLD=NEW` (API: `map`) or under \
         `migrations:` in the new definition",
        states.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    )]
    Unmapped {
        to_version: u32,
        states: Vec<String>,
    },
    #[error("the mapping `{from}={to}` names a state version {to_version} does not have")]
    UnknownTarget {
        from: String,
        to: String,
        to_version: u32,
    },
    #[error(
        "workflow `{new}` is not workflow `{old}`: a project only moves between versions of its own"
    )]
    OtherWorkflow { old: String, new: String },
}

/// Plans moving a project from `old` to `new` at `now`: the state mapping (the `explicit` map first, then
/// the new definition's `migrations:`, then the same id), what appears and vanishes, and every deadline
/// recomputed from when the state was entered under the new definition. A shift a pause already gave a
/// deadline (its due time minus the one the old definition gives) is kept.
pub fn plan_migration(
    old: &Workflow,
    new: &Workflow,
    instance: &Instance,
    deadlines: &[LiveDeadline],
    explicit: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<MigrationPlan, MigrationRefused> {
    if old.id() != new.id() {
        return Err(MigrationRefused::OtherWorkflow {
            old: old.id().to_owned(),
            new: new.id().to_owned(),
        });
    }
    if let Some((from, to)) = explicit.iter().find(|(_, to)| new.state(to).is_none()) {
        return Err(MigrationRefused::UnknownTarget {
            from: from.clone(),
            to: to.clone(),
            to_version: new.version(),
        });
    }
    let to_state = match explicit.get(&instance.state) {
        Some(mapped) => mapped.as_str(),
        None => new
            .migrate_state(&instance.state)
            .ok_or_else(|| MigrationRefused::Unmapped {
                to_version: new.version(),
                states: vec![instance.state.clone()],
            })?,
    };
    let requirement_keys = |w: &Workflow| -> BTreeSet<String> {
        w.requirements().iter().map(|r| r.key.clone()).collect()
    };
    let field_keys =
        |w: &Workflow| -> BTreeSet<String> { w.fields().iter().map(|f| f.key.clone()).collect() };
    let (old_reqs, new_reqs) = (requirement_keys(old), requirement_keys(new));
    let (old_fields, new_fields) = (field_keys(old), field_keys(new));
    let fields_removed: Vec<String> = old_fields.difference(&new_fields).cloned().collect();
    let dropped_values = instance
        .facts
        .iter()
        .filter(|(k, _)| new.field(k).is_none())
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
        .collect();

    let old_defined = defined_deadlines(old, &instance.state, instance);
    let mut moved = instance.clone();
    moved.state = to_state.to_owned();
    let new_defined = defined_deadlines(new, to_state, &moved);
    let live: BTreeMap<&str, &LiveDeadline> =
        deadlines.iter().map(|d| (d.key.as_str(), d)).collect();
    let old_goal = |key: &str| old.goals().iter().any(|g| g.id == key);

    let mut changes = Vec::new();
    let all_keys: BTreeSet<&str> = live
        .keys()
        .copied()
        .chain(new_defined.keys().map(String::as_str))
        .collect();
    for key in all_keys {
        let current = live.get(key).copied();
        let new_due = match (current, new_defined.get(key)) {
            // A correction is owed on a requirement, not a stage: it stays while the requirement does.
            (Some(current), None)
                if correction_requirement(key).is_some_and(|r| new.requirement(r).is_some()) =>
            {
                Some(current.due_at)
            }
            (_, None) => None,
            // A goal not live any more was reached: it stays cleared. A goal new in this version starts now.
            (None, Some(_)) if old_goal(key) => None,
            (None, Some(due)) => Some(*due),
            (Some(current), Some(due)) => {
                let shift = old_defined.get(key).map_or(chrono::TimeDelta::zero(), |d| {
                    current.due_at.signed_duration_since(*d)
                });
                Some(*due + shift)
            }
        };
        if current.is_none() && new_due.is_none() {
            continue;
        }
        let paused_at = current
            .and_then(|c| c.paused_at)
            .filter(|_| new_due.is_some());
        let empty = BTreeSet::new();
        let reminders = rebase_reminders(
            current.map(|c| (old.reminder_plan(key), c.due_at, c.paused_at)),
            new_due.map(|due| (new.reminder_plan(key), due, paused_at)),
            current.map_or(&empty, |c| &c.sent),
            now,
        );
        changes.push(DeadlineChange {
            key: key.to_owned(),
            old_due: current.map(|c| c.due_at),
            new_due,
            paused_at,
            reminders,
        });
    }
    Ok(MigrationPlan {
        workflow_id: new.id().to_owned(),
        from_version: old.version(),
        to_version: new.version(),
        from_state: instance.state.clone(),
        to_state: to_state.to_owned(),
        requirements_added: new_reqs.difference(&old_reqs).cloned().collect(),
        requirements_removed: old_reqs.difference(&new_reqs).cloned().collect(),
        fields_added: new_fields.difference(&old_fields).cloned().collect(),
        fields_removed,
        dropped_values,
        deadlines: changes,
    })
}

/// The deadlines a definition gives a project in `state` (its state's and milestones', from when it was
/// entered, and every goal's unless the state is terminal), by key.
fn defined_deadlines(
    workflow: &Workflow,
    state: &str,
    instance: &Instance,
) -> BTreeMap<String, DateTime<Utc>> {
    let Some(state) = workflow.state(state) else {
        return BTreeMap::new();
    };
    let goals = workflow
        .goals()
        .iter()
        .filter(|_| !state.is_terminal())
        .map(|g| DeadlineSet {
            key: g.id.clone(),
            due_at: g.due,
        });
    workflow
        .deadlines_of(state, Some(instance), instance.entered_at)
        .into_iter()
        .chain(goals)
        .map(|d| (d.key, d.due_at))
        .collect()
}

/// A side of a due-time change: the plan of the deadline (none for milestones), its due time, and when
/// it was paused, if it is.
pub type DueSide<'a> = (
    Option<&'a ReminderPlan>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

/// What becomes of a deadline's reminders when it moves from `old` to `new` at `now`, given the steps
/// `sent` for the old due time. A sent step whose time has come under the new due time (by `now`, or by the
/// pause for a paused deadline) is carried over; later ones go out again at their new time. A paused side
/// has no pending step: nothing goes out until it resumes.
pub fn rebase_reminders(
    old: Option<DueSide<'_>>,
    new: Option<DueSide<'_>>,
    sent: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> RebasedReminders {
    let carried: BTreeSet<String> = match new {
        Some((Some(plan), due, paused_at)) => plan
            .schedule(due, paused_at.unwrap_or(now))
            .into_iter()
            .map(|s| s.step)
            .filter(|s| sent.contains(s))
            .collect(),
        _ => BTreeSet::new(),
    };
    let pending_of = |side: Option<DueSide<'_>>, sent: &BTreeSet<String>| match side {
        Some((Some(plan), due, None)) => plan.pending_steps(due, now, sent),
        _ => Vec::new(),
    };
    let mut by_step: BTreeMap<String, StepChange> = BTreeMap::new();
    let mut order = Vec::new();
    for s in pending_of(old, sent) {
        order.push(s.step.clone());
        by_step.insert(
            s.step.clone(),
            StepChange {
                step: s.step,
                old_send_at: Some(s.send_at),
                new_send_at: None,
            },
        );
    }
    for s in pending_of(new, &carried) {
        let entry = by_step.entry(s.step.clone()).or_insert_with(|| {
            order.push(s.step.clone());
            StepChange {
                step: s.step.clone(),
                old_send_at: None,
                new_send_at: None,
            }
        });
        entry.new_send_at = Some(s.send_at);
    }
    let mut pending: Vec<StepChange> = order
        .into_iter()
        .filter_map(|step| by_step.remove(&step))
        .collect();
    // In the order they will go out; a step that no longer comes goes where it would have.
    pending.sort_by_key(|s| s.new_send_at.or(s.old_send_at));
    RebasedReminders {
        carried: carried.into_iter().collect(),
        pending,
    }
}

impl ReminderPlan {
    /// The steps still to go out for a deadline due at `due_at`, seen at `now` with `sent` already sent:
    /// the step the next pass sends (when not sent yet), then every later one up to the first overdue
    /// round, or the next round once overdue. In send order.
    pub fn pending_steps(
        &self,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
        sent: &BTreeSet<String>,
    ) -> Vec<ReminderStep> {
        let mut steps: Vec<ReminderStep> = self
            .due_steps(due_at, now)
            .into_iter()
            .filter(|s| !sent.contains(&s.step))
            .collect();
        if now < due_at {
            steps.extend(
                self.schedule(due_at, due_at)
                    .into_iter()
                    .filter(|s| s.send_at > now),
            );
        } else {
            steps.extend(self.next_round(due_at, now));
        }
        steps
    }
}

impl Workflow {
    /// The state whose clock deadline `key` runs on: the state itself, or a milestone's state.
    fn clock_state(&self, key: &str) -> Option<&State> {
        self.state(key)
            .or_else(|| key.split_once('.').and_then(|(state, _)| self.state(state)))
    }

    /// What a paused deadline does when resumed: its state's `on_resume` (a milestone follows its state);
    /// goals and corrections continue.
    pub fn on_resume(&self, deadline_key: &str) -> ClockOnResume {
        self.clock_state(deadline_key)
            .and_then(|s| s.deadline.as_ref())
            .map_or(ClockOnResume::Continue, |d| d.on_resume)
    }

    /// The milestones that pause and resume with state deadline `key`: those counted from the project's
    /// own anchor. A cohort's milestones are the cohort's calendar, shared by all its projects: one
    /// project's pause does not move the cohort's mid-term review.
    pub fn milestones_on_clock(&self, key: &str) -> Vec<String> {
        let Some(state) = self.state(key) else {
            return Vec::new();
        };
        let own_anchor = state.deadline.as_ref().is_some_and(
            |d| matches!(&d.rule, DeadlineRule::After { from, .. } if *from != Anchor::CohortStart),
        );
        if !own_anchor {
            return Vec::new();
        }
        state
            .milestones
            .iter()
            .map(|m| milestone_key(&state.id, &m.id))
            .collect()
    }

    /// The due time of deadline `key`, due at `due_at` and paused at `paused_at`, once resumed at
    /// `resumed_at`. `continue` moves it by the length of the pause; `restart` counts the state's whole
    /// period again from the resumption, and a milestone's offset from it (the loader refuses `restart` on
    /// a fixed date, which has no period).
    pub fn resumed_due(
        &self,
        key: &str,
        due_at: DateTime<Utc>,
        paused_at: DateTime<Utc>,
        resumed_at: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let period = self
            .clock_state(key)
            .and_then(|s| Some(s).zip(s.deadline.as_ref()))
            .filter(|(_, d)| d.on_resume == ClockOnResume::Restart)
            .and_then(|(s, d)| match &d.rule {
                DeadlineRule::After { duration, .. } if s.id == key => Some(*duration),
                DeadlineRule::After { .. } => s
                    .milestones
                    .iter()
                    .find(|m| milestone_key(&s.id, &m.id) == key)
                    .map(|m| m.after),
                DeadlineRule::On(_) => None,
            });
        match period {
            Some(duration) => duration.after(resumed_at, self.timezone()),
            None => {
                due_at
                    + resumed_at
                        .signed_duration_since(paused_at)
                        .max(chrono::TimeDelta::zero())
            }
        }
    }
}
