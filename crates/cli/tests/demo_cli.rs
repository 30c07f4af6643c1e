//! The README's first command, as a newcomer runs it: `incubator serve --demo` on embedded defaults, then a
//! scripted check signs in as the demo officer and finds all 18 regions at the stages the demo describes.

mod support;

use std::process::{Command, Stdio};

use incubator_demo::{DEFAULT_AS_OF, Programme, WORKFLOW_SOURCE};
use incubator_engine::Workflow;
use serde_json::{Value, json};
use support::{Service, ok_json};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Starts `incubator serve --demo` in a fresh folder (its `./data` is the embedded default).
fn serve_demo(cwd: &std::path::Path) -> Service {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incubator"));
    command
        .current_dir(cwd)
        .args(["serve", "--demo", "--bind", "127.0.0.1:0"])
        .arg("--workflows")
        .arg(format!("{ROOT}/workflows"))
        .arg("--templates")
        .arg(format!("{ROOT}/templates/email"))
        .env_remove("DATABASE_URL")
        .env_remove("SMTP_URL")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    Service::start(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_shows_every_region_at_its_demo_stage() {
    let cwd = tempfile::tempdir().unwrap();
    let service = serve_demo(cwd.path());
    let (url, printed) = (&service.url, &service.printed);
    assert!(
        printed.contains("officer@demo.csirt-incubator.fr"),
        "demo accounts printed:\n{printed}"
    );
    assert!(
        cwd.path().join("data/incubator.sqlite3").is_file(),
        "embedded SQLite file in ./data"
    );

    let http = reqwest::Client::new();
    let token: Value = ok_json(http.post(format!("{url}/api/v1/auth/token")).json(
        &json!({ "email": "officer@demo.csirt-incubator.fr", "password": "demo-officer-csirt" }),
    ))
    .await;
    let token = token["token"].as_str().unwrap();
    let regions: Value =
        ok_json(http.get(format!("{url}/api/v1/regions")).bearer_auth(token)).await;
    let regions = regions.as_array().unwrap();
    assert_eq!(regions.len(), 18);

    let programme = Programme::embedded().unwrap();
    let workflow = Workflow::from_yaml(WORKFLOW_SOURCE, "csirt-incubation.yaml").unwrap();
    let mut stages = std::collections::BTreeSet::new();
    for region in regions {
        let code = region["code"].as_str().unwrap();
        let expected = programme
            .region(code)
            .and_then(|r| r.state_as_of(&workflow, DEFAULT_AS_OF));
        assert_eq!(
            region["state"].as_str().map(str::to_owned),
            expected,
            "region {code}"
        );
        stages.insert(region["state"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        stages.len(),
        workflow.states().len(),
        "every stage shown at once: {stages:?}"
    );

    // Starting again on the same folder loads nothing twice.
    drop(service);
    let printed = serve_demo(cwd.path()).printed.clone();
    assert!(
        printed.contains(": 0 step(s) applied"),
        "second start re-applied the demo:\n{printed}"
    );
}
