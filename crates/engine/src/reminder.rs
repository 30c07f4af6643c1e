//! Reminder schedules: which reminder of a deadline is due at a given instant. The scheduler (another crate)
//! sends each step at most once, by its stable key; this module only computes.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::correction::correction_requirement;
use crate::definition::{ReminderPlan, Workflow};
use crate::duration::{CalendarDuration, resolve_local};

/// Rounds considered when a deadline has been overdue for a long time; beyond this the last round repeats.
const MAX_OVERDUE_ROUNDS: u32 = 10_000;

/// One reminder email to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReminderStep {
    /// Stable key, unique within one deadline: `before:P14D`, `overdue:0`, `escalation:2`.
    pub step: String,
    pub send_at: DateTime<Utc>,
    pub template: String,
    pub to_roles: Vec<String>,
    pub escalation: bool,
}

impl Workflow {
    /// The reminder plan of a deadline key (a state id, a goal id, or `correction:<requirement>`);
    /// milestones have none.
    pub fn reminder_plan(&self, deadline_key: &str) -> Option<&ReminderPlan> {
        if let Some(requirement) = correction_requirement(deadline_key) {
            return self
                .requirement(requirement)
                .and(self.correction_reminders.as_ref());
        }
        match self.state(deadline_key) {
            Some(state) => state.reminders.as_ref(),
            None => self
                .goals
                .iter()
                .find(|g| g.id == deadline_key)?
                .reminders
                .as_ref(),
        }
    }
}

impl ReminderPlan {
    /// The steps to send at `now` for a deadline due at `due_at`: before the deadline, the latest reminder
    /// whose time has come; once overdue, the latest overdue round (a notice, plus an escalation when the plan
    /// escalates). Earlier steps missed during a downtime are not returned, so nothing is sent in a burst.
    pub fn due_steps(&self, due_at: DateTime<Utc>, now: DateTime<Utc>) -> Vec<ReminderStep> {
        if now < due_at {
            return self
                .before_steps(due_at)
                .into_iter()
                .rfind(|s| s.send_at <= now)
                .into_iter()
                .collect();
        }
        let round = self.latest_round(due_at, now);
        self.round(due_at, round)
    }

    /// Every step whose send time is at or before `until`, in send order (for pages and tests).
    pub fn schedule(&self, due_at: DateTime<Utc>, until: DateTime<Utc>) -> Vec<ReminderStep> {
        let mut steps: Vec<ReminderStep> = self
            .before_steps(due_at)
            .into_iter()
            .filter(|s| s.send_at <= until)
            .collect();
        if due_at <= until {
            let last = self.latest_round(due_at, until);
            steps.extend((0..=last).flat_map(|k| self.round(due_at, k)));
        }
        steps
    }

    /// The overdue round after the one under way at `now` (none when the plan does not repeat).
    pub(crate) fn next_round(
        &self,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<ReminderStep> {
        if self.overdue_every.is_none() {
            return Vec::new();
        }
        self.round(due_at, self.latest_round(due_at, now).saturating_add(1))
    }

    /// Before-steps at the plan's local send time, `offset` before the due day, in send order. The due day
    /// is the day of the last instant before `due_at`, so that "by the end of 31 December" is due on the 31st.
    fn before_steps(&self, due_at: DateTime<Utc>) -> Vec<ReminderStep> {
        let last_instant = due_at - TimeDelta::nanoseconds(1);
        let due_day = last_instant.with_timezone(&self.timezone).date_naive();
        let at_send_time = due_day.and_time(self.send_time);
        // `before` is sorted longest first at load time, hence in send order here.
        self.before
            .iter()
            .map(|offset| ReminderStep {
                step: format!("before:{offset}"),
                send_at: resolve_local(self.timezone, offset.before_local(at_send_time)),
                template: self.templates.before.clone(),
                to_roles: self.notify.clone(),
                escalation: false,
            })
            .filter(|s| s.send_at < due_at)
            .collect()
    }

    /// The index of the latest overdue round started at or before `now` (0 at `due_at`).
    fn latest_round(&self, due_at: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
        let Some(every) = self.overdue_every else {
            return 0;
        };
        // Estimate with nominal lengths, then correct: calendar months vary in length.
        let elapsed = u64::try_from((now - due_at).num_seconds()).unwrap_or(0);
        let estimate = elapsed / every.nominal_seconds().max(1);
        let mut k = u32::try_from(estimate)
            .unwrap_or(MAX_OVERDUE_ROUNDS)
            .min(MAX_OVERDUE_ROUNDS);
        while k > 0 && round_start(every, k, due_at, self.timezone) > now {
            k -= 1;
        }
        while k < MAX_OVERDUE_ROUNDS && round_start(every, k + 1, due_at, self.timezone) <= now {
            k += 1;
        }
        k
    }

    fn round(&self, due_at: DateTime<Utc>, k: u32) -> Vec<ReminderStep> {
        let send_at = self
            .overdue_every
            .map_or(due_at, |every| round_start(every, k, due_at, self.timezone));
        let notice = ReminderStep {
            step: format!("overdue:{k}"),
            send_at,
            template: self.templates.overdue.clone(),
            to_roles: self.notify.clone(),
            escalation: false,
        };
        let escalation = (!self.escalate_to.is_empty()).then(|| ReminderStep {
            step: format!("escalation:{k}"),
            send_at,
            template: self.templates.escalation.clone(),
            to_roles: self.escalate_to.clone(),
            escalation: true,
        });
        std::iter::once(notice).chain(escalation).collect()
    }
}

/// Round `k` starts `k × every` after the due time, multiplied rather than added up so that month ends do not
/// drift (31 Jan + 2 months is 31 March, not 29 March).
fn round_start(every: CalendarDuration, k: u32, due_at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    every.times(k).after(due_at, tz)
}
