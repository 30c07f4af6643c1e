//! SIGKILL in the middle of a stream of transitions: every acknowledged transition survives, none is
//! half-written, the audit chain verifies.
//!
//! The test re-runs its own binary as the writer (`CRASH_CHILD_DB` set), reads its acknowledgements from
//! stdout, kills it without warning and inspects the database the child left.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{at, deploy_anssi};
use incubator_engine::{Actor, FireRequest};
use incubator_store::projects::{CreateProject, FireTransition};
use incubator_store::{DbConfig, Store, audit, events, projects};

/// The transitions a project walks while nothing but its own fields is needed.
const WALK: [(&str, &str); 2] = [
    ("express_interest", "council"),
    ("open_identification", "officer"),
];
const REGIONS: [&str; 18] = [
    "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84",
    "93", "94",
];

/// The writer: creates projects and fires transitions concurrently, printing `ACK project seq` after each
/// commit, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(url) = std::env::var("CRASH_CHILD_DB") else {
        return;
    };
    let data_dir = std::env::var("CRASH_CHILD_DIR").expect("data dir");
    let config = DbConfig {
        url: Some(url),
        ..DbConfig::default()
    };
    let store = Store::open(&config, data_dir.as_ref()).await.expect("open");
    deploy_anssi(&store).await;
    let mut tasks = Vec::new();
    for region in REGIONS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = store
                .write(CreateProject {
                    registry: store.workflows().clone(),
                    region_code: region.into(),
                    workflow_id: "csirt-incubation".into(),
                    actor: Actor {
                        id: "user:1".into(),
                        roles: vec!["officer".into()],
                    },
                    now: at(2021, 3, 15),
                })
                .await
                .expect("create");
            println!("ACK {id} 1");
            for (transition, role) in WALK.iter().cycle().take(2) {
                let version = projects::find(store.db(), id).await.expect("find").version;
                let seq = store
                    .write(FireTransition {
                        registry: store.workflows().clone(),
                        project_id: id,
                        expected_version: version,
                        request: FireRequest {
                            transition: (*transition).into(),
                            comment: None,
                        },
                        actor: Actor {
                            id: "user:1".into(),
                            roles: vec![(*role).into()],
                        },
                        now: at(2021, 4, 1),
                    })
                    .await
                    .expect("fire");
                println!("ACK {id} {seq}");
            }
            // Then fields edits until killed: each one an event in the chain.
            loop {
                let patch = std::collections::BTreeMap::from([(
                    "carrier_name".to_owned(),
                    serde_json::json!(format!("carrier {}", chrono::Utc::now().timestamp_micros())),
                )]);
                let written = store
                    .write(incubator_store::fields::PatchFields {
                        registry: store.workflows().clone(),
                        project_id: id,
                        patch,
                        actor: "user:1".into(),
                        now: chrono::Utc::now(),
                    })
                    .await;
                match written {
                    Ok(seq) => println!("ACK {id} {seq}"),
                    // The parent sees fewer acknowledgements than it waits for, and says so.
                    Err(e) => {
                        eprintln!("writer stopped: {e}");
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
}

async fn crash_and_check(db: common::TestDb) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CRASH_CHILD_DB", db.url())
        .env("CRASH_CHILD_DIR", db.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked: Vec<(i64, i64)> = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (id, seq) = rest.split_once(' ').expect("ACK id seq");
            acked.push((id.parse().unwrap(), seq.parse().unwrap()));
            if acked.len() >= 400 {
                break;
            }
        }
    }
    // SIGKILL: no destructor, no flush, no goodbye.
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(
        acked.len() >= 400,
        "the writer acknowledged only {} writes",
        acked.len()
    );

    let store = db.store().await;
    let report = audit::verify(store.db()).await.expect("verify");
    assert_eq!(report.broken, None, "audit chain broken after the crash");
    for (id, seq) in &acked {
        let project = projects::find(store.db(), *id)
            .await
            .expect("acknowledged project present");
        assert!(
            project.last_event_seq >= *seq,
            "project {id}: acknowledged event {seq} lost"
        );
    }
    for project in projects::list(store.db(), &Default::default())
        .await
        .unwrap()
    {
        let history = events::list(store.db(), project.id).await.unwrap();
        assert_eq!(
            history.len() as i64,
            project.last_event_seq,
            "project {} half-written",
            project.id
        );
        assert_eq!(
            project.version, project.last_event_seq,
            "project {}: version and history disagree",
            project.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_sqlite() {
    crash_and_check(common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_postgres() {
    let Some(db) = common::postgres().await else {
        return;
    };
    crash_and_check(db).await;
}
