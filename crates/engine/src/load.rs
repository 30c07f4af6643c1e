//! From YAML text to a [`Workflow`]: parse, then check everything and report every defect at its node.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, Reversed};
use serde::de::IgnoredAny;

use crate::definition::{
    ACCOUNT_ROLES, Anchor, CREATE_TRANSITION, DOCUMENT_KINDS, Deadline, DeadlineRule, Field, Goal,
    Index, Milestone, Planned, ReminderPlan, ReminderTemplates, Requirement, RoleHolder, State,
    Transition, Workflow,
};
use crate::duration::{CalendarDuration, start_of_local_day};
use crate::error::{LoadError, LoadErrors};
use crate::guard::{CompareOp, Guard};
use crate::locate::{DuplicateKey, Location, Locations, first_unprintable, join};
use crate::model::{
    ClockOnResume, FieldType, Labels, RawAnchor, RawCompare, RawDeadline, RawEmail, RawField,
    RawFrom, RawGoal, RawGuard, RawReminderPlan, RawRequirementSet, RawState, RawTransition,
    RawWorkflow, StateKind,
};
use crate::runtime::{EmailIntent, FieldValue};

const DEFAULT_TIMEZONE: Tz = chrono_tz::Europe::Paris;
const DEFAULT_SEND_TIME: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};
const ELIGIBILITY: &str = "eligibility";

impl Workflow {
    /// Parses and checks a definition. `file` only names the source in error messages.
    pub fn from_yaml(source: &str, file: &str) -> Result<Workflow, LoadErrors> {
        let single = |at: Location, message: String, hint: Option<String>| {
            LoadErrors::new(vec![LoadError::new(file, at.within(source), message, hint)])
        };
        if let Some((at, c)) = first_unprintable(source) {
            let message = format!("invalid YAML: control character U+{:04X}", u32::from(c));
            let hint = "remove it, or write it as an escape (`\\u0001`) in a double-quoted string";
            return Err(single(at, message, Some(hint.into())));
        }
        let refused = |e: serde_yaml::Error, prefix: &str| {
            let at = e.location().map_or(Location::START, |l| Location {
                line: l.line(),
                column: l.column(),
            });
            let (message, hint) = serde_message(&e.to_string());
            single(at, format!("{prefix}{message}"), hint)
        };
        // libyaml (serde_yaml) alone decides what the text means: a definition must not depend on which of two
        // parsers read it. yaml-rust2 only places errors, once there are errors to place.
        let raw: RawWorkflow = serde_yaml::from_str(source).map_err(|e| {
            // Is it YAML at all? The same parser, reading without types, says so and where it stops.
            if let Err(syntax) = serde_yaml::from_str::<IgnoredAny>(source) {
                return refused(syntax, "invalid YAML: ");
            }
            // serde_yaml stops at the first repeated key; the scan names each, and both places.
            match Locations::scan(source) {
                Ok((_, duplicates)) if !duplicates.is_empty() => duplicate_errors(file, duplicates),
                _ => refused(e, ""),
            }
        })?;
        let mut checker = Checker {
            errors: Vec::new(),
            graph_sound: true,
        };
        match checker.check(raw, file, source) {
            Some(workflow) => Ok(workflow),
            _ => Err(LoadErrors::new(resolve(file, source, &checker.errors))),
        }
    }
}

/// Each repeated key, where it is repeated, pointing back at its first definition.
fn duplicate_errors(file: &str, duplicates: Vec<DuplicateKey>) -> LoadErrors {
    let errors = duplicates.into_iter().map(|d| {
        let within = if d.path.is_empty() {
            String::new()
        } else {
            format!(" in `{}`", d.path)
        };
        let hint = format!(
            "first defined at line {}, column {}",
            d.first.line, d.first.column
        );
        LoadError::new(
            file,
            d.at,
            format!("duplicate key `{}`{within}", d.key),
            Some(hint),
        )
    });
    LoadErrors::new(errors.collect())
}

/// An error found by the checks, located by key path until positions are needed.
#[derive(Debug)]
struct PathError {
    path: String,
    /// Point at the key naming the node rather than at the node.
    at_key: bool,
    message: String,
    hint: Option<String>,
}

/// Turns path-located errors into file positions: the one place a definition is scanned for positions.
fn resolve(file: &str, source: &str, errors: &[PathError]) -> Vec<LoadError> {
    let locations = Locations::scan(source).map(|(l, _)| l).unwrap_or_default();
    errors
        .iter()
        .map(|e| {
            let at = if e.at_key {
                locations.key(&e.path)
            } else {
                locations.value(&e.path)
            };
            LoadError::new(file, at.within(source), e.message.clone(), e.hint.clone())
        })
        .collect()
}

/// A reference to something outside the definition (an email template, a child workflow), by key path.
pub(crate) type Reference = (String, String);

/// Errors for references whose name is not in `known`, at each reference.
pub(crate) fn missing_references(
    file: &str,
    source: &str,
    refs: &[Reference],
    known: &BTreeSet<String>,
    what: &str,
    expected: &str,
) -> Vec<LoadError> {
    let missing: Vec<PathError> = refs
        .iter()
        .filter(|(name, _)| !known.contains(name))
        .map(|(name, path)| PathError {
            path: path.clone(),
            at_key: false,
            message: format!("{what} `{name}`"),
            hint: Some(format!("expected {expected}{name}")),
        })
        .collect();
    if missing.is_empty() {
        Vec::new()
    } else {
        resolve(file, source, &missing)
    }
}

/// serde_yaml's message without its trailing position, and a readable expectation for untagged enums.
fn serde_message(text: &str) -> (String, Option<String>) {
    let message = match text.rfind(" at line ") {
        Some(cut) => &text[..cut],
        None => text,
    };
    const UNTAGGED: [(&str, &str); 3] = [
        (
            "RawFrom",
            "`from` is a state id, a list of state ids, or \"*\"",
        ),
        (
            "RawRequirementSet",
            "`requirements` is `eligibility` or a list of requirement keys",
        ),
        (
            "RawEmail",
            "an email is a template name or {template: NAME, to: [roles]}",
        ),
    ];
    let hint = UNTAGGED
        .iter()
        .find(|(name, _)| message.contains(name))
        .map(|(_, hint)| (*hint).to_owned());
    (message.to_owned(), hint)
}

fn is_item_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Workflow ids name files and URLs, so hyphens are allowed there (`csirt-incubation`).
fn is_workflow_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

struct Checker {
    errors: Vec<PathError>,
    /// False once a state or transition reference failed: graph checks would then report noise.
    graph_sound: bool,
}

/// What transitions need to know about states before the states themselves are complete.
struct StateSketch<'a> {
    ids: Vec<&'a str>,
    kinds: Vec<StateKind>,
    has_child: Vec<bool>,
    index: HashMap<String, usize>,
}

impl Checker {
    fn fail(&mut self, path: &str, at_key: bool, message: impl Into<String>, hint: Option<&str>) {
        let hint = hint.map(str::to_owned);
        self.errors.push(PathError {
            path: path.to_owned(),
            at_key,
            message: message.into(),
            hint,
        });
    }

    fn fail_value(&mut self, path: &str, message: impl Into<String>, hint: Option<&str>) {
        self.fail(path, false, message, hint);
    }

    fn fail_key(&mut self, path: &str, message: impl Into<String>, hint: Option<&str>) {
        self.fail(path, true, message, hint);
    }

    fn item_id(&mut self, path: &str, id: &str, what: &str) {
        if !is_item_id(id) {
            let hint =
                "ids are lowercase ASCII letters, digits and underscores, starting with a letter";
            self.fail_key(path, format!("invalid {what} id `{id}`"), Some(hint));
        }
    }

    fn labels(&mut self, path: &str, labels: &Labels) {
        for (lang, text) in [("fr", &labels.fr), ("en", &labels.en)] {
            if text.trim().is_empty() {
                self.fail_value(&join(path, lang), format!("empty `{lang}` label"), None);
            }
        }
    }

    fn duration(&mut self, path: &str, text: &str) -> Option<CalendarDuration> {
        text.parse()
            .map_err(|e| {
                self.fail_value(
                    path,
                    format!("bad duration: {e}"),
                    Some("e.g. P6M, P30D, P2W, PT12H"),
                )
            })
            .ok()
    }

    fn date(&mut self, path: &str, text: &str) -> Option<NaiveDate> {
        let date = parse_date(text);
        if date.is_none() {
            self.fail_value(
                path,
                format!("bad date `{text}`"),
                Some("dates are written YYYY-MM-DD"),
            );
        }
        date
    }

    fn role(&mut self, path: &str, role: &str, roles: &BTreeMap<String, Labels>) {
        if !roles.contains_key(role) {
            let known: Vec<&str> = roles.keys().map(String::as_str).collect();
            self.fail_value(
                path,
                format!("unknown role `{role}`"),
                Some(&format!("roles are: {}", known.join(", "))),
            );
        }
    }

    fn template(&mut self, path: &str, name: &str, refs: &mut Vec<Reference>) {
        if is_item_id(name) {
            refs.push((name.to_owned(), path.to_owned()));
        } else {
            self.fail_value(
                path,
                format!("invalid template name `{name}`"),
                Some("template names are folder names like `stage_entered`"),
            );
        }
    }

    /// Every check of the definition; the workflow is built only when none failed.
    fn check(&mut self, raw: RawWorkflow, file: &str, source: &str) -> Option<Workflow> {
        if !is_workflow_id(&raw.id) {
            self.fail_value(
                "id",
                format!("invalid workflow id `{}`", raw.id),
                Some("lowercase letters, digits, `_` and `-`, starting with a letter"),
            );
        }
        if raw.version == 0 {
            self.fail_value("version", "versions start at 1", None);
        }
        self.labels("labels", &raw.labels);
        let timezone = match raw.timezone.as_deref() {
            None => DEFAULT_TIMEZONE,
            Some(name) => name.parse().unwrap_or_else(|_| {
                self.fail_value(
                    "timezone",
                    format!("unknown time zone `{name}`"),
                    Some("an IANA name such as Europe/Paris"),
                );
                DEFAULT_TIMEZONE
            }),
        };
        if raw.roles.is_empty() {
            self.fail_key("roles", "a workflow needs at least one role", None);
        }
        for (id, labels) in &raw.roles {
            let path = join("roles", id);
            self.item_id(&path, id, "role");
            self.labels(&path, labels);
        }
        let held_by = self.held_by(&raw);
        let requirements = self.requirements(&raw);
        let fields = self.fields(&raw);
        let mut index = Index {
            requirements: requirements
                .iter()
                .enumerate()
                .map(|(i, r)| (r.key.clone(), i))
                .collect(),
            fields: fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.key.clone(), i))
                .collect(),
            ..Index::default()
        };
        let sketch = self.sketch_states(&raw.states);
        let mut template_refs = Vec::new();
        let transitions: Vec<Transition> = raw
            .transitions
            .iter()
            .filter_map(|(id, t)| {
                self.transition(
                    id,
                    t,
                    &raw,
                    &sketch,
                    &requirements,
                    &fields,
                    &mut template_refs,
                )
            })
            .collect();
        if transitions.len() != raw.transitions.len() {
            // A dropped transition would make the graph checks report states as unreachable or stuck.
            self.graph_sound = false;
        }
        let mut outgoing_of = vec![Vec::new(); raw.states.len()];
        for (t, transition) in transitions.iter().enumerate() {
            for &s in &transition.from_ix {
                outgoing_of[s].push(t);
            }
        }
        let mut child_refs = Vec::new();
        let mut states = Vec::with_capacity(raw.states.len());
        for ((id, state), outgoing) in raw.states.iter().zip(outgoing_of) {
            let notify: BTreeSet<String> = outgoing
                .iter()
                .flat_map(|&t| transitions[t].roles.iter().cloned())
                .collect();
            let built = self.state(
                id,
                state,
                &raw,
                &fields,
                notify.into_iter().collect(),
                timezone,
                &mut template_refs,
            );
            if let Some(child) = &state.child {
                let path = join(&join("states", id), "child");
                if is_workflow_id(child) {
                    child_refs.push((child.clone(), path));
                } else {
                    self.fail_value(&path, format!("invalid child workflow id `{child}`"), None);
                }
            }
            states.push(State { outgoing, ..built });
        }
        let goals = self.goals(&raw, &sketch, timezone, &mut template_refs);
        let correction_reminders = raw
            .corrections
            .as_ref()
            .and_then(|c| c.reminders.as_ref())
            .and_then(|plan| {
                self.reminder_plan(
                    &join("corrections", "reminders"),
                    plan,
                    raw.roles.keys().cloned().collect(),
                    &raw.roles,
                    timezone,
                    &mut template_refs,
                )
            });
        for (old, new) in &raw.migrations {
            if !sketch.index.contains_key(new) {
                self.fail_value(
                    &join("migrations", old),
                    format!("migration of `{old}` to unknown state `{new}`"),
                    None,
                );
            }
        }
        let initial = self.initial_state(&raw.states);
        let graph = build_graph(raw.states.len(), &transitions);
        if self.graph_sound
            && let Some(initial) = initial
        {
            self.graph_checks(&states, initial, &graph);
        }
        match (initial, self.errors.is_empty()) {
            (Some(initial), true) => {
                index.states = sketch.index;
                index.transitions = transitions
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.id.clone(), i))
                    .collect();
                Some(Workflow {
                    file: file.to_owned(),
                    source: source.to_owned(),
                    id: raw.id,
                    version: raw.version,
                    labels: raw.labels,
                    timezone,
                    roles: raw.roles,
                    held_by,
                    requirements,
                    fields,
                    states,
                    transitions,
                    goals,
                    correction_reminders,
                    initial,
                    index,
                    graph,
                    template_refs,
                    child_refs,
                    migrations: raw.migrations,
                })
            }
            _ => None,
        }
    }

    fn held_by(&mut self, raw: &RawWorkflow) -> BTreeMap<String, RoleHolder> {
        let mut held_by = BTreeMap::new();
        for (role, holder) in &raw.held_by {
            let path = join("held_by", role);
            if !raw.roles.contains_key(role) {
                let known: Vec<&str> = raw.roles.keys().map(String::as_str).collect();
                let hint = format!("roles are: {}", known.join(", "));
                self.fail_key(&path, format!("unknown role `{role}`"), Some(&hint));
            }
            let holder = match holder.as_str() {
                "link" => RoleHolder::Link,
                account if ACCOUNT_ROLES.contains(&account) => {
                    RoleHolder::Accounts(account.to_owned())
                }
                other => {
                    let hint = format!("one of {}, link", ACCOUNT_ROLES.join(", "));
                    self.fail_value(&path, format!("unknown holder `{other}`"), Some(&hint));
                    continue;
                }
            };
            held_by.insert(role.clone(), holder);
        }
        held_by
    }

    fn requirements(&mut self, raw: &RawWorkflow) -> Vec<Requirement> {
        let mut out = Vec::with_capacity(raw.requirements.len());
        for (key, r) in &raw.requirements {
            let path = join("requirements", key);
            self.item_id(&path, key, "requirement");
            self.labels(&join(&path, "labels"), &r.labels);
            if r.documents.is_empty() {
                self.fail_key(
                    &join(&path, "documents"),
                    format!("requirement `{key}` accepts no document kind"),
                    None,
                );
            }
            for (i, kind) in r.documents.iter().enumerate() {
                if !DOCUMENT_KINDS.contains(&kind.as_str()) {
                    let hint = format!("kinds are: {}", DOCUMENT_KINDS.join(", "));
                    self.fail_value(
                        &join(&join(&path, "documents"), i),
                        format!("unknown document kind `{kind}`"),
                        Some(&hint),
                    );
                }
            }
            out.push(Requirement {
                key: key.clone(),
                labels: r.labels.clone(),
                eligibility: r.eligibility,
                documents: r.documents.clone(),
                hint: r.hint.clone(),
            });
        }
        out
    }

    fn fields(&mut self, raw: &RawWorkflow) -> Vec<Field> {
        raw.fields
            .iter()
            .map(|(key, f)| {
                let path = join("fields", key);
                self.field(&path, key, f);
                Field {
                    key: key.clone(),
                    kind: f.kind,
                    labels: f.labels.clone(),
                    choices: f.choices.clone(),
                    min: f.min,
                    max: f.max,
                }
            })
            .collect()
    }

    fn field(&mut self, path: &str, key: &str, f: &RawField) {
        self.item_id(path, key, "field");
        self.labels(&join(path, "labels"), &f.labels);
        let choices_path = join(path, "choices");
        match (f.kind, f.choices.is_empty()) {
            (FieldType::Choice, true) => {
                self.fail_key(path, format!("choice field `{key}` lists no choices"), None)
            }
            (FieldType::Choice, false) => {
                for (choice, labels) in &f.choices {
                    let choice_path = join(&choices_path, choice);
                    self.item_id(&choice_path, choice, "choice");
                    self.labels(&choice_path, labels);
                }
            }
            (_, false) => self.fail_key(
                &choices_path,
                format!("`choices` on field `{key}`, which is not of type choice"),
                None,
            ),
            (_, true) => {}
        }
        for (bound, value) in [("min", f.min), ("max", f.max)] {
            if value.is_some() && f.kind != FieldType::Integer {
                self.fail_key(
                    &join(path, bound),
                    format!("`{bound}` on field `{key}`, which is not an integer"),
                    None,
                );
            }
        }
        if let (Some(min), Some(max)) = (f.min, f.max)
            && min > max
        {
            self.fail_value(
                &join(path, "min"),
                format!("min {min} is above max {max}"),
                None,
            );
        }
    }

    fn sketch_states<'r>(&mut self, raw: &'r BTreeMap<String, RawState>) -> StateSketch<'r> {
        let mut sketch = StateSketch {
            ids: Vec::new(),
            kinds: Vec::new(),
            has_child: Vec::new(),
            index: HashMap::new(),
        };
        for (i, (id, state)) in raw.iter().enumerate() {
            sketch.ids.push(id);
            sketch.kinds.push(state.kind);
            sketch.has_child.push(state.child.is_some());
            sketch.index.insert(id.clone(), i);
        }
        sketch
    }

    fn initial_state(&mut self, raw: &BTreeMap<String, RawState>) -> Option<usize> {
        let initials: Vec<(usize, &String)> = raw
            .iter()
            .enumerate()
            .filter(|(_, (_, s))| s.kind == StateKind::Initial)
            .map(|(i, (id, _))| (i, id))
            .collect();
        match initials.as_slice() {
            [] => {
                self.fail_key(
                    "states",
                    "no initial state",
                    Some("mark exactly one state `kind: initial`"),
                );
                None
            }
            [(i, _)] => Some(*i),
            [(_, first), rest @ ..] => {
                for (_, id) in rest {
                    let path = join(&join("states", id), "kind");
                    self.fail_value(
                        &path,
                        format!("second initial state `{id}` (`{first}` is initial already)"),
                        Some("a workflow has exactly one initial state"),
                    );
                }
                None
            }
        }
    }

    fn state_ref(&mut self, path: &str, id: &str, sketch: &StateSketch<'_>) -> Option<usize> {
        let found = sketch.index.get(id).copied();
        if found.is_none() {
            self.graph_sound = false;
            self.fail_value(
                path,
                format!("unknown state `{id}`"),
                Some(&format!("states are: {}", sketch.ids.join(", "))),
            );
        }
        found
    }

    fn transition(
        &mut self,
        id: &str,
        t: &RawTransition,
        raw: &RawWorkflow,
        sketch: &StateSketch<'_>,
        requirements: &[Requirement],
        fields: &[Field],
        template_refs: &mut Vec<Reference>,
    ) -> Option<Transition> {
        let path = join("transitions", id);
        self.item_id(&path, id, "transition");
        if id == CREATE_TRANSITION {
            self.fail_key(
                &path,
                "`create` is reserved for the creation of a project",
                None,
            );
        }
        self.labels(&join(&path, "labels"), &t.labels);
        let from_path = join(&path, "from");
        let from_ix: Vec<usize> = match &t.from {
            RawFrom::One(star) if star == "*" => (0..sketch.ids.len())
                .filter(|&i| sketch.kinds[i] != StateKind::Terminal)
                .collect(),
            RawFrom::One(state) => self
                .state_ref(&from_path, state, sketch)
                .into_iter()
                .collect(),
            RawFrom::Many(states) => states
                .iter()
                .enumerate()
                .filter_map(|(i, s)| self.state_ref(&join(&from_path, i), s, sketch))
                .collect(),
        };
        for &s in &from_ix {
            if sketch.kinds[s] == StateKind::Terminal {
                self.fail_value(
                    &from_path,
                    format!(
                        "transition `{id}` leaves terminal state `{}`",
                        sketch.ids[s]
                    ),
                    Some("terminal states have no outgoing transition"),
                );
            }
        }
        let to_ix = self.state_ref(&join(&path, "to"), &t.to, sketch);
        if t.roles.is_empty() {
            self.fail_key(
                &join(&path, "roles"),
                format!("transition `{id}` allows no role"),
                None,
            );
        }
        for (i, role) in t.roles.iter().enumerate() {
            self.role(&join(&join(&path, "roles"), i), role, &raw.roles);
        }
        let guards_path = join(&path, "guards");
        let guards: Vec<Option<Guard>> = t
            .guards
            .iter()
            .enumerate()
            .map(|(i, g)| {
                self.guard(
                    &join(&guards_path, i),
                    g,
                    &from_ix,
                    sketch,
                    requirements,
                    fields,
                )
            })
            .collect();
        let emails = self.emails(&join(&path, "emails"), &t.emails, &raw.roles, template_refs);
        let guard = Guard::All(guards.into_iter().collect::<Option<Vec<_>>>()?);
        Some(Transition {
            id: id.to_owned(),
            labels: t.labels.clone(),
            from: from_ix.iter().map(|&s| sketch.ids[s].to_owned()).collect(),
            to: t.to.clone(),
            roles: t.roles.clone(),
            emails,
            comment_required: guard.requires_comment(),
            from_ix,
            to_ix: to_ix?,
            guard,
        })
    }

    fn emails(
        &mut self,
        path: &str,
        raw: &[RawEmail],
        roles: &BTreeMap<String, Labels>,
        template_refs: &mut Vec<Reference>,
    ) -> Vec<EmailIntent> {
        raw.iter()
            .enumerate()
            .map(|(i, email)| {
                let path = join(path, i);
                match email {
                    RawEmail::Everyone(template) => {
                        self.template(&path, template, template_refs);
                        EmailIntent {
                            template: template.clone(),
                            to_roles: roles.keys().cloned().collect(),
                        }
                    }
                    RawEmail::Addressed(email) => {
                        self.template(&join(&path, "template"), &email.template, template_refs);
                        if email.to.is_empty() {
                            self.fail_key(
                                &join(&path, "to"),
                                "an email addressed to no role",
                                None,
                            );
                        }
                        for (r, role) in email.to.iter().enumerate() {
                            self.role(&join(&join(&path, "to"), r), role, roles);
                        }
                        EmailIntent {
                            template: email.template.clone(),
                            to_roles: email.to.clone(),
                        }
                    }
                }
            })
            .collect()
    }

    fn guard(
        &mut self,
        path: &str,
        raw: &RawGuard,
        from: &[usize],
        sketch: &StateSketch<'_>,
        requirements: &[Requirement],
        fields: &[Field],
    ) -> Option<Guard> {
        match raw {
            RawGuard::Requirements(set) => {
                self.requirement_set(&join(path, "requirements"), set, requirements)
            }
            RawGuard::FieldSet(key) => self
                .field_ref(&join(path, "field_set"), key, fields)
                .map(Guard::FieldSet),
            RawGuard::Compare(compare) => self.compare(&join(path, "compare"), compare, fields),
            RawGuard::CohortAssigned => Some(Guard::CohortAssigned),
            RawGuard::CommentRequired => Some(Guard::CommentRequired),
            RawGuard::ChildCompleted => {
                if let Some(&s) = from.iter().find(|&&s| !sketch.has_child[s]) {
                    self.fail_value(path, format!("`child_completed` on a transition from `{}`, which starts no child workflow", sketch.ids[s]), Some("add `child: WORKFLOW_ID` to the state"));
                }
                Some(Guard::ChildCompleted)
            }
            RawGuard::All(list) | RawGuard::Any(list) => {
                let (key, any) = if matches!(raw, RawGuard::Any(_)) {
                    ("any", true)
                } else {
                    ("all", false)
                };
                let list_path = join(path, key);
                if list.is_empty() {
                    self.fail_key(&list_path, format!("empty `{key}` guard"), None);
                }
                let guards: Vec<Option<Guard>> = list
                    .iter()
                    .enumerate()
                    .map(|(i, g)| {
                        self.guard(&join(&list_path, i), g, from, sketch, requirements, fields)
                    })
                    .collect();
                let guards = guards.into_iter().collect::<Option<Vec<_>>>()?;
                Some(if any {
                    Guard::Any(guards)
                } else {
                    Guard::All(guards)
                })
            }
        }
    }

    fn requirement_set(
        &mut self,
        path: &str,
        set: &RawRequirementSet,
        requirements: &[Requirement],
    ) -> Option<Guard> {
        match set {
            RawRequirementSet::Keyword(keyword) if keyword == ELIGIBILITY => {
                let eligible: Vec<usize> = (0..requirements.len())
                    .filter(|&r| requirements[r].eligibility)
                    .collect();
                if eligible.is_empty() {
                    self.fail_value(
                        path,
                        "`requirements: eligibility` but no requirement has `eligibility: true`",
                        None,
                    );
                }
                Some(Guard::Requirements(eligible))
            }
            RawRequirementSet::Keyword(other) => {
                self.fail_value(
                    path,
                    format!("unknown requirement set `{other}`"),
                    Some("write `eligibility` or a list of requirement keys"),
                );
                None
            }
            RawRequirementSet::List(keys) => {
                let found: Vec<Option<usize>> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, key)| {
                        let found = requirements.iter().position(|r| &r.key == key);
                        if found.is_none() {
                            let known: Vec<&str> =
                                requirements.iter().map(|r| r.key.as_str()).collect();
                            self.fail_value(
                                &join(path, i),
                                format!("unknown requirement `{key}`"),
                                Some(&format!("requirements are: {}", known.join(", "))),
                            );
                        }
                        found
                    })
                    .collect();
                found
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Guard::Requirements)
            }
        }
    }

    fn field_ref(&mut self, path: &str, key: &str, fields: &[Field]) -> Option<usize> {
        let found = fields.iter().position(|f| f.key == key);
        if found.is_none() {
            let known: Vec<&str> = fields.iter().map(|f| f.key.as_str()).collect();
            self.fail_value(
                path,
                format!("unknown field `{key}`"),
                Some(&format!("fields are: {}", known.join(", "))),
            );
        }
        found
    }

    fn compare(&mut self, path: &str, raw: &RawCompare, fields: &[Field]) -> Option<Guard> {
        let f = self.field_ref(&join(path, "field"), &raw.field, fields)?;
        let field = &fields[f];
        let constants = [&raw.eq, &raw.gt, &raw.gte, &raw.lt, &raw.lte];
        let mut tests = Vec::new();
        for ((op, name), constant) in CompareOp::ALL.into_iter().zip(constants) {
            let Some(constant) = constant else { continue };
            let op_path = join(path, name);
            if op != CompareOp::Eq && matches!(field.kind, FieldType::Boolean | FieldType::Choice) {
                self.fail_key(
                    &op_path,
                    format!(
                        "`{name}` on {:?} field `{}`: only `eq` applies",
                        field.kind, field.key
                    )
                    .to_lowercase(),
                    None,
                );
                continue;
            }
            match constant_value(field, constant) {
                Ok(value) => tests.push((op, value)),
                Err(expected) => self.fail_value(
                    &op_path,
                    format!(
                        "`{name}` compares field `{}` with {}, expected {expected}",
                        field.key,
                        describe_yaml(constant)
                    ),
                    None,
                ),
            }
        }
        if raw.eq.is_none()
            && raw.gt.is_none()
            && raw.gte.is_none()
            && raw.lt.is_none()
            && raw.lte.is_none()
        {
            self.fail_key(path, "`compare` without eq, gt, gte, lt or lte", None);
        }
        Some(Guard::Compare { field: f, tests })
    }

    fn state(
        &mut self,
        id: &str,
        s: &RawState,
        raw: &RawWorkflow,
        fields: &[Field],
        notify: Vec<String>,
        timezone: Tz,
        template_refs: &mut Vec<Reference>,
    ) -> State {
        let path = join("states", id);
        self.item_id(&path, id, "state");
        self.labels(&join(&path, "labels"), &s.labels);
        let terminal = s.kind == StateKind::Terminal;
        match (terminal, s.outcome) {
            (false, Some(_)) => self.fail_key(
                &join(&path, "outcome"),
                format!("`outcome` on non-terminal state `{id}`"),
                Some("only terminal states have an outcome"),
            ),
            (true, None) => self.fail_key(
                &path,
                format!("terminal state `{id}` has no outcome"),
                Some("add `outcome: success` or `outcome: failure`"),
            ),
            _ => {}
        }
        if terminal {
            for (key, present) in [
                ("deadline", s.deadline.is_some()),
                ("planned", s.planned.is_some()),
                ("reminders", s.reminders.is_some()),
            ] {
                if present {
                    self.fail_key(
                        &join(&path, key),
                        format!("`{key}` on terminal state `{id}`"),
                        Some("nothing is awaited in a terminal state"),
                    );
                }
            }
        }
        let deadline = s
            .deadline
            .as_ref()
            .and_then(|d| self.deadline(&join(&path, "deadline"), d, fields));
        let reminders = match (&s.reminders, &s.deadline) {
            (Some(_), None) if !terminal => {
                self.fail_key(
                    &join(&path, "reminders"),
                    format!("reminders on state `{id}`, which has no deadline"),
                    None,
                );
                None
            }
            (Some(plan), _) => self.reminder_plan(
                &join(&path, "reminders"),
                plan,
                notify,
                &raw.roles,
                timezone,
                template_refs,
            ),
            (None, _) => None,
        };
        let relative = match &deadline {
            Some(Deadline {
                rule: DeadlineRule::After { duration, .. },
                ..
            }) => Some(*duration),
            _ => None,
        };
        let planned = match &s.planned {
            Some(p) => {
                let planned_path = join(&path, "planned");
                let min = self.duration(&join(&planned_path, "min"), &p.min);
                let max = self.duration(&join(&planned_path, "max"), &p.max);
                match (min, max) {
                    (Some(min), Some(max)) if min.nominal_seconds() > max.nominal_seconds() => {
                        self.fail_value(
                            &join(&planned_path, "min"),
                            format!("planned min {min} is longer than max {max}"),
                            None,
                        );
                        Planned { min, max }
                    }
                    (Some(min), Some(max)) => Planned { min, max },
                    _ => Planned::default(),
                }
            }
            None => relative
                .map(|d| Planned { min: d, max: d })
                .unwrap_or_default(),
        };
        let milestones = self.milestones(&path, s, relative.is_some());
        State {
            id: id.to_owned(),
            kind: s.kind,
            labels: s.labels.clone(),
            outcome: s.outcome,
            deadline,
            reminders,
            planned,
            milestones,
            child: s.child.clone(),
            outgoing: Vec::new(),
        }
    }

    fn milestones(&mut self, path: &str, s: &RawState, has_anchor: bool) -> Vec<Milestone> {
        let list_path = join(path, "milestones");
        if !s.milestones.is_empty() && !has_anchor {
            self.fail_key(
                &list_path,
                "milestones count from the state's deadline anchor",
                Some("give the state a `deadline` with `after`"),
            );
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, m) in s.milestones.iter().enumerate() {
            let m_path = join(&list_path, i);
            if !is_item_id(&m.id) {
                self.fail_value(
                    &join(&m_path, "id"),
                    format!("invalid milestone id `{}`", m.id),
                    None,
                );
            } else if !seen.insert(m.id.as_str()) {
                self.fail_value(
                    &join(&m_path, "id"),
                    format!("duplicate milestone id `{}`", m.id),
                    None,
                );
            }
            self.labels(&join(&m_path, "labels"), &m.labels);
            if let Some(after) = self.duration(&join(&m_path, "after"), &m.after) {
                out.push(Milestone {
                    id: m.id.clone(),
                    labels: m.labels.clone(),
                    after,
                });
            }
        }
        out
    }

    fn deadline(&mut self, path: &str, d: &RawDeadline, fields: &[Field]) -> Option<Deadline> {
        let rule = match (&d.after, &d.on) {
            (Some(after), None) => {
                let from = match &d.from {
                    None | Some(RawAnchor::Entered) => Anchor::Entered,
                    Some(RawAnchor::CohortStart) => Anchor::CohortStart,
                    Some(RawAnchor::Field(key)) => {
                        let field_path = join(&join(path, "from"), "field");
                        let f = self.field_ref(&field_path, key, fields)?;
                        if fields[f].kind != FieldType::Date {
                            self.fail_value(
                                &field_path,
                                format!("deadline counted from field `{key}`, which is not a date"),
                                None,
                            );
                        }
                        Anchor::Field(key.clone())
                    }
                };
                DeadlineRule::After {
                    duration: self.duration(&join(path, "after"), after)?,
                    from,
                }
            }
            (None, Some(on)) => {
                if d.from.is_some() {
                    self.fail_key(
                        &join(path, "from"),
                        "`from` applies to `after`, not to `on`",
                        None,
                    );
                }
                if d.on_resume == ClockOnResume::Restart {
                    // Silently continuing would move the date by the pause, which is not what was written.
                    self.fail_value(
                        &join(path, "on_resume"),
                        "a deadline on a fixed date has no period to restart",
                        Some(
                            "use `on_resume: continue`, or give the deadline as `after` a duration",
                        ),
                    );
                }
                DeadlineRule::On(self.date(&join(path, "on"), on)?)
            }
            (Some(_), Some(_)) => {
                self.fail_key(
                    &join(path, "on"),
                    "a deadline has `after` or `on`, not both",
                    None,
                );
                return None;
            }
            (None, None) => {
                self.fail_key(
                    path,
                    "a deadline needs `after` (a duration) or `on` (a date)",
                    None,
                );
                return None;
            }
        };
        Some(Deadline {
            rule,
            on_resume: d.on_resume,
            labels: d.labels.clone(),
        })
    }

    fn reminder_plan(
        &mut self,
        path: &str,
        raw: &RawReminderPlan,
        default_notify: Vec<String>,
        roles: &BTreeMap<String, Labels>,
        timezone: Tz,
        template_refs: &mut Vec<Reference>,
    ) -> Option<ReminderPlan> {
        let before_path = join(path, "before");
        let mut before = Vec::new();
        for (i, text) in raw.before.iter().enumerate() {
            let item = join(&before_path, i);
            if let Some(offset) = self.duration(&item, text) {
                if before.contains(&offset) {
                    self.fail_value(&item, format!("reminder offset {offset} given twice"), None);
                }
                before.push(offset);
            }
        }
        before.sort_by_key(|d| std::cmp::Reverse(d.nominal_seconds()));
        let every_path = join(path, "overdue_every");
        let overdue_every = raw
            .overdue_every
            .as_deref()
            .and_then(|text| self.duration(&every_path, text));
        if overdue_every.is_some_and(|d| d.nominal_seconds() == 0) {
            self.fail_value(
                &every_path,
                "`overdue_every` must be longer than zero",
                None,
            );
        }
        for (key, list) in [("notify", &raw.notify), ("escalate_to", &raw.escalate_to)] {
            for (i, role) in list.iter().enumerate() {
                self.role(&join(&join(path, key), i), role, roles);
            }
        }
        let send_time = match &raw.send_time {
            None => DEFAULT_SEND_TIME,
            Some(text) => NaiveTime::parse_from_str(text, "%H:%M").unwrap_or_else(|_| {
                self.fail_value(
                    &join(path, "send_time"),
                    format!("bad send time `{text}`"),
                    Some("a local time written HH:MM"),
                );
                DEFAULT_SEND_TIME
            }),
        };
        let templates = match &raw.templates {
            Some(t) => {
                let t_path = join(path, "templates");
                for (key, name) in [
                    ("before", &t.before),
                    ("overdue", &t.overdue),
                    ("escalation", &t.escalation),
                ] {
                    self.template(&join(&t_path, key), name, template_refs);
                }
                ReminderTemplates {
                    before: t.before.clone(),
                    overdue: t.overdue.clone(),
                    escalation: t.escalation.clone(),
                }
            }
            None => {
                let defaults = ReminderTemplates {
                    before: "deadline_reminder".into(),
                    overdue: "deadline_overdue".into(),
                    escalation: "deadline_escalation".into(),
                };
                for name in [&defaults.before, &defaults.overdue, &defaults.escalation] {
                    self.template(path, name, template_refs);
                }
                defaults
            }
        };
        let notify = if raw.notify.is_empty() {
            default_notify
        } else {
            raw.notify.clone()
        };
        Some(ReminderPlan {
            before,
            overdue_every,
            notify,
            escalate_to: raw.escalate_to.clone(),
            templates,
            send_time,
            timezone,
        })
    }

    fn goals(
        &mut self,
        raw: &RawWorkflow,
        sketch: &StateSketch<'_>,
        timezone: Tz,
        template_refs: &mut Vec<Reference>,
    ) -> Vec<Goal> {
        let mut out = Vec::new();
        for (id, g) in &raw.goals {
            let path = join("goals", id);
            if let Some(goal) = self.goal(&path, id, g, raw, sketch, timezone, template_refs) {
                out.push(goal);
            }
        }
        out
    }

    fn goal(
        &mut self,
        path: &str,
        id: &str,
        g: &RawGoal,
        raw: &RawWorkflow,
        sketch: &StateSketch<'_>,
        timezone: Tz,
        template_refs: &mut Vec<Reference>,
    ) -> Option<Goal> {
        self.item_id(path, id, "goal");
        self.labels(&join(path, "labels"), &g.labels);
        let reach_ix = self.state_ref(&join(path, "reach"), &g.reach, sketch);
        let by = self.date(&join(path, "by"), &g.by);
        let everyone = raw.roles.keys().cloned().collect();
        let reminders = g.reminders.as_ref().and_then(|plan| {
            self.reminder_plan(
                &join(path, "reminders"),
                plan,
                everyone,
                &raw.roles,
                timezone,
                template_refs,
            )
        });
        let by = by?;
        Some(Goal {
            id: id.to_owned(),
            labels: g.labels.clone(),
            reach: g.reach.clone(),
            by,
            due: start_of_local_day(by.succ_opt()?, timezone),
            reminders,
            reach_ix: reach_ix?,
        })
    }

    fn graph_checks(&mut self, states: &[State], initial: usize, graph: &DiGraph<usize, usize>) {
        if !states.iter().any(State::is_success) {
            self.fail_key(
                "states",
                "no terminal state has `outcome: success`",
                Some("a programme needs a way to succeed"),
            );
        }
        let mut reachable = vec![false; states.len()];
        let mut bfs = Bfs::new(graph, NodeIndex::new(initial));
        while let Some(n) = bfs.next(graph) {
            reachable[n.index()] = true;
        }
        let mut finishes = vec![false; states.len()];
        let reversed = Reversed(graph);
        for terminal in states
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_terminal())
            .map(|(i, _)| i)
        {
            let mut bfs = Bfs::new(reversed, NodeIndex::new(terminal));
            while let Some(n) = bfs.next(reversed) {
                finishes[n.index()] = true;
            }
        }
        for (i, state) in states.iter().enumerate() {
            let path = join("states", &state.id);
            if !reachable[i] {
                let initial = &states[initial].id;
                self.fail_key(
                    &path,
                    format!(
                        "state `{}` cannot be reached from the initial state `{initial}`",
                        state.id
                    ),
                    Some("add a transition to it, or remove it"),
                );
            } else if !finishes[i] {
                let hint = if graph
                    .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
                    .next()
                    .is_none()
                {
                    "it has no outgoing transition; mark it terminal or add one"
                } else {
                    "every path from it loops; add a transition towards a terminal state"
                };
                self.fail_key(
                    &path,
                    format!("state `{}` cannot reach any terminal state", state.id),
                    Some(hint),
                );
            }
        }
    }
}

fn build_graph(state_count: usize, transitions: &[Transition]) -> DiGraph<usize, usize> {
    let mut graph = DiGraph::with_capacity(state_count, transitions.len());
    for s in 0..state_count {
        graph.add_node(s);
    }
    for (t, transition) in transitions.iter().enumerate() {
        for &from in &transition.from_ix {
            graph.add_edge(NodeIndex::new(from), NodeIndex::new(transition.to_ix), t);
        }
    }
    graph
}

/// The constant of a `compare` guard as a value of the field's type, or what was expected instead.
fn constant_value(field: &Field, constant: &serde_yaml::Value) -> Result<FieldValue, String> {
    use serde_yaml::Value;
    match (field.kind, constant) {
        (FieldType::Integer, Value::Number(n)) => n
            .as_i64()
            .map(FieldValue::Integer)
            .ok_or_else(|| "an integer".into()),
        (FieldType::Boolean, Value::Bool(b)) => Ok(FieldValue::Boolean(*b)),
        (FieldType::Text, Value::String(s)) => Ok(FieldValue::Text(s.clone())),
        (FieldType::Date, Value::String(s)) => parse_date(s)
            .map(FieldValue::Date)
            .ok_or_else(|| "a date written YYYY-MM-DD".into()),
        (FieldType::Choice, Value::String(s)) if field.choices.contains_key(s) => {
            Ok(FieldValue::Text(s.clone()))
        }
        (FieldType::Choice, _) => Err(format!(
            "one of {}",
            field.choices.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
        (FieldType::Integer, _) => Err("an integer".into()),
        (FieldType::Boolean, _) => Err("true or false".into()),
        (FieldType::Text, _) => Err("a text".into()),
        (FieldType::Date, _) => Err("a date written YYYY-MM-DD".into()),
    }
}

fn describe_yaml(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(s) => format!("the text \"{s}\""),
        other => {
            serde_yaml::to_string(other).map_or_else(|_| "a value".into(), |s| s.trim().to_owned())
        }
    }
}
