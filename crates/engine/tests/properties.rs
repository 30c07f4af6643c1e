//! Random runs of the ANSSI workflow, checked against an oracle written from DOMAIN.md's transition table
//! (not from the engine's guard code): the engine must agree on every step.

mod common;

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};
use common::*;
use incubator_engine::{
    Actor, CohortInfo, FieldValue, FireRequest, Instance, Refusal, RequirementStatus,
};
use proptest::prelude::*;

const OPEN_STATES: [&str; 8] = [
    "invited",
    "interest_expressed",
    "project_identification",
    "legal_structure",
    "subsidy",
    "awaiting_incubation",
    "incubation",
    "networking",
];
const TERMINAL_STATES: [&str; 3] = ["operational", "not_retained", "withdrawn"];
const OTHER_REQUIREMENTS: [&str; 2] = ["registration_proof", "grant_agreement"];
const TRANSITIONS: [&str; 11] = [
    "express_interest",
    "open_identification",
    "retain_project",
    "decline_project",
    "record_legal_structure",
    "grant_subsidy",
    "start_incubation",
    "complete_incubation",
    "join_intercert",
    "withdraw",
    "not_a_transition",
];

/// One row of DOMAIN.md's table: (from, to, roles) and the guard in plain terms.
fn domain_row(
    transition: &str,
) -> Option<(Vec<&'static str>, &'static str, &'static [&'static str])> {
    const OFFICER: &[&str] = &["officer"];
    const BOTH: &[&str] = &["council", "officer"];
    Some(match transition {
        "express_interest" => (vec!["invited"], "interest_expressed", BOTH),
        "open_identification" => (
            vec!["interest_expressed"],
            "project_identification",
            OFFICER,
        ),
        "retain_project" => (vec!["project_identification"], "legal_structure", OFFICER),
        "decline_project" => (vec!["project_identification"], "not_retained", OFFICER),
        "record_legal_structure" => (vec!["legal_structure"], "subsidy", OFFICER),
        "grant_subsidy" => (vec!["subsidy"], "awaiting_incubation", OFFICER),
        "start_incubation" => (vec!["awaiting_incubation"], "incubation", OFFICER),
        "complete_incubation" => (vec!["incubation"], "networking", OFFICER),
        "join_intercert" => (vec!["networking"], "operational", OFFICER),
        "withdraw" => (OPEN_STATES.to_vec(), "withdrawn", BOTH),
        _ => return None,
    })
}

fn accepted(instance: &Instance, key: &str) -> bool {
    instance.requirements.get(key) == Some(&RequirementStatus::Accepted)
}

fn domain_guard_holds(transition: &str, instance: &Instance, comment: Option<&str>) -> bool {
    let has_reason = comment.is_some_and(|c| !c.trim().is_empty());
    match transition {
        "retain_project" => ELIGIBILITY.iter().all(|k| accepted(instance, k)),
        "decline_project" | "withdraw" => has_reason,
        "record_legal_structure" => {
            instance.facts.contains_key("legal_form") && accepted(instance, "registration_proof")
        }
        "grant_subsidy" => {
            matches!(instance.facts.get("subsidy_amount_eur"), Some(FieldValue::Integer(n)) if *n > 0)
                && accepted(instance, "grant_agreement")
        }
        "start_incubation" => instance.cohort.is_some(),
        "join_intercert" => instance.facts.contains_key("intercert_member_since"),
        _ => true,
    }
}

/// The transition that moves a project forward from `state` in DOMAIN.md's table, so that random runs get deep.
fn forward_from(state: &str) -> &'static str {
    match state {
        "invited" => "express_interest",
        "interest_expressed" => "open_identification",
        "project_identification" => "retain_project",
        "legal_structure" => "record_legal_structure",
        "subsidy" => "grant_subsidy",
        "awaiting_incubation" => "start_incubation",
        "incubation" => "complete_incubation",
        _ => "join_intercert",
    }
}

#[derive(Debug, Clone)]
struct Step {
    /// `None`: the forward transition of the current state.
    transition: Option<&'static str>,
    roles: Vec<&'static str>,
    comment: Option<&'static str>,
    statuses: Vec<RequirementStatus>,
    legal_form: bool,
    subsidy: Option<i64>,
    member_since: bool,
    cohort: bool,
}

fn status() -> impl Strategy<Value = RequirementStatus> {
    prop_oneof![
        6 => Just(RequirementStatus::Accepted),
        1 => Just(RequirementStatus::Missing),
        1 => Just(RequirementStatus::Pending),
        1 => Just(RequirementStatus::Rejected),
        1 => Just(RequirementStatus::CorrectionRequested),
        1 => Just(RequirementStatus::Expired),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![3 => Just(None), 1 => prop::sample::select(TRANSITIONS.to_vec()).prop_map(Some)],
        prop::sample::select(vec![vec![], vec!["council"], vec!["officer"], vec!["council", "officer"], vec!["admin"]]),
        prop::sample::select(vec![None, Some(""), Some("  "), Some("Le conseil renonce")]),
        prop_oneof![
            1 => Just(vec![RequirementStatus::Accepted; 9]),
            1 => prop::collection::vec(status(), 9),
        ],
        any::<bool>(),
        prop::option::of(-2i64..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(transition, roles, comment, statuses, legal_form, subsidy, member_since, cohort)| Step {
            transition,
            roles,
            comment,
            statuses,
            legal_form,
            subsidy,
            member_since,
            cohort,
        })
}

fn apply_facts(instance: &mut Instance, step: &Step) {
    let keys = ELIGIBILITY.iter().chain(OTHER_REQUIREMENTS.iter());
    instance.requirements = keys
        .zip(&step.statuses)
        .map(|(k, s)| ((*k).to_owned(), *s))
        .collect();
    let mut facts = BTreeMap::new();
    if step.legal_form {
        facts.insert(
            "legal_form".into(),
            FieldValue::Text("association loi 1901".into()),
        );
    }
    if let Some(amount) = step.subsidy {
        facts.insert(
            "subsidy_amount_eur".into(),
            FieldValue::Integer(amount * 100_000),
        );
    }
    if step.member_since {
        facts.insert(
            "intercert_member_since".into(),
            FieldValue::Date(NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()),
        );
    }
    instance.facts = facts;
    instance.cohort = step.cohort.then(|| CohortInfo {
        id: "c1".into(),
        starts_on: NaiveDate::from_ymd_opt(2023, 9, 4).unwrap(),
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_runs_follow_the_domain_table(steps in prop::collection::vec(step(), 1..60)) {
        let wf = anssi();
        let mut project = instance("invited");
        let mut now = utc("2022-01-03T09:00:00Z");
        for step in &steps {
            let transition = step.transition.unwrap_or_else(|| forward_from(&project.state));
            apply_facts(&mut project, step);
            now += TimeDelta::days(3);
            let actor = Actor { id: "user:7".into(), roles: step.roles.iter().map(|r| (*r).to_owned()).collect() };
            let req = FireRequest { transition: transition.into(), comment: step.comment.map(str::to_owned) };
            let was_terminal = TERMINAL_STATES.contains(&project.state.as_str());
            let outcome = wf.fire(&project, &req, &actor, now);

            // The oracle, from DOMAIN.md: which refusal comes first, or where the project goes.
            let expected = match domain_row(transition) {
                None => Err("unknown"),
                Some((from, _, _)) if !from.contains(&project.state.as_str()) => Err("state"),
                Some((_, _, roles)) if !step.roles.iter().any(|r| roles.contains(r)) => Err("role"),
                Some(_) if !domain_guard_holds(transition, &project, step.comment) => Err("unmet"),
                Some((_, to, _)) => Ok(to),
            };
            match (&outcome, expected) {
                (Ok(decision), Ok(to)) => {
                    prop_assert!(!was_terminal, "left terminal state {}", project.state);
                    prop_assert_eq!(decision.to.as_str(), to);
                    prop_assert_eq!(&decision.from, &project.state);
                    prop_assert!(wf.state(&decision.to).is_some(), "undeclared state {}", decision.to);
                    prop_assert_eq!(decision.terminal, TERMINAL_STATES.contains(&to));
                    project.state = decision.to.clone();
                    project.entered_at = now;
                }
                (Err(Refusal::UnknownTransition { .. }), Err("unknown"))
                | (Err(Refusal::WrongState { .. }), Err("state"))
                | (Err(Refusal::RoleNotAllowed { .. }), Err("role")) => {}
                (Err(Refusal::Unmet { unmet, .. }), Err("unmet")) => prop_assert!(!unmet.is_empty()),
                (got, expected) => prop_assert!(false, "step {:?} in {}: engine {:?}, domain {:?}", step, project.state, got, expected),
            }

            // What a page shows agrees too, comment conditions aside.
            for view in wf.evaluate(&project, &actor) {
                let (_, _, roles) = domain_row(&view.id).unwrap();
                let role_ok = step.roles.iter().any(|r| roles.contains(r));
                let guard_ok = domain_guard_holds(&view.id, &project, Some("a reason will be typed"));
                prop_assert_eq!(view.allowed, role_ok && guard_ok, "{} in {}", view.id, project.state);
            }
        }
    }
}
