//! The scheduler pass: reminders follow the workflow's plan, each step once, at Paris send times across
//! daylight-saving changes, cancelled by leaving the state; the weekly digest once per ISO week.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Paris;
use common::{TestDb, at};
use incubator_mailer::{Scheduler, Worker};
use incubator_store::entities::{deadlines, outbox, reminders_sent};
use incubator_store::reminders;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use support::{Programme, SmtpSink, config, programme, templates};

both_backends!(
    a_clock_jumping_back_across_the_autumn_change_sends_nothing_twice,
    reminders_follow_the_plan_once_in_paris_time_and_stop_when_the_state_is_left,
    a_second_pass_at_the_same_now_sends_nothing,
    the_digest_goes_out_once_per_iso_week,
);

async fn outbox_rows(p: &Programme) -> Vec<outbox::Model> {
    outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(p.store.db())
        .await
        .unwrap()
}

/// Rows of every mail but the weekly digest.
async fn reminder_rows(p: &Programme) -> usize {
    outbox_rows(p)
        .await
        .iter()
        .filter(|r| r.template != "officers_digest")
        .count()
}

async fn deadline(p: &Programme, project_id: i64, key: &str) -> deadlines::Model {
    deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::Key.eq(key))
        .one(p.store.db())
        .await
        .unwrap()
        .expect("deadline")
}

async fn steps_sent(p: &Programme, project_id: i64) -> Vec<String> {
    reminders_sent::Entity::find()
        .filter(reminders_sent::Column::ProjectId.eq(project_id))
        .order_by_asc(reminders_sent::Column::SentAt)
        .order_by_asc(reminders_sent::Column::Step)
        .all(p.store.db())
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}/{}", r.deadline_key, r.step))
        .collect()
}

async fn reminders_follow_the_plan_once_in_paris_time_and_stop_when_the_state_is_left(db: &TestDb) {
    let sink = SmtpSink::start();
    let p = programme(db).await;
    // Invited in January: the answer is due three months later, so the reminders straddle the change to
    // summer time (28 March 2021).
    let created = Utc.with_ymd_and_hms(2021, 1, 11, 15, 30, 0).unwrap();
    let kept = p.create_project("53", created).await;
    let left = p.create_project("11", created).await;
    let scheduler = Scheduler::new(p.store.clone());
    let due = deadline(&p, kept, "invited").await.due_at;
    let workflow = p
        .store
        .workflows()
        .get(p.store.db(), "csirt-incubation", 2)
        .await
        .unwrap();
    let plan = workflow.reminder_plan("invited").unwrap().clone();

    // A pass every six hours for five months; the Île-de-France council answers a week after the deadline.
    let answered = due + TimeDelta::days(7);
    let end = Utc.with_ymd_and_hms(2021, 6, 15, 0, 0, 0).unwrap();
    let mut now = created;
    let mut fired = false;
    while now <= end {
        if !fired && now >= answered {
            p.fire(left, "express_interest", None, now).await;
            fired = true;
        }
        scheduler.pass(now, false, |_| {}).await.unwrap();
        now += TimeDelta::hours(6);
    }

    // Every step of the plan up to the end, once, in order; none twice, none missed.
    let expected: Vec<String> = plan
        .schedule(due, end)
        .into_iter()
        .map(|s| format!("invited/{}", s.step))
        .collect();
    assert!(expected.len() >= 2 + 2 * 4, "{expected:?}");
    let sent = steps_sent(&p, kept).await;
    assert_eq!(
        sent.iter().collect::<BTreeSet<_>>(),
        expected.iter().collect::<BTreeSet<_>>(),
        "steps sent for the project that never answered"
    );
    // Leaving the state cancelled what had not gone out yet: only the steps until the answer.
    let until_answer: BTreeSet<String> = plan
        .schedule(due, answered)
        .into_iter()
        .map(|s| format!("invited/{}", s.step))
        .collect();
    let left_steps: BTreeSet<String> = steps_sent(&p, left)
        .await
        .into_iter()
        .filter(|s| s.starts_with("invited/"))
        .collect();
    assert_eq!(left_steps, until_answer);
    let cleared = deadline(&p, left, "invited").await;
    assert!(cleared.cleared_at.is_some());
    assert_eq!(
        reminders::queued_looks(p.store.db(), cleared.id)
            .await
            .unwrap(),
        Vec::<DateTime<Utc>>::new()
    );
    // The look it had queued before it was cleared came up in a later pass, which dropped it.
    let conn = p.store.db();
    let backend = conn.get_database_backend();
    let count = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT COUNT(*) AS n FROM deadline_checks WHERE deadline_id = $1"
        }
        _ => "SELECT COUNT(*) AS n FROM deadline_checks WHERE deadline_id = ?",
    };
    let queued: i64 = conn
        .query_one(sea_orm::Statement::from_sql_and_values(
            backend,
            count,
            [cleared.id.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(queued, 0);

    // Before-reminders at 09:00 in Paris, whether Paris is on winter (UTC+1) or summer time (UTC+2).
    let rows = outbox_rows(&p).await;
    let project_rows: Vec<&outbox::Model> =
        rows.iter().filter(|r| r.project_id == Some(kept)).collect();
    let mut before = BTreeMap::new();
    for row in &project_rows {
        let context: serde_json::Value = serde_json::from_str(&row.context).unwrap();
        let step = context["step"].as_str().unwrap().to_owned();
        let send_at: DateTime<Utc> = serde_json::from_value(context["send_at"].clone()).unwrap();
        if step.starts_with("before:") {
            before.insert(step, send_at);
        }
    }
    assert_eq!(before.len(), 2, "{before:?}");
    for send_at in before.values() {
        assert_eq!(
            send_at.with_timezone(&Paris).time(),
            NaiveTime::from_hms_opt(9, 0, 0).unwrap()
        );
    }
    let utc_hours: BTreeSet<u32> = before.values().map(|at| at.hour()).collect();
    assert_eq!(
        utc_hours,
        BTreeSet::from([7, 8]),
        "one reminder in winter time, one in summer time"
    );

    // Who gets what: the council for notices (French and English rows), the officer for escalations.
    for row in &project_rows {
        let recipients: Vec<serde_json::Value> = serde_json::from_str(&row.recipients).unwrap();
        let emails: Vec<&str> = recipients
            .iter()
            .map(|r| r["email"].as_str().unwrap())
            .collect();
        match row.template.as_str() {
            "deadline_escalation" => assert_eq!(emails, [p.officer.email.as_str()]),
            "deadline_reminder" | "deadline_overdue" => {
                assert!(
                    emails == [p.council_fr.email.as_str()]
                        || emails == [p.council_en.email.as_str()]
                )
            }
            other => panic!("unexpected mail {other}"),
        }
    }

    // And through a real SMTP server, in French.
    let Some(sink) = sink else { return };
    let worker = Worker::new(
        p.store.clone(),
        templates(),
        Arc::new(config(db.data_dir(), Some(sink.url()))),
    )
    .unwrap();
    worker.drain().await.unwrap();
    let all = outbox_rows(&p).await;
    let received = sink.wait_for(all.len(), Duration::from_secs(10)).await;
    assert_eq!(received.len(), all.len());
    let claire: Vec<_> = received
        .iter()
        .filter(|m| m.rcpt_tos == [p.council_fr.email.clone()])
        .collect();
    assert_eq!(
        claire[0].subject,
        "[Bretagne] Rappel : Réponse au courrier de l'ANSSI, échéance le 11 avril 2021"
    );
    assert!(
        claire[0].text.contains("dans 30 jours"),
        "{}",
        claire[0].text
    );
    assert!(
        claire[1].text.contains("dans 7 jours"),
        "{}",
        claire[1].text
    );
    assert_eq!(
        claire[2].subject,
        "[Bretagne] Échéance dépassée : Réponse au courrier de l'ANSSI"
    );
    let escalations: Vec<_> = received
        .iter()
        .filter(|m| {
            m.rcpt_tos == [p.officer.email.clone()] && m.subject.contains("Bretagne] Retard de")
        })
        .collect();
    assert!(
        escalations[0]
            .subject
            .starts_with("[Bretagne] Retard de 1 jour : "),
        "{}",
        escalations[0].subject
    );
    assert!(
        escalations[1]
            .subject
            .starts_with("[Bretagne] Retard de 14 jours : "),
        "{}",
        escalations[1].subject
    );
}

async fn a_second_pass_at_the_same_now_sends_nothing(db: &TestDb) {
    let p = programme(db).await;
    for region in ["53", "11", "84"] {
        p.create_project(region, at(2021, 1, 4)).await;
    }
    let scheduler = Scheduler::new(p.store.clone());
    scheduler.pass(at(2021, 1, 4), false, |_| {}).await.unwrap();
    let now = at(2021, 3, 20);
    // A dry run says what the real pass will do, and writes nothing.
    let mut dry_seen = Vec::new();
    let dry = scheduler
        .pass(now, true, |r| dry_seen.push(r.clone()))
        .await
        .unwrap();
    assert_eq!(dry.reminders, 3, "{dry:?}");
    assert!(dry_seen.iter().all(|r| r.new && r.step == "before:P30D"));
    assert_eq!(reminder_rows(&p).await, 0);
    assert_eq!(
        reminders_sent::Entity::find()
            .filter(reminders_sent::Column::ProjectId.ne(0))
            .count(p.store.db())
            .await
            .unwrap(),
        0
    );

    let first = scheduler.pass(now, false, |_| {}).await.unwrap();
    assert_eq!(first.digest, dry.digest, "the dry run foretold the digest");
    assert_eq!((first.examined, first.reminders), (3, 3), "{first:?}");
    let queued = reminder_rows(&p).await;
    assert_eq!(first.mails, queued);
    assert!(queued >= 3);

    let second = scheduler.pass(now, false, |_| {}).await.unwrap();
    assert_eq!((second.reminders, second.mails), (0, 0), "{second:?}");
    assert_eq!(
        second.examined, 0,
        "handled deadlines left the index until their next step"
    );
    assert_eq!(reminder_rows(&p).await, queued);
    // Even when a deadline is looked at again (its next look forced), its key stops a second send.
    let db = p.store.db();
    let backend = db.get_database_backend();
    let force = match backend {
        sea_orm::DbBackend::Postgres => {
            "INSERT INTO deadline_checks (next_check_at, deadline_id) \
             SELECT $1, id FROM deadlines WHERE key = 'invited'"
        }
        _ => {
            "INSERT INTO deadline_checks (next_check_at, deadline_id) \
             SELECT ?, id FROM deadlines WHERE key = 'invited'"
        }
    };
    db.execute(sea_orm::Statement::from_sql_and_values(
        backend,
        force,
        [now.into()],
    ))
    .await
    .unwrap();
    let forced = scheduler.pass(now, false, |_| {}).await.unwrap();
    assert_eq!(
        (forced.examined, forced.reminders, forced.already_sent),
        (3, 0, 3),
        "{forced:?}"
    );
    assert_eq!(reminder_rows(&p).await, queued);
    let dry_after = scheduler.pass(now, true, |_| {}).await.unwrap();
    assert_eq!(dry_after.reminders, 0);
}

async fn the_digest_goes_out_once_per_iso_week(db: &TestDb) {
    let p = programme(db).await;
    p.create_project("53", at(2021, 1, 4)).await;
    let scheduler = Scheduler::new(p.store.clone());
    let paris = |d: u32, h: u32| {
        Paris
            .with_ymd_and_hms(2021, 4, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    // Monday 12 April 2021: nothing before 08:00 Paris time, the digest at the first pass after.
    assert_eq!(
        scheduler
            .pass(paris(12, 7), false, |_| {})
            .await
            .unwrap()
            .digest,
        None
    );
    assert_eq!(
        scheduler
            .pass(paris(12, 8), false, |_| {})
            .await
            .unwrap()
            .digest
            .as_deref(),
        Some("2021-W15")
    );
    assert_eq!(
        scheduler
            .pass(paris(12, 9), false, |_| {})
            .await
            .unwrap()
            .digest,
        None
    );
    assert_eq!(
        scheduler
            .pass(paris(15, 9), false, |_| {})
            .await
            .unwrap()
            .digest,
        None
    );
    // A week whose Monday pass was missed still gets its digest, once.
    assert_eq!(
        scheduler
            .pass(paris(21, 10), false, |_| {})
            .await
            .unwrap()
            .digest
            .as_deref(),
        Some("2021-W16")
    );
    assert_eq!(
        scheduler
            .pass(paris(21, 10), false, |_| {})
            .await
            .unwrap()
            .digest,
        None
    );
    let digests: Vec<outbox::Model> = outbox_rows(&p)
        .await
        .into_iter()
        .filter(|r| r.template == "officers_digest")
        .collect();
    assert_eq!(digests.len(), 2);
    let recipients: Vec<serde_json::Value> = serde_json::from_str(&digests[0].recipients).unwrap();
    assert_eq!(recipients.len(), 1);
    assert_eq!(recipients[0]["email"], p.officer.email.as_str());

    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let worker = Worker::new(
        p.store.clone(),
        templates(),
        Arc::new(config(db.data_dir(), Some(sink.url()))),
    )
    .unwrap();
    worker.drain().await.unwrap();
    let received = sink
        .wait_for(outbox_rows(&p).await.len(), Duration::from_secs(10))
        .await;
    let digest: Vec<_> = received
        .iter()
        .filter(|m| m.subject.starts_with("Synthèse"))
        .collect();
    assert_eq!(digest.len(), 2);
    assert_eq!(
        digest[0].subject,
        "Synthèse hebdomadaire du programme – semaine du 12 avril 2021"
    );
    assert!(
        digest[0].text.contains("- Invitation envoyée : 1"),
        "{}",
        digest[0].text
    );
    assert!(
        digest[0]
            .text
            .contains("Bretagne – Réponse au courrier de l'ANSSI"),
        "{}",
        digest[0].text
    );
}

/// A pass every three hours from August to the new year, each followed by a pass an hour earlier (a clock stepped
/// back by NTP, or a replica whose clock lags): every step of the plan goes out once, to each recipient once,
/// and the before-reminders keep 09:00 in Paris on either side of the change to winter time (31 October).
async fn a_clock_jumping_back_across_the_autumn_change_sends_nothing_twice(db: &TestDb) {
    let p = programme(db).await;
    let created = Utc.with_ymd_and_hms(2021, 8, 10, 13, 30, 0).unwrap();
    let project = p.create_project("53", created).await;
    let scheduler = Scheduler::new(p.store.clone());
    let due = deadline(&p, project, "invited").await.due_at;
    let end = Utc.with_ymd_and_hms(2022, 1, 1, 0, 0, 0).unwrap();
    let mut now = created;
    while now <= end {
        scheduler.pass(now, false, |_| {}).await.unwrap();
        scheduler
            .pass(now - TimeDelta::hours(1), false, |_| {})
            .await
            .unwrap();
        now += TimeDelta::hours(3);
    }

    let workflow = p
        .store
        .workflows()
        .get(p.store.db(), "csirt-incubation", 2)
        .await
        .unwrap();
    let expected: BTreeSet<String> = workflow
        .reminder_plan("invited")
        .unwrap()
        .schedule(due, end)
        .into_iter()
        .map(|s| format!("invited/{}", s.step))
        .collect();
    assert!(expected.len() >= 2 + 2 * 3, "{expected:?}");
    let sent = steps_sent(&p, project).await;
    assert_eq!(sent.len(), expected.len(), "no step twice: {sent:?}");
    assert_eq!(sent.into_iter().collect::<BTreeSet<_>>(), expected);

    let mut seen = BTreeSet::new();
    let mut before_hours = BTreeMap::new();
    for row in outbox_rows(&p).await {
        if row.project_id != Some(project) {
            continue;
        }
        let context: serde_json::Value = serde_json::from_str(&row.context).unwrap();
        let step = context["step"].as_str().unwrap().to_owned();
        assert!(
            seen.insert((step.clone(), row.recipients.clone())),
            "{step} twice to {}",
            row.recipients
        );
        if step.starts_with("before:") {
            let send_at: DateTime<Utc> =
                serde_json::from_value(context["send_at"].clone()).unwrap();
            assert_eq!(
                send_at.with_timezone(&Paris).time(),
                NaiveTime::from_hms_opt(9, 0, 0).unwrap()
            );
            before_hours.insert(step, send_at.hour());
        }
    }
    // 30 days before 10 November is 11 October, summer time (07:00 UTC); 7 days before is 3 November,
    // winter time (08:00 UTC).
    assert_eq!(
        before_hours,
        BTreeMap::from([("before:P30D".to_owned(), 7), ("before:P7D".to_owned(), 8)])
    );
}
