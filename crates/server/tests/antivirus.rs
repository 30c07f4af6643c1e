//! The antivirus hook against a real clamd (its own signature database: the EICAR test string) and the real
//! service over HTTP: an upload waits `pending` until scanned and is served only once clean; an infected one
//! is quarantined out of the blob store, never served (through any document sharing its bytes), never
//! accepted, and recorded in the audit trail; a scanner that is down leaves documents pending and retried,
//! and pending documents are scanned after a restart. On a SQLite file and, when `TEST_DATABASE_URL` is set,
//! a fresh PostgreSQL database.

mod common;
mod pages_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::clamd::{Clamd, SIGNATURE, eicar};
use common::{Account, PASSWORD, TestApp, TestDb, expect_ok, pdf, problem};
use incubator_antivirus::{ClamdAddress, ScannerConfig};
use incubator_store::entities::documents;
use incubator_store::scans;
use pages_support::Browser;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

both_backends!(
    clean_is_served_once_scanned_and_infected_is_quarantined,
    pending_is_not_served_until_the_scanner_is_back,
    pending_documents_are_scanned_after_a_restart,
    a_pending_document_is_claimed_by_one_scanner_at_a_time,
);

/// Quick retries, so that a scanner coming back is noticed within a second or so.
fn scanner(address: ClamdAddress) -> ScannerConfig {
    let mut config = ScannerConfig::new(address);
    config.timeout = Duration::from_secs(20);
    config.lease = Duration::from_secs(60);
    config.poll_interval = Duration::from_millis(100);
    config.backoff_base = Duration::from_millis(200);
    config.backoff_cap = Duration::from_secs(1);
    config
}

/// A unix socket no clamd listens on: a scanner that is down.
fn nowhere(clamd: &Clamd) -> ClamdAddress {
    match clamd.address() {
        ClamdAddress::Unix(path) => ClamdAddress::Unix(path.with_file_name("nobody.sock")),
        other => panic!("the test clamd listens on a unix socket, not {other}"),
    }
}

struct Cast {
    officer: Account,
    council: Account,
    project: i64,
}

async fn cast(app: &TestApp) -> Cast {
    let officer = app.account("officer@anssi.example", "officer", None).await;
    let council = app
        .account("csirt@centrevaldeloire.example", "council", Some("24"))
        .await;
    let project = expect_ok(
        app.post(
            &officer,
            "/api/v1/projects",
            &json!({"region_code": "24", "workflow": "csirt-incubation"}),
        )
        .await,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    Cast {
        officer,
        council,
        project,
    }
}

/// Uploads a PDF as the council; returns the document as the API answered.
async fn upload(app: &TestApp, cast: &Cast, requirement: &str, bytes: Vec<u8>) -> Value {
    let response = app
        .upload(
            &cast.council,
            cast.project,
            requirement,
            &format!("{requirement}.pdf"),
            "application/pdf",
            bytes,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn document(app: &TestApp, cast: &Cast, id: i64) -> Value {
    let list: Value = expect_ok(
        app.get(
            &cast.officer,
            &format!("/api/v1/projects/{}/documents", cast.project),
        )
        .await,
    )
    .await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .expect("the document is listed")
}

/// Waits (a minute at most) until the scanner gave the document `status`.
async fn scanned(app: &TestApp, cast: &Cast, id: i64, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let document = document(app, cast, id).await;
        if document["scan_status"] == status {
            return document;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "document {id} is still {} after a minute, not {status}",
            document["scan_status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn content(app: &TestApp, who: &Account, id: i64) -> reqwest::Response {
    app.get(who, &format!("/api/v1/documents/{id}/content"))
        .await
}

async fn accept(app: &TestApp, who: &Account, id: i64) -> reqwest::Response {
    app.post(
        who,
        &format!("/api/v1/documents/{id}/review"),
        &json!({ "decision": "accepted" }),
    )
    .await
}

/// The answer is the problem `slug` (409), the bytes withheld.
async fn withheld(response: reqwest::Response, slug: &str) {
    let body = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(
        body["type"],
        format!("urn:csirt-incubator:problem:{slug}"),
        "{body}"
    );
}

fn blob(app: &TestApp, sha256: &str) -> PathBuf {
    app.db
        .dir
        .path()
        .join("documents")
        .join(&sha256[..2])
        .join(sha256)
}

fn quarantined(app: &TestApp, sha256: &str) -> PathBuf {
    app.db.dir.path().join("quarantine").join(sha256)
}

async fn metrics(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn events_of(app: &TestApp, cast: &Cast, kind: &str) -> Vec<Value> {
    let events: Value = expect_ok(
        app.get(
            &cast.officer,
            &format!("/api/v1/projects/{}/events", cast.project),
        )
        .await,
    )
    .await;
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

async fn clean_is_served_once_scanned_and_infected_is_quarantined(db: TestDb) {
    let Some(clamd) = Clamd::start().await else {
        return;
    };
    let mut config = common::test_config(&db);
    config.antivirus = Some(scanner(clamd.address()));
    let app = common::spawn_with(db, config).await;
    let cast = cast(&app).await;

    // Clean: pending on arrival, then clean, then served and reviewable.
    let bytes = pdf("délibération du conseil régional");
    let clean = upload(&app, &cast, "council_backed", bytes.clone()).await;
    assert_eq!(clean["scan_status"], "pending", "{clean}");
    let clean_id = clean["id"].as_i64().unwrap();
    scanned(&app, &cast, clean_id, "clean").await;
    let served = content(&app, &cast.officer, clean_id).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
    expect_ok(accept(&app, &cast.officer, clean_id).await).await;

    // Infected: a real PDF carrying the EICAR string.
    let infected_bytes = pdf(&eicar());
    let infected = upload(&app, &cast, "legal_status", infected_bytes.clone()).await;
    assert_eq!(infected["scan_status"], "pending", "{infected}");
    let infected_id = infected["id"].as_i64().unwrap();
    let sha256 = infected["sha256"].as_str().unwrap().to_owned();
    let found = scanned(&app, &cast, infected_id, "infected").await;
    assert_eq!(found["scan_signature"], SIGNATURE);
    assert!(
        !blob(&app, &sha256).exists(),
        "infected bytes left in the store"
    );
    assert_eq!(
        std::fs::read(quarantined(&app, &sha256)).expect("quarantined bytes"),
        infected_bytes
    );
    withheld(
        content(&app, &cast.officer, infected_id).await,
        "document-infected",
    )
    .await;
    withheld(
        content(&app, &cast.council, infected_id).await,
        "document-infected",
    )
    .await;
    withheld(
        accept(&app, &cast.officer, infected_id).await,
        "document-infected",
    )
    .await;
    let project = app.project(&cast.officer, cast.project).await;
    let legal_status = project["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "legal_status")
        .unwrap()
        .clone();
    assert_ne!(legal_status["status"], "accepted");
    let recorded = events_of(&app, &cast, "document_infected").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["actor"], "antivirus");
    assert_eq!(recorded[0]["changes"]["document_id"], infected_id);
    assert_eq!(recorded[0]["changes"]["signature"], SIGNATURE);

    // The same bytes again: infected on arrival, and out of the store at once.
    let again = upload(&app, &cast, "own_staff", infected_bytes).await;
    assert_eq!(again["scan_status"], "infected", "{again}");
    assert!(!blob(&app, &sha256).exists());
    withheld(
        content(&app, &cast.officer, again["id"].as_i64().unwrap()).await,
        "document-infected",
    )
    .await;
    assert_eq!(events_of(&app, &cast, "document_infected").await.len(), 2);

    // The region's page links to the clean document only, and says the other is infected.
    let mut browser = Browser::new(&app);
    browser.sign_in("officer@anssi.example", PASSWORD).await;
    let page = browser.get("/regions/24?lang=en").await;
    page.assert_html(StatusCode::OK);
    assert!(
        page.body
            .contains(&format!("/documents/{clean_id}/content"))
    );
    assert!(
        !page
            .body
            .contains(&format!("/documents/{infected_id}/content"))
    );
    assert!(page.body.contains("Infected: quarantined"), "{}", page.body);
    withheld_page(&mut browser, infected_id).await;

    let text = metrics(&app).await;
    assert!(
        text.contains("incubator_documents_scan{status=\"infected\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("incubator_documents_scan{status=\"pending\"} 0"),
        "{text}"
    );
    app.stop().await;
}

/// The page's download answers a problem too, never the bytes.
async fn withheld_page(browser: &mut Browser, id: i64) {
    let download = browser.get(&format!("/documents/{id}/content")).await;
    assert_eq!(download.status, StatusCode::CONFLICT);
    assert!(!download.body.contains("EICAR"));
}

async fn pending_is_not_served_until_the_scanner_is_back(db: TestDb) {
    let Some(mut clamd) = Clamd::start().await else {
        return;
    };
    clamd.stop();
    let mut config = common::test_config(&db);
    config.antivirus = Some(scanner(clamd.address()));
    let app = common::spawn_with(db, config).await;
    let cast = cast(&app).await;
    let bytes = pdf("statuts du GIP");
    let uploaded = upload(&app, &cast, "legal_status", bytes.clone()).await;
    let id = uploaded["id"].as_i64().unwrap();
    // Several tries fail while clamd is down: still pending, never served nor reviewable.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let row = documents::Entity::find_by_id(id)
        .one(app.store.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.scan_status, "pending");
    assert!(row.scan_attempts >= 2, "{row:?}");
    assert!(row.scan_error.is_some(), "{row:?}");
    let seen = document(&app, &cast, id).await;
    assert_eq!(seen["scan_status"], "pending");
    assert!(
        seen["scan_error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "{seen}"
    );
    assert!(seen["scan_attempts"].as_i64().unwrap() >= 2, "{seen}");
    let as_council: Value = expect_ok(
        app.get(
            &cast.council,
            &format!("/api/v1/projects/{}/documents", cast.project),
        )
        .await,
    )
    .await;
    assert_eq!(as_council[0]["scan_status"], "pending");
    assert!(as_council[0]["scan_error"].is_null(), "{as_council}");
    withheld(
        content(&app, &cast.council, id).await,
        "document-scan-pending",
    )
    .await;
    withheld(
        accept(&app, &cast.officer, id).await,
        "document-scan-pending",
    )
    .await;
    let text = metrics(&app).await;
    assert!(
        text.contains("incubator_documents_scan{status=\"pending\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("incubator_documents_oldest_pending_scan_age_seconds 0\n"),
        "{text}"
    );

    clamd.resume().await;
    scanned(&app, &cast, id, "clean").await;
    let served = content(&app, &cast.council, id).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
    expect_ok(accept(&app, &cast.officer, id).await).await;
    app.stop().await;
}

async fn pending_documents_are_scanned_after_a_restart(db: TestDb) {
    let Some(clamd) = Clamd::start().await else {
        return;
    };
    // Before any antivirus: documents are clean on arrival and served, as they always were.
    let app = common::spawn(db).await;
    let cast = cast(&app).await;
    let infected_bytes = pdf(&eicar());
    let before = upload(&app, &cast, "council_backed", infected_bytes.clone()).await;
    assert_eq!(before["scan_status"], "clean");
    let before_id = before["id"].as_i64().unwrap();
    assert_eq!(
        content(&app, &cast.officer, before_id).await.status(),
        StatusCode::OK
    );
    let sha256 = before["sha256"].as_str().unwrap().to_owned();

    // An antivirus configured but down: new uploads wait.
    let down = nowhere(&clamd);
    let app = app
        .restart_with(|config| config.antivirus = Some(scanner(down)))
        .await;
    let clean_bytes = pdf("plan de recrutement");
    let clean = upload(&app, &cast, "own_staff", clean_bytes.clone()).await;
    let same = upload(&app, &cast, "legal_status", infected_bytes.clone()).await;
    for uploaded in [&clean, &same] {
        assert_eq!(uploaded["scan_status"], "pending", "{uploaded}");
    }
    let (clean_id, same_id) = (clean["id"].as_i64().unwrap(), same["id"].as_i64().unwrap());

    // Restarted with the antivirus up: the pending rows are scanned.
    let up = clamd.address();
    let app = app
        .restart_with(|config| config.antivirus = Some(scanner(up)))
        .await;
    scanned(&app, &cast, clean_id, "clean").await;
    scanned(&app, &cast, same_id, "infected").await;
    assert_eq!(
        content(&app, &cast.officer, clean_id)
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        clean_bytes.as_slice()
    );
    // The document stored before scanning shares the infected bytes: it is infected with them.
    assert_eq!(
        document(&app, &cast, before_id).await["scan_status"],
        "infected"
    );
    withheld(
        content(&app, &cast.officer, before_id).await,
        "document-infected",
    )
    .await;
    assert!(!blob(&app, &sha256).exists());
    assert!(quarantined(&app, &sha256).is_file());
    let infected: Vec<Value> = events_of(&app, &cast, "document_infected")
        .await
        .into_iter()
        .map(|e| e["changes"]["document_id"].clone())
        .collect();
    assert_eq!(infected, [json!(before_id), json!(same_id)]);
    app.stop().await;
}

async fn a_pending_document_is_claimed_by_one_scanner_at_a_time(db: TestDb) {
    let Some(clamd) = Clamd::start().await else {
        return;
    };
    // The running scanner tries once, fails, and leaves the document alone for half an hour at least.
    let mut slow = scanner(nowhere(&clamd));
    slow.backoff_base = Duration::from_secs(3600);
    slow.backoff_cap = Duration::from_secs(3600);
    let mut config = common::test_config(&db);
    config.antivirus = Some(slow);
    let app = common::spawn_with(db, config).await;
    let cast = cast(&app).await;
    let id = upload(&app, &cast, "legal_status", pdf("statuts")).await["id"]
        .as_i64()
        .unwrap();
    let started = Instant::now();
    loop {
        let row = documents::Entity::find_by_id(id)
            .one(app.store.db())
            .await
            .unwrap()
            .unwrap();
        if row.scan_error.is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two replicas' scanners, once it is due again: one takes it, the other finds nothing to do.
    let later = Utc::now() + TimeDelta::hours(2);
    let lease = TimeDelta::minutes(5);
    let (a, b) = tokio::join!(
        scans::claim_next(app.store.db(), later, lease),
        scans::claim_next(app.store.db(), later, lease),
    );
    let claims: Vec<i64> = [a.unwrap(), b.unwrap()]
        .into_iter()
        .flatten()
        .map(|d| d.id)
        .collect();
    assert_eq!(claims, [id]);
    // Within its lease nobody takes it again; past it, another scanner does.
    assert!(
        scans::claim_next(app.store.db(), later + lease / 2, lease)
            .await
            .unwrap()
            .is_none()
    );
    let retaken = scans::claim_next(app.store.db(), later + lease * 2, lease)
        .await
        .unwrap()
        .expect("taken again once the lease is over");
    assert_eq!(retaken.scan_attempts, 3);
    app.stop().await;
}
