//! The validated workflow: immutable, indexed, cheap to query. Only [`Workflow::from_yaml`] builds one.
//!
//! Parts are `#[non_exhaustive]` with public fields: callers read them freely but cannot build an unchecked
//! state or transition outside this crate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use petgraph::graph::DiGraph;

use crate::duration::CalendarDuration;
use crate::error::LoadError;
use crate::guard::Guard;
use crate::load::{Reference, missing_references};
use crate::model::{ClockOnResume, FieldType, Labels, StateKind, TerminalOutcome};
use crate::runtime::EmailIntent;

/// Document kinds accepted as evidence.
pub const DOCUMENT_KINDS: [&str; 7] = ["pdf", "odt", "ods", "docx", "xlsx", "png", "jpeg"];

/// The transition id recorded when a project is created in the initial state.
pub const CREATE_TRANSITION: &str = "create";

#[derive(Debug)]
pub struct Workflow {
    pub(crate) file: String,
    /// Kept to locate references in errors found after loading (missing templates or child workflows).
    pub(crate) source: String,
    pub(crate) id: String,
    pub(crate) version: u32,
    pub(crate) labels: Labels,
    pub(crate) timezone: Tz,
    pub(crate) roles: BTreeMap<String, Labels>,
    pub(crate) held_by: BTreeMap<String, RoleHolder>,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) fields: Vec<Field>,
    pub(crate) states: Vec<State>,
    pub(crate) transitions: Vec<Transition>,
    pub(crate) goals: Vec<Goal>,
    /// The plan of every correction deadline (`correction:<requirement>`), when the definition has one.
    pub(crate) correction_reminders: Option<ReminderPlan>,
    pub(crate) initial: usize,
    pub(crate) index: Index,
    /// Node `i` is state `i`; edge weights are transition indices.
    pub(crate) graph: DiGraph<usize, usize>,
    pub(crate) template_refs: Vec<Reference>,
    pub(crate) child_refs: Vec<Reference>,
    pub(crate) migrations: BTreeMap<String, String>,
}

/// Account roles of the service a workflow role may be held by (`held_by:` in a definition).
pub const ACCOUNT_ROLES: [&str; 2] = ["council", "officer"];

/// Who acts in a workflow role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleHolder {
    /// Accounts of the service with this account role (`council` accounts of the project's region).
    Accounts(String),
    /// People without an account, acting through signed links the project's officers or council send.
    Link,
}

/// Id → position lookups, built once at load time so that the hot path never scans.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub states: HashMap<String, usize>,
    pub transitions: HashMap<String, usize>,
    pub requirements: HashMap<String, usize>,
    pub fields: HashMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Requirement {
    pub key: String,
    pub labels: Labels,
    pub eligibility: bool,
    pub documents: Vec<String>,
    pub hint: Option<Labels>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Field {
    pub key: String,
    pub kind: FieldType,
    pub labels: Labels,
    pub choices: BTreeMap<String, Labels>,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct State {
    pub id: String,
    pub kind: StateKind,
    pub labels: Labels,
    pub outcome: Option<TerminalOutcome>,
    pub deadline: Option<Deadline>,
    pub reminders: Option<ReminderPlan>,
    pub planned: Planned,
    pub milestones: Vec<Milestone>,
    pub child: Option<String>,
    /// Indices of the transitions leaving this state, in id order.
    pub(crate) outgoing: Vec<usize>,
}

impl State {
    pub fn is_terminal(&self) -> bool {
        self.kind == StateKind::Terminal
    }

    pub fn is_success(&self) -> bool {
        self.outcome == Some(TerminalOutcome::Success)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deadline {
    pub rule: DeadlineRule,
    pub on_resume: ClockOnResume,
    pub labels: Option<Labels>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineRule {
    /// A duration counted from an anchor.
    After {
        duration: CalendarDuration,
        from: Anchor,
    },
    /// The end of a calendar day in the workflow's time zone.
    On(NaiveDate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    Entered,
    CohortStart,
    /// A date field of the project.
    Field(String),
}

/// Planned time spent in a state, for the critical-path analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Planned {
    pub min: CalendarDuration,
    pub max: CalendarDuration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Milestone {
    pub id: String,
    pub labels: Labels,
    /// Counted from the state's deadline anchor.
    pub after: CalendarDuration,
}

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Transition {
    pub id: String,
    pub labels: Labels,
    pub from: Vec<String>,
    pub to: String,
    pub roles: Vec<String>,
    pub emails: Vec<EmailIntent>,
    /// A comment must be typed when firing (the form shows a mandatory reason box).
    pub comment_required: bool,
    pub(crate) from_ix: Vec<usize>,
    pub(crate) to_ix: usize,
    pub(crate) guard: Guard,
}

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Goal {
    pub id: String,
    pub labels: Labels,
    pub reach: String,
    pub by: NaiveDate,
    /// The end of `by` in the workflow's time zone.
    pub due: DateTime<Utc>,
    pub reminders: Option<ReminderPlan>,
    pub(crate) reach_ix: usize,
}

/// When and to whom reminders of one deadline go out. See [`ReminderPlan::due_steps`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReminderPlan {
    /// Offsets before the due day, longest first.
    pub before: Vec<CalendarDuration>,
    pub overdue_every: Option<CalendarDuration>,
    pub notify: Vec<String>,
    pub escalate_to: Vec<String>,
    pub templates: ReminderTemplates,
    pub send_time: NaiveTime,
    pub timezone: Tz,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReminderTemplates {
    pub before: String,
    pub overdue: String,
    pub escalation: String,
}

impl Workflow {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The file name given to [`Workflow::from_yaml`], used in error messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    pub fn roles(&self) -> &BTreeMap<String, Labels> {
        &self.roles
    }

    /// Who acts in `role`: the `held_by` entry, else the accounts whose account role has the same name.
    pub fn holder(&self, role: &str) -> RoleHolder {
        self.held_by
            .get(role)
            .cloned()
            .unwrap_or_else(|| RoleHolder::Accounts(role.to_owned()))
    }

    /// Whether an account with `account_role` acts in the workflow role `role`.
    pub fn account_holds(&self, account_role: &str, role: &str) -> bool {
        self.holder(role) == RoleHolder::Accounts(account_role.to_owned())
    }

    /// The account roles that hold any of `roles`, sorted and once each: whom a mail to `roles` reaches.
    pub fn account_roles(&self, roles: &[String]) -> Vec<String> {
        let held: BTreeSet<String> = roles
            .iter()
            .filter_map(|r| match self.holder(r) {
                RoleHolder::Accounts(account) => Some(account),
                RoleHolder::Link => None,
            })
            .collect();
        held.into_iter().collect()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn requirement(&self, key: &str) -> Option<&Requirement> {
        self.index
            .requirements
            .get(key)
            .map(|&i| &self.requirements[i])
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, key: &str) -> Option<&Field> {
        self.index.fields.get(key).map(|&i| &self.fields[i])
    }

    pub fn states(&self) -> &[State] {
        &self.states
    }

    pub fn state(&self, id: &str) -> Option<&State> {
        self.state_ix(id).map(|i| &self.states[i])
    }

    pub fn initial_state(&self) -> &State {
        &self.states[self.initial]
    }

    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    pub fn transition(&self, id: &str) -> Option<&Transition> {
        self.index
            .transitions
            .get(id)
            .map(|&i| &self.transitions[i])
    }

    /// The transitions leaving `state` (empty for an unknown or terminal state).
    pub fn transitions_from(&self, state: &str) -> impl Iterator<Item = &Transition> {
        let outgoing = self
            .state_ix(state)
            .map_or(&[][..], |i| &self.states[i].outgoing[..]);
        outgoing.iter().map(|&t| &self.transitions[t])
    }

    pub fn goals(&self) -> &[Goal] {
        &self.goals
    }

    /// The state a project recorded in `state` is in under this version: itself if it still exists, else the
    /// explicit migration mapping.
    pub fn migrate_state<'a>(&'a self, state: &'a str) -> Option<&'a str> {
        if self.state_ix(state).is_some() {
            return Some(state);
        }
        self.migrations.get(state).map(String::as_str)
    }

    /// Every email template the workflow refers to, including reminder defaults.
    pub fn template_names(&self) -> BTreeSet<&str> {
        self.template_refs
            .iter()
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Errors for templates absent from `known` (the template folders the caller found), at each reference.
    pub fn check_templates(&self, known: &BTreeSet<String>) -> Vec<LoadError> {
        let (what, expected) = ("unknown email template", "a folder templates/email/");
        missing_references(
            &self.file,
            &self.source,
            &self.template_refs,
            known,
            what,
            expected,
        )
    }

    /// Workflow ids of the child workflows started by states.
    pub fn child_workflows(&self) -> BTreeSet<&str> {
        self.child_refs.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Errors for child workflows absent from `known` (ids of the other definitions), at each reference.
    pub fn check_children(&self, known: &BTreeSet<String>) -> Vec<LoadError> {
        let (what, expected) = ("unknown child workflow", "a definition with id ");
        missing_references(
            &self.file,
            &self.source,
            &self.child_refs,
            known,
            what,
            expected,
        )
    }

    pub(crate) fn state_ix(&self, id: &str) -> Option<usize> {
        self.index.states.get(id).copied()
    }
}
