//! Guards, firing, creation, evaluation, deadlines and field parsing on the shipped workflows.

mod common;

use chrono::NaiveDate;
use common::*;
use incubator_engine::{
    CohortInfo, DeadlineSet, EmailIntent, FieldError, FieldValue, Refusal, RequirementStatus,
    RoleHolder, Unmet,
};
use serde_json::json;

fn unmet_of(refusal: Refusal) -> Vec<Unmet> {
    match refusal {
        Refusal::Unmet { unmet, .. } => unmet,
        other => panic!("expected unmet conditions, got {other:?}"),
    }
}

#[test]
fn retain_project_lists_every_requirement_not_accepted_with_its_label() {
    let wf = anssi();
    let mut project = instance("project_identification");
    accept_all(&mut project, &ELIGIBILITY[2..]);
    project
        .requirements
        .insert("regional_perimeter".into(), RequirementStatus::Pending);
    let now = utc("2022-06-01T08:00:00Z");
    let unmet = unmet_of(
        wf.fire(&project, &request("retain_project", None), &officer(), now)
            .unwrap_err(),
    );
    assert_eq!(unmet.len(), 2);
    assert_eq!(unmet[0].code, "requirement_not_accepted");
    assert_eq!(unmet[0].subject.as_deref(), Some("council_backed"));
    assert_eq!(
        unmet[0].fr,
        "Justificatif non accepté : Délibération du conseil régional (aucun document déposé)"
    );
    assert_eq!(
        unmet[0].en,
        "Evidence not accepted: Council deliberation (no document uploaded)"
    );
    assert_eq!(unmet[1].subject.as_deref(), Some("regional_perimeter"));
    assert!(
        unmet[1].en.ends_with("(awaiting review)"),
        "{}",
        unmet[1].en
    );

    accept_all(&mut project, &ELIGIBILITY);
    let decision = wf
        .fire(&project, &request("retain_project", None), &officer(), now)
        .unwrap();
    assert_eq!(
        (decision.from.as_str(), decision.to.as_str()),
        ("project_identification", "legal_structure")
    );
    assert_eq!(decision.actor, "user:1");
    assert_eq!(decision.clear_deadlines, ["project_identification"]);
    // legal_structure: P6M after entering, at the same Paris wall-clock time (10:00 CEST, then 10:00 CET).
    assert_eq!(
        decision.set_deadlines,
        [DeadlineSet {
            key: "legal_structure".into(),
            due_at: utc("2022-12-01T09:00:00Z")
        }]
    );
    assert_eq!(
        decision.emails,
        [EmailIntent {
            template: "stage_entered".into(),
            to_roles: vec!["council".into(), "officer".into()]
        }]
    );
    assert!(!decision.terminal);
}

#[test]
fn refusals_come_in_order_unknown_then_state_then_role_then_guards() {
    let wf = anssi();
    let now = utc("2022-06-01T08:00:00Z");
    let project = instance("project_identification");
    assert_eq!(
        wf.fire(&project, &request("retain", None), &council(), now),
        Err(Refusal::UnknownTransition {
            transition: "retain".into()
        })
    );
    // Wrong state is reported before the role, even for an actor without the role.
    assert_eq!(
        wf.fire(
            &instance("subsidy"),
            &request("retain_project", None),
            &council(),
            now
        ),
        Err(Refusal::WrongState {
            transition: "retain_project".into(),
            state: "subsidy".into(),
            allowed_from: vec!["project_identification".into()],
        })
    );
    assert_eq!(
        wf.fire(&project, &request("retain_project", None), &council(), now),
        Err(Refusal::RoleNotAllowed {
            transition: "retain_project".into(),
            allowed: vec!["officer".into()]
        })
    );
    assert_eq!(
        unmet_of(
            wf.fire(&project, &request("retain_project", None), &officer(), now)
                .unwrap_err()
        )
        .len(),
        7
    );
}

#[test]
fn record_legal_structure_needs_the_field_and_the_registration_proof() {
    let wf = anssi();
    let now = utc("2022-09-01T08:00:00Z");
    let mut project = instance("legal_structure");
    let unmet = unmet_of(
        wf.fire(
            &project,
            &request("record_legal_structure", None),
            &officer(),
            now,
        )
        .unwrap_err(),
    );
    let codes: Vec<(&str, Option<&str>)> = unmet
        .iter()
        .map(|u| (u.code.as_str(), u.subject.as_deref()))
        .collect();
    assert_eq!(
        codes,
        [
            ("field_missing", Some("legal_form")),
            ("requirement_not_accepted", Some("registration_proof"))
        ]
    );
    assert_eq!(unmet[0].fr, "Champ non renseigné : Forme juridique");
    project
        .facts
        .insert("legal_form".into(), FieldValue::Text("GIP".into()));
    project
        .requirements
        .insert("registration_proof".into(), RequirementStatus::Rejected);
    let unmet = unmet_of(
        wf.fire(
            &project,
            &request("record_legal_structure", None),
            &officer(),
            now,
        )
        .unwrap_err(),
    );
    assert_eq!(unmet.len(), 1);
    assert!(unmet[0].fr.contains("document refusé"));
    accept_all(&mut project, &["registration_proof"]);
    let decision = wf
        .fire(
            &project,
            &request("record_legal_structure", None),
            &officer(),
            now,
        )
        .unwrap();
    assert_eq!(decision.to, "subsidy");
}

#[test]
fn grant_subsidy_compares_the_amount() {
    let wf = anssi();
    let now = utc("2023-01-10T08:00:00Z");
    let mut project = instance("subsidy");
    accept_all(&mut project, &["grant_agreement"]);
    let unmet = unmet_of(
        wf.fire(&project, &request("grant_subsidy", None), &officer(), now)
            .unwrap_err(),
    );
    assert_eq!(unmet[0].code, "field_missing");
    project
        .facts
        .insert("subsidy_amount_eur".into(), FieldValue::Integer(0));
    let unmet = unmet_of(
        wf.fire(&project, &request("grant_subsidy", None), &officer(), now)
            .unwrap_err(),
    );
    assert_eq!(unmet[0].code, "field_compare");
    assert_eq!(
        unmet[0].fr,
        "Montant de la subvention (€) doit être supérieur à 0 (valeur actuelle : 0)"
    );
    assert_eq!(
        unmet[0].en,
        "Subsidy amount (EUR) must be greater than 0 (currently 0)"
    );
    project
        .facts
        .insert("subsidy_amount_eur".into(), FieldValue::Integer(1_000_000));
    assert_eq!(
        wf.fire(&project, &request("grant_subsidy", None), &officer(), now)
            .unwrap()
            .to,
        "awaiting_incubation"
    );
}

#[test]
fn incubation_deadline_and_milestones_count_from_the_cohort_start() {
    let wf = anssi();
    let mut project = instance("awaiting_incubation");
    let now = utc("2023-03-20T14:00:00Z");
    let unmet = unmet_of(
        wf.fire(
            &project,
            &request("start_incubation", None),
            &officer(),
            now,
        )
        .unwrap_err(),
    );
    assert_eq!(unmet[0].code, "cohort_missing");
    project.cohort = Some(CohortInfo {
        id: "2023-spring".into(),
        starts_on: NaiveDate::from_ymd_opt(2023, 4, 3).unwrap(),
    });
    let decision = wf
        .fire(
            &project,
            &request("start_incubation", None),
            &officer(),
            now,
        )
        .unwrap();
    assert_eq!(decision.clear_deadlines, ["awaiting_incubation"]);
    let set: Vec<(&str, String)> = decision
        .set_deadlines
        .iter()
        .map(|d| (d.key.as_str(), d.due_at.to_rfc3339()))
        .collect();
    assert_eq!(
        set,
        [
            // 00:00 Paris (CEST) on 3 April and 3 October; 3 July for the mid-term review.
            ("incubation", "2023-10-02T22:00:00+00:00".to_owned()),
            (
                "incubation.kick_off",
                "2023-04-02T22:00:00+00:00".to_owned()
            ),
            (
                "incubation.mid_term_review",
                "2023-07-02T22:00:00+00:00".to_owned()
            ),
            (
                "incubation.final_review",
                "2023-10-02T22:00:00+00:00".to_owned()
            ),
        ]
    );
    // Leaving incubation clears the state's deadline and its milestones.
    let mut incubating = instance("incubation");
    incubating.cohort = project.cohort.clone();
    let decision = wf
        .fire(
            &incubating,
            &request("complete_incubation", None),
            &officer(),
            now,
        )
        .unwrap();
    assert_eq!(
        decision.clear_deadlines,
        [
            "incubation",
            "incubation.kick_off",
            "incubation.mid_term_review",
            "incubation.final_review"
        ]
    );
    // Without a cohort the anchor is unknown: no deadline, until the store asks again.
    assert_eq!(
        wf.deadline_for("incubation", &instance("incubation"), now),
        None
    );
    assert_eq!(
        wf.deadline_for("incubation", &incubating, now),
        Some(utc("2023-10-02T22:00:00Z"))
    );
    assert_eq!(wf.deadline_for("operational", &incubating, now), None);
}

#[test]
fn withdraw_needs_a_reason_from_any_open_state_and_ends_the_goal() {
    let wf = anssi();
    let now = utc("2022-05-01T08:00:00Z");
    let project = instance("legal_structure");
    let unmet = unmet_of(
        wf.fire(&project, &request("withdraw", Some("   ")), &council(), now)
            .unwrap_err(),
    );
    assert_eq!(unmet[0].code, "comment_missing");
    let decision = wf
        .fire(
            &project,
            &request("withdraw", Some(" Budget refusé ")),
            &council(),
            now,
        )
        .unwrap();
    assert_eq!(decision.to, "withdrawn");
    assert!(decision.terminal);
    assert_eq!(decision.comment.as_deref(), Some("Budget refusé"));
    // A closed project owes no correction either.
    let mut cleared = vec![
        "legal_structure".to_owned(),
        "operational_by_end_2024".to_owned(),
    ];
    cleared.extend(
        wf.requirements()
            .iter()
            .map(|r| incubator_engine::correction_key(&r.key)),
    );
    assert_eq!(decision.clear_deadlines, cleared);
    assert!(decision.set_deadlines.is_empty());
    assert_eq!(decision.emails[0].template, "project_withdrawn");
    // Nothing leaves a terminal state.
    let done = instance("withdrawn");
    assert!(matches!(
        wf.fire(&done, &request("withdraw", Some("again")), &council(), now),
        Err(Refusal::WrongState { .. })
    ));
}

#[test]
fn start_sets_the_initial_deadline_and_the_goal() {
    let wf = anssi();
    let now = utc("2022-01-10T09:30:00Z");
    let decision = wf.start(&officer(), now);
    assert_eq!(decision.transition, "create");
    assert_eq!(
        (decision.from.as_str(), decision.to.as_str()),
        ("invited", "invited")
    );
    assert_eq!(
        decision.set_deadlines,
        [
            DeadlineSet {
                key: "invited".into(),
                due_at: utc("2022-04-10T08:30:00Z")
            },
            // End of 2024-12-31 in Paris.
            DeadlineSet {
                key: "operational_by_end_2024".into(),
                due_at: utc("2024-12-31T23:00:00Z")
            },
        ]
    );
}

#[test]
fn evaluate_shows_each_transition_for_the_actor() {
    let wf = anssi();
    let mut project = instance("project_identification");
    accept_all(&mut project, &ELIGIBILITY);
    let views = wf.evaluate(&project, &officer());
    let summary: Vec<(&str, bool, bool, usize, bool)> = views
        .iter()
        .map(|v| {
            (
                v.id.as_str(),
                v.role_allowed,
                v.allowed,
                v.unmet.len(),
                v.comment_required,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("decline_project", true, true, 0, true),
            ("retain_project", true, true, 0, false),
            ("withdraw", true, true, 0, true)
        ]
    );
    let views = wf.evaluate(&instance("project_identification"), &council());
    let retain = views.iter().find(|v| v.id == "retain_project").unwrap();
    assert!(!retain.role_allowed && !retain.allowed);
    assert_eq!(retain.unmet.len(), 7);
    assert!(wf.evaluate(&instance("operational"), &officer()).is_empty());
}

#[test]
fn any_guard_reports_one_condition_naming_each_way() {
    let wf = intercert();
    // ANSSI's officers act for the board (`held_by`).
    let board = officer();
    let now = utc("2024-05-01T08:00:00Z");
    let mut application = instance("board_decision");
    application.facts.insert(
        "board_meeting_on".into(),
        FieldValue::Date(NaiveDate::from_ymd_opt(2024, 4, 25).unwrap()),
    );
    application
        .facts
        .insert("sim3_score".into(), FieldValue::Integer(1));
    let unmet = unmet_of(
        wf.fire(&application, &request("admit", None), &board, now)
            .unwrap_err(),
    );
    assert_eq!(unmet.len(), 1);
    assert_eq!(unmet[0].code, "any_unmet");
    assert_eq!(
        unmet[0].en,
        "None of the possible conditions holds: Average SIM3 level must be at least 2 (currently 1); or A comment giving the reason is required"
    );
    // Either way suffices.
    assert!(
        wf.fire(
            &application,
            &request("admit", Some("Strong sponsors")),
            &board,
            now
        )
        .is_ok()
    );
    application
        .facts
        .insert("sim3_score".into(), FieldValue::Integer(3));
    assert!(
        wf.fire(&application, &request("admit", None), &board, now)
            .is_ok()
    );
    // A deadline counted from a date field: a week after the board meeting, at midnight Paris time.
    assert_eq!(
        wf.deadline_for("board_decision", &application, now),
        Some(utc("2024-05-01T22:00:00Z"))
    );
}

#[test]
fn parse_field_checks_types_choices_and_bounds() {
    let wf = anssi();
    assert_eq!(
        wf.parse_field("subsidy_amount_eur", &json!(250000)),
        Ok(Some(FieldValue::Integer(250_000)))
    );
    assert_eq!(wf.parse_field("subsidy_amount_eur", &json!(null)), Ok(None));
    assert!(matches!(
        wf.parse_field("subsidy_amount_eur", &json!(-1)),
        Err(FieldError::BelowMin { min: 0, .. })
    ));
    let wrong = wf
        .parse_field("subsidy_amount_eur", &json!("12"))
        .unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "field `subsidy_amount_eur` expects an integer, got the text \"12\""
    );
    assert!(matches!(
        wf.parse_field("subsidy_amount_eur", &json!(1.5)),
        Err(FieldError::WrongType { .. })
    ));
    assert_eq!(
        wf.parse_field("carrier_kind", &json!("gip")),
        Ok(Some(FieldValue::Text("gip".into())))
    );
    let not_a_choice = wf
        .parse_field("carrier_kind", &json!("company"))
        .unwrap_err();
    assert!(matches!(not_a_choice, FieldError::NotAChoice { .. }));
    assert!(
        not_a_choice.to_string().contains("association, gip"),
        "{not_a_choice}"
    );
    assert_eq!(
        wf.parse_field("intercert_member_since", &json!("2024-06-30")),
        Ok(Some(FieldValue::Date(
            NaiveDate::from_ymd_opt(2024, 6, 30).unwrap()
        )))
    );
    assert!(matches!(
        wf.parse_field("intercert_member_since", &json!("30/06/2024")),
        Err(FieldError::BadDate { .. })
    ));
    assert_eq!(wf.parse_field("legal_form", &json!("  ")), Ok(None));
    assert_eq!(
        wf.parse_field("nope", &json!(1)),
        Err(FieldError::UnknownField { key: "nope".into() })
    );
}

#[test]
fn held_by_maps_account_roles_to_workflow_roles() {
    let wf = intercert();
    assert_eq!(wf.holder("sponsor"), RoleHolder::Link);
    assert_eq!(
        wf.holder("applicant"),
        RoleHolder::Accounts("council".into())
    );
    // A mail to the applicant and the sponsors reaches council accounts only: sponsors get links.
    assert_eq!(
        wf.account_roles(&["sponsor".into(), "applicant".into(), "board".into()]),
        vec!["council".to_owned(), "officer".to_owned()]
    );
    let mut drafting = instance("drafting");
    drafting.facts.insert(
        "team_name".into(),
        FieldValue::Text("CSIRT Bretagne".into()),
    );
    let now = utc("2024-05-01T08:00:00Z");
    let submit = request("submit_application", None);
    assert_eq!(
        wf.fire(&drafting, &submit, &council(), now).unwrap().to,
        "sponsorship"
    );
    // The workflow role's own name is no account role once `held_by` maps it elsewhere.
    let literal = incubator_engine::Actor {
        id: "user:9".into(),
        roles: vec!["applicant".into()],
    };
    assert!(matches!(
        wf.fire(&drafting, &submit, &literal, now),
        Err(Refusal::RoleNotAllowed { .. })
    ));
    assert!(matches!(
        wf.fire(&drafting, &submit, &officer(), now),
        Err(Refusal::RoleNotAllowed { .. })
    ));
    // Without `held_by`, each role is held by the accounts of the same name.
    let anssi = anssi();
    assert_eq!(
        anssi.holder("officer"),
        RoleHolder::Accounts("officer".into())
    );
    assert_eq!(
        anssi.account_roles(&["council".into()]),
        vec!["council".to_owned()]
    );
}
