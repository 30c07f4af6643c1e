//! Migrating a project between versions of its workflow, and pausing deadlines: pure plans, checked on the
//! ANSSI workflow and the next version's fixture derived from it.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use common::{anssi, instance, utc};
use incubator_engine::{
    FieldValue, LiveDeadline, MigrationRefused, Workflow, plan_migration, rebase_reminders,
};
use proptest::prelude::*;

type Due = Option<DateTime<Utc>>;

const V2_SOURCE: &str = include_str!("fixtures/csirt-incubation-v2.yaml");

fn v2() -> Workflow {
    Workflow::from_yaml(V2_SOURCE, "tests/fixtures/csirt-incubation-v2.yaml").unwrap()
}

/// The live deadlines a project has after entering `state` at its `entered_at` under `workflow`.
fn live(workflow: &Workflow, state: &str, at: DateTime<Utc>) -> Vec<LiveDeadline> {
    let mut keys = vec![(
        state.to_owned(),
        workflow.deadline_for(state, &instance(state), at).unwrap(),
    )];
    keys.extend(workflow.goals().iter().map(|g| (g.id.clone(), g.due)));
    keys.into_iter()
        .map(|(key, due_at)| LiveDeadline {
            key,
            due_at,
            paused_at: None,
            sent: BTreeSet::new(),
        })
        .collect()
}

#[test]
fn a_lengthened_deadline_is_recomputed_from_the_entry_into_the_state() {
    let (v1, v2) = (anssi(), v2());
    let mut project = instance("project_identification");
    project
        .facts
        .insert("carrier_name".into(), FieldValue::Text("Région".into()));
    let deadlines = live(&v1, "project_identification", project.entered_at);
    let now = utc("2022-05-01T12:00:00Z");
    let plan = plan_migration(&v1, &v2, &project, &deadlines, &BTreeMap::new(), now).unwrap();

    assert_eq!((plan.from_version, plan.to_version), (2, 3));
    assert_eq!(plan.to_state, "project_identification");
    assert_eq!(plan.requirements_added, ["audit_report"]);
    assert!(plan.requirements_removed.is_empty());
    assert_eq!(plan.fields_added, ["audit_date"]);
    assert_eq!(plan.fields_removed, ["carrier_name"]);
    assert_eq!(
        plan.dropped_values,
        BTreeMap::from([("carrier_name".to_owned(), serde_json::json!("Région"))])
    );
    let change = plan
        .deadlines
        .iter()
        .find(|d| d.key == "project_identification")
        .unwrap();
    // Entered 1 March 2022 at 11:00 in Paris: six months, now nine, at 11:00 in Paris (summer, then winter).
    assert_eq!(change.old_due, Some(utc("2022-09-01T09:00:00Z")));
    assert_eq!(change.new_due, Some(utc("2022-12-01T10:00:00Z")));
    let first = &change.reminders.pending[0];
    assert_eq!(first.step, "before:P30D");
    assert!(first.old_send_at.unwrap() < first.new_send_at.unwrap());
    // The goal is the same in both versions.
    let goal = plan
        .deadlines
        .iter()
        .find(|d| d.key == "operational_by_end_2024")
        .unwrap();
    assert_eq!(goal.old_due, goal.new_due);
    // Two reminders before, then the overdue notice and its escalation.
    assert_eq!(goal.reminders.pending.len(), 2 + 2);
}

#[test]
fn a_renamed_state_follows_the_definitions_mapping_and_its_deadline_moves_with_it() {
    let (v1, v2) = (anssi(), v2());
    let project = instance("awaiting_incubation");
    let deadlines = live(&v1, "awaiting_incubation", project.entered_at);
    let now = utc("2022-04-01T12:00:00Z");
    let plan = plan_migration(&v1, &v2, &project, &deadlines, &BTreeMap::new(), now).unwrap();
    assert_eq!(plan.to_state, "awaiting_session");
    let by_key: BTreeMap<&str, (Due, Due)> = plan
        .deadlines
        .iter()
        .map(|d| (d.key.as_str(), (d.old_due, d.new_due)))
        .collect();
    let six_months = Some(utc("2022-09-01T09:00:00Z"));
    assert_eq!(by_key["awaiting_incubation"], (six_months, None));
    assert_eq!(by_key["awaiting_session"], (None, six_months));
}

#[test]
fn a_state_with_no_counterpart_refuses_until_mapped() {
    let without_mapping =
        V2_SOURCE.replace("migrations:\n  awaiting_incubation: awaiting_session\n", "");
    let v2 = Workflow::from_yaml(&without_mapping, "v2-unmapped.yaml").unwrap();
    let v1 = anssi();
    let project = instance("awaiting_incubation");
    let deadlines = live(&v1, "awaiting_incubation", project.entered_at);
    let now = utc("2022-04-01T12:00:00Z");
    let refused =
        plan_migration(&v1, &v2, &project, &deadlines, &BTreeMap::new(), now).unwrap_err();
    assert_eq!(
        refused,
        MigrationRefused::Unmapped {
            to_version: 3,
            states: vec!["awaiting_incubation".into()]
        }
    );
    assert!(refused.to_string().contains("--map OLD=NEW"), "{refused}");

    let typo = BTreeMap::from([(
        "awaiting_incubation".to_owned(),
        "awaiting_sesion".to_owned(),
    )]);
    let refused = plan_migration(&v1, &v2, &project, &deadlines, &typo, now).unwrap_err();
    assert!(
        matches!(refused, MigrationRefused::UnknownTarget { .. }),
        "{refused}"
    );

    let map = BTreeMap::from([(
        "awaiting_incubation".to_owned(),
        "awaiting_session".to_owned(),
    )]);
    let plan = plan_migration(&v1, &v2, &project, &deadlines, &map, now).unwrap();
    assert_eq!(plan.to_state, "awaiting_session");
}

#[test]
fn a_correction_owed_stays_due_while_its_requirement_exists() {
    let (v1, v2) = (anssi(), v2());
    let project = instance("project_identification");
    let mut deadlines = live(&v1, "project_identification", project.entered_at);
    let due = v1.correction_due(chrono::NaiveDate::from_ymd_opt(2022, 5, 20).unwrap());
    deadlines.push(LiveDeadline {
        key: incubator_engine::correction_key("legal_status"),
        due_at: due,
        paused_at: None,
        sent: BTreeSet::from(["before:P3D".to_owned()]),
    });
    let now = utc("2022-05-18T12:00:00Z");
    let plan = plan_migration(&v1, &v2, &project, &deadlines, &BTreeMap::new(), now).unwrap();
    let change = plan
        .deadlines
        .iter()
        .find(|d| d.key == "correction:legal_status")
        .expect("the correction's deadline");
    assert_eq!((change.old_due, change.new_due), (Some(due), Some(due)));
    assert_eq!(change.reminders.carried, ["before:P3D"]);
}

#[test]
fn a_shift_given_by_a_pause_survives_the_migration() {
    let (v1, v2) = (anssi(), v2());
    let project = instance("project_identification");
    let mut deadlines = live(&v1, "project_identification", project.entered_at);
    deadlines[0].due_at += TimeDelta::days(10);
    let now = utc("2022-05-01T12:00:00Z");
    let plan = plan_migration(&v1, &v2, &project, &deadlines, &BTreeMap::new(), now).unwrap();
    let change = &plan.deadlines[0];
    assert_eq!(change.key, "operational_by_end_2024");
    let change = plan
        .deadlines
        .iter()
        .find(|d| d.key == "project_identification")
        .unwrap();
    assert_eq!(change.new_due, Some(utc("2022-12-11T10:00:00Z")));
}

#[test]
fn a_sent_reminder_whose_time_comes_again_is_carried_and_a_later_one_is_pending_again() {
    let (v1, v2) = (anssi(), v2());
    let project = instance("project_identification");
    let mut deadlines = live(&v1, "project_identification", project.entered_at);
    // 1 September is the old due date: the 30-day reminder has gone out, the 7-day one too.
    deadlines[0].sent = BTreeSet::from(["before:P30D".to_owned(), "before:P7D".to_owned()]);
    let now = utc("2022-08-30T12:00:00Z");
    let plan = plan_migration(&v1, &v2, &project, &deadlines, &BTreeMap::new(), now).unwrap();
    let change = plan
        .deadlines
        .iter()
        .find(|d| d.key == "project_identification")
        .unwrap();
    // Three more months: both reminders come again before the new date, nothing is carried.
    assert!(change.reminders.carried.is_empty());
    let steps: Vec<&str> = change
        .reminders
        .pending
        .iter()
        .map(|s| s.step.as_str())
        .collect();
    assert_eq!(
        steps,
        ["before:P30D", "before:P7D", "overdue:0", "escalation:0"]
    );
    let pending = &change.reminders.pending;
    assert!(pending[0].old_send_at.is_none());
    assert!(pending[2].old_send_at.unwrap() < pending[2].new_send_at.unwrap());

    // The other way round: a due date moved earlier keeps what went out as sent.
    let sent = BTreeSet::from(["before:P30D".to_owned()]);
    let plan = v1.reminder_plan("project_identification").unwrap();
    let old_due = utc("2022-09-01T10:00:00Z");
    let rebased = rebase_reminders(
        Some((Some(plan), old_due, None)),
        Some((Some(plan), old_due - TimeDelta::days(3), None)),
        &sent,
        utc("2022-08-10T12:00:00Z"),
    );
    assert_eq!(rebased.carried, ["before:P30D"]);
    assert_eq!(rebased.pending[0].step, "before:P7D");
}

#[test]
fn resuming_continues_or_restarts_as_the_state_says() {
    let v1 = anssi();
    assert_eq!(
        v1.on_resume("project_identification"),
        incubator_engine::model::ClockOnResume::Continue
    );
    let due = utc("2022-09-01T10:00:00Z");
    let (paused, resumed) = (utc("2022-06-01T08:00:00Z"), utc("2022-06-21T08:00:00Z"));
    assert_eq!(
        v1.resumed_due("project_identification", due, paused, resumed),
        utc("2022-09-21T10:00:00Z")
    );
    let restarting = V2_SOURCE.replace(
        "      after: P9M\n",
        "      after: P9M\n      on_resume: restart\n",
    );
    let v2 = Workflow::from_yaml(&restarting, "restart.yaml").unwrap();
    assert_eq!(
        v2.resumed_due("project_identification", due, paused, resumed),
        utc("2023-03-21T09:00:00Z")
    );
    // Goals have no period: they continue.
    let goal = v2.goals()[0].due;
    assert_eq!(
        v2.resumed_due("operational_by_end_2024", goal, paused, resumed),
        goal + TimeDelta::days(20)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Under `continue`, every step sent before the pause is carried (its shifted time is before the
    /// resumption) and every step not sent is pending at its time shifted by the pause.
    #[test]
    fn continue_shifts_every_pending_step_by_the_pause(
        pause_start in 0i64..200,
        pause_days in 0i64..120,
    ) {
        let v1 = anssi();
        let plan = v1.reminder_plan("project_identification").unwrap();
        let due = utc("2022-09-01T10:00:00Z");
        let paused = utc("2022-03-01T10:00:00Z") + TimeDelta::days(pause_start);
        let resumed = paused + TimeDelta::days(pause_days);
        let sent: BTreeSet<String> = plan.schedule(due, paused).into_iter().map(|s| s.step).collect();
        let new_due = v1.resumed_due("project_identification", due, paused, resumed);
        prop_assert_eq!(new_due, due + TimeDelta::days(pause_days));
        let rebased = rebase_reminders(
            Some((Some(plan), due, Some(paused))),
            Some((Some(plan), new_due, None)),
            &sent,
            resumed,
        );
        let carried: BTreeSet<String> = rebased.carried.iter().cloned().collect();
        prop_assert_eq!(&carried, &sent);
        let far = new_due + TimeDelta::days(400);
        let catch_up: Vec<String> = plan.due_steps(new_due, resumed).into_iter().map(|s| s.step).collect();
        for step in &rebased.pending {
            prop_assert!(!sent.contains(&step.step));
            prop_assert!(step.old_send_at.is_none(), "a paused deadline has nothing pending");
            let new_at = step.new_send_at.unwrap();
            let planned = plan.schedule(new_due, far).into_iter().find(|s| s.step == step.step).unwrap();
            prop_assert_eq!(new_at, planned.send_at);
            prop_assert!(new_at > resumed || catch_up.contains(&step.step));
            if step.step.starts_with("before:") {
                // Same local time, `pause_days` later (UTC may differ by the daylight-saving hour).
                let old_at = plan.schedule(due, far).into_iter().find(|s| s.step == step.step).unwrap().send_at;
                let paris = |t: DateTime<Utc>| t.with_timezone(&chrono_tz::Europe::Paris).naive_local();
                prop_assert_eq!(paris(new_at) - paris(old_at), TimeDelta::days(pause_days));
            }
        }
    }
}
