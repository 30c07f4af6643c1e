//! Corrections an officer asks for on evidence, and evidence that expires: the rules that need a calendar,
//! kept in one place so that the API, the pages and the guards read the same status.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::definition::{ReminderPlan, Workflow};
use crate::duration::start_of_local_day;
use crate::model::Labels;
use crate::runtime::RequirementStatus;

/// What is wrong with the evidence a correction is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionKind {
    /// The document says something wrong.
    Incorrect,
    /// Something is missing from it.
    Incomplete,
    /// It is no longer current.
    Outdated,
}

impl CorrectionKind {
    pub const ALL: [CorrectionKind; 3] = [
        CorrectionKind::Incorrect,
        CorrectionKind::Incomplete,
        CorrectionKind::Outdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionKind::Incorrect => "incorrect",
            CorrectionKind::Incomplete => "incomplete",
            CorrectionKind::Outdated => "outdated",
        }
    }

    pub fn parse(text: &str) -> Option<CorrectionKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// How pages and mails name it, in French and in English.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            CorrectionKind::Incorrect => ("document inexact", "incorrect document"),
            CorrectionKind::Incomplete => ("document incomplet", "incomplete document"),
            CorrectionKind::Outdated => ("document périmé", "outdated document"),
        }
    }
}

const CORRECTION_PREFIX: &str = "correction:";

/// The deadline key of a correction asked on a requirement: `correction:legal_status`. It has no dot, so
/// it is never taken for a milestone and can be overdue.
pub fn correction_key(requirement: &str) -> String {
    format!("{CORRECTION_PREFIX}{requirement}")
}

/// The requirement a correction deadline key is about, if `key` is one.
pub fn correction_requirement(key: &str) -> Option<&str> {
    key.strip_prefix(CORRECTION_PREFIX)
}

impl Workflow {
    /// The labels of a deadline key: a state's deadline (or the state's), a goal's, a milestone's
    /// (`state.milestone`), or a correction's (named after its requirement).
    pub fn deadline_labels(&self, key: &str) -> Option<Labels> {
        if let Some(requirement) = correction_requirement(key) {
            let labels = &self.requirement(requirement)?.labels;
            return Some(Labels {
                fr: format!("Correction demandée : {}", labels.fr),
                en: format!("Correction requested: {}", labels.en),
            });
        }
        if let Some(state) = self.state(key) {
            let labels = state.deadline.as_ref().and_then(|d| d.labels.as_ref());
            return Some(labels.unwrap_or(&state.labels).clone());
        }
        if let Some(goal) = self.goals.iter().find(|g| g.id == key) {
            return Some(goal.labels.clone());
        }
        let (state, milestone) = key.split_once('.')?;
        let state = self.state(state)?;
        let found = state.milestones.iter().find(|m| m.id == milestone)?;
        Some(found.labels.clone())
    }

    /// The plan of correction deadlines (`corrections: reminders:` in the definition).
    pub fn correction_reminders(&self) -> Option<&ReminderPlan> {
        self.correction_reminders.as_ref()
    }

    /// When a correction due on `due_on` falls due: at the end of that day in the workflow's time zone, as
    /// a goal's `by` does, so the region has the whole day.
    pub fn correction_due(&self, due_on: NaiveDate) -> DateTime<Utc> {
        start_of_local_day(due_on.succ_opt().unwrap_or(due_on), self.timezone)
    }

    /// The calendar day `now` falls on in the workflow's time zone.
    pub fn local_day(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.timezone).date_naive()
    }

    /// Refuses an expiry day already past at `now` (evidence that would never count), saying why.
    pub fn check_expiry(&self, expires_on: NaiveDate, now: DateTime<Utc>) -> Result<(), String> {
        let today = self.local_day(now);
        if expires_on < today {
            return Err(format!(
                "`expires_on` {expires_on} is already past (today is {today} in {}): give the last day \
                 the evidence is valid, or none if it does not expire",
                self.timezone
            ));
        }
        Ok(())
    }

    /// The status a requirement reads at `now`, from the stored one and the expiry date of its accepted
    /// evidence: evidence is valid through its `expires_on` day, then the requirement reads expired.
    pub fn requirement_status_at(
        &self,
        stored: RequirementStatus,
        expires_on: Option<NaiveDate>,
        now: DateTime<Utc>,
    ) -> RequirementStatus {
        match (stored, expires_on) {
            (RequirementStatus::Accepted, Some(last_day)) if self.local_day(now) > last_day => {
                RequirementStatus::Expired
            }
            _ => stored,
        }
    }
}
