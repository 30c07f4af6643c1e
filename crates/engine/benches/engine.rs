//! `cargo bench -p incubator-engine --bench engine`: the hot path (a guarded transition) and loading.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use incubator_engine::{Actor, FireRequest, Instance, RequirementStatus, Workflow};

const ANSSI: &str = include_str!("../../../workflows/csirt-incubation.yaml");

const ELIGIBILITY: [&str; 7] = [
    "council_backed",
    "regional_perimeter",
    "minimum_services",
    "legal_status",
    "own_staff",
    "autonomous_accounting",
    "intercert_commitment",
];

fn guarded_transition(c: &mut Criterion) {
    let wf = Workflow::from_yaml(ANSSI, "csirt-incubation.yaml").unwrap();
    let instance = Instance {
        state: "project_identification".into(),
        entered_at: "2022-03-01T10:00:00Z".parse().unwrap(),
        facts: BTreeMap::new(),
        requirements: ELIGIBILITY
            .iter()
            .map(|k| ((*k).to_owned(), RequirementStatus::Accepted))
            .collect(),
        cohort: None,
        child_completed: false,
    };
    let actor = Actor {
        id: "user:1".into(),
        roles: vec!["officer".into()],
    };
    let request = FireRequest {
        transition: "retain_project".into(),
        comment: None,
    };
    let now = "2022-06-01T08:00:00Z".parse().unwrap();
    let mut group = c.benchmark_group("guarded_transition");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fire_retain_project", |b| {
        b.iter(|| {
            wf.fire(
                black_box(&instance),
                black_box(&request),
                black_box(&actor),
                now,
            )
            .unwrap()
        })
    });
    group.bench_function("evaluate_project_identification", |b| {
        b.iter(|| wf.evaluate(black_box(&instance), black_box(&actor)))
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    c.bench_function("load_validate_anssi", |b| {
        b.iter(|| Workflow::from_yaml(black_box(ANSSI), "csirt-incubation.yaml").unwrap())
    });
    let generated = generated_definition(1_000);
    c.bench_function("load_validate_1000_states", |b| {
        b.iter(|| Workflow::from_yaml(black_box(&generated), "generated.yaml").unwrap())
    });
}

/// A chain of `n` states with a guarded step each, deadlines and reminders, and a withdrawal from anywhere.
fn generated_definition(n: usize) -> String {
    let mut y = String::from(
        "id: generated\nversion: 1\nlabels: {fr: Généré, en: Generated}\nroles:\n  officer: {fr: Agent, en: Officer}\n\
         requirements:\n  proof: {labels: {fr: Preuve, en: Proof}, documents: [pdf]}\n\
         fields:\n  amount: {type: integer, labels: {fr: Montant, en: Amount}}\nstates:\n",
    );
    for i in 0..n {
        let kind = if i == 0 {
            "initial"
        } else if i == n - 1 {
            "terminal"
        } else {
            "active"
        };
        let _ = writeln!(
            y,
            "  s{i}:\n    kind: {kind}\n    labels: {{fr: Étape {i}, en: Step {i}}}"
        );
        if i == n - 1 {
            y.push_str("    outcome: success\n");
        } else {
            y.push_str(
                "    deadline: {after: P30D}\n    reminders: {before: [P7D], overdue_every: P7D}\n",
            );
        }
    }
    y.push_str("  gone:\n    kind: terminal\n    outcome: failure\n    labels: {fr: Parti, en: Gone}\ntransitions:\n");
    for i in 0..n - 1 {
        let _ = writeln!(
            y,
            "  t{i}:\n    from: s{i}\n    to: s{}\n    roles: [officer]\n    labels: {{fr: Avancer {i}, en: Advance {i}}}\n    \
             guards:\n      - requirements: [proof]\n      - compare: {{field: amount, gt: {i}}}",
            i + 1
        );
    }
    y.push_str("  quit:\n    from: \"*\"\n    to: gone\n    roles: [officer]\n    labels: {fr: Partir, en: Quit}\n    guards: [comment_required]\n");
    y
}

criterion_group!(benches, guarded_transition, load);
criterion_main!(benches);
