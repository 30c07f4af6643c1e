//! Correction requests under the scheduler: the council is mailed the request, the correction's own
//! deadline is reminded before, then overdue and escalated, once each; the region's new upload answers it
//! (no reminder after) and resumes the stage's clock it paused, moved by the pause. Passes run every six
//! hours on an injected clock.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use common::TestDb;
use incubator_engine::{CorrectionKind, RequirementStatus};
use incubator_mailer::{Scheduler, Worker};
use incubator_store::clocks::PauseDeadline;
use incubator_store::documents::{
    CorrectionRequest, RecordDocument, ReviewDecision, ReviewDocument,
};
use incubator_store::entities::{deadlines, events, outbox};
use incubator_store::{Store, StoreError, projects};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use support::{Programme, SmtpSink, config, programme, templates};

both_backends!(
    a_correction_is_mailed_reminded_once_and_answered_by_an_upload,
    the_stage_clock_waits_for_every_correction_holding_it,
);

const PASS_EVERY: TimeDelta = TimeDelta::hours(6);
const KEY: &str = "correction:council_backed";

/// A reminder of the correction as a pass queued it: its step, when it was planned, when the pass ran, and
/// the roles it went to.
#[derive(Debug, PartialEq, Eq)]
struct Sent {
    step: String,
    send_at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
    to: Vec<String>,
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

async fn ask(
    p: &Programme,
    document: i64,
    decision: ReviewDecision,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<RequirementStatus, StoreError> {
    let project_id = incubator_store::entities::documents::Entity::find_by_id(document)
        .one(p.store.db())
        .await?
        .expect("document")
        .project_id;
    p.store
        .write(ReviewDocument {
            registry: p.store.workflows().clone(),
            project_id,
            document_id: document,
            decision,
            comment: comment.map(str::to_owned),
            actor: format!("user:{}", p.officer.id),
            now,
        })
        .await
}

fn correction(due_on: NaiveDate) -> ReviewDecision {
    ReviewDecision::CorrectionRequested(CorrectionRequest {
        kind: CorrectionKind::Outdated,
        due_on,
        pause_stage_clock: true,
    })
}

async fn upload(p: &Programme, project_id: i64, requirement: &str, now: DateTime<Utc>) -> i64 {
    p.store
        .write(RecordDocument {
            registry: p.store.workflows().clone(),
            project_id,
            requirement: requirement.into(),
            filename: format!("{requirement}.pdf"),
            media_type: "application/pdf".into(),
            size: 1234,
            sha256: "0".repeat(64),
            expires_on: None,
            awaits_scan: false,
            actor: format!("user:{}", p.council_fr.id),
            now,
        })
        .await
        .unwrap()
        .id
}

async fn deadline(store: &Store, project_id: i64, key: &str) -> deadlines::Model {
    deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::Key.eq(key))
        .one(store.db())
        .await
        .unwrap()
        .expect("deadline")
}

async fn event_kinds(store: &Store, project_id: i64) -> Vec<String> {
    events::Entity::find()
        .filter(events::Column::ProjectId.eq(project_id))
        .order_by_asc(events::Column::Seq)
        .all(store.db())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn a_correction_is_mailed_reminded_once_and_answered_by_an_upload(db: &TestDb) {
    let p = programme(db).await;
    let id = p.create_project("53", utc(2021, 3, 15, 10, 0)).await;
    p.fire(id, "express_interest", None, utc(2021, 3, 20, 10, 0))
        .await;
    p.fire(id, "open_identification", None, utc(2021, 3, 22, 10, 0))
        .await;
    let document = upload(&p, id, "council_backed", utc(2021, 5, 3, 8, 0)).await;
    let stage_due = deadline(&p.store, id, "project_identification")
        .await
        .due_at;

    // Asked on a pass time; due by the end of 20 May in Paris (UTC+2).
    let asked = utc(2021, 5, 4, 9, 30);
    let due_on = NaiveDate::from_ymd_opt(2021, 5, 20).unwrap();
    let decision = ReviewDecision::CorrectionRequested(CorrectionRequest {
        kind: CorrectionKind::Incomplete,
        due_on,
        pause_stage_clock: true,
    });
    let comment = "L'annexe financière de la délibération manque.";
    let status = ask(&p, document, decision, Some(comment), asked)
        .await
        .unwrap();
    assert_eq!(status, RequirementStatus::CorrectionRequested);
    let snap = projects::snapshot(p.store.db(), id).await.unwrap();
    let record = &snap.requirements["council_backed"];
    assert_eq!(record.stored, RequirementStatus::CorrectionRequested);
    let correction = record.correction.as_ref().expect("the correction");
    assert_eq!(correction.kind, CorrectionKind::Incomplete);
    assert_eq!(correction.due_on, due_on);
    assert_eq!(correction.document_id, document);
    assert_eq!(
        correction.paused_deadline.as_deref(),
        Some("project_identification")
    );
    let due_at = utc(2021, 5, 20, 22, 0);
    assert_eq!(deadline(&p.store, id, KEY).await.due_at, due_at);
    let stage = deadline(&p.store, id, "project_identification").await;
    assert_eq!(stage.paused_at, Some(asked));
    let kinds = event_kinds(&p.store, id).await;
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["document_reviewed", "deadline.paused"]
    );
    // The council of Bretagne is mailed the request, in each account's language; nobody else.
    let requests: Vec<outbox::Model> = outbox::Entity::find()
        .filter(outbox::Column::Template.eq("correction_requested"))
        .all(p.store.db())
        .await
        .unwrap();
    let mut to: Vec<&str> = requests.iter().map(|r| r.recipients.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to.len(), 2, "{to:?}");
    assert!(to[0].contains(&p.council_fr.email) || to[1].contains(&p.council_fr.email));
    assert!(to.iter().any(|r| r.contains(&p.council_en.email)));
    assert!(!to.iter().any(|r| r.contains(&p.other_council.email)));

    // Passes every six hours until after the first overdue round, then a second pass at the same time.
    let scheduler = Scheduler::new(p.store.clone());
    let mut sent: Vec<Sent> = Vec::new();
    let answered = utc(2021, 5, 24, 10, 0);
    let end = utc(2021, 6, 15, 0, 0);
    let mut now = asked;
    let mut uploaded_again = false;
    while now <= end {
        if !uploaded_again && now >= answered {
            upload(&p, id, "council_backed", answered).await;
            uploaded_again = true;
        }
        scheduler
            .pass(now, false, |r| {
                if r.new && r.deadline_key == KEY {
                    sent.push(Sent {
                        step: r.step.clone(),
                        send_at: r.send_at,
                        sent_at: now,
                        to: r.to_roles.clone(),
                    });
                }
            })
            .await
            .unwrap();
        if now == utc(2021, 5, 21, 3, 30) {
            let again = scheduler.pass(now, false, |_| {}).await.unwrap();
            assert_eq!((again.reminders, again.mails), (0, 0), "{again:?}");
        }
        now += PASS_EVERY;
    }
    let sent_at = utc(2021, 5, 21, 3, 30);
    let to = |role: &str| vec![role.to_owned()];
    assert_eq!(
        sent,
        [
            // Three days before the due day, at 09:00 in Paris; sent by the first pass after.
            Sent {
                step: "before:P3D".into(),
                send_at: utc(2021, 5, 17, 7, 0),
                sent_at: utc(2021, 5, 17, 9, 30),
                to: to("council"),
            },
            Sent {
                step: "overdue:0".into(),
                send_at: due_at,
                sent_at,
                to: to("council"),
            },
            Sent {
                step: "escalation:0".into(),
                send_at: due_at,
                sent_at,
                to: to("officer"),
            },
        ],
        "the second overdue round (27 May) is never sent: the upload answered the correction"
    );

    // The upload answered it: the correction's deadline is cleared, the requirement waits for review, and
    // the stage's clock resumed where it stopped (continue), moved by the length of the pause.
    let cleared = deadline(&p.store, id, KEY).await;
    assert_eq!(cleared.cleared_at, Some(answered));
    let snap = projects::snapshot(p.store.db(), id).await.unwrap();
    assert_eq!(
        snap.requirements["council_backed"].stored,
        RequirementStatus::Pending
    );
    assert_eq!(snap.requirements["council_backed"].correction, None);
    let stage = deadline(&p.store, id, "project_identification").await;
    assert_eq!(stage.paused_at, None);
    assert_eq!(stage.due_at, stage_due + (answered - asked));
    let kinds = event_kinds(&p.store, id).await;
    assert!(
        kinds.ends_with(&[
            "deadline.resumed".to_owned(),
            "document_uploaded".to_owned()
        ]),
        "{kinds:?}"
    );
    assert_eq!(
        incubator_store::audit::verify(p.store.db())
            .await
            .unwrap()
            .broken,
        None
    );

    // Over a real SMTP server: the request, its reminder, the overdue notice and the escalation.
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mail = config(db.data_dir(), Some(sink.url()));
    let worker = Worker::new(p.store.clone(), templates(), Arc::new(mail)).unwrap();
    worker.drain().await.unwrap();
    let rows = outbox::Entity::find().all(p.store.db()).await.unwrap();
    let received = sink.wait_for(rows.len(), Duration::from_secs(20)).await;
    let to_claire: Vec<_> = received
        .iter()
        .filter(|m| m.to.contains(&p.council_fr.email))
        .collect();
    let request = to_claire
        .iter()
        .find(|m| m.subject.contains("Correction demandée : Délibération"))
        .expect("the request, in French");
    assert!(
        request.subject.contains("avant le 20 mai 2021"),
        "{}",
        request.subject
    );
    assert!(
        request.text.contains("document incomplet"),
        "{}",
        request.text
    );
    assert!(request.text.contains(comment), "{}", request.text);
    assert!(request.text.contains("suspendu"), "{}", request.text);
    let english = received
        .iter()
        .find(|m| m.to.contains(&p.council_en.email) && m.subject.contains("Correction requested"))
        .expect("the request, in English");
    assert!(
        english.text.contains("incomplete document"),
        "{}",
        english.text
    );
    assert!(
        english.subject.contains("20 May 2021"),
        "{}",
        english.subject
    );
    // The reminders name the correction, not a stage.
    let reminders = to_claire
        .iter()
        .filter(|m| {
            m.text
                .contains("Correction demandée : Délibération du conseil régional")
        })
        .count();
    assert!(
        reminders >= 2,
        "the reminder and the overdue notice: {to_claire:#?}"
    );
    let escalation = received
        .iter()
        .find(|m| {
            m.to.contains(&p.officer.email)
                && m.text
                    .contains("Correction demandée : Délibération du conseil régional")
        })
        .expect("the escalation to the officer");
    assert!(
        escalation.subject.contains("Retard"),
        "{}",
        escalation.subject
    );
}

/// Two corrections pausing the same stage: the clock resumes once both are over, whichever way each ends
/// (the region's upload, or the officer accepting the document after all).
async fn the_stage_clock_waits_for_every_correction_holding_it(db: &TestDb) {
    let p = programme(db).await;
    let id = p.create_project("53", utc(2021, 3, 15, 10, 0)).await;
    p.fire(id, "express_interest", None, utc(2021, 3, 20, 10, 0))
        .await;
    p.fire(id, "open_identification", None, utc(2021, 3, 22, 10, 0))
        .await;
    let statutes = upload(&p, id, "legal_status", utc(2021, 5, 3, 8, 0)).await;
    let staff = upload(&p, id, "own_staff", utc(2021, 5, 3, 8, 0)).await;
    let stage_due = deadline(&p.store, id, "project_identification")
        .await
        .due_at;
    let due_on = NaiveDate::from_ymd_opt(2021, 6, 1).unwrap();
    let first = utc(2021, 5, 4, 9, 0);
    ask(
        &p,
        statutes,
        correction(due_on),
        Some("Statuts de 2019."),
        first,
    )
    .await
    .unwrap();
    ask(
        &p,
        staff,
        correction(due_on),
        Some("Organigramme ancien."),
        utc(2021, 5, 5, 9, 0),
    )
    .await
    .unwrap();
    let before = event_kinds(&p.store, id).await;
    // A due day not after today, a correction already open, or no comment: refused, nothing written.
    let today = NaiveDate::from_ymd_opt(2021, 5, 6).unwrap();
    for (document, decision, comment) in [
        (statutes, correction(today), Some("Trop tard.")),
        (statutes, correction(due_on), Some("Encore.")),
        (staff, correction(due_on), None),
    ] {
        let refused = ask(&p, document, decision, comment, utc(2021, 5, 6, 9, 0)).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
    }
    assert_eq!(event_kinds(&p.store, id).await, before);
    assert_eq!(
        before.iter().filter(|k| *k == "deadline.paused").count(),
        1,
        "the second correction holds the clock already paused"
    );

    // The region answers the first: the second still holds the clock.
    upload(&p, id, "legal_status", utc(2021, 5, 10, 9, 0)).await;
    let stage = deadline(&p.store, id, "project_identification").await;
    assert_eq!(stage.paused_at, Some(first));
    // The officer accepts the second document after all: its correction ends and the clock resumes.
    let resumed = utc(2021, 5, 12, 9, 0);
    let status = ask(&p, staff, ReviewDecision::Accepted, None, resumed)
        .await
        .unwrap();
    assert_eq!(status, RequirementStatus::Accepted);
    let stage = deadline(&p.store, id, "project_identification").await;
    assert_eq!(stage.paused_at, None);
    assert_eq!(stage.due_at, stage_due + (resumed - first));
    for key in ["correction:legal_status", "correction:own_staff"] {
        assert!(
            deadline(&p.store, id, key).await.cleared_at.is_some(),
            "{key}"
        );
    }
    let snap = projects::snapshot(p.store.db(), id).await.unwrap();
    assert!(snap.requirements.values().all(|r| r.correction.is_none()));

    // A clock an officer paused by hand is not a correction's to resume; a closed project owes nothing.
    let other = p.create_project("11", utc(2021, 3, 15, 10, 0)).await;
    let statutes = upload(&p, other, "legal_status", utc(2021, 5, 3, 8, 0)).await;
    p.store
        .write(PauseDeadline {
            registry: p.store.workflows().clone(),
            project_id: other,
            key: "invited".into(),
            reason: "en attente du courrier signé".into(),
            actor: format!("user:{}", p.officer.id),
            now: utc(2021, 5, 4, 8, 0),
        })
        .await
        .unwrap();
    let refused = ask(&p, statutes, correction(due_on), Some("Statuts."), resumed).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("paused already, not for a correction")),
        "{refused:?}"
    );
    p.fire(other, "withdraw", Some("Projet abandonné."), resumed)
        .await;
    let refused = ask(&p, statutes, correction(due_on), Some("Statuts."), resumed).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("is closed (`withdrawn`)")),
        "{refused:?}"
    );
}
