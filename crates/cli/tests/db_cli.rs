//! The database commands of `incubator`, run as a person would: migrate, audit verify (clean, then
//! tampered), export and import into an empty database, and accounts added under the password policy.

mod support;

use std::path::Path;

use chrono::Utc;
use incubator_engine::{Actor, FireRequest};
use incubator_store::projects::{CreateProject, FireTransition};
use incubator_store::{DbConfig, Store};
use sea_orm::ConnectionTrait;
use support::{incubator, text};

/// A SQLite programme with two projects and a few events, written through the store.
async fn programme(data_dir: &Path) -> Store {
    let store = Store::open(&DbConfig::default(), data_dir)
        .await
        .expect("open");
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../workflows/csirt-incubation.yaml"
    ))
    .expect("workflow");
    store
        .deploy_workflow(&source, "csirt-incubation.yaml", Utc::now())
        .await
        .expect("deploy");
    let officer = Actor {
        id: "user:1".into(),
        roles: vec!["officer".into()],
    };
    for region in ["53", "75"] {
        let id = store
            .write(CreateProject {
                registry: store.workflows().clone(),
                region_code: region.into(),
                workflow_id: "csirt-incubation".into(),
                actor: officer.clone(),
                now: Utc::now(),
            })
            .await
            .expect("create");
        store
            .write(FireTransition {
                registry: store.workflows().clone(),
                project_id: id,
                expected_version: 1,
                request: FireRequest {
                    transition: "express_interest".into(),
                    comment: Some("oui".into()),
                },
                actor: officer.clone(),
                now: Utc::now(),
            })
            .await
            .expect("fire");
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_then_names_the_tampered_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = programme(dir.path()).await;

    let clean = incubator(dir.path(), &["audit", "verify"]);
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    assert!(
        text(&clean.stdout).contains("2 project(s), 4 event(s)"),
        "{}",
        text(&clean.stdout)
    );

    store
        .db()
        .execute_unprepared(
            "UPDATE events SET actor = 'someone else' WHERE project_id = 2 AND seq = 2",
        )
        .await
        .unwrap();
    let tampered = incubator(dir.path(), &["audit", "verify"]);
    assert_eq!(tampered.status.code(), Some(1));
    let message = text(&tampered.stderr);
    assert!(message.contains("project 2 event #2"), "{message}");
    assert!(
        message.contains("content does not match its hash"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_through_the_cli() {
    let source = tempfile::tempdir().unwrap();
    programme(source.path()).await;
    let file = source.path().join("backup.json");
    let export = incubator(
        source.path(),
        &["export", "--output", file.to_str().unwrap()],
    );
    assert!(export.status.success(), "{}", text(&export.stderr));

    let target = tempfile::tempdir().unwrap();
    let import = incubator(target.path(), &["import", file.to_str().unwrap()]);
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert!(text(&import.stdout).contains("imported 2 project(s) and 4 event(s)"));
    let again = target.path().join("again.json");
    assert!(
        incubator(target.path(), &["export", "-o", again.to_str().unwrap()])
            .status
            .success()
    );
    let strip = |path: &Path| {
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        value.as_object_mut().unwrap().remove("exported_at");
        value
    };
    assert_eq!(
        strip(&file),
        strip(&again),
        "the round trip changed the data"
    );
    let verify = incubator(target.path(), &["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));

    // A second import into the now non-empty database is refused and changes nothing.
    let twice = incubator(target.path(), &["import", file.to_str().unwrap()]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(
        text(&twice.stderr).contains("not empty"),
        "{}",
        text(&twice.stderr)
    );

    // A file that is not an export names where it went wrong.
    let junk = target.path().join("junk.json");
    std::fs::write(&junk, "{\"format\": 3,\n  oops}").unwrap();
    let bad = incubator(target.path(), &["import", junk.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("junk.json:"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn db_migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = incubator(dir.path(), &["db", "migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sqlite"));
    assert!(dir.path().join("incubator.sqlite3").is_file());
}

/// `user add` refuses a weak password with the reason, and creates no account; a passphrase passes.
#[test]
fn user_add_applies_the_password_policy() {
    let dir = tempfile::tempdir().unwrap();
    let add = |password: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_incubator"))
            .args(["--data-dir"])
            .arg(dir.path())
            .args([
                "user",
                "add",
                "--email",
                "rssi@bretagne.example",
                "--name",
                "RSSI",
                "--role",
                "officer",
                "--password-stdin",
            ])
            .env_remove("DATABASE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run incubator user add");
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    for (weak, why) in [
        ("trop court", "at least 12 characters"),
        ("1qaz2wsx3edc", "most common passwords"),
        ("bretagnerssi", "too easy to guess"),
    ] {
        let out = add(weak);
        assert!(!out.status.success(), "{weak} accepted");
        assert!(
            text(&out.stderr).contains(why),
            "{weak}: {}",
            text(&out.stderr)
        );
    }
    let out = add("embruns sur la pointe du raz");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("account 1 created"),
        "{}",
        text(&out.stdout)
    );
}
