//! Paused clocks under the scheduler: nothing goes out while a deadline is paused, and once resumed its
//! reminders go out at the shifted dates, under `continue` (the due date moves by the pause) and `restart`
//! (the whole period counts again from the resumption). Passes run every six hours on an injected clock.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::{TestDb, workspace_file};
use incubator_engine::model::ClockOnResume;
use incubator_mailer::Scheduler;
use incubator_store::clocks::{PauseDeadline, ResumeDeadline};
use incubator_store::entities::deadlines;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use support::programme;

both_backends!(reminders_follow_a_paused_deadline_under_continue_and_restart);

/// A reminder as a pass queued it: the due time it was for, its step, when it was planned and when the
/// pass that sent it ran.
type Sent = (DateTime<Utc>, String, DateTime<Utc>, DateTime<Utc>);

const PASS_EVERY: TimeDelta = TimeDelta::hours(6);

async fn reminders_follow_a_paused_deadline_under_continue_and_restart(db: &TestDb) {
    let p = programme(db).await;
    let created = Utc.with_ymd_and_hms(2021, 1, 11, 15, 30, 0).unwrap();
    // Version 2 continues; version 3, deployed next, restarts the answer's clock. New projects start on it.
    let continuing = p.create_project("53", created).await;
    let anssi = std::fs::read_to_string(workspace_file("workflows/csirt-incubation.yaml")).unwrap();
    let restarting = anssi.replacen("version: 2", "version: 3", 1).replacen(
        "      after: P3M\n      labels: {fr: Réponse au courrier",
        "      after: P3M\n      on_resume: restart\n      labels: {fr: Réponse au courrier",
        1,
    );
    assert_ne!(restarting, anssi);
    p.store
        .deploy_workflow(&restarting, "restart.yaml", created)
        .await
        .unwrap();
    let restarted = p.create_project("11", created).await;

    // On pass times (every six hours from 15:30 UTC).
    let paused = Utc.with_ymd_and_hms(2021, 3, 20, 9, 30, 0).unwrap();
    let resumed = Utc.with_ymd_and_hms(2021, 4, 9, 9, 30, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2021, 8, 1, 0, 0, 0).unwrap();
    let old_due = deadline(&p.store, continuing, "invited").await.due_at;
    assert_eq!(
        deadline(&p.store, restarted, "invited").await.due_at,
        old_due
    );

    let scheduler = Scheduler::new(p.store.clone());
    let mut sent: Vec<(i64, Sent)> = Vec::new();
    let mut now = created;
    let mut changes = Vec::new();
    while now <= end {
        if now == paused {
            for id in [continuing, restarted] {
                p.store
                    .write(PauseDeadline {
                        registry: p.store.workflows().clone(),
                        project_id: id,
                        key: "invited".into(),
                        reason: "waiting for the region's correction".into(),
                        actor: "user:1".into(),
                        now,
                    })
                    .await
                    .unwrap();
            }
        }
        if now == resumed {
            for id in [continuing, restarted] {
                let change = p
                    .store
                    .write(ResumeDeadline {
                        registry: p.store.workflows().clone(),
                        project_id: id,
                        key: "invited".into(),
                        reason: "correction received".into(),
                        actor: "user:1".into(),
                        now,
                    })
                    .await
                    .unwrap();
                changes.push(change);
            }
        }
        scheduler
            .pass(now, false, |r| {
                if r.new {
                    let at = (r.due_at, r.step.clone(), r.send_at, now);
                    sent.push((r.project_id, at));
                }
            })
            .await
            .unwrap();
        now += PASS_EVERY;
    }

    let workflow = p
        .store
        .workflows()
        .get(p.store.db(), "csirt-incubation", 2)
        .await
        .unwrap();
    let plan = workflow.reminder_plan("invited").unwrap();
    let [cont, rest] = [&changes[0], &changes[1]];
    assert_eq!(cont.on_resume, Some(ClockOnResume::Continue));
    assert_eq!(rest.on_resume, Some(ClockOnResume::Restart));
    // Continue: twenty days of pause, twenty days later. Restart: three months from the resumption.
    assert_eq!(cont.new_due, old_due + TimeDelta::days(20));
    assert_eq!(
        rest.new_due,
        Utc.with_ymd_and_hms(2021, 7, 9, 9, 30, 0).unwrap()
    );
    assert_eq!(cont.reminders.carried, ["before:P30D"]);
    assert!(rest.reminders.carried.is_empty());

    for (id, change) in [(continuing, cont), (restarted, rest)] {
        let mine: Vec<&Sent> = sent
            .iter()
            .filter(|(p, _)| *p == id)
            .map(|(_, s)| s)
            .collect();
        // Nothing while paused.
        assert!(
            mine.iter()
                .all(|(_, _, _, at)| *at < paused || *at >= resumed),
            "{mine:?}"
        );
        // Before the pause: the plan for the old due date, up to the pause.
        let before: Vec<(DateTime<Utc>, String)> = mine
            .iter()
            .filter(|(_, _, _, at)| *at < paused)
            .map(|(due, step, _, _)| (*due, step.clone()))
            .collect();
        let expected: Vec<(DateTime<Utc>, String)> = plan
            .schedule(old_due, paused)
            .into_iter()
            .map(|s| (old_due, s.step))
            .collect();
        assert_eq!(before, expected, "project {id} before the pause");
        // After: every step of the plan for the shifted date, but those carried over, each at the first
        // pass after its time.
        let after: Vec<&Sent> = mine.iter().copied().filter(|s| s.3 >= resumed).collect();
        let carried: BTreeSet<&String> = change.reminders.carried.iter().collect();
        let expected: Vec<(String, DateTime<Utc>)> = plan
            .schedule(change.new_due, end)
            .into_iter()
            .filter(|s| !carried.contains(&s.step))
            .map(|s| (s.step, s.send_at))
            .collect();
        let got: Vec<(String, DateTime<Utc>)> = after
            .iter()
            .map(|(due, step, send_at, _)| {
                assert_eq!(*due, change.new_due);
                (step.clone(), *send_at)
            })
            .collect();
        assert_eq!(got, expected, "project {id} after the resumption");
        for (_, step, send_at, at) in after {
            assert!(
                *send_at <= *at && *at - *send_at < PASS_EVERY,
                "{step} planned {send_at}, sent {at}"
            );
        }
        // What the resumption announced as pending is what went out first.
        let announced: Vec<(String, DateTime<Utc>)> = change
            .reminders
            .pending
            .iter()
            .map(|s| (s.step.clone(), s.new_send_at.unwrap()))
            .collect();
        assert_eq!(got[..announced.len()], announced[..]);
    }
}

async fn deadline(store: &incubator_store::Store, project_id: i64, key: &str) -> deadlines::Model {
    deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::Key.eq(key))
        .one(store.db())
        .await
        .unwrap()
        .expect("deadline")
}
