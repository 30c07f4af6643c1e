//! End to end, in a real browser: headless Chromium driven through chromedriver against the real server.
//! A council account signs in, sees only its region and uploads a document; an officer signs in, accepts
//! it and fires a transition; the dashboard's map shows the region in its new stage. Screenshots of the
//! dashboard and the region page are saved to `E2E_ARTIFACTS_DIR` (default `target/e2e-artifacts`), and
//! any error on the browser's console fails the test.
//!
//! Without Chromium the test is skipped loudly, except under CI (`CI` set), where it fails.

mod common;
mod e2e_support;

use common::{PASSWORD, pdf};
use e2e_support::{Driver, Session, artifacts_dir, browser_binaries};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Fails on any console error, naming the step it followed.
async fn assert_clean_console(browser: &Session, step: &str) {
    let errors: Vec<String> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e.level == "SEVERE")
        .map(|e| e.message)
        .collect();
    assert!(
        errors.is_empty(),
        "console errors after {step}: {errors:#?}"
    );
}

async fn sign_in(browser: &Session, base: &str, email: &str, password: &str) {
    browser.goto(&format!("{base}/login")).await;
    let field = browser.find("#email").await;
    browser.type_text(&field, email).await;
    let field = browser.find("#password").await;
    browser.type_text(&field, password).await;
    browser.click(&browser.find("#sign-in").await).await;
    // Only a signed-in page has the sign-out button: waiting for it keeps the next navigation from
    // racing the sign-in's own request.
    browser.find("#logout").await;
}

async fn sign_out(browser: &Session) {
    browser.click(&browser.find("#logout").await).await;
    browser.wait_for_url("/login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn council_uploads_officer_accepts_and_the_map_moves() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the end-to-end test: install Debian's chromium and chromium-driver"
        );
        eprintln!("SKIPPED: no chromium/chromedriver on PATH, the end-to-end test did not run");
        return;
    };
    let app = common::spawn(common::sqlite()).await;
    let officer = app.account("officer@anssi.example", "officer", None).await;
    app.account("csirt@centrevaldeloire.example", "council", Some("24"))
        .await;
    for region in ["24", "53"] {
        let created = app
            .post(
                &officer,
                "/api/v1/projects",
                &json!({"region_code": region, "workflow": "csirt-incubation"}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let evidence = tempfile::tempdir().expect("tempdir");
    let file = evidence.path().join("délibération-conseil-régional.pdf");
    std::fs::write(&file, pdf("deliberation")).expect("write the evidence");

    let driver = Driver::start(&chromedriver, &artifacts.join("chromedriver.log")).await;
    let browser = Session::new(&driver, &chromium).await;

    // The console is really watched: an error written to it is seen.
    browser.goto(&app.url("/login")).await;
    browser
        .execute("console.error('e2e self-check'); return true;")
        .await;
    let seen = browser.console().await;
    assert!(
        seen.iter()
            .any(|e| e.level == "SEVERE" && e.message.contains("e2e self-check")),
        "the console log is not captured: {seen:?}"
    );

    // The council signs in and lands on its own region, the only one it sees.
    sign_in(
        &browser,
        &app.base,
        "csirt@centrevaldeloire.example",
        PASSWORD,
    )
    .await;
    browser.wait_for_url("/regions/24").await;
    assert_clean_console(&browser, "the council's sign-in").await;
    let heading = browser.find("#region-name").await;
    assert_eq!(browser.text(&heading).await, "Centre-Val de Loire");
    let source = browser.source().await;
    assert!(
        !source.contains("Bretagne"),
        "the council sees another region"
    );
    browser.goto(&app.url("/")).await;
    browser.wait_for_url("/regions/24").await;

    // It uploads its council's deliberation.
    let requirement = browser
        .find("#requirement option[value='council_backed']")
        .await;
    browser.click(&requirement).await;
    let input = browser.find("#file").await;
    browser.type_text(&input, &file.display().to_string()).await;
    browser.click(&browser.find("#upload").await).await;
    browser.wait_for_url("notice=document_uploaded").await;
    assert_clean_console(&browser, "the upload").await;
    let status = browser.find("#status-council_backed").await;
    assert_eq!(browser.text(&status).await, "EN ATTENTE D'EXAMEN");
    sign_out(&browser).await;

    // The officer signs in to the national dashboard and opens the region.
    sign_in(&browser, &app.base, "officer@anssi.example", PASSWORD).await;
    assert_eq!(browser.current_url().await, format!("{}/", app.base));
    assert_clean_console(&browser, "the officer's sign-in").await;
    browser.goto(&app.url("/regions/24")).await;
    let accept = browser.find("button[id^='accept-']").await;
    browser.click(&accept).await;
    browser.wait_for_url("notice=document_reviewed").await;
    let status = browser.find("#status-council_backed").await;
    assert_eq!(browser.text(&status).await, "ACCEPTÉE");

    // It fires the transition the council's answer calls for.
    browser
        .click(&browser.find("#fire-express_interest").await)
        .await;
    browser.wait_for_url("notice=transition_fired").await;
    let stage = browser.find("#stage").await;
    assert_eq!(browser.text(&stage).await, "Intérêt manifesté");
    assert_clean_console(&browser, "the review and the transition").await;
    browser.screenshot(&artifacts.join("region.png")).await;

    // The dashboard's map shows the region in its new stage.
    browser.goto(&app.url("/")).await;
    let tile = browser.find("#tile-24").await;
    assert_eq!(
        browser.attribute(&tile, "aria-label").await.as_deref(),
        Some("Centre-Val de Loire — Intérêt manifesté")
    );
    assert_eq!(
        browser.attribute(&tile, "data-stage").await.as_deref(),
        Some("p1")
    );
    let other = browser.find("#tile-53").await;
    assert_eq!(
        browser.attribute(&other, "data-stage").await.as_deref(),
        Some("p0")
    );
    // The tile's colour is the stage's, from our own stylesheet.
    let fill = browser
        .execute("return getComputedStyle(document.querySelector('#tile-24 rect')).fill;")
        .await;
    assert_eq!(fill, Value::String("rgb(227, 227, 253)".into()));
    assert_clean_console(&browser, "the dashboard").await;
    browser.screenshot(&artifacts.join("dashboard.png")).await;

    // The English switch.
    browser.goto(&app.url("/?lang=en")).await;
    let tile = browser.find("#tile-24").await;
    assert_eq!(
        browser.attribute(&tile, "aria-label").await.as_deref(),
        Some("Centre-Val de Loire — Interest expressed")
    );
    let lang = browser
        .execute("return document.documentElement.lang;")
        .await;
    assert_eq!(lang, Value::String("en".into()));
    assert_clean_console(&browser, "the English dashboard").await;

    browser.close().await;
    driver.stop().await;
    app.stop().await;
    for name in ["dashboard.png", "region.png"] {
        let bytes = std::fs::read(artifacts.join(name)).expect("screenshot saved");
        assert!(bytes.len() > 10_000, "{name} is suspiciously small");
    }
}

/// Screenshots of a server already running (e.g. `incubator serve --demo`), for the README:
/// `E2E_BASE_URL=http://127.0.0.1:8080 E2E_EMAIL=… E2E_PASSWORD=… cargo test -p incubator-server --test e2e
/// -- --ignored`. Saves `dashboard.png` (and `region-<code>.png` when `E2E_REGION` is set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running server: set E2E_BASE_URL, E2E_EMAIL and E2E_PASSWORD"]
async fn screenshot_a_running_server() {
    let base = std::env::var("E2E_BASE_URL").expect("E2E_BASE_URL");
    let email = std::env::var("E2E_EMAIL").expect("E2E_EMAIL");
    let password = std::env::var("E2E_PASSWORD").expect("E2E_PASSWORD");
    let (chromium, chromedriver) = browser_binaries().expect("chromium and chromedriver");
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let driver = Driver::start(&chromedriver, &artifacts.join("chromedriver.log")).await;
    let browser = Session::new(&driver, &chromium).await;
    sign_in(&browser, &base, &email, &password).await;
    browser.goto(&format!("{base}/")).await;
    browser.find("#map").await;
    assert_clean_console(&browser, "the dashboard").await;
    browser.screenshot(&artifacts.join("dashboard.png")).await;
    if let Ok(code) = std::env::var("E2E_REGION") {
        browser.goto(&format!("{base}/regions/{code}")).await;
        assert_clean_console(&browser, "the region page").await;
        browser
            .screenshot(&artifacts.join(format!("region-{code}.png")))
            .await;
    }
    browser.close().await;
    driver.stop().await;
}
