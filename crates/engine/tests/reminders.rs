//! Reminder schedules: local send times across daylight-saving changes, overdue rounds without bursts.

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use proptest::prelude::*;

fn keys_and_times(steps: &[incubator_engine::ReminderStep]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|s| (s.step.clone(), s.send_at.to_rfc3339()))
        .collect()
}

#[test]
fn before_steps_go_out_at_nine_paris_time_even_across_the_clock_change() {
    let wf = anssi();
    let plan = wf.reminder_plan("invited").unwrap();
    // Due 10 April 2022 10:30 CEST; clocks moved forward on 27 March.
    let due = utc("2022-04-10T08:30:00Z");
    let schedule = plan.schedule(due, due);
    assert_eq!(
        keys_and_times(&schedule),
        [
            (
                "before:P30D".to_owned(),
                "2022-03-11T08:00:00+00:00".to_owned()
            ),
            (
                "before:P7D".to_owned(),
                "2022-04-03T07:00:00+00:00".to_owned()
            ),
            (
                "overdue:0".to_owned(),
                "2022-04-10T08:30:00+00:00".to_owned()
            ),
            (
                "escalation:0".to_owned(),
                "2022-04-10T08:30:00+00:00".to_owned()
            ),
        ]
    );
    assert_eq!(schedule[0].template, "deadline_reminder");
    assert_eq!(schedule[0].to_roles, ["council"]);
    assert_eq!(
        (schedule[2].template.as_str(), schedule[2].escalation),
        ("deadline_overdue", false)
    );
    assert_eq!(
        (schedule[3].template.as_str(), schedule[3].escalation),
        ("deadline_escalation", true)
    );
    assert_eq!(schedule[3].to_roles, ["officer"]);
}

#[test]
fn only_the_latest_step_is_due() {
    let wf = anssi();
    let plan = wf.reminder_plan("invited").unwrap();
    let due = utc("2022-04-10T08:30:00Z");
    assert!(plan.due_steps(due, utc("2022-03-11T07:59:59Z")).is_empty());
    assert_eq!(
        keys_and_times(&plan.due_steps(due, utc("2022-03-11T08:00:00Z")))[0].0,
        "before:P30D"
    );
    let late = plan.due_steps(due, utc("2022-04-05T12:00:00Z"));
    assert_eq!(
        late.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        ["before:P7D"]
    );
    let overdue = plan.due_steps(due, utc("2022-04-30T00:00:00Z"));
    assert_eq!(
        keys_and_times(&overdue),
        [
            (
                "overdue:1".to_owned(),
                "2022-04-24T08:30:00+00:00".to_owned()
            ),
            (
                "escalation:1".to_owned(),
                "2022-04-24T08:30:00+00:00".to_owned()
            ),
        ]
    );
    // After a year of downtime: the current round only, not 26 rounds at once.
    let after_downtime = plan.due_steps(due, utc("2023-04-10T09:00:00Z"));
    assert_eq!(
        after_downtime
            .iter()
            .map(|s| s.step.as_str())
            .collect::<Vec<_>>(),
        ["overdue:26", "escalation:26"]
    );
}

#[test]
fn goal_reminders_count_from_the_last_day_and_notify_every_role() {
    let wf = anssi();
    let goal = &wf.goals()[0];
    let plan = wf.reminder_plan(&goal.id).unwrap();
    let schedule = plan.schedule(goal.due, goal.due);
    assert_eq!(
        keys_and_times(&schedule[..2]),
        [
            (
                "before:P90D".to_owned(),
                "2024-10-02T07:00:00+00:00".to_owned()
            ),
            (
                "before:P30D".to_owned(),
                "2024-12-01T08:00:00+00:00".to_owned()
            ),
        ]
    );
    assert_eq!(schedule[0].to_roles, ["council", "officer"]);
    assert!(wf.reminder_plan("operational").is_none());
    assert!(wf.reminder_plan("incubation.mid_term_review").is_none());
}

#[test]
fn custom_send_time_is_used() {
    let wf = intercert();
    let plan = wf.reminder_plan("board_decision").unwrap();
    let steps = plan.schedule(utc("2024-05-01T22:00:00Z"), utc("2024-05-01T22:00:00Z"));
    // Due at the end of 1 May (Paris): the day before at 08:30 CEST.
    assert_eq!(steps[0].send_at, utc("2024-04-30T06:30:00Z"));
    assert_eq!(steps[0].step, "before:P1D");
}

proptest! {
    #[test]
    fn step_keys_are_stable_and_send_times_monotonic(
        due_secs in 1_500_000_000i64..1_900_000_000,
        offsets in prop::collection::vec(0i64..400 * 86_400, 1..6),
        goal in any::<bool>(),
    ) {
        let wf = anssi();
        let plan = wf.reminder_plan(if goal { "operational_by_end_2024" } else { "invited" }).unwrap();
        let due = DateTime::<Utc>::from_timestamp(due_secs, 0).unwrap();
        let horizon = due + TimeDelta::days(400);
        let schedule = plan.schedule(due, horizon);
        let keys: BTreeSet<&str> = schedule.iter().map(|s| s.step.as_str()).collect();
        prop_assert_eq!(keys.len(), schedule.len(), "keys repeat: {:?}", schedule);
        prop_assert!(schedule.windows(2).all(|w| w[0].send_at <= w[1].send_at), "not monotonic: {:?}", schedule);
        let mut nows: Vec<DateTime<Utc>> = offsets.iter().map(|o| due - TimeDelta::days(120) + TimeDelta::seconds(*o)).collect();
        nows.sort();
        let mut last_sent = None;
        for now in nows {
            let due_now = plan.due_steps(due, now);
            for step in &due_now {
                prop_assert!(step.send_at <= now);
                // The same key always means the same send time, whatever `now` is.
                let listed = schedule.iter().find(|s| s.step == step.step);
                prop_assert_eq!(listed, Some(step));
            }
            if let Some(latest) = due_now.last() {
                prop_assert!(last_sent.is_none_or(|t| t <= latest.send_at));
                last_sent = Some(latest.send_at);
            }
        }
    }
}

#[test]
fn a_correction_deadline_has_the_workflow_s_correction_plan() {
    let wf = anssi();
    let plan = wf.reminder_plan("correction:legal_status").unwrap();
    assert_eq!(plan, wf.correction_reminders().unwrap());
    assert_eq!(plan.notify, ["council"]);
    assert_eq!(plan.escalate_to, ["officer"]);
    assert!(wf.reminder_plan("correction:no_such_requirement").is_none());
    assert!(!incubator_engine::is_milestone_key(
        &incubator_engine::correction_key("legal_status")
    ));
    // Due by the end of 20 May in Paris: reminded on the 17th at 09:00, overdue at midnight, then weekly.
    let due = wf.correction_due(chrono::NaiveDate::from_ymd_opt(2021, 5, 20).unwrap());
    assert_eq!(due, utc("2021-05-20T22:00:00Z"));
    assert_eq!(
        keys_and_times(&plan.schedule(due, utc("2021-05-28T00:00:00Z"))),
        [
            (
                "before:P3D".to_owned(),
                "2021-05-17T07:00:00+00:00".to_owned()
            ),
            (
                "overdue:0".to_owned(),
                "2021-05-20T22:00:00+00:00".to_owned()
            ),
            (
                "escalation:0".to_owned(),
                "2021-05-20T22:00:00+00:00".to_owned()
            ),
            (
                "overdue:1".to_owned(),
                "2021-05-27T22:00:00+00:00".to_owned()
            ),
            (
                "escalation:1".to_owned(),
                "2021-05-27T22:00:00+00:00".to_owned()
            ),
        ]
    );
    let labels = wf.deadline_labels("correction:legal_status").unwrap();
    assert_eq!(labels.fr, "Correction demandée : Statuts de la structure");
}

#[test]
fn accepted_evidence_is_valid_through_its_expiry_day_in_paris() {
    use incubator_engine::RequirementStatus::{Accepted, Expired, Pending};
    let wf = anssi();
    let last_day = chrono::NaiveDate::from_ymd_opt(2024, 6, 30);
    // 30 June 23:59 in Paris is still the 30th; one minute later it is the 1st of July.
    assert_eq!(
        wf.requirement_status_at(Accepted, last_day, utc("2024-06-30T21:59:00Z")),
        Accepted
    );
    assert_eq!(
        wf.requirement_status_at(Accepted, last_day, utc("2024-06-30T22:00:00Z")),
        Expired
    );
    assert_eq!(
        wf.requirement_status_at(Accepted, None, utc("2030-01-01T00:00:00Z")),
        Accepted
    );
    // Only accepted evidence expires: a pending upload is waiting, whatever its date.
    assert_eq!(
        wf.requirement_status_at(Pending, last_day, utc("2030-01-01T00:00:00Z")),
        Pending
    );
}
