//! The shipped definitions in `workflows/` load cleanly and say what the programme says.

use std::collections::BTreeSet;
use std::path::PathBuf;

use incubator_engine::Workflow;

fn workflows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

fn load(name: &str) -> Workflow {
    let path = workflows_dir().join(name);
    let source = std::fs::read_to_string(&path).unwrap();
    Workflow::from_yaml(&source, name).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_workflow_loads_cleanly() {
    let mut count = 0;
    for entry in std::fs::read_dir(workflows_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let source = std::fs::read_to_string(&path).unwrap();
            if let Err(errors) = Workflow::from_yaml(&source, &path.display().to_string()) {
                panic!("{errors}");
            }
            count += 1;
        }
    }
    assert!(
        count >= 2,
        "expected the ANSSI and the InterCERT workflows, found {count}"
    );
}

#[test]
fn anssi_workflow_has_the_ids_of_the_domain() {
    let wf = load("csirt-incubation.yaml");
    assert_eq!(wf.id(), "csirt-incubation");
    let states: BTreeSet<&str> = wf.states().iter().map(|s| s.id.as_str()).collect();
    let expected: BTreeSet<&str> = [
        "invited",
        "interest_expressed",
        "project_identification",
        "legal_structure",
        "subsidy",
        "awaiting_incubation",
        "incubation",
        "networking",
        "operational",
        "not_retained",
        "withdrawn",
    ]
    .into();
    assert_eq!(states, expected);
    let transitions: BTreeSet<&str> = wf.transitions().iter().map(|t| t.id.as_str()).collect();
    let expected: BTreeSet<&str> = [
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
    ]
    .into();
    assert_eq!(transitions, expected);
    let eligibility: BTreeSet<&str> = wf
        .requirements()
        .iter()
        .filter(|r| r.eligibility)
        .map(|r| r.key.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "council_backed",
        "regional_perimeter",
        "minimum_services",
        "legal_status",
        "own_staff",
        "autonomous_accounting",
        "intercert_commitment",
    ]
    .into();
    assert_eq!(eligibility, expected);
    assert!(
        wf.requirement("registration_proof").is_some()
            && wf.requirement("grant_agreement").is_some()
    );
    assert_eq!(wf.requirements().len(), 9);
    let roles: Vec<&str> = wf.roles().keys().map(String::as_str).collect();
    assert_eq!(roles, ["council", "officer"]);
    assert_eq!(wf.initial_state().id, "invited");
    assert!(wf.state("operational").unwrap().is_success());
    // withdraw leaves every open state.
    let withdraw = wf.transition("withdraw").unwrap();
    assert_eq!(withdraw.from.len(), 8);
    assert!(withdraw.comment_required);
    let kinds: Vec<&str> = wf
        .field("carrier_kind")
        .unwrap()
        .choices
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        kinds,
        [
            "association",
            "gip",
            "public_board",
            "regional_agency",
            "regional_council",
            "territorial_collectivity"
        ]
    );
}

#[test]
fn workflows_use_only_the_known_email_templates() {
    let known: BTreeSet<String> = [
        "stage_entered",
        "project_declined",
        "project_withdrawn",
        "document_accepted",
        "document_rejected",
        "deadline_reminder",
        "deadline_overdue",
        "deadline_escalation",
        "officers_digest",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for name in ["csirt-incubation.yaml", "intercert-membership.yaml"] {
        let wf = load(name);
        assert!(
            wf.check_templates(&known).is_empty(),
            "{name}: {:?}",
            wf.check_templates(&known)
        );
        // Reminder plans bring the default reminder templates in.
        assert!(wf.template_names().contains("deadline_escalation"));
    }
    let anssi = load("csirt-incubation.yaml");
    let names: Vec<&str> = anssi.template_names().into_iter().collect();
    assert_eq!(
        names,
        [
            "deadline_escalation",
            "deadline_overdue",
            "deadline_reminder",
            "project_declined",
            "project_withdrawn",
            "stage_entered"
        ]
    );
    let mut fewer = known.clone();
    fewer.remove("project_declined");
    let errors = anssi.check_templates(&fewer);
    assert_eq!(errors.len(), 1);
    let error = &errors[0];
    assert!(
        error
            .message
            .contains("unknown email template `project_declined`"),
        "{error}"
    );
    let source = std::fs::read_to_string(workflows_dir().join("csirt-incubation.yaml")).unwrap();
    let line = source.lines().nth(error.line - 1).unwrap();
    assert_eq!(&line[error.column - 1..], "project_declined]");
}
