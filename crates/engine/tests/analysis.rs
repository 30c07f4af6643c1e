//! Critical paths, forecasts and drawings.

mod common;

use common::*;
use incubator_engine::Workflow;

#[test]
fn critical_path_of_the_anssi_programme() {
    let wf = anssi();
    let path = wf.critical_path("invited").unwrap();
    let forward = [
        "invited",
        "interest_expressed",
        "project_identification",
        "legal_structure",
        "subsidy",
        "awaiting_incubation",
        "incubation",
        "networking",
        "operational",
    ];
    assert_eq!(path.shortest.states, forward);
    assert_eq!(path.longest.states, forward);
    // 1M + 7D + 3M + 2M + 1M + 0 + 6M + 2M, and 3M + 1M + 6M + 9M + 4M + 6M + 7M + 6M.
    assert_eq!(path.shortest.total.to_string(), "P1Y3M7D");
    assert_eq!(path.longest.total.to_string(), "P3Y6M");
    assert!(path.exhaustive);
    assert_eq!(
        wf.critical_path("operational")
            .unwrap()
            .longest
            .total
            .to_string(),
        "P0D"
    );
    assert!(wf.critical_path("withdrawn").is_none());
    assert!(wf.critical_path("nowhere").is_none());
}

#[test]
fn longest_path_in_a_cyclic_workflow_follows_simple_paths() {
    let wf = intercert();
    let path = wf.critical_path("drafting").unwrap();
    assert!(path.exhaustive);
    assert_eq!(
        path.longest.states,
        [
            "drafting",
            "sponsorship",
            "profile_review",
            "board_decision",
            "member"
        ]
    );
    assert_eq!(path.longest.total.to_string(), "P9M");
    assert_eq!(path.shortest.total.to_string(), "P1M35D");
}

#[test]
fn forecast_counts_from_entry_or_from_now_once_the_plan_is_exceeded() {
    let wf = anssi();
    let mut project = instance("networking");
    project.entered_at = utc("2023-12-31T23:00:00Z"); // 1 January 2024, 00:00 in Paris
    let forecast = wf.forecast(&project, utc("2024-02-01T10:00:00Z")).unwrap();
    assert_eq!(forecast.earliest, utc("2024-02-29T23:00:00Z"));
    assert_eq!(forecast.latest, utc("2024-06-30T22:00:00Z"));
    let goal = forecast.goal.unwrap();
    assert_eq!(
        (goal.goal.as_str(), goal.can_make_it, goal.on_time_at_latest),
        ("operational_by_end_2024", true, true)
    );

    // Ten months in a two-to-six-month stage: success can come any time now, no earlier.
    let now = utc("2024-11-02T10:00:00Z");
    let late = wf.forecast(&project, now).unwrap();
    assert_eq!((late.earliest, late.latest), (now, now));
    let after_goal = wf.forecast(&project, utc("2025-01-10T10:00:00Z")).unwrap();
    assert!(!after_goal.goal.unwrap().can_make_it);
    assert!(wf.forecast(&instance("not_retained"), now).is_none());
}

#[test]
fn plan_gives_entry_dates_along_the_critical_path() {
    let wf = anssi();
    let plan = wf.plan("invited", utc("2021-12-31T23:00:00Z")).unwrap();
    let first = &plan.timeline[0];
    let start = utc("2021-12-31T23:00:00Z");
    assert_eq!(
        (
            first.state.as_str(),
            first.earliest_entry,
            first.latest_entry
        ),
        ("invited", start, start)
    );
    let second = &plan.timeline[1];
    // One month (min) or three months (max) after 1 January 2022.
    assert_eq!(
        (second.earliest_entry, second.latest_entry),
        (utc("2022-01-31T23:00:00Z"), utc("2022-03-31T22:00:00Z"))
    );
    let last = plan.timeline.last().unwrap();
    assert_eq!(last.state, "operational");
    assert_eq!(last.latest_entry, plan.latest);
    assert_eq!(plan.latest, utc("2025-06-30T22:00:00Z"));
    let goal = plan.goal.unwrap();
    assert!(goal.can_make_it && !goal.on_time_at_latest);
}

#[test]
fn mermaid_export_is_a_state_diagram_with_escaped_french_labels() {
    let mermaid = anssi().to_mermaid();
    let lines: Vec<&str> = mermaid.lines().map(str::trim).collect();
    assert_eq!(lines[0], "stateDiagram-v2");
    for expected in [
        "[*] --> invited",
        "invited : Invitation envoyée",
        "invited --> interest_expressed : Manifester son intérêt",
        "networking --> withdrawn : Retirer la candidature",
        "operational --> [*]",
        "withdrawn --> [*]",
        // `:` would end the state name and `(` is fine; the colon is escaped.
        "networking : Mise en réseau (InterCERT-FR)",
    ] {
        assert!(
            lines.contains(&expected),
            "missing `{expected}` in\n{mermaid}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains("--> withdrawn")).count(),
        8
    );

    let tricky = tricky_workflow();
    let mermaid = tricky.to_mermaid();
    assert!(
        mermaid.contains(r"start : Étape #35;1#58; «#quot;oui#quot;» #59; a#lt;b \ c"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("start --> finish : Aller #58; vite"),
        "{mermaid}"
    );
    let dot = tricky.to_dot();
    assert!(
        dot.contains(r#""start" [label="Étape #1: «\"oui\"» ; a<b \\ c"];"#),
        "{dot}"
    );
}

#[test]
fn dot_export_draws_every_edge() {
    let dot = anssi().to_dot();
    assert!(dot.starts_with("digraph \"csirt-incubation\" {"));
    assert!(
        dot.contains("\"invited\" -> \"interest_expressed\" [label=\"Manifester son intérêt\"];")
    );
    assert!(dot.contains("\"__start\" -> \"invited\";"));
    assert!(dot.contains(
        "\"operational\" [label=\"CSIRT opérationnel\", peripheries=2, color=darkgreen];"
    ));
    assert_eq!(dot.matches(" -> ").count(), 1 + 9 + 8);
}

fn tricky_workflow() -> Workflow {
    let source = r#"
id: tricky
version: 1
labels: {fr: "Test : échappement", en: Escaping}
roles:
  officer: {fr: Agent, en: Officer}
states:
  start:
    kind: initial
    labels: {fr: 'Étape #1: «"oui"» ; a<b \ c', en: Start}
  finish:
    kind: terminal
    outcome: success
    labels: {fr: Fin, en: End}
transitions:
  go:
    from: start
    to: finish
    roles: [officer]
    labels: {fr: "Aller : vite", en: Go}
"#;
    Workflow::from_yaml(source, "tricky.yaml").unwrap()
}
