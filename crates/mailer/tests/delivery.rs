//! Delivery against a real SMTP server on loopback (aiosmtpd): what it received, counted and read.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{TestDb, at};
use incubator_engine::Actor;
use incubator_mailer::{Worker, message_id};
use incubator_store::documents::{RecordDocument, ReviewDecision, ReviewDocument};
use incubator_store::entities::outbox;
use incubator_store::links::{self, IssueLink, LinkHolder};
use incubator_store::projects::CreateProject;
use incubator_store::{delivery, outbox::PENDING};
use sea_orm::{EntityTrait, QueryOrder};
use support::{Programme, Received, SmtpSink, config, programme, templates};

both_backends!(
    milestones_arrive_once_in_french_to_the_right_people,
    transitions_succeed_with_smtp_down_and_mails_arrive_once_it_is_back,
    permanent_refusals_and_exhausted_attempts_are_dead_until_retried,
    a_refused_or_stalling_recipient_neither_blocks_nor_duplicates_the_others,
    an_expired_lease_is_claimed_again_and_sent_once,
    without_smtp_mails_are_written_as_eml_files,
    a_link_invitation_reaches_its_holder_with_a_link_that_opens,
    mails_rendered_in_one_batch_each_name_their_own_actor_and_region,
);

async fn rows(p: &Programme) -> Vec<outbox::Model> {
    outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(p.store.db())
        .await
        .unwrap()
}

fn worker(p: &Programme, db: &TestDb, sink: Option<&SmtpSink>) -> Worker {
    let config = config(db.data_dir(), sink.map(SmtpSink::url));
    Worker::new(p.store.clone(), templates(), Arc::new(config)).unwrap()
}

/// Each outbox row arrived exactly once, to exactly its recipients, under its Message-ID.
fn assert_each_row_once(rows: &[outbox::Model], received: &[Received]) {
    let mut by_id: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for message in received {
        by_id
            .entry(message.message_id.as_str())
            .or_default()
            .push(message);
    }
    assert_eq!(
        received.len(),
        rows.len(),
        "messages received vs outbox rows"
    );
    for row in rows {
        let id = message_id(row, "anssi.example");
        let got = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("mail {} ({}) never arrived", row.id, row.template));
        assert_eq!(got.len(), 1, "mail {} arrived {} times", row.id, got.len());
        let expected: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&row.recipients)
            .unwrap()
            .iter()
            .map(|r| r["email"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got[0].rcpt_tos, expected, "recipients of mail {}", row.id);
        assert_eq!(got[0].mail_from, "incubateur@anssi.example");
    }
}

async fn milestones_arrive_once_in_french_to_the_right_people(db: &TestDb) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    let id = p.create_project("53", at(2021, 3, 15)).await;
    p.fire(id, "express_interest", None, at(2021, 3, 20)).await;
    p.fire(
        id,
        "open_identification",
        Some("Premier échange le 2 avril."),
        at(2021, 4, 1),
    )
    .await;
    let document = p
        .store
        .write(RecordDocument {
            registry: p.store.workflows().clone(),
            project_id: id,
            requirement: "council_backed".into(),
            filename: "deliberation.pdf".into(),
            media_type: "application/pdf".into(),
            size: 1234,
            sha256: "0".repeat(64),
            expires_on: None,
            awaits_scan: false,
            actor: format!("user:{}", p.council_fr.id),
            now: at(2021, 4, 2),
        })
        .await
        .unwrap();
    p.store
        .write(ReviewDocument {
            registry: p.store.workflows().clone(),
            project_id: document.project_id,
            document_id: document.id,
            decision: ReviewDecision::Rejected,
            comment: Some("La délibération transmise n’est pas signée par le président.".into()),
            actor: format!("user:{}", p.officer.id),
            now: at(2021, 4, 3),
        })
        .await
        .unwrap();

    let worker = worker(&p, db, Some(&sink));
    let report = worker.drain().await.unwrap();
    let rows = rows(&p).await;
    assert_eq!(report.sent, rows.len(), "{report:?}");
    assert!(
        rows.iter()
            .all(|r| r.status == delivery::SENT && r.sent_at.is_some())
    );
    let received = sink.wait_for(rows.len(), Duration::from_secs(5)).await;
    assert_each_row_once(&rows, &received);

    let to = |email: &str| -> Vec<&Received> {
        received
            .iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == email))
            .collect()
    };
    assert!(
        to(&p.other_council.email).is_empty(),
        "Île-de-France received Bretagne's mails"
    );
    // express_interest mails the officer only; open_identification everyone of the project.
    let officer = to(&p.officer.email);
    let subjects: Vec<&str> = officer.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "[Bretagne] Nouvelle étape pour le projet : Intérêt manifesté",
            "[Bretagne] Nouvelle étape pour le projet : Identification du projet",
        ]
    );
    assert!(
        officer[0].text.contains("Bonjour Olivia Officier,"),
        "{}",
        officer[0].text
    );
    assert!(
        officer[0]
            .text
            .contains("Décision : Manifester son intérêt"),
        "{}",
        officer[0].text
    );
    assert!(
        officer[0]
            .text
            .contains("Par : Olivia Officier, le 20 mars 2021"),
        "{}",
        officer[0].text
    );
    assert!(
        officer[1].text.contains("Premier échange le 2 avril."),
        "{}",
        officer[1].text
    );
    assert!(
        officer[1]
            .text
            .contains(&format!("https://incubateur.example.gouv.fr/projects/{id}"))
    );
    assert!(
        officer[1]
            .text
            .contains("Prochaine échéance : Fin de l'identification"),
        "{}",
        officer[1].text
    );

    // The French council member gets French mails, the English one English mails.
    let claire = to(&p.council_fr.email);
    let claire_subjects: Vec<&str> = claire.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        claire_subjects,
        [
            "[Bretagne] Nouvelle étape pour le projet : Identification du projet",
            "[Bretagne] Document à reprendre : Délibération du conseil régional",
        ]
    );
    let rejection = claire[1];
    assert!(
        rejection.text.contains("Le document « deliberation.pdf »"),
        "{}",
        rejection.text
    );
    assert!(
        rejection
            .text
            .contains("n’a pas pu être accepté par Olivia Officier"),
        "{}",
        rejection.text
    );
    assert!(
        rejection
            .text
            .contains("Motif :\nLa délibération transmise n’est pas signée par le président."),
        "{}",
        rejection.text
    );
    assert!(
        rejection
            .html
            .contains("La délibération transmise n’est pas signée par le président.")
    );
    let ewan = to(&p.council_en.email);
    assert_eq!(ewan.len(), 2);
    assert_eq!(
        ewan[1].subject,
        "[Bretagne] Document to be resubmitted: Council deliberation"
    );
    assert!(
        ewan[1]
            .text
            .contains("La délibération transmise n’est pas signée"),
        "{}",
        ewan[1].text
    );

    // Nothing is due any more: a second worker sends nothing.
    let again = worker.drain().await.unwrap();
    assert_eq!(again.claimed, 0);
    assert_eq!(sink.received().len(), rows.len());
}

async fn transitions_succeed_with_smtp_down_and_mails_arrive_once_it_is_back(db: &TestDb) {
    let Some(mut sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    let worker = worker(&p, db, Some(&sink));
    sink.stop();
    let id = p.create_project("53", at(2021, 3, 15)).await;
    p.fire(id, "express_interest", None, at(2021, 3, 20)).await;
    p.fire(id, "open_identification", None, at(2021, 4, 1))
        .await;
    let queued = rows(&p).await.len();
    assert!(queued >= 3, "{queued} rows queued");

    // Every attempt fails on a refused connection: transient, so the mails wait with their error.
    let report = worker.run_batch(Utc::now()).await.unwrap();
    assert_eq!(
        (report.claimed, report.retried, report.sent, report.dead),
        (queued, queued, 0, 0)
    );
    for row in rows(&p).await {
        assert_eq!(row.status, PENDING);
        assert_eq!(row.attempts, 1);
        assert!(row.last_error.as_deref().is_some_and(|e| !e.is_empty()));
        assert!(row.next_attempt_at > Utc::now() - chrono::Duration::seconds(1));
    }

    sink.restart();
    // Backoff is a few tens of milliseconds in tests; drain until every row is sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rows(&p).await.iter().any(|r| r.status != delivery::SENT) {
        assert!(
            std::time::Instant::now() < deadline,
            "mails still pending: {:?}",
            rows(&p).await
        );
        worker.run_batch(Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = rows(&p).await;
    assert_each_row_once(
        &rows,
        &sink.wait_for(rows.len(), Duration::from_secs(5)).await,
    );
    assert!(
        rows.iter()
            .all(|r| r.attempts >= 2 && r.last_error.is_none())
    );
}

async fn permanent_refusals_and_exhausted_attempts_are_dead_until_retried(db: &TestDb) {
    let Some(mut sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    // An officer whose mailbox the server refuses with 550.
    incubator_store::users::create(
        p.store.db(),
        incubator_store::users::NewUser {
            email: "bounce.officer@anssi.example".into(),
            name: "Boris Rebond".into(),
            role: "officer".into(),
            region_code: None,
            password_hash: "x".into(),
            lang: "en".into(),
        },
        at(2021, 3, 1),
    )
    .await
    .unwrap();
    let id = p.create_project("53", at(2021, 3, 15)).await;
    p.fire(id, "express_interest", None, at(2021, 3, 20)).await;
    let mut config = config(db.data_dir(), Some(sink.url()));
    config.max_attempts = 2;
    let worker = Worker::new(p.store.clone(), templates(), Arc::new(config)).unwrap();

    let report = worker.drain().await.unwrap();
    assert_eq!((report.sent, report.dead), (1, 1), "{report:?}");
    let dead = delivery::list(p.store.db(), Some(delivery::DEAD), None, 50)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "a 5xx is permanent: no second attempt");
    assert!(
        dead[0].last_error.as_deref().unwrap().contains("550"),
        "{:?}",
        dead[0].last_error
    );

    // Transient failures until attempts run out: dead too.
    sink.stop();
    p.fire(id, "open_identification", None, at(2021, 4, 1))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while delivery::count(p.store.db(), PENDING).await.unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "mails never gave up");
        worker.run_batch(Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let dead = delivery::list(p.store.db(), Some(delivery::DEAD), None, 50)
        .await
        .unwrap();
    assert_eq!(
        dead.len(),
        1 + 4,
        "open_identification's rows (two officers, two council accounts), plus the bounce"
    );
    assert_eq!(
        dead.iter()
            .filter(|r| r.template == "stage_entered" && r.attempts == 2)
            .count(),
        4
    );

    // An admin retries them once the server is back: each arrives once, the bounce bounces again.
    sink.restart();
    for row in &dead {
        assert!(
            delivery::retry(p.store.db(), row.id, Utc::now())
                .await
                .unwrap()
        );
        assert!(
            !delivery::retry(p.store.db(), row.id, Utc::now())
                .await
                .unwrap(),
            "retrying a pending mail"
        );
    }
    // One row per recipient: only the bounce's rows die again.
    let report = worker.drain().await.unwrap();
    assert_eq!((report.sent, report.dead), (3, 2), "{report:?}");
    let dead = delivery::list(p.store.db(), Some(delivery::DEAD), None, 50)
        .await
        .unwrap();
    assert!(
        dead.iter()
            .all(|r| r.recipients.contains("bounce.officer@anssi.example")),
        "{dead:?}"
    );
    let sent: Vec<outbox::Model> = rows(&p)
        .await
        .into_iter()
        .filter(|r| r.status == delivery::SENT)
        .collect();
    assert_each_row_once(&sent, &sink.received());
}

/// A document rejection to four council accounts of Bretagne, one of which the server refuses for good
/// (550 at `RCPT TO`) and one only for now (451, every time): the two others get it exactly once, the
/// refused one is dead at its first attempt, the busy one once its attempts are spent, and the outbox says
/// which address failed.
async fn a_refused_or_stalling_recipient_neither_blocks_nor_duplicates_the_others(db: &TestDb) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    for (email, name) in [
        ("bounce.council@bretagne.example", "Bruno Rebond"),
        ("busy.council@bretagne.example", "Bérénice Occupée"),
        ("stall.council@bretagne.example", "Sébastien Bloqué"),
    ] {
        incubator_store::users::create(
            p.store.db(),
            incubator_store::users::NewUser {
                email: email.into(),
                name: name.into(),
                role: "council".into(),
                region_code: Some("53".into()),
                password_hash: "x".into(),
                lang: "fr".into(),
            },
            at(2021, 3, 1),
        )
        .await
        .unwrap();
    }
    let id = p.create_project("53", at(2021, 3, 15)).await;
    p.fire(id, "express_interest", None, at(2021, 3, 20)).await;
    p.fire(id, "open_identification", None, at(2021, 4, 1))
        .await;
    let document = p
        .store
        .write(RecordDocument {
            registry: p.store.workflows().clone(),
            project_id: id,
            requirement: "council_backed".into(),
            filename: "deliberation.pdf".into(),
            media_type: "application/pdf".into(),
            size: 1234,
            sha256: "0".repeat(64),
            expires_on: None,
            awaits_scan: false,
            actor: format!("user:{}", p.council_fr.id),
            now: at(2021, 4, 2),
        })
        .await
        .unwrap();
    p.store
        .write(ReviewDocument {
            registry: p.store.workflows().clone(),
            project_id: document.project_id,
            document_id: document.id,
            decision: ReviewDecision::Rejected,
            comment: Some("Signature manquante.".into()),
            actor: format!("user:{}", p.officer.id),
            now: at(2021, 4, 3),
        })
        .await
        .unwrap();
    let rejections = |rows: Vec<outbox::Model>| -> Vec<outbox::Model> {
        rows.into_iter()
            .filter(|r| r.template == "document_rejected")
            .collect()
    };
    assert_eq!(
        rejections(rows(&p).await).len(),
        5,
        "one row per council account"
    );

    let mut config = config(db.data_dir(), Some(sink.url()));
    config.max_attempts = 3;
    let worker = Worker::new(p.store.clone(), templates(), Arc::new(config)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while delivery::count(p.store.db(), PENDING).await.unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "mails never settled");
        worker.run_batch(Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    let rows = rejections(rows(&p).await);
    let by_address = |address: &str| -> &outbox::Model {
        rows.iter()
            .find(|r| r.recipients.contains(address))
            .unwrap_or_else(|| panic!("no row for {address}"))
    };
    // Dead at its first send; a claim the stalled mail's send left no time to try is given back uncounted.
    let refused = by_address("bounce.council@bretagne.example");
    assert_eq!(
        (refused.status.as_str(), refused.attempts),
        (delivery::DEAD, 1)
    );
    assert!(
        refused.last_error.as_deref().unwrap().contains("550"),
        "{refused:?}"
    );
    let busy = by_address("busy.council@bretagne.example");
    assert_eq!((busy.status.as_str(), busy.attempts), (delivery::DEAD, 3));
    assert!(
        busy.last_error.as_deref().unwrap().contains("451"),
        "{busy:?}"
    );
    // A server that takes the message and never answers: each send times out (the SMTP timeout), is
    // retried like any transient failure, and holds up nothing but itself.
    let stalled = by_address("stall.council@bretagne.example");
    assert_eq!(
        (stalled.status.as_str(), stalled.attempts),
        (delivery::DEAD, 3)
    );
    assert!(
        stalled
            .last_error
            .as_deref()
            .unwrap()
            .to_lowercase()
            .contains("timed out"),
        "{stalled:?}"
    );
    let sent: Vec<outbox::Model> = rows
        .iter()
        .filter(|r| r.status == delivery::SENT)
        .cloned()
        .collect();
    assert_eq!(sent.len(), 2, "{rows:#?}");
    let received: Vec<Received> = sink
        .wait_for(2, Duration::from_secs(5))
        .await
        .into_iter()
        .filter(|m| m.subject.contains("Document à reprendre") || m.subject.contains("resubmitted"))
        .collect();
    assert_each_row_once(&sent, &received);
    let mut reached: Vec<&str> = received
        .iter()
        .flat_map(|m| m.rcpt_tos.iter().map(String::as_str))
        .collect();
    reached.sort_unstable();
    assert_eq!(
        reached,
        [p.council_fr.email.as_str(), p.council_en.email.as_str()]
    );
    assert!(
        received
            .iter()
            .all(|m| m.text.contains("Signature manquante."))
    );

    // The store's listing, which GET /api/v1/outbox serves, shows which addresses failed.
    let dead = rejections(
        delivery::list(p.store.db(), Some(delivery::DEAD), None, 50)
            .await
            .unwrap(),
    );
    let mut failed: Vec<&str> = dead.iter().map(|r| r.recipients.as_str()).collect();
    failed.sort_unstable();
    assert_eq!(
        failed,
        [
            r#"[{"email":"bounce.council@bretagne.example","name":"Bruno Rebond"}]"#,
            r#"[{"email":"busy.council@bretagne.example","name":"Bérénice Occupée"}]"#,
            r#"[{"email":"stall.council@bretagne.example","name":"Sébastien Bloqué"}]"#,
        ]
    );
}

async fn an_expired_lease_is_claimed_again_and_sent_once(db: &TestDb) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    let id = p.create_project("53", at(2021, 3, 15)).await;
    p.fire(id, "express_interest", None, at(2021, 3, 20)).await;
    p.fire(id, "open_identification", None, at(2021, 4, 1))
        .await;
    let queued = rows(&p).await.len();
    // A worker claims everything and dies before sending anything.
    const LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(8);
    let now = Utc::now();
    let lease_ends =
        tokio::time::Instant::now() + LEASE.to_std().unwrap() + Duration::from_millis(100);
    // The lease outlasts the checks below even on a loaded machine (a one-second lease once expired
    // before the next claim looked, and the test saw a legitimate reclaim as a double claim).
    let claimed = delivery::claim(p.store.db(), "crashed", now, now + LEASE, 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), queued);
    assert!(
        delivery::claim(p.store.db(), "other", now, now + LEASE, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let worker = worker(&p, db, Some(&sink));
    assert_eq!(
        worker.drain().await.unwrap().claimed,
        0,
        "a leased mail was claimed twice"
    );
    tokio::time::sleep_until(lease_ends).await;
    let report = worker.drain().await.unwrap();
    assert_eq!(report.sent, queued);
    let rows = rows(&p).await;
    assert!(
        rows.iter()
            .all(|r| r.attempts == 2 && r.leased_by.as_deref() == Some(worker.id()))
    );
    assert_each_row_once(&rows, &sink.wait_for(queued, Duration::from_secs(5)).await);
}

async fn without_smtp_mails_are_written_as_eml_files(db: &TestDb) {
    let p = programme(db).await;
    let id = p.create_project("53", at(2021, 3, 15)).await;
    p.fire(id, "express_interest", None, at(2021, 3, 20)).await;
    let worker = worker(&p, db, None);
    assert_eq!(worker.drain().await.unwrap().sent, 1);
    let row = &rows(&p).await[0];
    let folder = db.data_dir().join("outbox");
    let files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files,
        [std::ffi::OsString::from(format!("outbox-{}.eml", row.id))]
    );
    let eml = std::fs::read_to_string(folder.join(&files[0])).unwrap();
    assert!(
        eml.contains(&format!("Message-ID: {}", message_id(row, "anssi.example"))),
        "{eml}"
    );
    assert!(
        eml.contains("To: \"Olivia Officier\" <olivia.officier@anssi.example>"),
        "{eml}"
    );
    assert!(eml.contains("Subject: "), "{eml}");
}

async fn a_link_invitation_reaches_its_holder_with_a_link_that_opens(db: &TestDb) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    let officer = format!("user:{}", p.officer.id);
    let application = p
        .store
        .write(CreateProject {
            registry: p.store.workflows().clone(),
            region_code: "53".into(),
            workflow_id: "intercert-membership".into(),
            actor: Actor {
                id: officer.clone(),
                roles: vec!["officer".into()],
            },
            now: at(2022, 10, 3),
        })
        .await
        .unwrap();
    let link = p
        .store
        .write(IssueLink {
            registry: p.store.workflows().clone(),
            project_id: application,
            role: "sponsor".into(),
            requirement: "first_sponsor_letter".into(),
            holder: LinkHolder::parse("cert@parrain.example", "CERT Parrain").unwrap(),
            lang: "fr".into(),
            expires_at: Utc::now() + chrono::TimeDelta::days(14),
            actor: officer,
            now: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(worker(&p, db, Some(&sink)).drain().await.unwrap().sent, 1);
    let received = sink.wait_for(1, Duration::from_secs(5)).await;
    let mail = &received[0];
    assert_eq!(mail.rcpt_tos, ["cert@parrain.example"]);
    assert_eq!(
        mail.subject,
        "[Bretagne] Document demandé : Lettre du premier CSIRT parrain"
    );
    assert!(
        mail.text.contains("Olivia Officier vous invite"),
        "{}",
        mail.text
    );
    assert!(
        !mail.text.contains("/projects/"),
        "no page its holder could open"
    );
    // The mailed address is the link's own, signed again at delivery, and it opens.
    let token = links::token_of(p.store.db(), &link).await.unwrap();
    let url = format!("https://incubateur.example.gouv.fr/links/{token}");
    assert!(mail.text.contains(&url), "{}", mail.text);
    assert!(
        mail.html.contains(&format!("href=\"{url}\"")),
        "{}",
        mail.html
    );
    let opened = links::resolve(p.store.db(), &token, Utc::now())
        .await
        .unwrap();
    assert_eq!(opened.id, link.id);
}

/// A batch's mails share one renderer, which reads regions and people once: each mail still names its own.
async fn mails_rendered_in_one_batch_each_name_their_own_actor_and_region(db: &TestDb) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let p = programme(db).await;
    let bretagne = p.create_project("53", at(2021, 3, 15)).await;
    let ile_de_france = p.create_project("11", at(2021, 3, 15)).await;
    let mails = [
        (bretagne, &p.officer, "Bretagne"),
        (ile_de_france, &p.council_fr, "Île-de-France"),
        (bretagne, &p.council_fr, "Bretagne"),
        (ile_de_france, &p.officer, "Île-de-France"),
    ];
    for (n, (project, actor, _)) in mails.iter().enumerate() {
        let project = incubator_store::projects::find(p.store.db(), *project)
            .await
            .unwrap();
        support::queue_officer_mail(p.store.db(), &project, actor, n, at(2021, 3, 20)).await;
    }
    let report = worker(&p, db, Some(&sink))
        .run_batch(Utc::now())
        .await
        .unwrap();
    assert_eq!(report.sent, mails.len(), "one batch: {report:?}");
    let received = sink.wait_for(mails.len(), Duration::from_secs(5)).await;
    for (n, (_, actor, region)) in mails.iter().enumerate() {
        let mail = received
            .iter()
            .find(|m| m.text.contains(&format!("mail {n}")))
            .unwrap_or_else(|| panic!("mail {n} never arrived"));
        assert!(
            mail.subject.starts_with(&format!("[{region}]")),
            "mail {n}: {}",
            mail.subject
        );
        assert!(
            mail.text.contains(&format!("Par : {}", actor.name)),
            "mail {n}: {}",
            mail.text
        );
    }
}
