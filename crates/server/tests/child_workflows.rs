//! Child workflows and signed links over real HTTP: an ANSSI project entering `networking` starts the
//! region's InterCERT-FR membership application, sponsors answer through their links without an account,
//! and the parent waits for the child's admission. Run on a SQLite file and on PostgreSQL.

mod common;
mod pages_support;

use std::time::Duration;

use chrono::Utc;
use common::{Account, TestApp, TestDb, expect_ok, pdf, problem};
use incubator_store::entities::outbox;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

const PUBLIC_URL: &str = "https://incubateur.example";
const ELIGIBILITY: [&str; 7] = [
    "council_backed",
    "regional_perimeter",
    "minimum_services",
    "legal_status",
    "own_staff",
    "autonomous_accounting",
    "intercert_commitment",
];

async fn spawn(db: TestDb) -> TestApp {
    let mut config = common::test_config(&db);
    config.public_url = Some(PUBLIC_URL.into());
    common::spawn_with(db, config).await
}

/// The council uploads a PDF for `requirement` and the officer accepts it.
async fn accepted(app: &TestApp, council: &Account, officer: &Account, id: i64, requirement: &str) {
    let response = app
        .upload(
            council,
            id,
            requirement,
            "piece.pdf",
            "application/pdf",
            pdf(requirement),
        )
        .await;
    let document = expect_ok(response).await;
    review(app, officer, document["id"].as_i64().unwrap()).await;
}

async fn review(app: &TestApp, officer: &Account, document: i64) {
    expect_ok(
        app.post(
            officer,
            &format!("/api/v1/documents/{document}/review"),
            &json!({"decision": "accepted"}),
        )
        .await,
    )
    .await;
}

async fn fire(app: &TestApp, who: &Account, id: i64, transition: &str) -> Value {
    expect_ok(app.fire(who, id, transition, None).await).await
}

async fn set_fields(app: &TestApp, who: &Account, id: i64, fields: Value) {
    expect_ok(
        app.patch(who, &format!("/api/v1/projects/{id}/fields"), &fields)
            .await,
    )
    .await;
}

/// Drives a new ANSSI project of region 24 to `networking`, the quickest way the workflow allows.
async fn to_networking(app: &TestApp, officer: &Account, council: &Account) -> i64 {
    let created = expect_ok(
        app.post(
            officer,
            "/api/v1/projects",
            &json!({"region_code": "24", "workflow": "csirt-incubation"}),
        )
        .await,
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    fire(app, council, id, "express_interest").await;
    fire(app, officer, id, "open_identification").await;
    for requirement in ELIGIBILITY {
        accepted(app, council, officer, id, requirement).await;
    }
    fire(app, officer, id, "retain_project").await;
    set_fields(app, council, id, json!({"legal_form": "GIP"})).await;
    accepted(app, council, officer, id, "registration_proof").await;
    fire(app, officer, id, "record_legal_structure").await;
    set_fields(app, officer, id, json!({"subsidy_amount_eur": 250_000})).await;
    accepted(app, council, officer, id, "grant_agreement").await;
    fire(app, officer, id, "grant_subsidy").await;
    let cohort = expect_ok(
        app.post(
            officer,
            "/api/v1/cohorts",
            &json!({"name": "Session 2022-1", "starts_on": "2022-02-01"}),
        )
        .await,
    )
    .await;
    expect_ok(
        app.put(
            officer,
            &format!("/api/v1/projects/{id}/cohort"),
            &json!({"cohort_id": cohort["id"]}),
        )
        .await,
    )
    .await;
    fire(app, officer, id, "start_incubation").await;
    id
}

fn transition<'a>(project: &'a Value, id: &str) -> &'a Value {
    project["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no transition {id} in {project}"))
}

/// Asks for a sponsor link for `requirement`, with `extra` members in the body.
async fn request_link(
    app: &TestApp,
    who: &Account,
    child: i64,
    requirement: &str,
    extra: Value,
) -> reqwest::Response {
    let mut body = json!({
        "email": format!("{requirement}@csirt-parrain.example"),
        "name": format!("CERT parrain ({requirement})"),
        "role": "sponsor",
        "requirement": requirement,
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.post(who, &format!("/api/v1/projects/{child}/links"), &body)
        .await
}

/// Issues a sponsor link for `requirement` and returns the answer.
async fn issue(app: &TestApp, who: &Account, child: i64, requirement: &str, extra: Value) -> Value {
    let response = request_link(app, who, child, requirement, extra).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// The path part of a link's URL (the test talks to the loopback address, not the public one).
fn path_of(issued: &Value) -> String {
    let url = issued["url"].as_str().unwrap();
    let path = url
        .strip_prefix(PUBLIC_URL)
        .expect("built from the public URL");
    assert_eq!(path, issued["path"]);
    path.to_owned()
}

/// Follows a link as its holder does: no account, no cookie.
async fn open(app: &TestApp, path: &str, accept: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

async fn send_letter(app: &TestApp, path: &str, accept: &str, text: &str) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(pdf(text))
        .file_name("lettre-parrainage.pdf")
        .mime_str("application/pdf")
        .unwrap();
    app.http
        .post(app.url(path))
        .header("accept", accept)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
}

async fn child_workflow_runs_end_to_end_with_sponsor_links(db: TestDb) {
    let app = spawn(db).await;
    let officer = app.account("officer@anssi.example", "officer", None).await;
    let council = app
        .account("csirt@centrevaldeloire.example", "council", Some("24"))
        .await;
    let other_council = app
        .account("csirt@bretagne.example", "council", Some("53"))
        .await;
    let parent = to_networking(&app, &officer, &council).await;

    // Entering `networking` starts the region's InterCERT-FR application, in the same transaction.
    let networking = fire(&app, &officer, parent, "complete_incubation").await;
    assert_eq!(networking["state"], "networking");
    let children = networking["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{networking}");
    assert_eq!(children[0]["workflow"], "intercert-membership");
    assert_eq!(children[0]["state"], "drafting");
    let child = children[0]["id"].as_i64().unwrap();
    let join = transition(&networking, "join_intercert");
    assert_eq!(join["allowed"], false);
    assert!(
        join["unmet"][0]["en"]
            .as_str()
            .unwrap()
            .contains("The sub-workflow of this stage has not completed"),
        "{join}"
    );
    let seen = app.project(&council, child).await;
    assert_eq!(seen["parent"]["id"], parent);
    assert_eq!(seen["region_code"], "24");
    assert_eq!(
        app.get(&other_council, &format!("/api/v1/projects/{child}"))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "another region's child is as missing as any of its projects"
    );

    // The council acts as the applicant (`held_by`), the officer for the board.
    assert_eq!(
        transition(&seen, "submit_application")["role_allowed"],
        true
    );
    let by_officer = app.project(&officer, child).await;
    assert_eq!(
        transition(&by_officer, "submit_application")["role_allowed"],
        false
    );
    set_fields(
        &app,
        &council,
        child,
        json!({"team_name": "CSIRT Centre-Val de Loire"}),
    )
    .await;
    fire(&app, &council, child, "submit_application").await;

    // Two sponsor links, mailed to their holders; only roles held by links get one.
    let refused = problem(
        app.post(
            &officer,
            &format!("/api/v1/projects/{child}/links"),
            &json!({"email": "x@y.example", "name": "X", "role": "board",
                    "requirement": "first_sponsor_letter"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("links are for sponsor"),
        "{refused}"
    );
    for (expiry, why) in [
        (json!({"expires_in": "P2Y"}), "at most 366 days"),
        (
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
            "not after now",
        ),
        (json!({"expires_in": "soon"}), "ISO-8601 duration"),
    ] {
        let refused = problem(
            request_link(&app, &officer, child, "first_sponsor_letter", expiry).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains(why),
            "{refused}"
        );
    }
    let first = issue(&app, &officer, child, "first_sponsor_letter", json!({})).await;
    let second = issue(
        &app,
        &council,
        child,
        "second_sponsor_letter",
        json!({"expires_in": "P30D", "lang": "en"}),
    )
    .await;
    assert_eq!(first["status"], "open");
    let (first_path, second_path) = (path_of(&first), path_of(&second));
    // The region page shows the application under the programme, with the answers awaited.
    let mut browser = pages_support::Browser::new(&app);
    browser
        .sign_in("officer@anssi.example", common::PASSWORD)
        .await;
    let region = browser.get("/regions/24").await;
    region.assert_html(StatusCode::OK);
    assert!(
        region
            .body
            .contains("Adhésion à InterCERT-FR\u{a0}: <strong>Parrainage</strong>"),
        "{}",
        region.body
    );
    assert!(region.body.contains("liens de dépôt en attente\u{a0}: 2"));
    let mails = outbox::Entity::find()
        .filter(outbox::Column::Template.eq("link_invitation"))
        .order_by_asc(outbox::Column::Id)
        .all(app.store.db())
        .await
        .unwrap();
    assert_eq!(mails.len(), 2);
    assert!(
        mails[0]
            .recipients
            .contains("first_sponsor_letter@csirt-parrain.example")
    );
    assert!(
        !mails.iter().any(|m| m.context.contains(&first_path[7..])),
        "the token itself is never stored"
    );

    // The first sponsor opens the page (French first) and sends the letter.
    let page = open(&app, &first_path, "text/html").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for expected in [
        "Lettre du premier CSIRT parrain",
        "Centre-Val de Loire",
        "Adhésion à InterCERT-FR",
        "CSIRT parrain",
    ] {
        assert!(html.contains(expected), "{expected} missing from {html}");
    }
    let sent = send_letter(&app, &first_path, "text/html", "first sponsor").await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    assert!(sent.text().await.unwrap().contains("Document reçu"));

    // Used: refused as a page and as a problem, and nothing changes.
    let before = app.fingerprint(&officer, child).await;
    let again = open(&app, &first_path, "text/html").await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(again.text().await.unwrap().contains("Lien déjà utilisé"));
    let again = problem(
        send_letter(&app, &first_path, "application/json", "again").await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(again["type"], "urn:csirt-incubator:problem:link-used");

    // Altered: refused, and nothing changes.
    let mut tampered = second_path.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let forged = open(&app, &tampered, "text/html").await;
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);
    assert!(forged.text().await.unwrap().contains("Lien non valide"));
    let forged = problem(
        send_letter(&app, &tampered, "application/json", "forged").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(forged["detail"].as_str().unwrap().contains("not valid"));
    let longer = tampered.replacen(".", ".9", 1);
    assert_eq!(
        open(&app, &longer, "text/html").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.fingerprint(&officer, child).await, before);

    // The second sponsor's link, posted twice at once: exactly one upload is kept.
    let (a, b) = tokio::join!(
        send_letter(&app, &second_path, "application/json", "second sponsor a"),
        send_letter(&app, &second_path, "application/json", "second sponsor b"),
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::GONE]);
    let documents = expect_ok(
        app.get(&officer, &format!("/api/v1/projects/{child}/documents"))
            .await,
    )
    .await;
    let from_links: Vec<&Value> = documents
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["uploaded_by"].as_str().unwrap().starts_with("link:"))
        .collect();
    assert_eq!(from_links.len(), 2, "{documents}");

    // Expired and withdrawn links are refused too.
    let soon = Utc::now() + chrono::TimeDelta::seconds(2);
    let expiring = issue(
        &app,
        &officer,
        child,
        "first_sponsor_letter",
        json!({"expires_at": soon}),
    )
    .await;
    let expiring_path = path_of(&expiring);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = app.fingerprint(&officer, child).await;
    let expired = open(&app, &expiring_path, "text/html").await;
    assert_eq!(expired.status(), StatusCode::GONE);
    assert!(expired.text().await.unwrap().contains("Lien expiré"));
    let expired = problem(
        send_letter(&app, &expiring_path, "application/json", "late").await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(expired["type"], "urn:csirt-incubator:problem:link-expired");
    assert_eq!(app.fingerprint(&officer, child).await, before);
    let spare = issue(&app, &officer, child, "second_sponsor_letter", json!({})).await;
    let spare_id = spare["id"].as_i64().unwrap();
    let revoke = format!("/api/v1/projects/{child}/links/{spare_id}/revoke");
    problem(
        app.post(&council, &revoke, &json!({})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let revoked = expect_ok(app.post(&officer, &revoke, &json!({})).await).await;
    assert_eq!(revoked["status"], "revoked");
    let withdrawn = open(&app, &path_of(&spare), "application/json").await;
    let withdrawn = problem(withdrawn, StatusCode::GONE).await;
    assert_eq!(
        withdrawn["type"],
        "urn:csirt-incubator:problem:link-revoked"
    );
    let listed = app.project(&officer, child).await;
    let statuses: Vec<&str> = listed["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["revoked", "expired", "used", "used"]);
    assert!(
        !listed.to_string().contains(&first_path[7..]),
        "no token in the view"
    );

    // The board confirms the sponsorship once both letters are accepted, then reviews the profile.
    for document in from_links {
        review(&app, &officer, document["id"].as_i64().unwrap()).await;
    }
    fire(&app, &officer, child, "confirm_sponsorship").await;
    accepted(&app, &council, &officer, child, "rfc2350_profile").await;
    accepted(&app, &council, &officer, child, "sim3_self_assessment").await;
    fire(&app, &officer, child, "submit_to_board").await;
    set_fields(
        &app,
        &officer,
        child,
        json!({"board_meeting_on": "2022-11-15", "sim3_score": 3}),
    )
    .await;
    let member = fire(&app, &officer, child, "admit").await;
    assert_eq!(member["state"], "member");

    // The parent's guard now holds: the region joins InterCERT-FR and is operational.
    let waiting = app.project(&officer, parent).await;
    assert_eq!(
        transition(&waiting, "join_intercert")["allowed"],
        true,
        "{waiting}"
    );
    let operational = fire(&app, &officer, parent, "join_intercert").await;
    assert_eq!(operational["state"], "operational");

    // Both audit trails tell the story, and both chains verify.
    let child_events = expect_ok(
        app.get(&officer, &format!("/api/v1/projects/{child}/events"))
            .await,
    )
    .await;
    let child_events = child_events.as_array().unwrap();
    let created = &child_events[0];
    assert_eq!(created["kind"], "created");
    assert_eq!(created["changes"]["started_by"]["project_id"], parent);
    assert_eq!(
        created["changes"]["started_by"]["transition"],
        "complete_incubation"
    );
    let by_link = child_events
        .iter()
        .find(|e| e["kind"] == "document_uploaded" && e["actor"] == format!("link:{}", first["id"]))
        .expect("the first sponsor's upload");
    assert_eq!(
        by_link["changes"]["link"]["email"],
        "first_sponsor_letter@csirt-parrain.example"
    );
    let parent_events = expect_ok(
        app.get(&officer, &format!("/api/v1/projects/{parent}/events"))
            .await,
    )
    .await;
    let started = parent_events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["transition"] == "complete_incubation")
        .unwrap();
    assert_eq!(started["changes"]["child_project_id"], child);
    assert_eq!(
        created["changes"]["started_by"]["event_seq"], started["seq"],
        "the child names the parent's event that started it"
    );
    let report = incubator_store::audit::verify(app.store.db())
        .await
        .unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.projects, 2);
    app.stop().await;
}

both_backends!(child_workflow_runs_end_to_end_with_sponsor_links);
