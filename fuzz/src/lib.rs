//! What the fuzz targets assert, beyond "does not panic": the properties the service relies on when it loads
//! a definition or acts on a request body. Each target feeds its input to one of the `check_*` functions.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use incubator_engine::model::{FieldType, RawWorkflow};
use incubator_engine::{
    Actor, Facts, FieldError, FieldValue, FireRequest, Instance, Location, Refusal, Workflow,
};
use serde_json::Value;

/// The name given to fuzzed definitions; every error must carry it.
pub const FILE: &str = "fuzzed.yaml";

/// The definitions request bodies are checked against: the shipped ones, and one declaring every field type.
pub const WORKFLOWS: [(&str, &str); 4] = [
    (
        "workflows/csirt-incubation.yaml",
        include_str!("../../workflows/csirt-incubation.yaml"),
    ),
    (
        "workflows/intercert-membership.yaml",
        include_str!("../../workflows/intercert-membership.yaml"),
    ),
    (
        "examples/custom-workflow/workflows/parcours-cybersecurite.yaml",
        include_str!("../../examples/custom-workflow/workflows/parcours-cybersecurite.yaml"),
    ),
    (
        "crates/engine/tests/fixtures/every-field-type.yaml",
        include_str!("../../crates/engine/tests/fixtures/every-field-type.yaml"),
    ),
];

/// [`WORKFLOWS`], loaded once per fuzzing process.
pub fn workflows() -> &'static [Workflow] {
    static LOADED: std::sync::OnceLock<Vec<Workflow>> = std::sync::OnceLock::new();
    LOADED.get_or_init(|| {
        WORKFLOWS
            .iter()
            .map(|(file, source)| Workflow::from_yaml(source, file).expect("the workflow loads"))
            .collect()
    })
}

/// Loading either fails with errors located inside the text, or gives a workflow that survives a round trip
/// through its raw form and whose analyses and exports run.
pub fn check_load(source: &str) {
    match Workflow::from_yaml(source, FILE) {
        Err(errors) => {
            assert!(!errors.errors().is_empty(), "a refusal without an error");
            for error in errors.errors() {
                assert_eq!(error.file, FILE, "{error}");
                assert!(!error.message.trim().is_empty(), "an empty message");
                assert_inside(source, error.location(), &error.to_string());
            }
        }
        Ok(workflow) => {
            check_round_trip(source, &workflow);
            check_analyses(source, &workflow);
        }
    }
}

/// A loaded definition written back as YAML from its raw form loads again into the same workflow: what
/// `incubator workflow` tooling writes can be read back, and nothing the loader accepted was ambiguous.
fn check_round_trip(source: &str, workflow: &Workflow) {
    let raw: RawWorkflow = serde_yaml::from_str(source)
        .unwrap_or_else(|e| panic!("loaded by the engine but not by serde_yaml: {e}"));
    let written = serde_yaml::to_string(&raw).expect("a raw workflow serialises");
    let again = Workflow::from_yaml(&written, FILE)
        .unwrap_or_else(|e| panic!("written back, it no longer loads:\n{e}\n---\n{written}"));
    assert_eq!(summary(workflow), summary(&again), "---\n{written}");
    assert_eq!(workflow.template_names(), again.template_names());
    assert_eq!(workflow.child_workflows(), again.child_workflows());
    for state in workflow.states() {
        assert_eq!(
            workflow.migrate_state(&state.id),
            again.migrate_state(&state.id)
        );
    }
}

/// Everything a workflow exposes, for comparing two loads of the same definition.
fn summary(workflow: &Workflow) -> String {
    format!(
        "{} {} {:?} {} {:?} {:?} {:?} {:?} {:?} {:?} {}",
        workflow.id(),
        workflow.version(),
        workflow.labels(),
        workflow.timezone(),
        workflow.roles(),
        workflow.requirements(),
        workflow.fields(),
        workflow.states(),
        workflow.transitions(),
        workflow.goals(),
        workflow.initial_state().id,
    )
}

fn check_analyses(source: &str, workflow: &Workflow) {
    let start = epoch();
    let everyone = Actor {
        id: "fuzz".into(),
        roles: workflow.roles().keys().cloned().collect(),
    };
    let created = workflow.start(&everyone, start);
    assert_eq!(created.to, workflow.initial_state().id);
    let _ = workflow.to_dot();
    let _ = workflow.to_mermaid();
    let initial = &workflow.initial_state().id;
    let _ = workflow.critical_path(initial);
    let _ = workflow.plan(initial, start);
    for error in workflow
        .check_templates(&BTreeSet::new())
        .into_iter()
        .chain(workflow.check_children(&BTreeSet::new()))
    {
        assert_inside(source, error.location(), &error.to_string());
    }
    for deadline in &created.set_deadlines {
        if let Some(plan) = workflow.reminder_plan(&deadline.key) {
            let _ = plan.schedule(deadline.due_at, deadline.due_at + chrono::Days::new(400));
        }
    }
}

/// A location an editor can jump to: an existing line, and at most one column past its end. Line breaks are
/// YAML's: `\n`, `\r\n` and a lone `\r`.
pub fn assert_inside(source: &str, at: Location, what: &str) {
    let normalized = source.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&at.line),
        "line {} outside the {} line(s) of the input: {what}",
        at.line,
        lines.len()
    );
    let width = lines[at.line - 1].chars().count();
    assert!(
        (1..=width + 1).contains(&at.column),
        "column {} outside line {} ({width} characters): {what}",
        at.column,
        at.line
    );
}

/// A PATCH body (field key → JSON value) as the API and the store apply it: each value is refused with an
/// error naming its field, or typed as the field declares; typed values are stored as JSON and read back as
/// written. Returns the facts as typed and as read back from storage.
pub fn check_patch(workflow: &Workflow, patch: &serde_json::Map<String, Value>) -> (Facts, Facts) {
    let mut facts = Facts::new();
    for (key, value) in patch {
        match workflow.parse_field(key, value) {
            Err(error) => check_field_error(workflow, key, &error),
            Ok(None) => {
                let blank = value.as_str().is_some_and(|s| s.trim().is_empty());
                let boolean = workflow
                    .field(key)
                    .is_some_and(|f| f.kind == FieldType::Boolean);
                assert!(
                    value.is_null() || (blank && !boolean),
                    "`{key}` cleared by {value}"
                );
            }
            Ok(Some(parsed)) => {
                check_typed(workflow, key, value, &parsed);
                facts.insert(key.clone(), parsed);
            }
        }
    }
    let stored = serde_json::to_string(&facts).expect("facts serialise");
    let read: Facts = serde_json::from_str(&stored).expect("stored facts read back");
    let again = serde_json::to_string(&read).expect("facts serialise");
    assert_eq!(again, stored, "facts changed through storage");
    (facts, read)
}

fn check_field_error(workflow: &Workflow, key: &str, error: &FieldError) {
    let named = match error {
        FieldError::UnknownField { key }
        | FieldError::WrongType { key, .. }
        | FieldError::BadDate { key, .. }
        | FieldError::NotAChoice { key, .. }
        | FieldError::BelowMin { key, .. }
        | FieldError::AboveMax { key, .. } => key,
    };
    assert_eq!(named, key, "{error}");
    assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
    assert_eq!(
        workflow.field(key).is_none(),
        matches!(error, FieldError::UnknownField { .. }),
        "{error}"
    );
}

fn check_typed(workflow: &Workflow, key: &str, value: &Value, parsed: &FieldValue) {
    let field = workflow.field(key).expect("only declared fields parse");
    match (field.kind, parsed) {
        (FieldType::Text, FieldValue::Text(text)) => {
            assert_eq!(Some(text.as_str()), value.as_str().map(str::trim));
        }
        (FieldType::Choice, FieldValue::Text(choice)) => {
            assert!(
                field.choices.contains_key(choice),
                "`{choice}` not a choice"
            );
        }
        (FieldType::Date, FieldValue::Date(_)) | (FieldType::Boolean, FieldValue::Boolean(_)) => {}
        (FieldType::Integer, FieldValue::Integer(n)) => {
            assert!(field.min.is_none_or(|min| *n >= min), "{n} below min");
            assert!(field.max.is_none_or(|max| *n <= max), "{n} above max");
        }
        (kind, other) => panic!("`{key}` of type {kind:?} holds {other:?}"),
    }
    // The value the API answers with is accepted again as it is, and means the same.
    let shown = serde_json::to_value(parsed).expect("a field value serialises");
    assert_eq!(
        workflow.parse_field(key, &shown),
        Ok(Some(parsed.clone())),
        "`{key}`: {shown} is not read back"
    );
}

/// Firing agrees with what the transition list promised the actor, and refusals say why in the documented
/// order: unknown transition, wrong state, role, then conditions.
pub fn check_fire(
    workflow: &Workflow,
    instance: &Instance,
    actor: &Actor,
    request: &FireRequest,
    now: DateTime<Utc>,
) {
    let views = workflow.evaluate(instance, actor);
    for view in &views {
        assert_eq!(view.allowed, view.role_allowed && view.unmet.is_empty());
    }
    let outcome = workflow.fire(instance, request, actor, now);
    let Some(transition) = workflow.transition(&request.transition) else {
        assert!(
            matches!(outcome, Err(Refusal::UnknownTransition { .. })),
            "{outcome:?}"
        );
        return;
    };
    let Some(view) = views.iter().find(|v| v.id == transition.id) else {
        assert!(
            matches!(outcome, Err(Refusal::WrongState { .. })),
            "{outcome:?}"
        );
        return;
    };
    if !view.role_allowed {
        assert!(
            matches!(outcome, Err(Refusal::RoleNotAllowed { .. })),
            "{outcome:?}"
        );
        return;
    }
    let commented = request
        .comment
        .as_deref()
        .is_some_and(|c| !c.trim().is_empty());
    match outcome {
        Ok(decision) => {
            assert!(
                view.allowed,
                "fired although listed as not allowed: {view:?}"
            );
            assert!(
                commented || !view.comment_required,
                "fired without its comment"
            );
            assert_eq!(decision.from, instance.state);
            assert_eq!(decision.to, view.to);
            assert_eq!(decision.transition, transition.id);
            assert_eq!(decision.comment.is_some(), commented);
            let entered = workflow
                .state(&decision.to)
                .expect("the target state exists");
            assert_eq!(decision.terminal, entered.is_terminal());
            for set in &decision.set_deadlines {
                assert!(
                    set.key == entered.id
                        || set.key.starts_with(&format!("{}.", entered.id))
                        || workflow.goals().iter().any(|g| g.id == set.key),
                    "deadline `{}` set on entering `{}`",
                    set.key,
                    entered.id
                );
            }
        }
        Err(Refusal::Unmet { unmet, .. }) => {
            assert!(!unmet.is_empty(), "refused with no reason");
            assert!(
                !view.allowed || !commented,
                "listed as allowed and commented, yet refused: {unmet:?}"
            );
        }
        Err(other) => panic!("refused for {other:?} although the role and state are right"),
    }
}

pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_650_000_000, 0).expect("a valid instant")
}
