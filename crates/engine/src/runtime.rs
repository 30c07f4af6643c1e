//! Runtime types the storage layer builds on: what a running project looks like to the engine, and what
//! the engine decides.
//!
//! Execution is a pure function: `Workflow::fire(&self, &Instance, &FireRequest, &Actor, now)`
//! returns `Result<Decision, Refusal>`; `Workflow::evaluate(&self, &Instance, &Actor)` returns, for every
//! transition leaving the current state, whether the actor may fire it and every unmet condition.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// A typed fact of a project. Serialised untagged so that JSON and YAML read naturally, hence read back
/// without its field's type: a text is read as a date only when written exactly as that date is (so that
/// every value reads back as it was written), and a text field may still hold such a date-like text (the
/// guards type values by their field).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    Boolean(bool),
    Integer(i64),
    /// Dates are written `YYYY-MM-DD`; a field of type `date` only ever holds this variant.
    Date(NaiveDate),
    Text(String),
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FieldValue, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Boolean(bool),
            Integer(i64),
            Text(String),
        }
        Ok(match Written::deserialize(deserializer)? {
            Written::Boolean(b) => FieldValue::Boolean(b),
            Written::Integer(i) => FieldValue::Integer(i),
            // chrono also reads `2024-6-30` or `+2024-06-30`: a text that is not how the date is written back
            // stays a text.
            Written::Text(text) => match text.parse::<NaiveDate>() {
                Ok(date) if date.to_string() == text => FieldValue::Date(date),
                _ => FieldValue::Text(text),
            },
        })
    }
}

pub type Facts = BTreeMap<String, FieldValue>;

/// Review status of one requirement, as the store derives it from documents and reviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementStatus {
    /// No document uploaded.
    Missing,
    /// A document waits for review and none was accepted before.
    Pending,
    /// The latest reviewed document was accepted.
    Accepted,
    /// The latest reviewed document was rejected (and no newer one waits).
    Rejected,
    /// A correction was requested on the latest document.
    CorrectionRequested,
    /// The accepted evidence has passed its expiry date.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortInfo {
    pub id: String,
    pub starts_on: NaiveDate,
}

/// What the engine needs to know of a running project. Built by the store; never read from I/O here.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub state: String,
    /// When the project entered its current state.
    pub entered_at: DateTime<Utc>,
    pub facts: Facts,
    /// Requirements absent from the map are `Missing`.
    pub requirements: BTreeMap<String, RequirementStatus>,
    pub cohort: Option<CohortInfo>,
    /// Whether the child workflow started by the current state (if any) reached a success state.
    pub child_completed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Stable actor id recorded in the events (e.g. `user:42`, `scheduler`).
    pub id: String,
    /// Account roles (`council`, `officer`); the workflow's `held_by` says which workflow roles they hold.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireRequest {
    pub transition: String,
    pub comment: Option<String>,
}

/// One unmet condition: a stable code (e.g. `requirement_not_accepted`, `field_missing`, `field_compare`,
/// `cohort_missing`, `comment_missing`, `child_not_completed`), the subject it is about (requirement or
/// field key, when there is one) and a French and English sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmet {
    pub code: String,
    pub subject: Option<String>,
    pub fr: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    #[error("unknown transition `{transition}`")]
    UnknownTransition { transition: String },
    #[error("transition `{transition}` cannot be fired from state `{state}` (only from: {})", allowed_from.join(", "))]
    WrongState {
        transition: String,
        state: String,
        allowed_from: Vec<String>,
    },
    #[error("transition `{transition}` needs one of the roles {}", allowed.join(", "))]
    RoleNotAllowed {
        transition: String,
        allowed: Vec<String>,
    },
    #[error("transition `{transition}` has {} unmet condition(s)", unmet.len())]
    Unmet {
        transition: String,
        unmet: Vec<Unmet>,
    },
}

/// A deadline to store, keyed by the state it belongs to, the goal id, or `state.milestone` for a milestone
/// inside a state. The scheduler reads the reminder plan (`Workflow::reminder_plan(key)`) from the workflow
/// version the project is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineSet {
    /// State id for state deadlines, goal id for workflow goals, `state.milestone` for milestones.
    pub key: String,
    pub due_at: DateTime<Utc>,
}

/// An email to queue: the template, and the roles it is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailIntent {
    pub template: String,
    pub to_roles: Vec<String>,
}

/// What firing a transition decided. The service writes all of it in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub transition: String,
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub comment: Option<String>,
    /// Deadline keys cleared (the state left and its milestones; goals when reaching a terminal state or the
    /// goal's state).
    pub clear_deadlines: Vec<String>,
    /// Deadlines set on entering the new state (and, on creation, every goal's).
    pub set_deadlines: Vec<DeadlineSet>,
    pub emails: Vec<EmailIntent>,
    /// Whether the new state is terminal.
    pub terminal: bool,
}

/// For a page or the API: one transition out of the current state as seen by an actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionView {
    pub id: String,
    pub to: String,
    /// Actor has a role allowed on the transition.
    pub role_allowed: bool,
    /// Role allowed and no unmet condition (comment conditions are not counted: a comment is typed on firing).
    pub allowed: bool,
    pub unmet: Vec<Unmet>,
    /// A comment (the reason) must be typed to fire it.
    pub comment_required: bool,
}
