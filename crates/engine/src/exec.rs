//! Execution as pure functions: what firing a transition decides, what an actor may do, when deadlines fall.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::correction::correction_key;
use crate::definition::{
    Anchor, CREATE_TRANSITION, DeadlineRule, Field, State, Transition, Workflow,
};
use crate::duration::start_of_local_day;
use crate::error::FieldError;
use crate::guard::{Comment, Context};
use crate::load::parse_date;
use crate::model::FieldType;
use crate::runtime::{
    Actor, DeadlineSet, Decision, FieldValue, FireRequest, Instance, Refusal, TransitionView, Unmet,
};

/// The deadline key of a milestone: `incubation.mid_term`. Ids cannot contain dots, so keys never collide.
pub fn milestone_key(state: &str, milestone: &str) -> String {
    format!("{state}.{milestone}")
}

/// Whether a deadline key is a milestone's. A milestone passing is the programme moving on, never a project
/// being late: only a state's or a goal's deadline can be overdue.
pub fn is_milestone_key(key: &str) -> bool {
    key.contains('.')
}

impl Workflow {
    /// Decides what firing `req` does, or why it is refused. Checks, in order: the transition exists, it
    /// leaves the project's state, the actor holds an allowed role, and its guards hold (all unmet ones are
    /// reported together).
    pub fn fire(
        &self,
        instance: &Instance,
        req: &FireRequest,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Decision, Refusal> {
        let transition =
            self.transition(&req.transition)
                .ok_or_else(|| Refusal::UnknownTransition {
                    transition: req.transition.clone(),
                })?;
        let from = self
            .state_ix(&instance.state)
            .filter(|s| transition.from_ix.contains(s))
            .ok_or_else(|| Refusal::WrongState {
                transition: transition.id.clone(),
                state: instance.state.clone(),
                allowed_from: transition.from.clone(),
            })?;
        if !role_allowed(self, transition, actor) {
            return Err(Refusal::RoleNotAllowed {
                transition: transition.id.clone(),
                allowed: transition.roles.clone(),
            });
        }
        let comment = req
            .comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let unmet = self.unmet(transition, instance, Comment::Given(comment.is_some()));
        if !unmet.is_empty() {
            return Err(Refusal::Unmet {
                transition: transition.id.clone(),
                unmet,
            });
        }
        let (left, entered) = (&self.states[from], &self.states[transition.to_ix]);
        let mut clear_deadlines = self.state_deadline_keys(left);
        let goals_done = self
            .goals
            .iter()
            .filter(|g| entered.is_terminal() || g.reach_ix == transition.to_ix);
        clear_deadlines.extend(goals_done.map(|g| g.id.clone()));
        if entered.is_terminal() {
            // A closed project owes no correction any more: no reminder may chase it.
            clear_deadlines.extend(self.requirements.iter().map(|r| correction_key(&r.key)));
        }
        Ok(Decision {
            transition: transition.id.clone(),
            from: left.id.clone(),
            to: entered.id.clone(),
            at: now,
            actor: actor.id.clone(),
            comment: comment.map(str::to_owned),
            clear_deadlines,
            set_deadlines: self.deadlines_of(entered, Some(instance), now),
            emails: transition.emails.clone(),
            terminal: entered.is_terminal(),
        })
    }

    /// The creation of a project in the initial state (transition `create`): sets the initial state's
    /// deadline and every goal's.
    pub fn start(&self, actor: &Actor, now: DateTime<Utc>) -> Decision {
        let initial = self.initial_state();
        let mut set_deadlines = self.deadlines_of(initial, None, now);
        set_deadlines.extend(self.goals.iter().map(|g| DeadlineSet {
            key: g.id.clone(),
            due_at: g.due,
        }));
        Decision {
            transition: CREATE_TRANSITION.to_owned(),
            from: initial.id.clone(),
            to: initial.id.clone(),
            at: now,
            actor: actor.id.clone(),
            comment: None,
            clear_deadlines: Vec::new(),
            set_deadlines,
            emails: Vec::new(),
            terminal: false,
        }
    }

    /// Every transition leaving the project's state, as `actor` sees it. Comment guards are not counted: the
    /// comment is typed when firing (see [`TransitionView::comment_required`]).
    pub fn evaluate(&self, instance: &Instance, actor: &Actor) -> Vec<TransitionView> {
        self.transitions_from(&instance.state)
            .map(|t| {
                let role_allowed = role_allowed(self, t, actor);
                let unmet = self.unmet(t, instance, Comment::NotYetTyped);
                TransitionView {
                    id: t.id.clone(),
                    to: t.to.clone(),
                    role_allowed,
                    allowed: role_allowed && unmet.is_empty(),
                    unmet,
                    comment_required: t.comment_required,
                }
            })
            .collect()
    }

    /// When the deadline of `state` falls for a project that entered it at `entered_at`; `None` when the
    /// state has no deadline or its anchor is not known yet (no cohort, date field empty).
    pub fn deadline_for(
        &self,
        state: &str,
        instance: &Instance,
        entered_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let state = self.state(state)?;
        self.deadlines_of(state, Some(instance), entered_at)
            .into_iter()
            .find(|d| d.key == state.id)
            .map(|d| d.due_at)
    }

    /// The deadline of `state` and of its milestones (keys from [`milestone_key`]), as set on entering it.
    /// Called again when an anchor becomes known later, such as a cohort assigned after the state was entered.
    pub fn deadlines_for(
        &self,
        state: &str,
        instance: &Instance,
        entered_at: DateTime<Utc>,
    ) -> Vec<DeadlineSet> {
        self.state(state).map_or_else(Vec::new, |s| {
            self.deadlines_of(s, Some(instance), entered_at)
        })
    }

    /// Checks a value for field `key`. `null` clears the field, and so does an empty string, which is what
    /// an emptied form input sends.
    pub fn parse_field(&self, key: &str, value: &Value) -> Result<Option<FieldValue>, FieldError> {
        let field = self.field(key).ok_or_else(|| FieldError::UnknownField {
            key: key.to_owned(),
        })?;
        let text = value.as_str().map(str::trim);
        if value.is_null() || (text.is_some_and(str::is_empty) && field.kind != FieldType::Boolean)
        {
            return Ok(None);
        }
        let parsed = match (field.kind, value, text) {
            (FieldType::Text, _, Some(text)) => FieldValue::Text(text.to_owned()),
            (FieldType::Choice, _, Some(choice)) if field.choices.contains_key(choice) => {
                FieldValue::Text(choice.to_owned())
            }
            (FieldType::Choice, _, Some(other)) => {
                return Err(FieldError::NotAChoice {
                    key: key.to_owned(),
                    value: other.to_owned(),
                    allowed: field.choices.keys().cloned().collect(),
                });
            }
            (FieldType::Date, _, Some(text)) => {
                FieldValue::Date(parse_date(text).ok_or_else(|| FieldError::BadDate {
                    key: key.to_owned(),
                    value: text.to_owned(),
                })?)
            }
            (FieldType::Boolean, Value::Bool(b), _) => FieldValue::Boolean(*b),
            (FieldType::Integer, Value::Number(n), _) if n.is_i64() => {
                FieldValue::Integer(check_bounds(field, n.as_i64().unwrap_or_default())?)
            }
            _ => return Err(wrong_type(field, value)),
        };
        Ok(Some(parsed))
    }

    fn unmet(&self, transition: &Transition, instance: &Instance, comment: Comment) -> Vec<Unmet> {
        let mut unmet = Vec::new();
        transition.guard.unmet(
            &Context {
                workflow: self,
                instance,
                comment,
            },
            &mut unmet,
        );
        unmet
    }

    /// Keys of the deadlines a state sets (its own and its milestones'), cleared when it is left.
    fn state_deadline_keys(&self, state: &State) -> Vec<String> {
        let Some(_) = state.deadline else {
            return Vec::new();
        };
        let milestones = state
            .milestones
            .iter()
            .map(|m| milestone_key(&state.id, &m.id));
        std::iter::once(state.id.clone())
            .chain(milestones)
            .collect()
    }

    pub(crate) fn deadlines_of(
        &self,
        state: &State,
        instance: Option<&Instance>,
        entered_at: DateTime<Utc>,
    ) -> Vec<DeadlineSet> {
        let Some(deadline) = &state.deadline else {
            return Vec::new();
        };
        let (duration, anchor) = match &deadline.rule {
            DeadlineRule::On(day) => {
                let end_of_day = day.succ_opt().map_or(DateTime::<Utc>::MAX_UTC, |next| {
                    start_of_local_day(next, self.timezone)
                });
                return vec![DeadlineSet {
                    key: state.id.clone(),
                    due_at: end_of_day,
                }];
            }
            DeadlineRule::After { duration, from } => (duration, from),
        };
        let start = match anchor {
            Anchor::Entered => Some(entered_at),
            Anchor::CohortStart => instance
                .and_then(|i| i.cohort.as_ref())
                .map(|c| start_of_local_day(c.starts_on, self.timezone)),
            Anchor::Field(key) => match instance.and_then(|i| i.facts.get(key)) {
                Some(FieldValue::Date(day)) => Some(start_of_local_day(*day, self.timezone)),
                _ => None,
            },
        };
        let Some(start) = start else {
            return Vec::new();
        };
        let milestones = state.milestones.iter().map(|m| DeadlineSet {
            key: milestone_key(&state.id, &m.id),
            due_at: m.after.after(start, self.timezone),
        });
        std::iter::once(DeadlineSet {
            key: state.id.clone(),
            due_at: duration.after(start, self.timezone),
        })
        .chain(milestones)
        .collect()
    }
}

fn role_allowed(workflow: &Workflow, transition: &Transition, actor: &Actor) -> bool {
    actor.roles.iter().any(|account| {
        transition
            .roles
            .iter()
            .any(|role| workflow.account_holds(account, role))
    })
}

fn check_bounds(field: &Field, value: i64) -> Result<i64, FieldError> {
    let key = field.key.clone();
    match (field.min, field.max) {
        (Some(min), _) if value < min => Err(FieldError::BelowMin { key, value, min }),
        (_, Some(max)) if value > max => Err(FieldError::AboveMax { key, value, max }),
        _ => Ok(value),
    }
}

fn wrong_type(field: &Field, value: &Value) -> FieldError {
    let expected = match field.kind {
        FieldType::Text => "a text",
        FieldType::Integer => "an integer",
        FieldType::Date => "a date written YYYY-MM-DD",
        FieldType::Boolean => "true or false",
        FieldType::Choice => "one of the listed choices",
    };
    let found = match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the text \"{s}\""),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    FieldError::WrongType {
        key: field.key.clone(),
        expected,
        found,
    }
}
