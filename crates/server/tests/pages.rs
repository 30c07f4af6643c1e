//! The server-rendered pages over real HTTP, as a browser without JavaScript uses them: sign-in and the
//! session cookie, every page in both languages, a council confined to its region on every page and
//! export, forms refused without their CSRF token (and nothing changed), accounts disabled at once.
//! Against a fresh SQLite file and, when `TEST_DATABASE_URL` is set, a fresh PostgreSQL database.

mod common;
mod pages_support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Account, PASSWORD, TestApp, TestDb, pdf};
use pages_support::{Browser, Page};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Cast {
    officer: Account,
    council: Account,
}

const OFFICER: &str = "officer@anssi.example";
const COUNCIL: &str = "csirt@centrevaldeloire.example";
const OTHER_COUNCIL: &str = "csirt@bretagne.example";
const ADMIN: &str = "admin@anssi.example";

/// An officer, a council account of Centre-Val de Loire (24), an admin; projects for 24 and Bretagne (53).
async fn cast(app: &TestApp) -> (Cast, i64, i64) {
    let cast = Cast {
        officer: app.account(OFFICER, "officer", None).await,
        council: app.account(COUNCIL, "council", Some("24")).await,
    };
    app.account(ADMIN, "admin", None).await;
    let ours = create_project(app, &cast.officer, "24").await;
    let theirs = create_project(app, &cast.officer, "53").await;
    (cast, ours, theirs)
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
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let mut browser = Browser::new(app);
    let answer = browser.sign_in(email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    browser
}

async fn ok_page(browser: &mut Browser, path: &str) -> Page {
    let page = browser.get(path).await;
    page.assert_html(StatusCode::OK);
    page
}

async fn documents(app: &TestApp, officer: &Account, project: i64) -> Vec<Value> {
    app.get(officer, &format!("/api/v1/projects/{project}/documents"))
        .await
        .json()
        .await
        .unwrap()
}

async fn sign_in_and_out(db: TestDb) {
    let app = common::spawn(db).await;
    cast(&app).await;

    // Not signed in: every page leads to the sign-in form, and back after it.
    let mut browser = Browser::new(&app);
    let page = browser.get("/regions/24?tab=history").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        Some("/login?next=%2Fregions%2F24%3Ftab%3Dhistory")
    );
    let form = ok_page(&mut browser, "/login").await;
    assert!(form.body.contains("<html lang=\"fr\">"));
    let login_cookie = form
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("incubator_login="))
        .expect("the sign-in form's token cookie");
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));

    // A wrong password: the form again, with a message, and no session.
    let token = form.csrf();
    let wrong = browser
        .post(
            "/login",
            &[
                ("email", OFFICER),
                ("password", "wrong"),
                ("csrf_token", &token),
            ],
        )
        .await;
    wrong.assert_html(StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .body
            .contains("Adresse électronique ou mot de passe incorrect")
    );
    assert!(!browser.cookies.contains_key("incubator_session"));

    // The sign-in form without its token is refused before the password is even checked.
    let mut bare = Browser::new(&app);
    let refused = bare
        .post("/login", &[("email", OFFICER), ("password", PASSWORD)])
        .await;
    refused.assert_html(StatusCode::FORBIDDEN);
    assert!(!bare.cookies.contains_key("incubator_session"));

    // The right password: a fresh session in an HttpOnly, SameSite cookie, then back where we were going.
    let form = ok_page(&mut browser, "/login?next=/cohorts").await;
    let token = form.csrf();
    let answer = browser
        .post(
            "/login",
            &[
                ("email", OFFICER),
                ("password", PASSWORD),
                ("csrf_token", &token),
                ("next", "/cohorts"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), Some("/cohorts"));
    let cookie = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("incubator_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP in tests: {cookie}");
    let session_id = browser.cookies["incubator_session"].clone();
    assert_eq!(session_id.len(), 64);
    let dashboard = ok_page(&mut browser, "/").await;
    assert!(dashboard.body.contains("Tableau de bord national"));

    // Only the SHA-256 of the session id is stored.
    let rows = session_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0], session_id);
    assert_eq!(rows[0].len(), 64);

    // Going to another site after sign-in is not possible.
    let form = ok_page(&mut Browser::new(&app), "/login?next=//evil.example/").await;
    assert!(
        form.body.contains("name=\"next\" value=\"/\""),
        "{}",
        form.body
    );

    // Signing out deletes the session: the old cookie is worthless.
    let token = dashboard.csrf();
    let out = browser.post("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), Some("/login"));
    assert!(session_rows(&app).await.is_empty());
    browser
        .cookies
        .insert("incubator_session".into(), session_id);
    let after = browser.get("/").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), Some("/login"));
    app.stop().await;
}

async fn session_rows(app: &TestApp) -> Vec<String> {
    use incubator_store::entities::sessions;
    use sea_orm::EntityTrait;
    sessions::Entity::find()
        .all(app.store.db())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_sha256)
        .collect()
}

async fn sessions_time_out(db: TestDb) {
    let mut config = common::test_config(&db);
    config.session_idle_timeout = Duration::from_secs(2);
    let app = common::spawn_with(db, config).await;
    app.account(OFFICER, "officer", None).await;
    let mut browser = signed_in(&app, OFFICER).await;
    ok_page(&mut browser, "/").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "idle too long");
    app.stop().await;

    let db = common::sqlite();
    let mut config = common::test_config(&db);
    config.session_lifetime = Duration::from_secs(2);
    let app = common::spawn_with(db, config).await;
    app.account(OFFICER, "officer", None).await;
    let mut browser = signed_in(&app, OFFICER).await;
    let cookie = browser.cookies["incubator_session"].clone();
    // Active all along, the session still ends at its absolute timeout.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let _ = browser.get("/").await;
    }
    browser.cookies.insert("incubator_session".into(), cookie);
    let page = browser.get("/").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "past the absolute timeout"
    );
    app.stop().await;
}

/// Every page template, rendered in French and English, with real data in it.
async fn every_page_renders_in_both_languages(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    // Something in every part of the region page: a document waiting for review, a cohort with its
    // calendar, a field, history.
    let uploaded = app
        .upload(
            &cast.council,
            ours,
            "council_backed",
            "délibération.pdf",
            "application/pdf",
            pdf("x"),
        )
        .await;
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let cohort = app
        .post(
            &cast.officer,
            "/api/v1/cohorts",
            &json!({"name": "Session 2022-1", "starts_on": "2022-03-01"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let assigned = app
        .put(
            &cast.officer,
            &format!("/api/v1/projects/{ours}/cohort"),
            &json!({"cohort_id": cohort["id"]}),
        )
        .await;
    assert_eq!(assigned.status(), StatusCode::OK);
    // A sponsor's signed link, on Bretagne's InterCERT-FR application.
    let application = app
        .post(
            &cast.officer,
            "/api/v1/projects",
            &json!({"region_code": "53", "workflow": "intercert-membership"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let link = app
        .post(
            &cast.officer,
            &format!("/api/v1/projects/{}/links", application["id"]),
            &json!({"email": "cert@parrain.example", "name": "CERT parrain", "role": "sponsor",
                    "requirement": "first_sponsor_letter"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let link_path = link["path"].as_str().unwrap().to_owned();

    let mut rendered = BTreeSet::new();
    for (lang, marker) in [("fr", "<html lang=\"fr\">"), ("en", "<html lang=\"en\">")] {
        let mut anonymous = Browser::new(&app);
        let login = ok_page(&mut anonymous, &format!("/login?lang={lang}")).await;
        assert!(login.body.contains(marker));
        rendered.insert("login");
        // The link page needs no account: the anonymous browser opens it.
        let sponsor = ok_page(&mut anonymous, &link_path).await;
        assert!(sponsor.body.contains(marker) && sponsor.body.contains("Bretagne"));
        assert!(sponsor.body.contains("enctype=\"multipart/form-data\""));
        rendered.insert("link");

        let mut officer = signed_in(&app, OFFICER).await;
        // The language chosen is remembered in a cookie.
        let switched = ok_page(&mut officer, &format!("/?lang={lang}")).await;
        assert!(
            switched
                .set_cookies()
                .iter()
                .any(|c| c.starts_with(&format!("lang={lang}")))
        );
        let dashboard = ok_page(&mut officer, "/").await;
        assert!(dashboard.body.contains(marker), "{lang}");
        assert!(dashboard.body.contains("id=\"tile-24\""));
        rendered.insert("dashboard");
        let region = ok_page(&mut officer, "/regions/24").await;
        assert!(region.body.contains(marker));
        assert!(region.body.contains("délibération.pdf"));
        assert!(region.body.contains("Session 2022-1"));
        assert!(region.body.contains("class=\"chart timeline\""));
        assert!(region.body.contains("class=\"chart calendar\""));
        rendered.insert("region");
        let empty = ok_page(&mut officer, "/regions/11").await;
        assert!(
            empty.body.contains("action=\"/regions/11/project\""),
            "{}",
            empty.body
        );
        let cohorts = ok_page(&mut officer, "/cohorts").await;
        assert!(cohorts.body.contains("Session 2022-1") && cohorts.body.contains(marker));
        rendered.insert("cohorts");
        let missing = officer.get("/regions/99").await;
        missing.assert_html(StatusCode::NOT_FOUND);
        assert!(missing.body.contains(marker));
        rendered.insert("error");

        let mut admin = signed_in(&app, ADMIN).await;
        let _ = admin.get(&format!("/?lang={lang}")).await;
        let accounts = ok_page(&mut admin, "/admin/accounts").await;
        assert!(accounts.body.contains(COUNCIL) && accounts.body.contains(marker));
        rendered.insert("accounts");
        let outbox = ok_page(&mut admin, "/admin/outbox").await;
        assert!(outbox.body.contains(marker));
        rendered.insert("outbox");
        ok_page(&mut admin, "/admin/outbox?status=dead").await;
        let workflows = ok_page(&mut admin, "/admin/workflows").await;
        assert!(workflows.body.contains(marker));
        rendered.insert("workflows");
    }
    let all: BTreeSet<&str> = incubator_server::pages::templates::page_names().collect();
    assert_eq!(
        rendered, all,
        "every page template is rendered by this test"
    );

    // The assets are served by the service itself, cached for good under a hashed name.
    let mut browser = Browser::new(&app);
    let login = browser.get("/login").await;
    let href = login
        .body
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let css = browser.get(&href).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(css.body.contains("--blue-france: #000091"));
    assert_eq!(
        browser.get("/assets/site.0000.css").await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// Council uploads, officer accepts and fires a transition, all through the pages' forms.
async fn a_region_moves_through_its_page(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    let mut council = signed_in(&app, COUNCIL).await;
    let page = ok_page(&mut council, "/regions/24").await;
    let token = page.csrf();
    let answer = council
        .upload(
            "/regions/24/documents",
            &[("csrf_token", &token), ("requirement", "council_backed")],
            "délibération.pdf",
            pdf("signed"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location(),
        Some("/regions/24?notice=document_uploaded")
    );
    // A file of a kind the requirement refuses: back to the page with the reason, nothing kept.
    let refused = council
        .upload(
            "/regions/24/documents",
            &[("csrf_token", &token), ("requirement", "council_backed")],
            "photo.png",
            common::png(),
        )
        .await;
    assert_eq!(refused.location(), Some("/regions/24?error=file_refused"));
    let shown = ok_page(&mut council, "/regions/24?error=file_refused").await;
    assert!(shown.body.contains("role=\"alert\""));
    let docs = documents(&app, &cast.officer, ours).await;
    assert_eq!(docs.len(), 1);
    let document = docs[0]["id"].as_i64().unwrap();
    // The council sees no review buttons; the officer does.
    let council_page = ok_page(&mut council, "/regions/24").await;
    assert!(!council_page.body.contains(&format!("accept-{document}")));

    let mut officer = signed_in(&app, OFFICER).await;
    let page = ok_page(&mut officer, "/regions/24").await;
    assert!(page.body.contains(&format!("id=\"accept-{document}\"")));
    let token = page.csrf();
    // A rejection needs a comment.
    let answer = officer
        .post(
            &format!("/documents/{document}/review"),
            &[("csrf_token", &token), ("decision", "rejected")],
        )
        .await;
    assert_eq!(
        answer.location(),
        Some("/regions/24?error=comment_required")
    );
    let answer = officer
        .post(
            &format!("/documents/{document}/review"),
            &[("csrf_token", &token), ("decision", "accepted")],
        )
        .await;
    assert_eq!(
        answer.location(),
        Some("/regions/24?notice=document_reviewed")
    );
    let project = app.project(&cast.officer, ours).await;
    let status = project["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "council_backed")
        .unwrap()["status"]
        .clone();
    assert_eq!(status, "accepted");

    // The transitions the officer may fire are buttons; the blocked one lists what is missing.
    let page = ok_page(&mut officer, "/regions/24").await;
    assert!(page.body.contains("id=\"fire-express_interest\""));
    let version = project["version"].as_i64().unwrap().to_string();
    let token = page.csrf();
    let fired = officer
        .post(
            "/regions/24/transitions",
            &[
                ("csrf_token", &token),
                ("transition", "express_interest"),
                ("expected_version", &version),
            ],
        )
        .await;
    assert_eq!(
        fired.location(),
        Some("/regions/24?notice=transition_fired")
    );
    // The same version again is stale: refused with a notice, nothing changed.
    let stale = officer
        .post(
            "/regions/24/transitions",
            &[
                ("csrf_token", &token),
                ("transition", "open_identification"),
                ("expected_version", &version),
            ],
        )
        .await;
    assert_eq!(stale.location(), Some("/regions/24?error=version_conflict"));
    assert_eq!(
        app.project(&cast.officer, ours).await["state"],
        "interest_expressed"
    );

    // Withdrawing needs its reason.
    let project = app.project(&cast.officer, ours).await;
    let version = project["version"].as_i64().unwrap().to_string();
    let no_reason = officer
        .post(
            "/regions/24/transitions",
            &[
                ("csrf_token", &token),
                ("transition", "withdraw"),
                ("expected_version", &version),
            ],
        )
        .await;
    assert_eq!(
        no_reason.location(),
        Some("/regions/24?error=comment_required")
    );

    // Fields: the officer records the legal form; an invalid amount changes nothing.
    let saved = officer
        .post(
            "/regions/24/fields",
            &[
                ("csrf_token", &token),
                ("legal_form", "GIP"),
                ("subsidy_amount_eur", ""),
            ],
        )
        .await;
    assert_eq!(saved.location(), Some("/regions/24?notice=fields_saved"));
    let bad = officer
        .post(
            "/regions/24/fields",
            &[
                ("csrf_token", &token),
                ("legal_form", "Association"),
                ("subsidy_amount_eur", "lots"),
            ],
        )
        .await;
    assert_eq!(bad.location(), Some("/regions/24?error=invalid"));
    assert_eq!(
        app.project(&cast.officer, ours).await["fields"],
        json!({"legal_form": "GIP"})
    );

    // The dashboard's map shows the region in its new stage, named for screen readers.
    let dashboard = ok_page(&mut officer, "/").await;
    assert!(
        dashboard
            .body
            .contains("aria-label=\"Centre-Val de Loire — Intérêt manifesté\""),
        "{}",
        dashboard.body
    );
    assert!(
        dashboard
            .body
            .contains("aria-label=\"Bretagne — Invitation envoyée\"")
    );
    assert!(
        dashboard
            .body
            .contains("aria-label=\"Corse — Aucun projet\"")
    );

    // Cohorts: created and joined through the sessions page.
    let cohorts = ok_page(&mut officer, "/cohorts").await;
    let token = cohorts.csrf();
    let created = officer
        .post(
            "/cohorts",
            &[
                ("csrf_token", &token),
                ("name", "Session 2023-1"),
                ("starts_on", "2023-01-16"),
            ],
        )
        .await;
    assert_eq!(created.location(), Some("/cohorts?notice=cohort_created"));
    let listed: Vec<Value> = app
        .get(&cast.officer, "/api/v1/cohorts")
        .await
        .json()
        .await
        .unwrap();
    let cohort = listed[0]["id"].as_i64().unwrap().to_string();
    let joined = officer
        .post(
            "/regions/24/cohort",
            &[
                ("csrf_token", &token),
                ("cohort_id", &cohort),
                ("back", "/cohorts"),
            ],
        )
        .await;
    assert_eq!(joined.location(), Some("/cohorts?notice=cohort_assigned"));
    let cohorts = ok_page(&mut officer, "/cohorts").await;
    assert!(cohorts.body.contains("href=\"/regions/24\""));
    // Its six-month calendar: from 16 January to 16 July 2023, with the mid-term review in April.
    assert!(cohorts.body.contains("16 juillet 2023"), "{}", cohorts.body);
    assert!(cohorts.body.contains("Revue à mi-parcours"));
    assert!(cohorts.body.contains("16 avril 2023"));
    app.stop().await;
}

/// A council account never sees another region: not on a page, not in an export, not in a feed.
async fn a_council_sees_only_its_region(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, theirs) = cast(&app).await;
    let other = app.account(OTHER_COUNCIL, "council", Some("53")).await;
    let theirs_doc = app
        .upload(
            &other,
            theirs,
            "council_backed",
            "bretagne-secret.pdf",
            "application/pdf",
            pdf("53"),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let cohort = app
        .post(
            &cast.officer,
            "/api/v1/cohorts",
            &json!({"name": "Session 2022-1", "starts_on": "2022-03-01"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    for project in [ours, theirs] {
        app.put(
            &cast.officer,
            &format!("/api/v1/projects/{project}/cohort"),
            &json!({"cohort_id": cohort["id"]}),
        )
        .await;
    }

    let mut council = signed_in(&app, COUNCIL).await;
    // Home is the region's page, not the national dashboard.
    let home = council.get("/").await;
    assert_eq!(home.location(), Some("/regions/24"));
    let page = ok_page(&mut council, "/regions/24").await;
    let forbidden_words = [
        "Bretagne",
        "bretagne-secret.pdf",
        OTHER_COUNCIL,
        "/regions/53",
    ];
    for word in forbidden_words {
        assert!(!page.body.contains(word), "{word} on the council's page");
    }
    for lang in ["en", "fr"] {
        let page = ok_page(&mut council, &format!("/regions/24?lang={lang}")).await;
        assert!(!page.body.contains("Bretagne"));
    }
    // Another region answers exactly as a region that does not exist.
    let theirs_page = council.get("/regions/53").await;
    theirs_page.assert_html(StatusCode::NOT_FOUND);
    let missing = council.get("/regions/99").await;
    // (The language switch links to the page itself.)
    assert_eq!(
        theirs_page.body.replace("/regions/53", "/regions/99"),
        missing.body
    );
    assert_eq!(
        council
            .get(&format!("/documents/{theirs_doc}/content"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // National pages are not the council's.
    for path in ["/cohorts", "/admin/accounts", "/admin/outbox"] {
        let page = council.get(path).await;
        page.assert_html(StatusCode::FORBIDDEN);
        assert!(!page.body.contains("Bretagne"), "{path}");
    }
    // The export holds its own region's row only.
    let csv = council.get("/exports/regions.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(lines[1].starts_with("24,Centre-Val de Loire,csirt-incubation,invited,"));
    assert!(!csv.body.contains("Bretagne"));
    // So does its calendar feed; the other region's feed does not exist for it.
    let feed = page
        .body
        .split("class=\"feed\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let path = feed.split_once("://").unwrap().1;
    let path = &path[path.find('/').unwrap()..];
    assert!(path.ends_with("/regions/24.ics"), "{path}");
    let calendar = council.get(path).await;
    assert_eq!(calendar.status, StatusCode::OK);
    assert!(calendar.body.starts_with("BEGIN:VCALENDAR\r\n"));
    assert!(
        calendar
            .body
            .contains("SUMMARY:Centre-Val de Loire — Réponse au courrier de l'ANSSI")
    );
    assert!(!calendar.body.contains("Bretagne"));
    let theirs_feed = path.replace("/regions/24.ics", "/regions/53.ics");
    assert_eq!(
        Browser::new(&app).get(&theirs_feed).await.status,
        StatusCode::NOT_FOUND
    );
    // Forms aimed at the other region change nothing there.
    let token = page.csrf();
    let before = app.fingerprint(&cast.officer, theirs).await;
    let version = app.project(&cast.officer, theirs).await["version"].to_string();
    let attempts = [
        council
            .post(
                "/regions/53/transitions",
                &[
                    ("csrf_token", token.as_str()),
                    ("transition", "express_interest"),
                    ("expected_version", version.as_str()),
                ],
            )
            .await,
        council
            .upload(
                "/regions/53/documents",
                &[("csrf_token", &token), ("requirement", "council_backed")],
                "x.pdf",
                pdf("intrusion"),
            )
            .await,
        council
            .post(
                &format!("/documents/{theirs_doc}/review"),
                &[("csrf_token", &token), ("decision", "accepted")],
            )
            .await,
        council
            .post(
                "/regions/53/fields",
                &[("csrf_token", &token), ("legal_form", "GIP")],
            )
            .await,
    ];
    for attempt in attempts {
        attempt.assert_html(StatusCode::NOT_FOUND);
    }
    assert_eq!(app.fingerprint(&cast.officer, theirs).await, before);

    // The officer's export and dashboard have every region.
    let mut officer = signed_in(&app, OFFICER).await;
    let csv = officer.get("/exports/regions.csv").await;
    assert_eq!(csv.body.lines().count(), 19, "18 regions and the header");
    assert!(csv.body.contains("53,Bretagne,csirt-incubation,invited,"));
    app.stop().await;
}

/// A form without its CSRF token (or with another session's, or from another site) is refused and
/// changes nothing; with it, the same form works.
async fn forms_without_their_token_change_nothing(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    let uploaded = app
        .upload(
            &cast.council,
            ours,
            "council_backed",
            "d.pdf",
            "application/pdf",
            pdf("d"),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let document = uploaded["id"].as_i64().unwrap();
    let mut officer = signed_in(&app, OFFICER).await;
    let page = ok_page(&mut officer, "/regions/24").await;
    let token = page.csrf();
    let mut other_session = signed_in(&app, OFFICER).await;
    let other_token = ok_page(&mut other_session, "/").await.csrf();
    assert_ne!(token, other_token, "one token per session");
    let version = app.project(&cast.officer, ours).await["version"].to_string();
    let before = app.fingerprint(&cast.officer, ours).await;
    let zeros = "0".repeat(64);
    let bad_tokens: [Option<&str>; 4] = [None, Some(""), Some(&other_token), Some(&zeros)];
    for bad in bad_tokens {
        let mut fields = vec![
            ("transition", "express_interest"),
            ("expected_version", version.as_str()),
        ];
        if let Some(t) = bad {
            fields.push(("csrf_token", t));
        }
        let refused = officer.post("/regions/24/transitions", &fields).await;
        refused.assert_html(StatusCode::FORBIDDEN);
        assert!(refused.body.contains("Formulaire refusé"));
    }
    // The right token from another site, or from a sandboxed page, is refused too.
    let cross_site: [&[(&'static str, &str)]; 3] = [
        &[("origin", "http://evil.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
    ];
    for headers in cross_site {
        let refused = officer
            .post_from(
                "/regions/24/transitions",
                headers,
                &[
                    ("csrf_token", &token),
                    ("transition", "express_interest"),
                    ("expected_version", &version),
                ],
            )
            .await;
        refused.assert_html(StatusCode::FORBIDDEN);
    }
    // Uploads, reviews, fields, cohorts, sign-out: refused alike.
    let upload = officer
        .upload(
            "/regions/24/documents",
            &[("requirement", "regional_perimeter")],
            "p.pdf",
            pdf("p"),
        )
        .await;
    upload.assert_html(StatusCode::FORBIDDEN);
    for (path, fields) in [
        (
            format!("/documents/{document}/review"),
            vec![("decision", "accepted")],
        ),
        ("/regions/24/fields".to_owned(), vec![("legal_form", "GIP")]),
        (
            "/cohorts".to_owned(),
            vec![("name", "S"), ("starts_on", "2023-01-01")],
        ),
        ("/logout".to_owned(), vec![]),
    ] {
        officer
            .post(&path, &fields)
            .await
            .assert_html(StatusCode::FORBIDDEN);
    }
    assert_eq!(
        app.fingerprint(&cast.officer, ours).await,
        before,
        "nothing changed"
    );
    assert!(
        app.get(&cast.officer, "/api/v1/cohorts")
            .await
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(session_rows(&app).await.len(), 2, "still signed in");

    // An admin form without its token leaves the account as it was.
    let mut admin = signed_in(&app, ADMIN).await;
    let refused = admin
        .post(&format!("/admin/accounts/{}/disable", cast.council.id), &[])
        .await;
    refused.assert_html(StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&cast.council, "/api/v1/me").await.status(),
        StatusCode::OK
    );

    // With its token, the very same form goes through: the refusals above were the token's doing.
    let fired = officer
        .post(
            "/regions/24/transitions",
            &[
                ("csrf_token", &token),
                ("transition", "express_interest"),
                ("expected_version", &version),
            ],
        )
        .await;
    assert_eq!(
        fired.location(),
        Some("/regions/24?notice=transition_fired")
    );
    assert_eq!(
        app.project(&cast.officer, ours).await["state"],
        "interest_expressed"
    );
    app.stop().await;
}

/// Admin pages: accounts created with a one-time password, disabled (ending their sessions and tokens at
/// once), passwords reset; the outbox listed and a dead mail retried.
async fn administration(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    let mut council = signed_in(&app, COUNCIL).await;
    ok_page(&mut council, "/regions/24").await;

    let mut officer = signed_in(&app, OFFICER).await;
    officer
        .get("/admin/accounts")
        .await
        .assert_html(StatusCode::FORBIDDEN);

    let mut admin = signed_in(&app, ADMIN).await;
    let page = ok_page(&mut admin, "/admin/accounts").await;
    let token = page.csrf();
    let created = admin
        .post(
            "/admin/accounts",
            &[
                ("csrf_token", &token),
                ("email", "new@grandest.example"),
                ("name", "Grand Est"),
                ("role", "council"),
                ("region", "44"),
                ("lang", "en"),
            ],
        )
        .await;
    created.assert_html(StatusCode::OK);
    let secret = created
        .body
        .split("id=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    assert_eq!(secret.len(), 20);
    let mut newcomer = Browser::new(&app);
    let answer = newcomer.sign_in("new@grandest.example", &secret).await;
    assert_eq!(answer.location(), Some("/regions/44"));
    // A council account without its region is refused.
    let refused = admin
        .post(
            "/admin/accounts",
            &[
                ("csrf_token", &token),
                ("email", "x@y.example"),
                ("name", "X"),
                ("role", "council"),
            ],
        )
        .await;
    assert_eq!(refused.location(), Some("/admin/accounts?error=invalid"));

    // Disabling ends the council's session and revokes its API token at once.
    let disabled = admin
        .post(
            &format!("/admin/accounts/{}/disable", cast.council.id),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(
        disabled.location(),
        Some("/admin/accounts?notice=account_disabled")
    );
    assert_eq!(
        council.get("/regions/24").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.get(&cast.council, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let again = Browser::new(&app).sign_in(COUNCIL, common::PASSWORD).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    admin
        .post(
            &format!("/admin/accounts/{}/enable", cast.council.id),
            &[("csrf_token", &token)],
        )
        .await;
    let mut council = signed_in(&app, COUNCIL).await;
    ok_page(&mut council, "/regions/24").await;

    // A reset password: shown once, the old one and the sessions gone.
    let reset = admin
        .post(
            &format!("/admin/accounts/{}/password", cast.council.id),
            &[("csrf_token", &token)],
        )
        .await;
    reset.assert_html(StatusCode::OK);
    assert!(reset.body.contains("id=\"secret\""));
    assert_eq!(
        council.get("/regions/24").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in(COUNCIL, common::PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // The outbox: the officer's mail of a transition is pending; once dead, the admin retries it.
    app.fire(&cast.officer, ours, "express_interest", None)
        .await;
    let outbox = ok_page(&mut admin, "/admin/outbox?status=pending").await;
    assert!(outbox.body.contains("stage_entered"), "{}", outbox.body);
    let rows = incubator_store::delivery::list(app.store.db(), None, None, 10)
        .await
        .unwrap();
    let row = rows.first().expect("an outbox row").id;
    let retry = admin
        .post(
            &format!("/admin/outbox/{row}/retry"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(
        retry.location(),
        Some("/admin/outbox?status=dead&error=not_retryable")
    );
    kill(&app, row).await;
    let dead = ok_page(&mut admin, "/admin/outbox?status=dead").await;
    assert!(
        dead.body
            .contains(&format!("action=\"/admin/outbox/{row}/retry\""))
    );
    let retry = admin
        .post(
            &format!("/admin/outbox/{row}/retry"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(
        retry.location(),
        Some("/admin/outbox?status=dead&notice=mail_retried")
    );
    let row = incubator_store::delivery::get(app.store.db(), row)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "pending");
    assert_eq!(row.attempts, 0);
    app.stop().await;
}

/// Marks an outbox row dead the way the mailer does after its last attempt.
async fn kill(app: &TestApp, id: i64) {
    let db = app.store.db();
    let now = chrono::Utc::now();
    let claimed =
        incubator_store::delivery::claim(db, "test", now, now + chrono::Duration::minutes(5), 100)
            .await
            .unwrap();
    assert!(claimed.iter().any(|r| r.id == id));
    assert!(
        incubator_store::delivery::mark_dead(db, id, "test", "550 no such user")
            .await
            .unwrap()
    );
}

/// A day `days` after today, as forms write days.
fn day_in(days: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::days(days))
        .date_naive()
        .to_string()
}

async fn a_correction_and_an_expiry_show_on_the_region_page(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    let mut council = signed_in(&app, COUNCIL).await;
    let page = ok_page(&mut council, "/regions/24").await;
    assert!(page.body.contains("name=\"expires_on\""));
    let token = page.csrf();
    let valid_until = day_in(60);
    let answer = council
        .upload(
            "/regions/24/documents",
            &[
                ("csrf_token", &token),
                ("requirement", "legal_status"),
                ("expires_on", &valid_until),
            ],
            "statuts.pdf",
            pdf("statuts"),
        )
        .await;
    assert_eq!(
        answer.location(),
        Some("/regions/24?notice=document_uploaded")
    );
    let document = documents(&app, &cast.officer, ours).await[0]["id"]
        .as_i64()
        .unwrap();

    let mut officer = signed_in(&app, OFFICER).await;
    let page = ok_page(&mut officer, "/regions/24").await;
    assert!(page.body.contains(&format!("id=\"correct-{document}\"")));
    assert!(page.body.contains("Demander une correction"));
    assert!(
        page.body
            .contains("<option value=\"outdated\">document périmé</option>")
    );
    let token = page.csrf();
    let review = format!("/documents/{document}/review");
    let due_on = day_in(14);
    let comment = "L'article 4 ne mentionne pas le périmètre régional.";
    // No due day, or no comment: back to the page, nothing asked.
    let answer = officer
        .post(
            &review,
            &[
                ("csrf_token", &token),
                ("decision", "correction_requested"),
                ("comment", comment),
                ("kind", "incorrect"),
            ],
        )
        .await;
    assert_eq!(answer.location(), Some("/regions/24?error=invalid"));
    let answer = officer
        .post(
            &review,
            &[
                ("csrf_token", &token),
                ("decision", "correction_requested"),
                ("kind", "incorrect"),
                ("due_on", &due_on),
            ],
        )
        .await;
    assert_eq!(
        answer.location(),
        Some("/regions/24?error=comment_required")
    );
    assert_eq!(
        documents(&app, &cast.officer, ours).await[0]["status"],
        "pending"
    );
    let answer = officer
        .post(
            &review,
            &[
                ("csrf_token", &token),
                ("decision", "correction_requested"),
                ("comment", comment),
                ("kind", "incorrect"),
                ("due_on", &due_on),
                ("pause_stage_clock", "on"),
            ],
        )
        .await;
    assert_eq!(
        answer.location(),
        Some("/regions/24?notice=correction_requested")
    );

    // The council sees what to correct and by when, in French then in English.
    let page = ok_page(&mut council, "/regions/24").await;
    let shown = page
        .body
        .split("id=\"correction-legal_status\"")
        .nth(1)
        .expect("the correction is shown");
    let shown = &shown[..shown.find("</div>").unwrap()];
    assert!(shown.contains("document inexact"), "{shown}");
    assert!(
        shown.contains("L&#x27;article 4") || shown.contains("L'article 4"),
        "{shown}"
    );
    assert!(shown.contains("suspendu"), "{shown}");
    assert!(page.body.contains("id=\"status-legal_status\">À corriger"));
    let page = ok_page(&mut council, "/regions/24?lang=en").await;
    assert!(page.body.contains("incorrect document"));
    assert!(page.body.contains("Correction requested"));

    // The new upload answers it; once accepted, the page says until when the evidence is valid.
    let token = page.csrf();
    council
        .upload(
            "/regions/24/documents",
            &[
                ("csrf_token", &token),
                ("requirement", "legal_status"),
                ("expires_on", &valid_until),
            ],
            "statuts-v2.pdf",
            pdf("statuts v2"),
        )
        .await;
    let answer_id = documents(&app, &cast.officer, ours).await[1]["id"]
        .as_i64()
        .unwrap();
    let page = ok_page(&mut officer, "/regions/24").await;
    assert!(!page.body.contains("id=\"correction-legal_status\""));
    let token = page.csrf();
    officer
        .post(
            &format!("/documents/{answer_id}/review"),
            &[("csrf_token", &token), ("decision", "accepted")],
        )
        .await;
    let page = ok_page(&mut council, "/regions/24?lang=fr").await;
    assert!(page.body.contains("id=\"expires-legal_status\""));
    assert!(page.body.contains("valable jusqu&#x27;au") || page.body.contains("valable jusqu'au"));
    assert!(page.body.contains("id=\"status-legal_status\">Acceptée"));
    app.stop().await;
}

/// The report section of a migration page, its heading (dry run or applied) left out.
fn report_of(page: &Page) -> String {
    let section = page
        .body
        .split("id=\"migration-report\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap_or_else(|| panic!("no migration report in {}", page.body));
    section
        .split_once("</h2>")
        .map(|(_, rest)| {
            rest.replace(
                "<p>Rien n&#x27;a été écrit. La migration réelle fera exactement ceci.</p>",
                "",
            )
        })
        .unwrap()
}

/// An admin migrates a project to a new version from the page: a dry run reports the state mapping and
/// every deadline recomputed and writes nothing; a mapping to a state the version lacks is refused with the
/// reason; the real run then does what the dry run reported, with one audit event. Officers and councils
/// are refused the page.
async fn projects_migrate_from_the_workflows_page(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    let v3 = std::fs::read_to_string(
        common::workflows_dir().join("../crates/engine/tests/fixtures/csirt-incubation-v2.yaml"),
    )
    .unwrap();
    app.store
        .deploy_workflow(&v3, "csirt-incubation-v2.yaml", chrono::Utc::now())
        .await
        .unwrap();
    for email in [OFFICER, COUNCIL] {
        let mut browser = signed_in(&app, email).await;
        browser
            .get("/admin/workflows")
            .await
            .assert_html(StatusCode::FORBIDDEN);
    }

    let mut admin = signed_in(&app, ADMIN).await;
    let page = ok_page(&mut admin, "/admin/workflows?lang=fr").await;
    assert!(page.body.contains("Versions des parcours"), "{}", page.body);
    assert!(page.body.contains(&format!("id=\"project-{ours}\"")));
    assert!(
        page.body
            .contains("<option value=\"3\" selected>v3</option>")
    );
    let token = page.csrf();
    let path = "/admin/workflows/csirt-incubation/migrations";
    let project = ours.to_string();
    let events = || async {
        let events: Value = app
            .get(&cast.officer, &format!("/api/v1/projects/{ours}/events"))
            .await
            .json()
            .await
            .unwrap();
        events.as_array().unwrap().len()
    };
    let before = events().await;

    let refused = admin
        .post(
            path,
            &[
                ("csrf_token", &token),
                ("to_version", "3"),
                ("project", &project),
                ("map", "invited=nowhere"),
                ("action", "apply"),
            ],
        )
        .await;
    refused.assert_html(StatusCode::OK);
    assert!(refused.body.contains("id=\"migration-refused\""));
    assert!(
        refused.body.contains("invited&#x3D;nowhere"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("id=\"migration-report\""));
    assert_eq!(events().await, before, "a refusal writes nothing");

    let form = [
        ("csrf_token", token.as_str()),
        ("to_version", "3"),
        ("project", project.as_str()),
        ("action", "dry_run"),
    ];
    let dry = admin.post(path, &form).await;
    dry.assert_html(StatusCode::OK);
    assert!(
        dry.body.contains(">Simulation — csirt-incubation v3<"),
        "{}",
        dry.body
    );
    assert!(dry.body.contains("Centre-Val de Loire"));
    assert!(dry.body.contains("<code>invited</code>"), "{}", dry.body);
    // The form keeps what was asked, for the real run.
    assert!(dry.body.contains(&format!("value=\"{ours}\" checked")));
    assert_eq!(events().await, before, "a dry run writes nothing");

    let mut applied_form = form;
    applied_form[3] = ("action", "apply");
    let applied = admin.post(path, &applied_form).await;
    applied.assert_html(StatusCode::OK);
    assert!(
        applied
            .body
            .contains(">Migration effectuée — csirt-incubation v3<")
    );
    assert_eq!(
        report_of(&applied),
        report_of(&dry),
        "the dry run is what happens"
    );
    assert_eq!(events().await, before + 1, "one audit event");
    let again = admin.post(path, &applied_form).await;
    assert!(
        again.body.contains("Déjà sur cette version"),
        "{}",
        again.body
    );

    // A form without a project says so and changes nothing.
    let empty = admin
        .post(path, &[("csrf_token", &token), ("to_version", "2")])
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

/// How a page route answered a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Let through: the page, the file, or the form's outcome (done, or refused on its merits).
    L,
    /// Unauthenticated: sent to the sign-in page.
    U,
    /// Forbidden to this role.
    F,
    /// Hidden: 404, exactly as if it did not exist.
    H,
    /// Anything else, which no rule expects.
    Other(u16),
}

impl Access {
    fn of(page: &Page) -> Self {
        match page.status {
            StatusCode::FORBIDDEN => Self::F,
            StatusCode::NOT_FOUND => Self::H,
            StatusCode::SEE_OTHER => match page.location() {
                Some(to) if to.starts_with("/login") => Self::U,
                Some(to) if to.contains("error=forbidden") => Self::F,
                _ => Self::L,
            },
            status if status.is_success() => Self::L,
            status => Self::Other(status.as_u16()),
        }
    }
}

/// Every page route (read from the router's own list, so a new page cannot escape) answers anonymous
/// visitors, the project's council, another region's council, an officer and an admin by its rule.
async fn every_page_route_answers_every_role_by_its_rule(db: TestDb) {
    use Access::{F, H, L, U};
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    app.account(OTHER_COUNCIL, "council", Some("53")).await;
    let victim = app.account("victim@anssi.example", "officer", None).await;
    app.account("spare@anssi.example", "officer", None).await;
    let mut council = signed_in(&app, COUNCIL).await;
    let page = ok_page(&mut council, "/regions/24").await;
    let uploaded = council
        .upload(
            "/regions/24/documents",
            &[
                ("csrf_token", &page.csrf()),
                ("requirement", "regional_perimeter"),
            ],
            "lettre.pdf",
            pdf("matrice"),
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::SEE_OTHER, "{}", uploaded.body);
    let document = documents(&app, &cast.officer, ours).await[0]["id"]
        .as_i64()
        .unwrap();
    let cohort = app
        .post(
            &cast.officer,
            "/api/v1/cohorts",
            &json!({"name": "Session 2022-1", "starts_on": "2022-07-04"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let project = ours.to_string();
    // An accepted document mails the council: a mail for the outbox routes.
    let accepted = app
        .post(
            &cast.officer,
            &format!("/api/v1/documents/{document}/review"),
            &json!({"decision": "accepted"}),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let targets = Targets {
        document: document.to_string(),
        account: victim.id,
        mail: first_mail(&app).await,
        officer: cast.officer.id,
        stylesheet: stylesheet_of(&app).await,
    };

    // [anonymous, the project's council, another region's council, officer, admin]
    let rules: Vec<(&str, [Access; 5])> = vec![
        ("GET /", [U, L, L, L, L]),
        ("GET /login", [L, L, L, L, L]),
        // Each caller signs in anew (the anonymous one as a spare account) and signs out.
        ("POST /login", [L, L, L, L, L]),
        ("POST /logout", [U, L, L, L, L]),
        ("GET /regions/{code}", [U, L, H, L, L]),
        ("POST /regions/{code}/project", [U, F, H, L, F]),
        ("POST /regions/{code}/transitions", [U, L, H, L, F]),
        ("POST /regions/{code}/fields", [U, L, H, L, F]),
        ("POST /regions/{code}/cohort", [U, F, H, L, F]),
        ("POST /regions/{code}/documents", [U, L, H, L, F]),
        ("POST /documents/{id}/review", [U, F, H, L, F]),
        ("GET /documents/{id}/content", [U, L, H, L, L]),
        ("GET /cohorts", [U, F, F, L, L]),
        ("POST /cohorts", [U, F, F, L, F]),
        ("GET /admin/accounts", [U, F, F, F, L]),
        ("POST /admin/accounts", [U, F, F, F, L]),
        ("POST /admin/accounts/{id}/disable", [U, F, F, F, L]),
        ("POST /admin/accounts/{id}/enable", [U, F, F, F, L]),
        ("POST /admin/accounts/{id}/password", [U, F, F, F, L]),
        ("GET /admin/outbox", [U, F, F, F, L]),
        ("POST /admin/outbox/{id}/retry", [U, F, F, F, L]),
        ("GET /admin/workflows", [U, F, F, F, L]),
        ("POST /admin/workflows/{id}/migrations", [U, F, F, F, L]),
        ("GET /exports/regions.csv", [U, L, L, L, L]),
        // The key in the address is the credential: a wrong one is unknown to everyone.
        ("GET /feeds/{user}/{key}/regions/{file}", [H, H, H, H, H]),
        ("GET /assets/{file}", [L, L, L, L, L]),
        // A forged link is unknown to everyone; real links are walked in child_workflows.rs.
        ("GET /links/{token}", [H, H, H, H, H]),
        ("POST /links/{token}", [H, H, H, H, H]),
    ];
    let served: BTreeSet<String> = incubator_server::pages::routes().collect();
    let ruled: BTreeSet<String> = rules.iter().map(|(route, _)| (*route).to_owned()).collect();
    assert_eq!(
        served, ruled,
        "every page route has its rule, and every rule its route"
    );

    let emails = ["", COUNCIL, OTHER_COUNCIL, OFFICER, ADMIN];
    let mut browsers = Vec::new();
    for email in emails {
        browsers.push(if email.is_empty() {
            Browser::new(&app)
        } else {
            signed_in(&app, email).await
        });
    }
    let mut tokens = Vec::new();
    for (column, browser) in browsers.iter_mut().enumerate() {
        let home = ["/login", "/regions/24", "/regions/53", "/", "/"][column];
        tokens.push(ok_page(browser, home).await.csrf());
    }
    // Requests that change state go in this order, so that each is still possible when it comes:
    // refusals first, then the project's council, then the officer.
    let order = [0, 2, 4, 1, 3];
    for (route, expected) in &rules {
        let (method, template) = route.split_once(' ').unwrap();
        let path = targets.path(template);
        for column in order {
            let version = app.project(&cast.officer, ours).await["version"]
                .as_i64()
                .unwrap()
                .to_string();
            let token = tokens[column].clone();
            let browser = &mut browsers[column];
            let fields: Vec<(&str, &str)> = match *route {
                "POST /regions/{code}/project" => vec![("workflow", "csirt-incubation")],
                "POST /regions/{code}/transitions" => {
                    vec![
                        ("transition", "express_interest"),
                        ("expected_version", &version),
                    ]
                }
                "POST /regions/{code}/fields" => vec![("carrier_name", "GIP Cybersécurité")],
                "POST /regions/{code}/cohort" => vec![("cohort_id", &cohort)],
                "POST /documents/{id}/review" => vec![("decision", "accepted")],
                "POST /cohorts" => vec![("name", "Session 2023-1"), ("starts_on", "2023-01-09")],
                "POST /admin/accounts" => vec![
                    ("email", "nouveau@anssi.example"),
                    ("name", "Nouveau"),
                    ("role", "officer"),
                ],
                "POST /admin/workflows/{id}/migrations" => vec![
                    ("to_version", "2"),
                    ("project", &project),
                    ("action", "dry_run"),
                ],
                "POST /links/{token}" => vec![("answer", "approve")],
                _ => Vec::new(),
            };
            let mut fields = fields;
            fields.push(("csrf_token", &token));
            let answer = match *route {
                "POST /login" => {
                    let email = if column == 0 {
                        "spare@anssi.example"
                    } else {
                        emails[column]
                    };
                    Browser::new(&app).sign_in(email, common::PASSWORD).await
                }
                "POST /logout" if column > 0 => {
                    let mut fresh = signed_in(&app, emails[column]).await;
                    let token = ok_page(
                        &mut fresh,
                        ["", "/regions/24", "/regions/53", "/", "/"][column],
                    )
                    .await
                    .csrf();
                    let out = fresh.post(&path, &[("csrf_token", &token)]).await;
                    // Signed out is the sign-in page: let through only if the session has ended.
                    let after = fresh.get("/").await;
                    assert_eq!(Access::of(&after), U, "{route}: the session outlived it");
                    let status = if out.location() == Some("/login") {
                        StatusCode::OK
                    } else {
                        out.status
                    };
                    Page { status, ..out }
                }
                "POST /regions/{code}/documents" => {
                    browser
                        .upload(
                            &path,
                            &[
                                ("csrf_token", &token),
                                ("requirement", "regional_perimeter"),
                            ],
                            "matrice.pdf",
                            pdf(&format!("matrice {column}")),
                        )
                        .await
                }
                _ if method == "GET" => browser.get(&path).await,
                _ => browser.post(&path, &fields).await,
            };
            assert_eq!(
                Access::of(&answer),
                expected[column],
                "{route} as {} answered {} (location {:?})",
                [
                    "anonymous",
                    "the project's council",
                    "another region's council",
                    "an officer",
                    "an admin"
                ][column],
                answer.status,
                answer.location()
            );
        }
    }
    app.stop().await;
}

/// The concrete address of a page route for the access and escaping tests: region 24, its document, an
/// account, a mail, a forged feed key and link.
struct Targets {
    document: String,
    account: i64,
    mail: i64,
    officer: i64,
    stylesheet: String,
}

impl Targets {
    fn path(&self, template: &str) -> String {
        let id = if template.starts_with("/documents/") {
            self.document.clone()
        } else if template.starts_with("/admin/accounts/") {
            self.account.to_string()
        } else if template.starts_with("/admin/workflows/") {
            "csirt-incubation".to_owned()
        } else {
            self.mail.to_string()
        };
        let file = if template.starts_with("/assets") {
            self.stylesheet.as_str()
        } else {
            "24.ics"
        };
        template
            .replace("{code}", "24")
            .replace("{id}", &id)
            .replace("{user}", &self.officer.to_string())
            .replace("{key}", "0123456789abcdef")
            .replace("{file}", file)
            .replace("{token}", "7.4102444800.forged")
    }
}

async fn first_mail(app: &TestApp) -> i64 {
    use sea_orm::ConnectionTrait;
    app.store
        .db()
        .query_one(sea_orm::Statement::from_string(
            app.store.db().get_database_backend(),
            "SELECT MIN(id) AS id FROM outbox",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap()
}

async fn stylesheet_of(app: &TestApp) -> String {
    Browser::new(app)
        .get("/login")
        .await
        .body
        .split("rel=\"stylesheet\" href=\"/assets/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

/// Text a user may type anywhere, written to break out of HTML text, attributes and scripts.
const HOSTILE: &str = "<script>alert('x')</script><img src=x onerror=alert(1)>\"'><b>gras</b>";

/// Every page (every GET route of the router's list, as every signed-in role, in both languages) shows
/// what users typed escaped: hostile text put in every field a user fills — a project field, a transition
/// comment, an uploaded file's name, a review comment, a session's name, an account's name — never comes out
/// as markup.
async fn hostile_text_is_escaped_on_every_page(db: TestDb) {
    let app = common::spawn(db).await;
    let (cast, ours, _) = cast(&app).await;
    let patched = app
        .send_json(
            reqwest::Method::PATCH,
            &cast.council,
            &format!("/api/v1/projects/{ours}/fields"),
            &json!({"carrier_name": HOSTILE}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let version = app.project(&cast.officer, ours).await["version"].clone();
    let fired = app
        .post(
            &cast.council,
            &format!("/api/v1/projects/{ours}/transitions"),
            &json!({"transition": "express_interest", "expected_version": version, "comment": HOSTILE}),
        )
        .await;
    assert_eq!(fired.status(), StatusCode::OK);
    let part = reqwest::multipart::Part::bytes(pdf("hostile"))
        .file_name(format!("{HOSTILE}.pdf"))
        .mime_str("application/pdf")
        .unwrap();
    let uploaded = app
        .http
        .post(app.url(&format!("/api/v1/projects/{ours}/documents")))
        .bearer_auth(&cast.council.token)
        .multipart(
            reqwest::multipart::Form::new()
                .text("requirement", "regional_perimeter")
                .part("file", part),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let document = uploaded.json::<Value>().await.unwrap()["id"].to_string();
    let reviewed = app
        .post(
            &cast.officer,
            &format!("/api/v1/documents/{document}/review"),
            &json!({"decision": "rejected", "comment": HOSTILE}),
        )
        .await;
    assert_eq!(reviewed.status(), StatusCode::OK);
    let cohort: Value = app
        .post(
            &cast.officer,
            "/api/v1/cohorts",
            &json!({"name": HOSTILE, "starts_on": "2022-07-04"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let assigned = app
        .send_json(
            reqwest::Method::PUT,
            &cast.officer,
            &format!("/api/v1/projects/{ours}/cohort"),
            &json!({"cohort_id": cohort["id"]}),
        )
        .await;
    assert_eq!(assigned.status(), StatusCode::OK);
    let mut admin = signed_in(&app, ADMIN).await;
    let token = ok_page(&mut admin, "/admin/accounts").await.csrf();
    let created = admin
        .post(
            "/admin/accounts",
            &[
                ("csrf_token", &token),
                ("email", "hostile@anssi.example"),
                ("name", HOSTILE),
                ("role", "officer"),
            ],
        )
        .await;
    created.assert_html(StatusCode::OK);

    let targets = Targets {
        document,
        account: cast.officer.id,
        mail: first_mail(&app).await,
        officer: cast.officer.id,
        stylesheet: stylesheet_of(&app).await,
    };
    let escaped = "&lt;script&gt;alert(";
    let mut seen_escaped = BTreeSet::new();
    let mut browsers = vec![
        signed_in(&app, COUNCIL).await,
        signed_in(&app, OFFICER).await,
        admin,
    ];
    for route in incubator_server::pages::routes() {
        let Some(template) = route.strip_prefix("GET ") else {
            continue;
        };
        let path = targets.path(template);
        for browser in &mut browsers {
            for lang in ["fr", "en"] {
                let page = browser.get(&format!("{path}?lang={lang}")).await;
                let html = page
                    .headers
                    .get("content-type")
                    .is_some_and(|t| t.to_str().unwrap_or_default().starts_with("text/html"));
                if !html {
                    continue;
                }
                for raw in [
                    "<script>alert",
                    "<img src=x",
                    "<b>gras</b>",
                    "onerror=alert(1)>",
                ] {
                    assert!(
                        !page.body.contains(raw),
                        "{path} ({lang}) lets `{raw}` through:\n{}",
                        page.body
                    );
                }
                if page.body.contains(escaped) {
                    seen_escaped.insert(template.to_owned());
                }
            }
        }
    }
    // The typed text was shown (escaped) where users look for it: the checks above had text to check.
    for template in ["/regions/{code}", "/cohorts", "/admin/accounts"] {
        assert!(
            seen_escaped.contains(template),
            "{template} never showed the typed text: {seen_escaped:?}"
        );
    }
    app.stop().await;
}

both_backends!(
    a_correction_and_an_expiry_show_on_the_region_page,
    sign_in_and_out,
    every_page_renders_in_both_languages,
    a_region_moves_through_its_page,
    a_council_sees_only_its_region,
    forms_without_their_token_change_nothing,
    administration,
    projects_migrate_from_the_workflows_page,
    every_page_route_answers_every_role_by_its_rule,
    hostile_text_is_escaped_on_every_page,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_and_at_their_absolute_timeout() {
    sessions_time_out(common::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_behind_https() {
    let db = common::sqlite();
    let mut config = common::test_config(&db);
    config.public_url = Some("https://incubator.example".into());
    let app = common::spawn_with(db, config).await;
    app.account(OFFICER, "officer", None).await;
    let mut browser = Browser::new(&app);
    let form = ok_page(&mut browser, "/login?lang=en").await;
    for cookie in form.set_cookies() {
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
    assert!(
        form.set_cookies()
            .iter()
            .any(|c| c.starts_with("__Host-incubator_login="))
    );
    let token = form.csrf();
    let answer = browser
        .post(
            "/login",
            &[
                ("email", OFFICER),
                ("password", PASSWORD),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let session = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-incubator_session="))
        .expect("a __Host- session cookie");
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly") && session.contains("Path=/")
    );
    let page = ok_page(&mut browser, "/").await;
    assert!(page.headers.contains_key("strict-transport-security"));
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    app.stop().await;
}
