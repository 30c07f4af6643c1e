//! The raw definition as written in YAML. It becomes a [`crate::Workflow`] only once every check passed.
//!
//! Every struct refuses unknown keys: a typo in a definition must be an error, not a silently ignored line.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// French and English text. French is mandatory: it is the language every page and mail falls back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub fr: String,
    pub en: String,
}

/// A mapping read with every key different. YAML forbids repeating a key but serde would keep the last value
/// without a word; the loader then names each repeated key with both places.
fn unique_keys<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a mapping")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if entries.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                }
                let value = map.next_value()?;
                entries.insert(key, value);
            }
            Ok(entries)
        }
    }

    deserializer.deserialize_map(Entries(PhantomData))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    pub id: String,
    pub version: u32,
    pub labels: Labels,
    /// IANA time zone used for day boundaries and send times (default Europe/Paris).
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(deserialize_with = "unique_keys")]
    pub roles: BTreeMap<String, Labels>,
    /// Who acts in each role: `council` or `officer` accounts of the service, or `link` for people outside
    /// it who act through signed links. A role not listed is held by the accounts of the same name.
    #[serde(default, deserialize_with = "unique_keys")]
    pub held_by: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub requirements: BTreeMap<String, RawRequirement>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub fields: BTreeMap<String, RawField>,
    #[serde(deserialize_with = "unique_keys")]
    pub states: BTreeMap<String, RawState>,
    #[serde(deserialize_with = "unique_keys")]
    pub transitions: BTreeMap<String, RawTransition>,
    /// Goals that hold across states, such as "operational by 2024-12-31".
    #[serde(default, deserialize_with = "unique_keys")]
    pub goals: BTreeMap<String, RawGoal>,
    /// Explicit mapping used when a project is migrated from an older version whose states no longer exist.
    #[serde(default, deserialize_with = "unique_keys")]
    pub migrations: BTreeMap<String, String>,
    /// Corrections officers request on evidence, each with its own due date.
    #[serde(default)]
    pub corrections: Option<RawCorrections>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCorrections {
    /// The plan of every correction deadline (keys `correction:<requirement>`).
    #[serde(default)]
    pub reminders: Option<RawReminderPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequirement {
    pub labels: Labels,
    /// Part of the eligibility review (guard `requirements: eligibility`).
    #[serde(default)]
    pub eligibility: bool,
    /// Document kinds accepted as evidence: pdf, odt, ods, docx, xlsx, png, jpeg.
    pub documents: Vec<String>,
    #[serde(default)]
    pub hint: Option<Labels>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Integer,
    Date,
    Boolean,
    Choice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub labels: Labels,
    /// Allowed values of a `choice` field, each with its labels.
    #[serde(default, deserialize_with = "unique_keys")]
    pub choices: BTreeMap<String, Labels>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Initial,
    Active,
    Terminal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminalOutcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub kind: StateKind,
    pub labels: Labels,
    /// Terminal states only: whether reaching it is the programme's success.
    #[serde(default)]
    pub outcome: Option<TerminalOutcome>,
    #[serde(default)]
    pub deadline: Option<RawDeadline>,
    #[serde(default)]
    pub reminders: Option<RawReminderPlan>,
    /// Planned duration used by the critical-path analysis when the state has no relative deadline.
    #[serde(default)]
    pub planned: Option<RawPlanned>,
    #[serde(default)]
    pub milestones: Vec<RawMilestone>,
    /// A sub-workflow started per project on entering this state; the state waits for it.
    #[serde(default)]
    pub child: Option<String>,
}

/// Where a relative deadline counts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAnchor {
    /// The instant the project entered the state (the default).
    Entered,
    /// The start date of the cohort the project is assigned to.
    CohortStart,
    /// A date field of the project.
    Field(String),
}

/// What a paused deadline does when resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockOnResume {
    /// The remaining time is kept: the due date moves by the length of the pause.
    #[default]
    Continue,
    /// The full period starts again from the resumption.
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadline {
    /// ISO-8601 duration (`P6M`, `P30D`, `P2W`, `PT12H`) counted from `from`.
    #[serde(default)]
    pub after: Option<String>,
    /// serde_yaml 0.9 reads enums as YAML tags by default; `singleton_map` lets us write `{field: x}`.
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub from: Option<RawAnchor>,
    /// Absolute date (`2024-12-31`): due at the end of that day in the workflow's time zone.
    #[serde(default)]
    pub on: Option<String>,
    #[serde(default)]
    pub on_resume: ClockOnResume,
    #[serde(default)]
    pub labels: Option<Labels>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReminderPlan {
    /// Offsets before the deadline, as ISO-8601 durations (`P14D`, `P3D`).
    #[serde(default)]
    pub before: Vec<String>,
    /// Once overdue, repeat at this interval.
    #[serde(default)]
    pub overdue_every: Option<String>,
    /// Roles escalated to once overdue.
    #[serde(default)]
    pub escalate_to: Vec<String>,
    /// Roles reminded before the deadline (default: every role that may fire a transition out of the state).
    #[serde(default)]
    pub notify: Vec<String>,
    /// Templates used; defaults are `deadline_reminder`, `deadline_overdue`, `deadline_escalation`.
    #[serde(default)]
    pub templates: Option<RawReminderTemplates>,
    /// Local time (`HH:MM`, workflow time zone) at which reminders before the deadline go out; default 09:00.
    #[serde(default)]
    pub send_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReminderTemplates {
    pub before: String,
    pub overdue: String,
    pub escalation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlanned {
    pub min: String,
    pub max: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMilestone {
    pub id: String,
    pub labels: Labels,
    /// Duration after the state's deadline anchor (e.g. `P3M` for a mid-term review).
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGoal {
    pub labels: Labels,
    /// The state that must be reached.
    pub reach: String,
    /// Absolute date (`2024-12-31`).
    pub by: String,
    #[serde(default)]
    pub reminders: Option<RawReminderPlan>,
}

/// `from:` accepts one state, a list, or `"*"` for every non-terminal state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawFrom {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransition {
    pub from: RawFrom,
    pub to: String,
    pub labels: Labels,
    pub roles: Vec<String>,
    /// `- requirements: eligibility` rather than the tag `!requirements eligibility` serde_yaml expects.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub guards: Vec<RawGuard>,
    /// Emails sent when the transition fires.
    #[serde(default)]
    pub emails: Vec<RawEmail>,
}

/// An email of a transition: a bare template name goes to every role of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawEmail {
    Everyone(String),
    Addressed(RawAddressedEmail),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddressedEmail {
    pub template: String,
    pub to: Vec<String>,
}

/// Which requirements a guard asks to be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawRequirementSet {
    /// The keyword `eligibility`: every requirement marked `eligibility: true`.
    Keyword(String),
    List(Vec<String>),
}

/// Comparison of a field with a constant; the value is checked against the field's type at load time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    pub field: String,
    #[serde(default)]
    pub eq: Option<serde_yaml::Value>,
    #[serde(default)]
    pub gt: Option<serde_yaml::Value>,
    #[serde(default)]
    pub gte: Option<serde_yaml::Value>,
    #[serde(default)]
    pub lt: Option<serde_yaml::Value>,
    #[serde(default)]
    pub lte: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawGuard {
    Requirements(RawRequirementSet),
    FieldSet(String),
    /// Boxed: the five optional constants would make every guard as large as a comparison.
    Compare(Box<RawCompare>),
    CohortAssigned,
    CommentRequired,
    ChildCompleted,
    /// Every listed guard holds.
    All(Vec<RawGuard>),
    /// At least one listed guard holds.
    Any(Vec<RawGuard>),
}
