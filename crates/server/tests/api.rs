//! The API over real HTTP: the service started on a free loopback port against a fresh SQLite file and,
//! in a second run, a fresh PostgreSQL database.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{Account, TestApp, TestDb, docx, elf, expect_ok, pdf, png, problem};
use incubator_store::entities::outbox;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const ELIGIBILITY: [&str; 7] = [
    "council_backed",
    "regional_perimeter",
    "minimum_services",
    "legal_status",
    "own_staff",
    "autonomous_accounting",
    "intercert_commitment",
];

struct Cast {
    officer: Account,
    council: Account,
    other_council: Account,
    admin: Account,
}

/// An officer, a council account of Centre-Val de Loire (24), one of Bretagne (53), and an admin.
async fn cast(app: &TestApp) -> Cast {
    Cast {
        officer: app.account("officer@anssi.example", "officer", None).await,
        council: app
            .account("csirt@centrevaldeloire.example", "council", Some("24"))
            .await,
        other_council: app
            .account("csirt@bretagne.example", "council", Some("53"))
            .await,
        admin: app.account("admin@anssi.example", "admin", None).await,
    }
}

async fn create_project(app: &TestApp, officer: &Account, region: &str) -> i64 {
    let response = app
        .post(
            officer,
            "/api/v1/projects",
            &json!({"region_code": region, "workflow": "csirt-incubation"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v1/projects/{id}"));
    assert_eq!(body["state"], "invited");
    id
}

/// Uploads as the council and returns the document id.
async fn upload(
    app: &TestApp,
    council: &Account,
    project: i64,
    requirement: &str,
    name: &str,
    kind: &str,
    bytes: Vec<u8>,
) -> i64 {
    let response = app
        .upload(council, project, requirement, name, kind, bytes.clone())
        .await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "upload for {requirement}"
    );
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["requirement"], requirement);
    assert_eq!(document["status"], "pending");
    assert_eq!(document["size"], bytes.len());
    assert_eq!(document["sha256"].as_str().unwrap().len(), 64);
    document["id"].as_i64().unwrap()
}

async fn review(
    app: &TestApp,
    officer: &Account,
    document: i64,
    decision: &str,
    comment: Option<&str>,
) -> Value {
    let body = json!({"decision": decision, "comment": comment});
    expect_ok(
        app.post(
            officer,
            &format!("/api/v1/documents/{document}/review"),
            &body,
        )
        .await,
    )
    .await
}

fn transition<'a>(project: &'a Value, id: &str) -> &'a Value {
    project["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

fn requirement_status<'a>(project: &'a Value, key: &str) -> &'a str {
    project["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap()["status"]
        .as_str()
        .unwrap()
}

async fn drives_a_region_from_invited_to_operational(db: TestDb) {
    let app = common::spawn(db).await;
    let Cast {
        officer, council, ..
    } = cast(&app).await;
    let id = create_project(&app, &officer, "24").await;

    // The council answers ANSSI's letter.
    let seen = app.project(&council, id).await;
    assert_eq!(transition(&seen, "express_interest")["allowed"], true);
    let after = expect_ok(app.fire(&council, id, "express_interest", None).await).await;
    assert_eq!(after["state"], "interest_expressed");
    let seen = app.project(&council, id).await;
    assert_eq!(
        transition(&seen, "open_identification")["role_allowed"],
        false,
        "officer only"
    );
    expect_ok(app.fire(&officer, id, "open_identification", None).await).await;

    // Retaining needs the seven criteria accepted: every unmet one is listed, in French and English.
    let refused = problem(
        app.fire(&officer, id, "retain_project", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["type"], "urn:csirt-incubator:problem:guard-unmet");
    let unmet = refused["unmet"].as_array().unwrap();
    assert_eq!(unmet.len(), 7, "{refused}");
    for condition in unmet {
        assert_eq!(condition["code"], "requirement_not_accepted");
        assert!(ELIGIBILITY.contains(&condition["subject"].as_str().unwrap()));
        assert!(
            !condition["fr"].as_str().unwrap().is_empty()
                && !condition["en"].as_str().unwrap().is_empty()
        );
    }

    // The council uploads the evidence; one is rejected first, then sent again and accepted.
    let first = upload(
        &app,
        &council,
        id,
        "council_backed",
        "délibération.pdf",
        "application/pdf",
        pdf("draft"),
    )
    .await;
    let rejected = review(
        &app,
        &officer,
        first,
        "rejected",
        Some("unsigned deliberation"),
    )
    .await;
    assert_eq!(rejected["requirement_status"], "rejected");
    assert_eq!(rejected["document"]["status"], "rejected");
    assert_eq!(
        requirement_status(&app.project(&council, id).await, "council_backed"),
        "rejected"
    );
    for key in ELIGIBILITY {
        let document = match key {
            "minimum_services" => {
                upload(
                    &app,
                    &council,
                    id,
                    key,
                    "catalogue.docx",
                    "application/octet-stream",
                    docx(),
                )
                .await
            }
            _ => {
                upload(
                    &app,
                    &council,
                    id,
                    key,
                    &format!("{key}.pdf"),
                    "application/pdf",
                    pdf(key),
                )
                .await
            }
        };
        assert_eq!(
            review(&app, &officer, document, "accepted", None).await["requirement_status"],
            "accepted"
        );
    }
    let documents = expect_ok(
        app.get(&council, &format!("/api/v1/projects/{id}/documents"))
            .await,
    )
    .await;
    let documents = documents.as_array().unwrap();
    assert_eq!(documents.len(), 8);
    assert_eq!(documents[0]["filename"], "délibération.pdf");
    assert_eq!(documents[0]["review_comment"], "unsigned deliberation");
    let catalogue = documents
        .iter()
        .find(|d| d["requirement"] == "minimum_services")
        .unwrap();
    assert_eq!(
        catalogue["media_type"],
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );

    // The evidence comes back byte for byte, as an attachment no browser renders in place.
    let doc_id = catalogue["id"].as_i64().unwrap();
    let content = app
        .get(&council, &format!("/api/v1/documents/{doc_id}/content"))
        .await;
    assert_eq!(content.status(), StatusCode::OK);
    assert!(
        content.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"catalogue.docx\"")
    );
    assert_eq!(content.headers()["x-content-type-options"], "nosniff");
    assert_eq!(content.bytes().await.unwrap().as_ref(), docx().as_slice());

    expect_ok(app.fire(&officer, id, "retain_project", None).await).await;

    // Legal structure: the council records the legal form and the registration proof (a scan).
    let patched = expect_ok(
        app.patch(
            &council,
            &format!("/api/v1/projects/{id}/fields"),
            &json!({"legal_form": "GIP", "carrier_kind": "gip"}),
        )
        .await,
    )
    .await;
    assert_eq!(patched["fields"]["legal_form"], "GIP");
    let scan = upload(
        &app,
        &council,
        id,
        "registration_proof",
        "kbis.png",
        "image/png",
        png(),
    )
    .await;
    review(&app, &officer, scan, "accepted", None).await;
    expect_ok(app.fire(&officer, id, "record_legal_structure", None).await).await;

    // Subsidy.
    let seen = app.project(&officer, id).await;
    let unmet: BTreeSet<&str> = transition(&seen, "grant_subsidy")["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        unmet,
        BTreeSet::from(["field_missing", "requirement_not_accepted"]),
        "{seen}"
    );
    expect_ok(
        app.patch(
            &officer,
            &format!("/api/v1/projects/{id}/fields"),
            &json!({"subsidy_amount_eur": 250_000}),
        )
        .await,
    )
    .await;
    let agreement = upload(
        &app,
        &council,
        id,
        "grant_agreement",
        "convention.pdf",
        "application/pdf",
        pdf("convention"),
    )
    .await;
    review(&app, &officer, agreement, "accepted", None).await;
    expect_ok(app.fire(&officer, id, "grant_subsidy", None).await).await;

    // Incubation: the officer opens a session and assigns the project to it.
    let cohort = app
        .post(
            &officer,
            "/api/v1/cohorts",
            &json!({"name": "Session 2022-1", "starts_on": "2022-02-01"}),
        )
        .await;
    assert_eq!(cohort.status(), StatusCode::CREATED);
    let cohort_id = cohort.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let cohorts = expect_ok(app.get(&council, "/api/v1/cohorts").await).await;
    assert_eq!(cohorts[0]["name"], "Session 2022-1");
    let assigned = expect_ok(
        app.put(
            &officer,
            &format!("/api/v1/projects/{id}/cohort"),
            &json!({"cohort_id": cohort_id}),
        )
        .await,
    )
    .await;
    assert_eq!(assigned["cohort_id"], cohort_id);
    let incubating = expect_ok(app.fire(&officer, id, "start_incubation", None).await).await;
    let deadline = incubating["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["state"] == "incubation")
        .expect("deadline");
    // Six months from the session's start, midnight in Paris.
    assert_eq!(deadline["due_at"], "2022-07-31T22:00:00Z");
    assert_eq!(deadline["overdue"], true);
    // The session's kick-off, past too, is a milestone the programme passed: never late.
    let kick_off = incubating["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["state"] == "incubation.kick_off")
        .expect("kick-off milestone");
    assert_eq!(kick_off["overdue"], false);
    expect_ok(app.fire(&officer, id, "complete_incubation", None).await).await;

    // Networking.
    expect_ok(
        app.patch(
            &officer,
            &format!("/api/v1/projects/{id}/fields"),
            &json!({"intercert_member_since": "2022-09-15"}),
        )
        .await,
    )
    .await;
    let done = expect_ok(app.fire(&officer, id, "join_intercert", None).await).await;
    assert_eq!(done["state"], "operational");
    assert_eq!(done["transitions"], json!([]));
    assert_eq!(
        done["deadlines"],
        json!([]),
        "a terminal state clears every deadline"
    );

    // The audit trail names who did what.
    let events = expect_ok(
        app.get(&council, &format!("/api/v1/projects/{id}/events"))
            .await,
    )
    .await;
    let events = events.as_array().unwrap();
    let actor_of = |kind: &str, transition: Option<&str>| {
        events
            .iter()
            .find(|e| e["kind"] == kind && transition.is_none_or(|t| e["transition"] == t))
            .map(|e| e["actor"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        actor_of("transition", Some("express_interest")),
        Some(format!("user:{}", council.id))
    );
    assert_eq!(
        actor_of("transition", Some("join_intercert")),
        Some(format!("user:{}", officer.id))
    );
    assert_eq!(
        actor_of("document_uploaded", None),
        Some(format!("user:{}", council.id))
    );
    assert_eq!(
        actor_of("document_reviewed", None),
        Some(format!("user:{}", officer.id))
    );
    assert_eq!(
        actor_of("cohort_assigned", None),
        Some(format!("user:{}", officer.id))
    );
    assert_eq!(
        actor_of("fields_changed", None),
        Some(format!("user:{}", council.id))
    );
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "the trail is one hash chain"
        );
    }

    // The country at a glance.
    let regions = expect_ok(app.get(&officer, "/api/v1/regions").await).await;
    let regions = regions.as_array().unwrap();
    assert_eq!(regions.len(), 18);
    let centre = regions.iter().find(|r| r["code"] == "24").unwrap();
    assert_eq!(
        (centre["project_id"].as_i64(), centre["state"].as_str()),
        (Some(id), Some("operational"))
    );
    let corse = regions.iter().find(|r| r["code"] == "94").unwrap();
    assert_eq!(
        (&corse["project_id"], &corse["state"]),
        (&Value::Null, &Value::Null)
    );
    let listed = expect_ok(
        app.get(&officer, "/api/v1/projects?state=operational")
            .await,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let listed = expect_ok(app.get(&officer, "/api/v1/projects?state=invited").await).await;
    assert_eq!(listed, json!([]));
    app.stop().await;
}

async fn council_sees_only_its_region(db: TestDb) {
    let app = common::spawn(db).await;
    let Cast {
        officer,
        council,
        other_council,
        admin,
    } = cast(&app).await;
    let id = create_project(&app, &officer, "24").await;
    expect_ok(app.fire(&council, id, "express_interest", None).await).await;
    expect_ok(app.fire(&officer, id, "open_identification", None).await).await;
    let doc = upload(
        &app,
        &council,
        id,
        "council_backed",
        "d.pdf",
        "application/pdf",
        pdf("d"),
    )
    .await;
    let before = app.fingerprint(&officer, id).await;

    // Every route of Centre-Val de Loire's project answers Bretagne's council exactly as a missing project.
    let missing = 999_999;
    let version = before.0["version"].clone();
    for (method, path_of, body) in [
        ("GET", "/api/v1/projects/{}", None),
        (
            "PATCH",
            "/api/v1/projects/{}/fields",
            Some(json!({"legal_form": "SPL"})),
        ),
        (
            "POST",
            "/api/v1/projects/{}/transitions",
            Some(json!({"transition": "withdraw", "expected_version": version, "comment": "x"})),
        ),
        // A stale version is not told either: the region is checked before the version.
        (
            "POST",
            "/api/v1/projects/{}/transitions",
            Some(json!({"transition": "withdraw", "expected_version": 12_345, "comment": "x"})),
        ),
        ("GET", "/api/v1/projects/{}/documents", None),
        ("GET", "/api/v1/projects/{}/events", None),
        (
            "PUT",
            "/api/v1/projects/{}/cohort",
            Some(json!({"cohort_id": null})),
        ),
    ] {
        let mut answers = Vec::new();
        for target in [id, missing] {
            let path = path_of.replace("{}", &target.to_string());
            let request = app
                .http
                .request(method.parse().unwrap(), app.url(&path))
                .bearer_auth(&other_council.token);
            let request = match &body {
                Some(b) => request.json(b),
                None => request,
            };
            let body = problem(request.send().await.unwrap(), StatusCode::NOT_FOUND).await;
            assert_eq!(
                body["detail"],
                format!("project {target} not found"),
                "{method} {path}"
            );
            answers.push((body["type"].clone(), body["title"].clone()));
        }
        assert_eq!(
            answers[0], answers[1],
            "{method} {path_of}: same answer as a missing project"
        );
    }
    let upload = app
        .upload(
            &other_council,
            id,
            "council_backed",
            "x.pdf",
            "application/pdf",
            pdf("x"),
        )
        .await;
    assert_eq!(
        problem(upload, StatusCode::NOT_FOUND).await["detail"],
        format!("project {id} not found")
    );
    let content = app
        .get(&other_council, &format!("/api/v1/documents/{doc}/content"))
        .await;
    assert_eq!(
        problem(content, StatusCode::NOT_FOUND).await["detail"],
        format!("document {doc} not found")
    );
    let review = app
        .post(
            &other_council,
            &format!("/api/v1/documents/{doc}/review"),
            &json!({"decision": "accepted"}),
        )
        .await;
    assert_eq!(
        problem(review, StatusCode::NOT_FOUND).await["detail"],
        format!("document {doc} not found")
    );
    // Lists and the regions leave it out.
    assert_eq!(
        expect_ok(app.get(&other_council, "/api/v1/projects").await).await,
        json!([])
    );
    assert_eq!(
        expect_ok(
            app.get(&other_council, "/api/v1/projects?region_code=24")
                .await
        )
        .await,
        json!([])
    );
    let regions = expect_ok(app.get(&other_council, "/api/v1/regions").await).await;
    let centre = regions
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "24")
        .unwrap()
        .clone();
    assert_eq!(centre["project_id"], Value::Null);

    // Its own region's council: 403 on what only officers do.
    let forbidden = [
        app.post(
            &council,
            "/api/v1/projects",
            &json!({"region_code": "24", "workflow": "intercert-membership"}),
        )
        .await,
        app.post(
            &council,
            "/api/v1/cohorts",
            &json!({"name": "S", "starts_on": "2022-02-01"}),
        )
        .await,
        app.put(
            &council,
            &format!("/api/v1/projects/{id}/cohort"),
            &json!({"cohort_id": null}),
        )
        .await,
        app.post(
            &council,
            &format!("/api/v1/documents/{doc}/review"),
            &json!({"decision": "accepted"}),
        )
        .await,
    ];
    for response in forbidden {
        assert_eq!(
            problem(response, StatusCode::FORBIDDEN).await["type"],
            "urn:csirt-incubator:problem:forbidden"
        );
    }
    let by_role = problem(
        app.fire(&council, id, "retain_project", None).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        by_role["type"],
        "urn:csirt-incubator:problem:role-not-allowed"
    );
    assert_eq!(by_role["allowed_roles"], json!(["officer"]));
    // An admin manages accounts, not projects; a council does not manage accounts.
    problem(
        app.fire(&admin, id, "withdraw", Some("no")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.post(
            &admin,
            "/api/v1/projects",
            &json!({"region_code": "53", "workflow": "csirt-incubation"}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.get(&council, "/api/v1/accounts").await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        expect_ok(app.get(&admin, "/api/v1/accounts").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        4
    );

    assert_eq!(
        app.fingerprint(&officer, id).await,
        before,
        "nothing changed"
    );
    app.stop().await;
}

async fn refusals_change_nothing(db: TestDb) {
    let app = common::spawn(db).await;
    let Cast {
        officer, council, ..
    } = cast(&app).await;
    let id = create_project(&app, &officer, "24").await;
    expect_ok(app.fire(&council, id, "express_interest", None).await).await;
    expect_ok(app.fire(&officer, id, "open_identification", None).await).await;
    upload(
        &app,
        &council,
        id,
        "legal_status",
        "statuts.pdf",
        "application/pdf",
        pdf("statuts"),
    )
    .await;
    let before = app.fingerprint(&officer, id).await;
    let version = before.0["version"].as_i64().unwrap();
    let unchanged = |label: &'static str| {
        let app = &app;
        let officer = &officer;
        let before = &before;
        async move {
            assert_eq!(
                &app.fingerprint(officer, id).await,
                before,
                "{label} changed something"
            )
        }
    };

    // Oversized upload: 413, and not a byte kept.
    let mut big = pdf("big");
    big.resize(common::TEST_UPLOAD_LIMIT + 1, b' ');
    let response = app
        .upload(
            &council,
            id,
            "council_backed",
            "big.pdf",
            "application/pdf",
            big,
        )
        .await;
    assert_eq!(
        problem(response, StatusCode::PAYLOAD_TOO_LARGE).await["type"],
        "urn:csirt-incubator:problem:payload-too-large"
    );
    unchanged("an oversized upload").await;
    // A file of exactly the limit is accepted (on another project, to keep this one unchanged).
    let other = create_project(&app, &officer, "27").await;
    let mut exact = pdf("exact");
    exact.resize(common::TEST_UPLOAD_LIMIT, b' ');
    let response = app
        .upload(
            &officer,
            other,
            "council_backed",
            "exact.pdf",
            "application/pdf",
            exact,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let before = app.fingerprint(&officer, id).await;
    let unchanged = |label: &'static str| {
        let app = &app;
        let officer = &officer;
        let before = before.clone();
        async move {
            assert_eq!(
                app.fingerprint(officer, id).await,
                before,
                "{label} changed something"
            )
        }
    };

    // An executable renamed .pdf, claimed as a PDF: 415.
    let response = app
        .upload(
            &council,
            id,
            "council_backed",
            "deliberation.pdf",
            "application/pdf",
            elf(),
        )
        .await;
    let refused = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(refused["accepted_kinds"], json!(["pdf"]));
    unchanged("an executable renamed .pdf").await;
    // A real PNG where only PDF is accepted: 415, naming the accepted kinds.
    let response = app
        .upload(
            &council,
            id,
            "council_backed",
            "scan.png",
            "image/png",
            png(),
        )
        .await;
    let refused = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("send pdf"),
        "{refused}"
    );
    unchanged("a kind the requirement does not accept").await;
    // Not a requirement of the workflow: 422.
    let response = app
        .upload(
            &council,
            id,
            "../../etc/passwd",
            "a.pdf",
            "application/pdf",
            pdf("a"),
        )
        .await;
    problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Not multipart at all: 415.
    let response = app
        .post(
            &council,
            &format!("/api/v1/projects/{id}/documents"),
            &json!({"file": "x"}),
        )
        .await;
    problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    unchanged("refused uploads").await;

    // Malformed JSON: 400.
    for path in [
        format!("/api/v1/projects/{id}/transitions"),
        format!("/api/v1/projects/{id}/fields"),
    ] {
        let response = app
            .http
            .request(
                if path.ends_with("fields") {
                    reqwest::Method::PATCH
                } else {
                    reqwest::Method::POST
                },
                app.url(&path),
            )
            .bearer_auth(&officer.token)
            .header("content-type", "application/json")
            .body(r#"{"transition": "retain_project", "expected_version": "#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(response, StatusCode::BAD_REQUEST).await["type"],
            "urn:csirt-incubator:problem:malformed-body"
        );
    }
    unchanged("malformed JSON").await;

    // A wrong field type, an unknown field, a value out of bounds: 422 naming each, and the valid one in the
    // same request is not applied either.
    let response = app
        .patch(&officer, &format!("/api/v1/projects/{id}/fields"), &json!({"legal_form": "GIP", "subsidy_amount_eur": "a lot", "budget": 3, "intercert_member_since": "yesterday"}))
        .await;
    let refused = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: BTreeSet<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["budget", "intercert_member_since", "subsidy_amount_eur"])
    );
    problem(
        app.patch(
            &officer,
            &format!("/api/v1/projects/{id}/fields"),
            &json!({"subsidy_amount_eur": -5}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        app.patch(
            &officer,
            &format!("/api/v1/projects/{id}/fields"),
            &json!(["legal_form"]),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    unchanged("wrong field types").await;

    // A stale version: 409 naming the current one.
    let body = json!({"transition": "decline_project", "expected_version": version - 1, "comment": "late"});
    let refused = problem(
        app.post(
            &officer,
            &format!("/api/v1/projects/{id}/transitions"),
            &body,
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        refused["type"],
        "urn:csirt-incubator:problem:version-conflict"
    );
    assert_eq!(refused["current_version"], version);
    unchanged("a stale version").await;

    // Not possible from this state, unknown, or with its reason missing: 422.
    let refused = problem(
        app.fire(&officer, id, "grant_subsidy", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        refused["type"],
        "urn:csirt-incubator:problem:transition-not-possible"
    );
    let refused = problem(
        app.fire(&officer, id, "fly_to_the_moon", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        refused["type"],
        "urn:csirt-incubator:problem:unknown-transition"
    );
    let refused = problem(
        app.fire(&officer, id, "decline_project", Some("  ")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["unmet"][0]["code"], "comment_missing");
    // A missing member: 422; a rejection without its reason: 422.
    let body = json!({"transition": "decline_project"});
    problem(
        app.post(
            &officer,
            &format!("/api/v1/projects/{id}/transitions"),
            &body,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let doc = before.2[0]["id"].as_i64().unwrap();
    problem(
        app.post(
            &officer,
            &format!("/api/v1/documents/{doc}/review"),
            &json!({"decision": "rejected"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        app.post(
            &officer,
            &format!("/api/v1/documents/{doc}/review"),
            &json!({"decision": "maybe"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    unchanged("refused transitions and reviews").await;

    // Duplicates: a second project for the region, a second session of the same name: 409.
    problem(
        app.post(
            &officer,
            "/api/v1/projects",
            &json!({"region_code": "24", "workflow": "csirt-incubation"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    problem(
        app.post(
            &officer,
            "/api/v1/projects",
            &json!({"region_code": "99", "workflow": "csirt-incubation"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        app.post(
            &officer,
            "/api/v1/projects",
            &json!({"region_code": "11", "workflow": "nope"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        app.post(
            &officer,
            "/api/v1/cohorts",
            &json!({"name": "S1", "starts_on": "2022-02-01"})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    let duplicate = app
        .post(
            &officer,
            "/api/v1/cohorts",
            &json!({"name": "S1", "starts_on": "2023-02-01"}),
        )
        .await;
    let body = problem(duplicate, StatusCode::CONFLICT).await;
    assert!(
        !body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("unique constraint"),
        "no SQL in answers: {body}"
    );
    problem(
        app.put(
            &officer,
            &format!("/api/v1/projects/{id}/cohort"),
            &json!({"cohort_id": 424_242}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    unchanged("duplicates").await;
    app.stop().await;
}

async fn same_bytes_are_stored_once(db: TestDb) {
    let app = common::spawn(db).await;
    let Cast {
        officer, council, ..
    } = cast(&app).await;
    let id = create_project(&app, &officer, "24").await;
    let bytes = pdf("one deliberation");
    upload(
        &app,
        &council,
        id,
        "council_backed",
        "a.pdf",
        "application/pdf",
        bytes.clone(),
    )
    .await;
    upload(
        &app,
        &council,
        id,
        "legal_status",
        "b.pdf",
        "application/pdf",
        bytes.clone(),
    )
    .await;
    let documents = expect_ok(
        app.get(&officer, &format!("/api/v1/projects/{id}/documents"))
            .await,
    )
    .await;
    assert_eq!(documents[0]["sha256"], documents[1]["sha256"]);
    let files = app.evidence_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);
    // The name is for display only: a path in it never becomes one.
    let doc = upload(
        &app,
        &council,
        id,
        "own_staff",
        "../../../../tmp/evil.pdf",
        "application/pdf",
        pdf("other"),
    )
    .await;
    let listed = expect_ok(
        app.get(&officer, &format!("/api/v1/projects/{id}/documents"))
            .await,
    )
    .await;
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == doc)
            .unwrap()["filename"],
        "evil.pdf"
    );
    assert_eq!(app.evidence_files().len(), 2);
    app.stop().await;
}

async fn accounts_tokens_and_throttling(db: TestDb) {
    let app = common::spawn(db).await;
    let officer = app.account("officer@anssi.example", "officer", None).await;

    // No token, a made-up token: 401 with the Bearer challenge.
    let response = app
        .http
        .get(app.url("/api/v1/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    problem(response, StatusCode::UNAUTHORIZED).await;
    let fake = Account {
        id: 0,
        token: "0".repeat(64),
    };
    problem(
        app.get(&fake, "/api/v1/projects").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let me = expect_ok(app.get(&officer, "/api/v1/me").await).await;
    assert_eq!(
        (me["email"].as_str(), me["role"].as_str()),
        (Some("officer@anssi.example"), Some("officer"))
    );

    // Wrong password, unknown email: the same 401, and no token.
    let wrong = problem(
        app.try_login("officer@anssi.example", "not the password")
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown = problem(
        app.try_login("nobody@anssi.example", "not the password")
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(wrong, unknown);
    assert!(wrong.get("token").is_none());

    // From the third failure for one email and address on, each attempt waits (2 s, then doubling up to
    // 4 s) without locking: the right password still gets in, after the wait.
    problem(
        app.try_login("officer@anssi.example", "wrong again").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let started = Instant::now();
    problem(
        app.try_login("officer@anssi.example", "still wrong").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "failures are slowed down: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let token = app.login("officer@anssi.example", common::PASSWORD).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "slowed, not locked: {:?}",
        started.elapsed()
    );
    // (That a success forgets the failures, and that the count is per email and address, is checked by the
    // throttle's unit test: an upper bound on time is not something a loaded test machine can promise.)

    // Revocation: the token stops working at once; the other one still works.
    let second = Account {
        id: officer.id,
        token,
    };
    let response = app
        .http
        .delete(app.url("/api/v1/auth/token"))
        .bearer_auth(&second.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    problem(
        app.get(&second, "/api/v1/me").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_ok(app.get(&officer, "/api/v1/me").await).await;

    // An admin revokes every token of an account.
    let admin = app.account("admin@anssi.example", "admin", None).await;
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/accounts/{}/tokens", officer.id)))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    problem(
        app.get(&officer, "/api/v1/me").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let response = app
        .http
        .delete(app.url("/api/v1/accounts/4242/tokens"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::NOT_FOUND).await;
    app.stop().await;
}

async fn hardening_health_and_metrics(db: TestDb) {
    let backend = db.backend;
    let app = common::spawn(db).await;
    let officer = app.account("officer@anssi.example", "officer", None).await;
    let responses = [
        app.http.get(app.url("/healthz")).send().await.unwrap(),
        app.get(&officer, "/api/v1/projects/77").await,
        app.http
            .get(app.url("/api/v1/regions"))
            .send()
            .await
            .unwrap(),
        app.http
            .get(app.url("/no/such/route"))
            .send()
            .await
            .unwrap(),
        app.http
            .delete(app.url("/api/v1/regions"))
            .send()
            .await
            .unwrap(),
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 404, 401, 404, 405]);
    for response in &responses {
        let headers = response.headers();
        assert_eq!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .split(';')
                .next(),
            Some("default-src 'none'")
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS without HTTPS configured"
        );
        assert!(headers.get("access-control-allow-origin").is_none());
    }
    let [health, ..] = responses;
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok", "database": backend})
    );

    // CORS is closed: a preflight from another origin gets no permission.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/projects"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("incubator_http_requests_total{method=\"GET\",route=\"/api/v1/projects/{id}\",status=\"404\"} 1"), "{text}");
    assert!(text.contains("# TYPE incubator_http_request_duration_seconds histogram"));
    // What an operator alerts on is read from the shared database, present even when zero.
    for gauge in [
        "incubator_mail_outbox{status=\"pending\"} ",
        "incubator_mail_outbox{status=\"dead\"} 0",
        "incubator_mail_oldest_pending_age_seconds ",
        "# TYPE incubator_deadlines_overdue gauge",
    ] {
        assert!(text.contains(gauge), "{gauge} missing from {text}");
    }
    app.stop().await;

    // Behind HTTPS, HSTS; an allowed origin gets CORS.
    let db = if backend == "sqlite" {
        common::sqlite()
    } else {
        common::postgres().await.expect("postgres")
    };
    let mut config = common::test_config(&db);
    config.public_url = Some("https://incubateur.example".into());
    config.cors_allowed_origins = vec!["https://pages.example".into()];
    let app = common::spawn_with(db, config).await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("origin", "https://pages.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://pages.example"
    );
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await;
}

/// The client address login throttling counts by: the TCP peer, unless the peer is a trusted proxy, and
/// then the right-most hop of `X-Forwarded-For` that is not one. And a metrics token closes `/metrics`.
async fn client_address_and_metrics_token(db: TestDb) {
    let backend = db.backend;
    let email = "officer@anssi.example";
    let loopback: IpAddr = [127, 0, 0, 1].into();
    let (client, spoofed): (IpAddr, IpAddr) = ([203, 0, 113, 7].into(), [198, 51, 100, 1].into());
    let fail_twice = |app: &TestApp, forwarded: &'static str| {
        let request = app
            .http
            .post(app.url("/api/v1/auth/token"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "email": email, "password": "wrong" }));
        async move {
            for _ in 0..2 {
                let response = request.try_clone().unwrap().send().await.unwrap();
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            }
        }
    };

    // No trusted proxy: the header is anyone's to write, so it is not read.
    let mut config = common::test_config(&db);
    config.metrics_bearer_token = Some("scrape-me-0123456789".into());
    let app = common::spawn_with(db, config).await;
    app.account(email, "officer", None).await;
    fail_twice(&app, "203.0.113.7").await;
    assert!(!app.state.throttle().delay(email, loopback).is_zero());
    assert!(app.state.throttle().delay(email, client).is_zero());

    let metrics = |token: Option<&str>| {
        let request = app.http.get(app.url("/metrics"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    let refused = metrics(None).await;
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    problem(refused, StatusCode::UNAUTHORIZED).await;
    problem(
        metrics(Some("scrape-me-0123456780")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let scraped = metrics(Some("scrape-me-0123456789")).await;
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("incubator_http_requests_total")
    );
    app.stop().await;

    // Behind a trusted proxy (loopback here): the client is the right-most hop the proxies did not add.
    let db = if backend == "sqlite" {
        common::sqlite()
    } else {
        common::postgres().await.expect("postgres")
    };
    let mut config = common::test_config(&db);
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let app = common::spawn_with(db, config).await;
    app.account(email, "officer", None).await;
    fail_twice(&app, "198.51.100.1, 203.0.113.7, 127.0.0.2").await;
    assert!(!app.state.throttle().delay(email, client).is_zero());
    assert!(app.state.throttle().delay(email, loopback).is_zero());
    assert!(app.state.throttle().delay(email, spoofed).is_zero());
    // Without a token set, metrics stay open.
    let open = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    app.stop().await;
}

/// The OpenAPI document the service serves.
async fn openapi_document(app: &TestApp) -> Value {
    app.http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The document's operations, each as `METHOD /path` with its operation object.
fn operations(doc: &Value) -> impl Iterator<Item = (String, &Value)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .iter()
                .map(move |(method, operation)| {
                    (format!("{} {path}", method.to_uppercase()), operation)
                })
        })
}

/// Every documented operation is served, every served route is documented, and each operation documents
/// its errors and its security.
async fn openapi_is_complete_and_true(db: TestDb) {
    let app = common::spawn(db).await;
    let officer = app.account("officer@anssi.example", "officer", None).await;
    let doc = openapi_document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
            let responses = operation["responses"].as_object().unwrap();
            let public = ["/healthz", "/metrics", "/openapi.json"].contains(&path.as_str())
                || (path == "/api/v1/auth/token" && method == "post");
            if public {
                assert!(operation.get("security").is_none(), "{method} {path}");
            } else {
                assert_eq!(
                    operation["security"],
                    json!([{"bearer": []}]),
                    "{method} {path}"
                );
                let problem =
                    &responses["401"]["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(problem, "#/components/schemas/Problem", "{method} {path}");
            }
            // Every operation but the document itself reads the database, which may be out of reach.
            if path != "/openapi.json" {
                let problem = responses
                    .get("503")
                    .map(|r| &r["content"]["application/problem+json"]["schema"]["$ref"]);
                assert_eq!(
                    problem,
                    Some(&json!("#/components/schemas/Problem")),
                    "{method} {path} documents 503"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
            }
            // Each operation is served: a request with made-up ids never falls to the router's 404 or 405.
            let url = app.url(&path.replace("{id}", "424242"));
            let response = app
                .http
                .request(method.to_uppercase().parse().unwrap(), &url)
                .bearer_auth(&officer.token)
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                responses.contains_key(status.as_str()),
                "{method} {path} answered an undocumented {status}"
            );
            let media = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let documented = responses[status.as_str()]["content"].as_object();
            match (media, documented) {
                (Some(media), Some(documented)) => {
                    assert!(
                        documented.contains_key(&media),
                        "{method} {path}: {media} not documented for {status}"
                    );
                }
                (None, None) => {}
                (media, documented) => {
                    panic!("{method} {path} {status}: sent {media:?}, documented {documented:?}")
                }
            }
            if status == StatusCode::NOT_FOUND {
                let body: Value = response.json().await.unwrap();
                assert_ne!(
                    body["detail"], "no such resource",
                    "{method} {path} is not routed"
                );
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /metrics",
        "GET /openapi.json",
        "POST /api/v1/auth/token",
        "DELETE /api/v1/auth/token",
        "GET /api/v1/me",
        "GET /api/v1/accounts",
        "DELETE /api/v1/accounts/{id}/tokens",
        "GET /api/v1/regions",
        "POST /api/v1/projects",
        "GET /api/v1/projects",
        "GET /api/v1/projects/{id}",
        "PATCH /api/v1/projects/{id}/fields",
        "POST /api/v1/projects/{id}/transitions",
        "GET /api/v1/projects/{id}/events",
        "PUT /api/v1/projects/{id}/cohort",
        "POST /api/v1/projects/{id}/documents",
        "GET /api/v1/projects/{id}/documents",
        "GET /api/v1/documents/{id}/content",
        "POST /api/v1/documents/{id}/review",
        "POST /api/v1/cohorts",
        "GET /api/v1/cohorts",
        "GET /api/v1/outbox",
        "POST /api/v1/outbox/{id}/retry",
        "GET /api/v1/workflows",
        "POST /api/v1/workflows/{id}/migrations",
        "POST /api/v1/projects/{id}/deadlines/{key}/pause",
        "POST /api/v1/projects/{id}/deadlines/{key}/resume",
        "PUT /api/v1/me/password",
        "POST /api/v1/projects/{id}/links",
        "POST /api/v1/projects/{id}/links/{link_id}/revoke",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(operations, expected);
    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20);
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {reference}"
        );
    }
    let upload = &doc["paths"]["/api/v1/projects/{id}/documents"]["post"]["requestBody"]["content"]
        ["multipart/form-data"];
    assert!(
        upload.is_object(),
        "the upload is documented as multipart: {upload}"
    );
    app.stop().await;
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                refs.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// Admins list the outbox and send a dead mail again; nobody else may.
async fn outbox_for_admins(db: TestDb) {
    let app = common::spawn(db).await;
    let cast = cast(&app).await;
    let id = create_project(&app, &cast.officer, "24").await;
    let fired = app
        .post(
            &cast.council,
            &format!("/api/v1/projects/{id}/transitions"),
            &json!({"transition": "express_interest", "expected_version": 1}),
        )
        .await;
    expect_ok(fired).await;

    let pending: Value =
        expect_ok(app.get(&cast.admin, "/api/v1/outbox?status=pending").await).await;
    let pending = pending.as_array().unwrap();
    assert!(
        !pending.is_empty(),
        "the transition queued its milestone mails"
    );
    assert!(pending.iter().all(|m| m["status"] == "pending"));
    // The workflow mails the officers when a council expresses interest.
    let to_officer = pending
        .iter()
        .find(|m| {
            m["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "officer@anssi.example")
                && m["template"] == "stage_entered"
        })
        .expect("the stage mail to the officer");
    let mail = to_officer["id"].as_i64().unwrap();

    // Only a dead mail can be retried: nothing changes for a pending one.
    let refused = app
        .post(
            &cast.admin,
            &format!("/api/v1/outbox/{mail}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    app.store
        .db()
        .execute_unprepared(&format!(
            "UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'refused' WHERE id = {mail}"
        ))
        .await
        .unwrap();
    let dead: Value = expect_ok(app.get(&cast.admin, "/api/v1/outbox?status=dead").await).await;
    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["last_error"], "refused");
    let retried: Value = expect_ok(
        app.post(
            &cast.admin,
            &format!("/api/v1/outbox/{mail}/retry"),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (retried["status"].as_str(), retried["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );

    for who in [&cast.officer, &cast.council] {
        assert_eq!(
            app.get(who, "/api/v1/outbox").await.status(),
            StatusCode::FORBIDDEN
        );
        let retry = app
            .post(who, &format!("/api/v1/outbox/{mail}/retry"), &json!({}))
            .await;
        assert_eq!(retry.status(), StatusCode::FORBIDDEN);
    }
    let missing = app
        .post(&cast.admin, "/api/v1/outbox/999999/retry", &json!({}))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// Every page of a list from `first` on, following each answer's `Link: <…>; rel="next"`; also the size of
/// each page.
async fn every_page(app: &TestApp, who: &Account, first: &str) -> (Vec<Value>, Vec<usize>) {
    let (mut items, mut pages) = (Vec::new(), Vec::new());
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        let answer = app.get(who, &path).await;
        next = answer.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            link[1..link.find('>').unwrap()].to_owned()
        });
        let page: Value = expect_ok(answer).await;
        pages.push(page.as_array().unwrap().len());
        items.extend(page.as_array().unwrap().iter().cloned());
        assert!(pages.len() < 50, "the pages never end");
    }
    (items, pages)
}

/// The audit trail and the outbox come a page at a time: the pages, followed by their `Link` headers, are
/// the whole list once, in order; the last page has no link.
async fn long_lists_come_a_page_at_a_time(db: TestDb) {
    let app = common::spawn(db).await;
    let cast = cast(&app).await;
    let id = create_project(&app, &cast.officer, "24").await;
    for transition in ["express_interest", "open_identification"] {
        expect_ok(app.fire(&cast.officer, id, transition, None).await).await;
    }
    let events = format!("/api/v1/projects/{id}/events");
    let (whole, pages) = every_page(&app, &cast.officer, &events).await;
    assert_eq!(pages, [3]);
    let seqs: Vec<i64> = whole.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    for (limit, sizes) in [
        ("2", vec![2, 1]),
        ("1", vec![1, 1, 1]),
        ("0", vec![1, 1, 1]),
    ] {
        let paged = every_page(&app, &cast.council, &format!("{events}?limit={limit}")).await;
        assert_eq!(paged, (whole.clone(), sizes), "limit={limit}");
    }
    let (rest, pages) = every_page(&app, &cast.officer, &format!("{events}?after_seq=1")).await;
    assert_eq!((rest.as_slice(), pages), (&whole[1..], vec![2]));
    let (none, _) = every_page(&app, &cast.officer, &format!("{events}?after_seq=3")).await;
    assert!(none.is_empty());
    let bad = app
        .get(&cast.officer, &format!("{events}?after_seq=last"))
        .await;
    problem(bad, StatusCode::BAD_REQUEST).await;

    let (mut mails, pages) = every_page(&app, &cast.admin, "/api/v1/outbox?status=pending").await;
    assert!(mails.len() >= 3, "{mails:?}");
    assert_eq!(pages, [mails.len()]);
    let one_by_one = every_page(&app, &cast.admin, "/api/v1/outbox?limit=1").await;
    assert_eq!(one_by_one, (mails.clone(), vec![1; mails.len()]));
    // The oldest mail dead: the later pages of the pending ones leave it out as the first does.
    let oldest = mails.pop().unwrap();
    app.store
        .db()
        .execute_unprepared(&format!(
            "UPDATE outbox SET status = 'dead' WHERE id = {}",
            oldest["id"]
        ))
        .await
        .unwrap();
    let pending = every_page(&app, &cast.admin, "/api/v1/outbox?status=pending&limit=1").await;
    assert_eq!(pending, (mails.clone(), vec![1; mails.len()]));
}

async fn workflow_versions_migrations_and_paused_clocks(db: TestDb) {
    let app = common::spawn(db).await;
    let cast = cast(&app).await;
    let id = create_project(&app, &cast.officer, "24").await;

    let versions: Value = expect_ok(app.get(&cast.officer, "/api/v1/workflows").await).await;
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == "csirt-incubation" && v["version"] == 2),
        "{versions}"
    );
    let v2 = std::fs::read_to_string(
        common::workflows_dir().join("../crates/engine/tests/fixtures/csirt-incubation-v2.yaml"),
    )
    .unwrap();
    app.store
        .deploy_workflow(&v2, "csirt-incubation-v2.yaml", chrono::Utc::now())
        .await
        .unwrap();

    let path = "/api/v1/workflows/csirt-incubation/migrations";
    let forbidden = app
        .post(
            &cast.officer,
            path,
            &json!({"to_version": 3, "dry_run": true}),
        )
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let unknown = app
        .post(
            &cast.admin,
            path,
            &json!({"to_version": 3, "map": {"invited": "nowhere"}, "dry_run": true}),
        )
        .await;
    let unknown = problem(unknown, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        unknown["detail"]
            .as_str()
            .unwrap()
            .contains("`invited=nowhere`"),
        "{unknown}"
    );
    let body = json!({"to_version": 3, "projects": [id], "dry_run": true});
    let dry: Value = expect_ok(app.post(&cast.admin, path, &body).await).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["projects"][0]["to_state"], "invited");
    let real: Value = expect_ok(
        app.post(
            &cast.admin,
            path,
            &json!({"to_version": 3, "projects": [id]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        real["projects"], dry["projects"],
        "the dry run is what happens"
    );
    let events: Value = expect_ok(
        app.get(&cast.officer, &format!("/api/v1/projects/{id}/events"))
            .await,
    )
    .await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "workflow.migrated").count(),
        1
    );

    let pause = format!("/api/v1/projects/{id}/deadlines/invited/pause");
    let resume = format!("/api/v1/projects/{id}/deadlines/invited/resume");
    let reason = json!({"reason": "waiting for the region's correction"});
    let by_council = app.post(&cast.council, &pause, &reason).await;
    assert_eq!(by_council.status(), StatusCode::FORBIDDEN);
    let empty = app
        .post(&cast.officer, &pause, &json!({"reason": " "}))
        .await;
    problem(empty, StatusCode::UNPROCESSABLE_ENTITY).await;
    let paused: Value = expect_ok(app.post(&cast.officer, &pause, &reason).await).await;
    assert_eq!(paused["resumed_at"], Value::Null);
    let again = app.post(&cast.officer, &pause, &reason).await;
    problem(again, StatusCode::UNPROCESSABLE_ENTITY).await;
    let unknown_key = app
        .post(
            &cast.officer,
            &format!("/api/v1/projects/{id}/deadlines/nothing/pause"),
            &reason,
        )
        .await;
    let unknown_key = problem(unknown_key, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        unknown_key["detail"].as_str().unwrap().contains("invited"),
        "{unknown_key}"
    );
    let resumed: Value = expect_ok(
        app.post(
            &cast.officer,
            &resume,
            &json!({"reason": "correction received"}),
        )
        .await,
    )
    .await;
    assert_eq!(resumed["on_resume"], "continue");
    let (old, new) = (
        resumed["old_due"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        resumed["new_due"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
    );
    assert!(new >= old, "{resumed}");
}

/// A hash stored with weaker parameters than today's (by an older release) is replaced at the owner's next
/// sign-in, without signing them out anywhere.
async fn weaker_password_hashes_are_upgraded_at_sign_in(db: TestDb) {
    use argon2::password_hash::PasswordHasher;
    use argon2::{Algorithm, Argon2, Params, Version};
    use incubator_server::auth::needs_rehash;

    let app = common::spawn(db).await;
    let officer = app.account("weak@anssi.example", "officer", None).await;
    let current = incubator_store::account_admin::find(app.store.db(), officer.id)
        .await
        .unwrap()
        .password_hash;
    assert!(!needs_rehash(&current), "{current}");
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8_192, 1, 1, None).unwrap(),
    )
    .hash_password(common::PASSWORD.as_bytes())
    .unwrap()
    .to_string();
    assert!(needs_rehash(&weak));
    assert!(
        incubator_store::users::upgrade_password_hash(app.store.db(), officer.id, &current, &weak)
            .await
            .unwrap()
    );

    app.login("weak@anssi.example", common::PASSWORD).await;
    let stored = incubator_store::account_admin::find(app.store.db(), officer.id)
        .await
        .unwrap()
        .password_hash;
    assert_ne!(stored, weak);
    assert!(stored.contains("m=19456,t=2,p=1"), "{stored}");
    assert!(!needs_rehash(&stored));
    // The same password still signs in, and the token issued before the upgrade still works.
    app.login("weak@anssi.example", common::PASSWORD).await;
    assert_eq!(app.get(&officer, "/api/v1/me").await.status(), 200);
    app.stop().await;
}

/// ASVS V6.2: the owner changes the password, knowing the current one; a new password is long enough, not
/// common, not guessable from the account itself, with no composition rule; every session and token ends.
async fn owners_change_their_password_under_the_policy(db: TestDb) {
    let app = common::spawn(db).await;
    let email = "jeanne.kerbrat@anssi.example";
    let officer = app.account(email, "officer", None).await;
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });

    problem(
        app.put(
            &officer,
            "/api/v1/me/password",
            &change("not the password", "girafe violon nuage"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The old password still signs in: nothing changed.
    app.login(email, common::PASSWORD).await;
    for (weak, why) in [
        ("court mais", "au moins 12"),
        ("qwerty123456", "plus courants"),
        ("aaaaaaaaaaaaaaaa", "trop facile"),
        ("kerbratjeanne", "trop facile"),
    ] {
        let refused = problem(
            app.put(
                &officer,
                "/api/v1/me/password",
                &change(common::PASSWORD, weak),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], "new_password", "{refused}");
        assert!(
            refused["detail"].as_str().unwrap().contains(why),
            "{weak}: {refused}"
        );
        // The old password still signs in: nothing changed.
        app.login(email, common::PASSWORD).await;
    }
    let too_long = "pomme de terre ".repeat(9);
    problem(
        app.put(
            &officer,
            "/api/v1/me/password",
            &change(common::PASSWORD, &too_long),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Nothing but the two passwords: a role slipped in is refused, and changes nothing.
    let mut sneaky = change(common::PASSWORD, "girafe violon nuage bretelle");
    sneaky["role"] = json!("admin");
    let status = app
        .put(&officer, "/api/v1/me/password", &sneaky)
        .await
        .status();
    assert!(status.is_client_error(), "{status}");
    // The old password still signs in: nothing changed.
    app.login(email, common::PASSWORD).await;

    // A long phrase of lower-case words: accepted; every session and token of the account ends.
    let fresh = app.login(email, common::PASSWORD).await;
    let fresh = Account {
        id: officer.id,
        token: fresh,
    };
    assert_eq!(
        app.put(
            &officer,
            "/api/v1/me/password",
            &change(common::PASSWORD, "girafe violon nuage bretelle")
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    for token in [&officer, &fresh] {
        problem(app.get(token, "/api/v1/me").await, StatusCode::UNAUTHORIZED).await;
    }
    problem(
        app.try_login(email, common::PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.login(email, "girafe violon nuage bretelle").await;
    app.stop().await;
}

/// How a caller is answered on a route: let through (any status but the three below), 401, 403, or 404 (a
/// project of another region answers exactly as a missing one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Let,
    Unauthenticated,
    Forbidden,
    Hidden,
}

impl Access {
    fn of(status: StatusCode) -> Access {
        match status {
            StatusCode::UNAUTHORIZED => Access::Unauthenticated,
            StatusCode::FORBIDDEN => Access::Forbidden,
            StatusCode::NOT_FOUND => Access::Hidden,
            _ => Access::Let,
        }
    }
}

/// Centre-Val de Loire's project with a deliberation its council uploaded, and an incubation session:
/// what the route-walking tests address.
async fn project_document_and_session(app: &TestApp, cast: &Cast) -> (i64, i64, i64) {
    let project = create_project(app, &cast.officer, "24").await;
    let uploaded = expect_ok(
        app.upload(
            &cast.council,
            project,
            "council_backed",
            "deliberation.pdf",
            "application/pdf",
            pdf("d"),
        )
        .await,
    )
    .await;
    let cohort = expect_ok(
        app.post(
            &cast.officer,
            "/api/v1/cohorts",
            &json!({"name": "Session 2022-1", "starts_on": "2022-01-03"}),
        )
        .await,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    (project, uploaded["id"].as_i64().unwrap(), cohort)
}

/// Every route of the API (read from the OpenAPI document, which is built from the router's own route
/// list, so a new route without a rule here fails this test) × every role × own or other region, each with a
/// valid request: anonymous, the project's council, another region's council, an officer, an admin.
async fn every_route_answers_every_role_by_its_rule(db: TestDb) {
    use Access::{Forbidden as F, Hidden as H, Let as L, Unauthenticated as U};
    let app = common::spawn(db).await;
    let cast = cast(&app).await;
    let victim = app.account("victim@anssi.example", "officer", None).await;
    let (project, document, cohort) = project_document_and_session(&app, &cast).await;
    // An accepted document mails the council: a mail for the outbox routes.
    expect_ok(
        app.post(
            &cast.officer,
            &format!("/api/v1/documents/{document}/review"),
            &json!({"decision": "accepted"}),
        )
        .await,
    )
    .await;
    let mail: i64 = app
        .store
        .db()
        .query_one(sea_orm::Statement::from_string(
            app.store.db().get_database_backend(),
            "SELECT MIN(id) AS id FROM outbox",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();

    // [anonymous, own council, other council, officer, admin]
    let rules: Vec<(&str, [Access; 5])> = vec![
        ("POST /api/v1/auth/token", [L, L, L, L, L]),
        ("DELETE /api/v1/auth/token", [U, L, L, L, L]),
        ("GET /api/v1/me", [U, L, L, L, L]),
        ("PUT /api/v1/me/password", [U, L, L, L, L]),
        ("GET /api/v1/accounts", [U, F, F, F, L]),
        ("DELETE /api/v1/accounts/{id}/tokens", [U, F, F, F, L]),
        ("GET /api/v1/regions", [U, L, L, L, L]),
        ("POST /api/v1/projects", [U, F, F, L, F]),
        ("GET /api/v1/projects", [U, L, L, L, L]),
        ("GET /api/v1/projects/{id}", [U, L, H, L, L]),
        ("PATCH /api/v1/projects/{id}/fields", [U, L, H, L, F]),
        ("POST /api/v1/projects/{id}/transitions", [U, L, H, L, F]),
        ("GET /api/v1/projects/{id}/events", [U, L, H, L, L]),
        ("PUT /api/v1/projects/{id}/cohort", [U, F, H, L, F]),
        ("GET /api/v1/projects/{id}/documents", [U, L, H, L, L]),
        ("POST /api/v1/projects/{id}/documents", [U, L, H, L, F]),
        ("GET /api/v1/documents/{id}/content", [U, L, H, L, L]),
        ("POST /api/v1/documents/{id}/review", [U, F, H, L, F]),
        ("POST /api/v1/projects/{id}/links", [U, L, H, L, F]),
        // No link 424242 on the project: an officer gets past the access checks to the link's own 404.
        (
            "POST /api/v1/projects/{id}/links/{link_id}/revoke",
            [U, F, H, H, F],
        ),
        (
            "POST /api/v1/projects/{id}/deadlines/{key}/pause",
            [U, F, H, L, F],
        ),
        (
            "POST /api/v1/projects/{id}/deadlines/{key}/resume",
            [U, F, H, L, F],
        ),
        ("POST /api/v1/cohorts", [U, F, F, L, F]),
        ("GET /api/v1/cohorts", [U, L, L, L, L]),
        ("GET /api/v1/outbox", [U, F, F, F, L]),
        ("POST /api/v1/outbox/{id}/retry", [U, F, F, F, L]),
        ("GET /api/v1/workflows", [U, F, F, L, L]),
        ("POST /api/v1/workflows/{id}/migrations", [U, F, F, F, L]),
        ("GET /healthz", [L, L, L, L, L]),
        ("GET /metrics", [L, L, L, L, L]),
        ("GET /openapi.json", [L, L, L, L, L]),
    ];

    let doc = openapi_document(&app).await;
    let served: BTreeSet<String> = operations(&doc).map(|(route, _)| route).collect();
    let ruled: BTreeSet<String> = rules.iter().map(|(route, _)| (*route).to_owned()).collect();
    assert_eq!(
        served, ruled,
        "every route has its rule, and every rule its route"
    );

    let anonymous = Account {
        id: 0,
        token: String::new(),
    };
    // Requests that change state go out in this order, so that each is still possible when it comes:
    // refusals first, then the project's council, then the officer.
    let callers = [
        (0, &anonymous),
        (2, &cast.other_council),
        (4, &cast.admin),
        (1, &cast.council),
        (3, &cast.officer),
    ];
    for (route, expected) in &rules {
        let (method, template) = route.split_once(' ').unwrap();
        let id = if template.starts_with("/api/v1/projects/{id}") {
            project
        } else if template.starts_with("/api/v1/documents/") {
            document
        } else if template.starts_with("/api/v1/accounts/") {
            victim.id
        } else {
            mail
        };
        let path = if template.starts_with("/api/v1/workflows/") {
            template.replace("{id}", "csirt-incubation")
        } else {
            template
                .replace("{id}", &id.to_string())
                .replace("{key}", "invited")
                .replace("{link_id}", "424242")
        };
        for (column, who) in callers {
            let version = app.project(&cast.officer, project).await["version"]
                .as_i64()
                .unwrap();
            let body = match *route {
                "POST /api/v1/auth/token" => {
                    json!({"email": "victim@anssi.example", "password": common::PASSWORD})
                }
                "PUT /api/v1/me/password" => {
                    json!({"current_password": common::PASSWORD, "new_password": "trop court"})
                }
                "POST /api/v1/projects" => {
                    json!({"region_code": "11", "workflow": "csirt-incubation"})
                }
                "PATCH /api/v1/projects/{id}/fields" => {
                    json!({"carrier_name": "GIP Cybersécurité"})
                }
                "POST /api/v1/projects/{id}/transitions" => {
                    json!({"transition": "express_interest", "expected_version": version})
                }
                "PUT /api/v1/projects/{id}/cohort" => json!({"cohort_id": cohort}),
                "POST /api/v1/projects/{id}/links" => json!({
                    "email": "cert@parrain.example", "name": "CERT parrain", "role": "sponsor",
                    "requirement": "first_sponsor_letter", "expires_in": "P14D"
                }),
                "POST /api/v1/documents/{id}/review" => json!({"decision": "accepted"}),
                "POST /api/v1/projects/{id}/deadlines/{key}/pause"
                | "POST /api/v1/projects/{id}/deadlines/{key}/resume" => {
                    json!({"reason": "en attente de la correction de la région"})
                }
                "POST /api/v1/cohorts" => {
                    json!({"name": format!("Session {column}"), "starts_on": "2022-07-04"})
                }
                "POST /api/v1/workflows/{id}/migrations" => {
                    json!({"to_version": 2, "dry_run": true})
                }
                _ => Value::Null,
            };
            // A token this request may end: signing out, or an admin ending another account's tokens.
            let token = if *route == "DELETE /api/v1/auth/token" && column > 0 {
                let email = [
                    "",
                    "csirt@centrevaldeloire.example",
                    "csirt@bretagne.example",
                    "officer@anssi.example",
                    "admin@anssi.example",
                ][column];
                app.login(email, common::PASSWORD).await
            } else {
                who.token.clone()
            };
            let mut request = app.http.request(method.parse().unwrap(), app.url(&path));
            if column > 0 {
                request = request.bearer_auth(&token);
            }
            request = if *route == "POST /api/v1/projects/{id}/documents" {
                let part = reqwest::multipart::Part::bytes(pdf("matrice"))
                    .file_name("lettre.pdf")
                    .mime_str("application/pdf")
                    .unwrap();
                request.multipart(
                    reqwest::multipart::Form::new()
                        .text("requirement", "regional_perimeter")
                        .part("file", part),
                )
            } else if body.is_null() {
                request
            } else {
                request.json(&body)
            };
            let status = request.send().await.unwrap().status();
            assert_eq!(
                Access::of(status),
                expected[column],
                "{route} as {} answered {status}",
                [
                    "anonymous",
                    "the project's council",
                    "another region's council",
                    "an officer",
                    "an admin"
                ][column]
            );
        }
    }
    app.stop().await;
}

/// Mass assignment: every JSON body the API takes (read from `/openapi.json`, so a new one cannot escape),
/// sent valid but for one more member naming something the caller must not set (state, version, region,
/// role, ids, a review status), is refused as a whole (422) and changes nothing.
async fn mass_assignment_is_refused_on_every_body(db: TestDb) {
    let app = common::spawn(db).await;
    let cast = cast(&app).await;
    let (id, document, cohort) = project_document_and_session(&app, &cast).await;
    let version = app.project(&cast.officer, id).await["version"].clone();
    // Each body as a legitimate caller sends it: (route, caller, valid body).
    let samples: Vec<(&str, &Account, Value)> = vec![
        (
            "POST /api/v1/auth/token",
            &cast.officer,
            json!({"email": "officer@anssi.example", "password": common::PASSWORD}),
        ),
        (
            "PUT /api/v1/me/password",
            &cast.officer,
            json!({"current_password": common::PASSWORD, "new_password": "la marée monte sur le sillon de Talbert"}),
        ),
        (
            "POST /api/v1/projects",
            &cast.officer,
            json!({"region_code": "11", "workflow": "csirt-incubation"}),
        ),
        (
            "PATCH /api/v1/projects/{id}/fields",
            &cast.council,
            json!({"carrier_name": "GIP Cybersécurité"}),
        ),
        (
            "POST /api/v1/projects/{id}/transitions",
            &cast.council,
            json!({"transition": "express_interest", "expected_version": version}),
        ),
        (
            "PUT /api/v1/projects/{id}/cohort",
            &cast.officer,
            json!({"cohort_id": cohort}),
        ),
        (
            "POST /api/v1/documents/{id}/review",
            &cast.officer,
            json!({"decision": "accepted"}),
        ),
        (
            "POST /api/v1/projects/{id}/links",
            &cast.officer,
            json!({"email": "cert@parrain.example", "name": "CERT parrain", "role": "sponsor",
                   "requirement": "first_sponsor_letter", "expires_in": "P14D"}),
        ),
        (
            "POST /api/v1/projects/{id}/deadlines/{key}/pause",
            &cast.officer,
            json!({"reason": "en attente de la correction de la région"}),
        ),
        (
            "POST /api/v1/projects/{id}/deadlines/{key}/resume",
            &cast.officer,
            json!({"reason": "correction reçue"}),
        ),
        (
            "POST /api/v1/cohorts",
            &cast.officer,
            json!({"name": "Session 2023-1", "starts_on": "2023-01-09"}),
        ),
        (
            "POST /api/v1/workflows/{id}/migrations",
            &cast.admin,
            json!({"to_version": 2, "dry_run": true}),
        ),
    ];
    let doc = openapi_document(&app).await;
    let with_json_body: BTreeSet<String> = operations(&doc)
        .filter(|(_, op)| !op["requestBody"]["content"]["application/json"].is_null())
        .map(|(route, _)| route)
        .collect();
    let sampled: BTreeSet<String> = samples.iter().map(|(r, _, _)| (*r).to_owned()).collect();
    assert_eq!(with_json_body, sampled, "every JSON body has its sample");

    let intruders = [
        ("state", json!("operational")),
        ("version", json!(999)),
        ("region_code", json!("53")),
        ("role", json!("admin")),
        ("id", json!(1)),
        ("project_id", json!(1)),
        ("status", json!("accepted")),
    ];
    let accounts_before = app
        .get(&cast.admin, "/api/v1/accounts")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let projects_before = app
        .get(&cast.officer, "/api/v1/projects")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let before = app.fingerprint(&cast.officer, id).await;
    for (route, caller, body) in &samples {
        let (method, template) = route.split_once(' ').unwrap();
        let path = template
            .replace("/projects/{id}", &format!("/projects/{id}"))
            .replace("/documents/{id}", &format!("/documents/{document}"))
            .replace("/workflows/{id}", "/workflows/csirt-incubation")
            .replace("{key}", "invited");
        for (key, value) in &intruders {
            let mut sent = body.clone();
            if sent.get(key).is_some() {
                // The body's own member of that name (a link's `role`) is not an intruder.
                continue;
            }
            sent[*key] = value.clone();
            let status = app
                .http
                .request(method.parse().unwrap(), app.url(&path))
                .bearer_auth(&caller.token)
                .json(&sent)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{route} with `{key}` answered {status}"
            );
        }
    }
    assert_eq!(app.fingerprint(&cast.officer, id).await, before);
    let after: Value = app
        .get(&cast.admin, "/api/v1/accounts")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after, accounts_before, "accounts unchanged");
    let after: Value = app
        .get(&cast.officer, "/api/v1/projects")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after, projects_before, "no project created");
    let cohorts: Value = app
        .get(&cast.officer, "/api/v1/cohorts")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cohorts.as_array().unwrap().len(), 1, "no session created");
    app.stop().await;
}

both_backends!(
    mass_assignment_is_refused_on_every_body,
    every_route_answers_every_role_by_its_rule,
    owners_change_their_password_under_the_policy,
    corrections_and_expiring_evidence,
    weaker_password_hashes_are_upgraded_at_sign_in,
    workflow_versions_migrations_and_paused_clocks,
    outbox_for_admins,
    long_lists_come_a_page_at_a_time,
    drives_a_region_from_invited_to_operational,
    council_sees_only_its_region,
    refusals_change_nothing,
    same_bytes_are_stored_once,
    accounts_tokens_and_throttling,
    hardening_health_and_metrics,
    client_address_and_metrics_token,
    openapi_is_complete_and_true,
);

/// A day `days` after today, as the API writes days.
fn day_in(days: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::days(days))
        .date_naive()
        .to_string()
}

fn requirement<'a>(project: &'a Value, key: &str) -> &'a Value {
    project["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no requirement {key}"))
}

async fn corrections_and_expiring_evidence(db: TestDb) {
    let app = common::spawn(db).await;
    let cast = cast(&app).await;
    let id = create_project(&app, &cast.officer, "24").await;
    for transition in ["express_interest", "open_identification"] {
        expect_ok(app.fire(&cast.officer, id, transition, None).await).await;
    }
    let document = upload(
        &app,
        &cast.council,
        id,
        "council_backed",
        "deliberation.pdf",
        "application/pdf",
        pdf("deliberation"),
    )
    .await;
    let review_path = format!("/api/v1/documents/{document}/review");

    // Bad requests: each a 422 naming what is wrong, and nothing changes.
    let before = app.fingerprint(&cast.officer, id).await;
    let future = day_in(10);
    let comment = "La délibération n'a pas son annexe financière.";
    let bad = [
        (
            json!({"decision": "correction_requested", "comment": comment, "kind": "wrong", "due_on": future}),
            "kind",
        ),
        (
            json!({"decision": "correction_requested", "comment": comment, "due_on": future}),
            "kind",
        ),
        (
            json!({"decision": "correction_requested", "comment": comment, "kind": "incomplete", "due_on": "31/12/2099"}),
            "due_on",
        ),
        (json!({"decision": "accepted", "due_on": future}), "due_on"),
    ];
    for (body, field) in bad {
        let refused = problem(
            app.post(&cast.officer, &review_path, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let fields: Vec<&str> = refused["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body}: {refused}");
    }
    let past = json!({"decision": "correction_requested", "comment": comment, "kind": "outdated",
                      "due_on": day_in(-3)});
    let silent = json!({"decision": "correction_requested", "kind": "incorrect", "due_on": future});
    for (body, why) in [
        (&past, "is not in the future"),
        (&silent, "needs a comment"),
    ] {
        let refused = problem(
            app.post(&cast.officer, &review_path, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains(why),
            "{refused}"
        );
    }
    for expires_on in ["demain", "2020-01-31"] {
        let form = reqwest::multipart::Form::new()
            .text("requirement", "council_backed")
            .text("expires_on", expires_on)
            .part(
                "file",
                reqwest::multipart::Part::bytes(pdf("again")).file_name("d.pdf"),
            );
        let response = app
            .http
            .post(app.url(&format!("/api/v1/projects/{id}/documents")))
            .bearer_auth(&cast.council.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let refused = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            refused["detail"].as_str().unwrap().contains("expires_on"),
            "{refused}"
        );
    }
    // The council may not ask for corrections.
    let asked = json!({"decision": "correction_requested", "comment": comment, "kind": "incomplete",
                       "due_on": future, "pause_stage_clock": true});
    let forbidden = app.post(&cast.council, &review_path, &asked).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.fingerprint(&cast.officer, id).await, before);

    // The officer asks for a correction and pauses the stage's clock.
    let reviewed = expect_ok(app.post(&cast.officer, &review_path, &asked).await).await;
    assert_eq!(reviewed["requirement_status"], "correction_requested");
    assert_eq!(reviewed["document"]["status"], "correction_requested");
    assert_eq!(reviewed["document"]["review_comment"], comment);
    let project = app.project(&cast.council, id).await;
    let council_backed = requirement(&project, "council_backed");
    assert_eq!(council_backed["status"], "correction_requested");
    assert_eq!(
        council_backed["correction"],
        json!({"kind": "incomplete", "comment": comment, "due_on": future, "document_id": document,
               "paused_deadline": "project_identification"})
    );
    assert_eq!(council_backed["expires_on"], Value::Null);
    assert_eq!(
        requirement(&project, "legal_status")["correction"],
        Value::Null
    );
    let keys: Vec<&str> = project["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"correction:council_backed"), "{keys:?}");
    let events = expect_ok(
        app.get(&cast.officer, &format!("/api/v1/projects/{id}/events"))
            .await,
    )
    .await;
    let events = events.as_array().unwrap();
    let review_event = events
        .iter()
        .find(|e| e["kind"] == "document_reviewed")
        .expect("the review event");
    assert_eq!(review_event["actor"], format!("user:{}", cast.officer.id));
    assert_eq!(review_event["comment"], comment);
    assert_eq!(review_event["changes"]["correction"]["kind"], "incomplete");
    assert!(events.iter().any(|e| e["kind"] == "deadline.paused"));
    // The council of the region is mailed; the other region's is not.
    let mails = outbox::Entity::find()
        .filter(outbox::Column::Template.eq("correction_requested"))
        .all(app.store.db())
        .await
        .unwrap();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0]
            .recipients
            .contains("csirt@centrevaldeloire.example")
    );
    let context: Value = serde_json::from_str(&mails[0].context).unwrap();
    assert_eq!(context["due_on"], future);
    assert_eq!(context["correction_kind"], "incomplete");
    // One correction at a time on a requirement.
    let twice = problem(
        app.post(&cast.officer, &review_path, &asked).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        twice["detail"].as_str().unwrap().contains("already asked"),
        "{twice}"
    );

    // The region answers with a document valid for five days: the correction is closed, the clock resumes.
    let expires_on = day_in(5);
    let form = reqwest::multipart::Form::new()
        .text("requirement", "council_backed")
        .text("expires_on", expires_on.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(pdf("deliberation and annex")).file_name("d.pdf"),
        );
    let answer: Value = expect_ok(
        app.http
            .post(app.url(&format!("/api/v1/projects/{id}/documents")))
            .bearer_auth(&cast.council.token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["expires_on"], expires_on);
    let project = app.project(&cast.council, id).await;
    let council_backed = requirement(&project, "council_backed");
    assert_eq!(council_backed["status"], "pending");
    assert_eq!(council_backed["correction"], Value::Null);
    assert!(
        !project["deadlines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["state"] == "correction:council_backed")
    );
    let events = expect_ok(
        app.get(&cast.officer, &format!("/api/v1/projects/{id}/events"))
            .await,
    )
    .await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "deadline.resumed")
    );
    let answer_id = answer["id"].as_i64().unwrap();
    review(&app, &cast.officer, answer_id, "accepted", None).await;
    let project = app.project(&cast.officer, id).await;
    assert_eq!(requirement_status(&project, "council_backed"), "accepted");
    assert_eq!(
        requirement(&project, "council_backed")["expires_on"],
        expires_on
    );

    // A week on, the evidence has expired: the project view and the guard say so.
    let app = app
        .restart_with(|config| config.programme_clock_offset = chrono::TimeDelta::days(7))
        .await;
    let project = app.project(&cast.officer, id).await;
    assert_eq!(requirement_status(&project, "council_backed"), "expired");
    let unmet = transition(&project, "retain_project")["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["subject"] == "council_backed")
        .expect("council_backed unmet")
        .clone();
    assert_eq!(unmet["code"], "requirement_not_accepted");
    assert!(
        unmet["en"].as_str().unwrap().contains("evidence expired"),
        "{unmet}"
    );
    let refused = problem(
        app.fire(&cast.officer, id, "retain_project", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused.to_string().contains("justificatif expiré"),
        "{refused}"
    );
    app.stop().await;
}
