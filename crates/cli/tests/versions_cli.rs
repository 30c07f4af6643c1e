//! `incubator workflow deploy` and `incubator workflow migrate`, run as an administrator would, on a SQLite
//! programme: deploy versions 1 and 2, refuse a changed file, migrate with a dry run then for real.

mod support;

use std::path::{Path, PathBuf};

use chrono::Utc;
use incubator_engine::Actor;
use incubator_store::projects::CreateProject;
use incubator_store::{DbConfig, Store, projects};
use support::{incubator, text};

fn workspace(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_then_migrate_with_a_dry_run_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let v1 = workspace("workflows/csirt-incubation.yaml");
    let v2 = workspace("crates/engine/tests/fixtures/csirt-incubation-v2.yaml");

    let out = incubator(data, &["workflow", "deploy", v1.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with(": csirt-incubation v2 created\n"),
        "{}",
        text(&out.stdout)
    );
    let store = Store::open(&DbConfig::default(), data).await.unwrap();
    let project = store
        .write(CreateProject {
            registry: store.workflows().clone(),
            region_code: "53".into(),
            workflow_id: "csirt-incubation".into(),
            actor: Actor {
                id: "user:1".into(),
                roles: vec!["officer".into()],
            },
            now: Utc::now(),
        })
        .await
        .unwrap();

    let out = incubator(
        data,
        &[
            "workflow",
            "deploy",
            v1.to_str().unwrap(),
            v2.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("csirt-incubation v2 unchanged"), "{stdout}");
    assert!(stdout.contains("csirt-incubation v3 created"), "{stdout}");

    // A changed file under a deployed version is refused, with what to do.
    let changed = data.join("changed.yaml");
    let source = std::fs::read_to_string(&v2).unwrap().replace("P9M", "P10M");
    std::fs::write(&changed, source).unwrap();
    let out = incubator(data, &["workflow", "deploy", changed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("immutable: raise `version` in the file"),
        "{}",
        text(&out.stderr)
    );

    let migrate = |extra: &[&str]| {
        let mut args = vec!["workflow", "migrate", "--workflow", "csirt-incubation"];
        args.extend_from_slice(&["--to", "3"]);
        args.extend_from_slice(extra);
        incubator(data, &args)
    };
    let out = migrate(&["--map", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("write OLD_STATE=NEW_STATE"),
        "{}",
        text(&out.stderr)
    );

    let dry = migrate(&["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let report = text(&dry.stdout);
    assert!(
        report.contains("1 project(s) (dry run, nothing written)"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "project {project} (region 53): v2 → v3, state invited → invited"
        )),
        "{report}"
    );
    assert!(
        report.contains("  requirements: +audit_report / -none"),
        "{report}"
    );
    assert!(
        report.contains("  fields: +audit_date / -carrier_name"),
        "{report}"
    );
    assert!(report.contains("  deadline invited: "), "{report}");
    assert!(report.contains("    reminder before:P30D: "), "{report}");
    let still = projects::find(store.db(), project).await.unwrap();
    assert_eq!(still.workflow_version, 2, "a dry run writes nothing");

    let json = migrate(&["--dry-run", "--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["projects"][0]["to_state"], "invited");
    assert_eq!(value["dry_run"], true);

    let real = migrate(&["--projects", &project.to_string()]);
    assert!(real.status.success(), "{}", text(&real.stderr));
    assert!(
        text(&real.stdout).contains("(applied)"),
        "{}",
        text(&real.stdout)
    );
    let moved = projects::find(store.db(), project).await.unwrap();
    assert_eq!(moved.workflow_version, 3);
    let verify = incubator(data, &["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}
