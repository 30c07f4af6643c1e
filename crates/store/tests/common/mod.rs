//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database on the server `TEST_DATABASE_URL`
//! names, so runs never collide.

#![allow(dead_code)] // Each test binary uses its own part of the helpers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;

use incubator_engine::{Actor, FireRequest, RequirementStatus};
use incubator_store::documents::{RecordDocument, ReviewDecision, ReviewDocument};
use incubator_store::entities::documents;
use incubator_store::fields::PatchFields;
use incubator_store::projects::{CreateProject, FireTransition};
use incubator_store::{DbConfig, Store, StoreError, projects};
use serde_json::json;

pub const ANSSI_WORKFLOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../workflows/csirt-incubation.yaml"
);

pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub config: DbConfig,
}

impl TestDb {
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.config, self.dir.path())
            .await
            .expect("open store")
    }

    pub fn url(&self) -> String {
        self.config.resolve_url(self.dir.path())
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    TestDb {
        dir,
        config: DbConfig::default(),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh database on the PostgreSQL server, or `None` (said loudly) when `TEST_DATABASE_URL` is unset.
pub async fn postgres() -> Option<TestDb> {
    let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: TEST_DATABASE_URL is not set, PostgreSQL tests did not run");
        return None;
    };
    let name = format!(
        "incubator_t_{}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let url = incubator_store::db::create_postgres_database(&server, &name)
        .await
        .expect("create a test database on TEST_DATABASE_URL");
    let dir = tempfile::tempdir().expect("tempdir");
    Some(TestDb {
        dir,
        config: DbConfig {
            url: Some(url),
            ..DbConfig::default()
        },
    })
}

pub fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 10, 0, 0)
        .single()
        .expect("valid date")
}

/// The InterCERT-FR membership application, which the ANSSI workflow's `networking` stage starts.
pub const INTERCERT_WORKFLOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../workflows/intercert-membership.yaml"
);

/// Deploys the ANSSI workflow and the child workflow it starts.
pub async fn deploy_anssi(store: &Store) {
    for file in [ANSSI_WORKFLOW, INTERCERT_WORKFLOW] {
        let source = std::fs::read_to_string(file).expect("read workflow");
        store
            .deploy_workflow(&source, file, at(2021, 3, 1))
            .await
            .expect("deploy");
    }
}

pub fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

pub fn officer() -> Actor {
    Actor {
        id: "user:1".into(),
        roles: vec!["officer".into()],
    }
}

pub fn council() -> Actor {
    Actor {
        id: "user:2".into(),
        roles: vec!["council".into()],
    }
}

pub async fn create(store: &Store, region: &str) -> i64 {
    store
        .write(CreateProject {
            registry: store.workflows().clone(),
            region_code: region.into(),
            workflow_id: "csirt-incubation".into(),
            actor: officer(),
            now: at(2021, 3, 15),
        })
        .await
        .expect("create project")
}

pub async fn fire(
    store: &Store,
    id: i64,
    transition: &str,
    actor: Actor,
    comment: Option<&str>,
) -> Result<i64, StoreError> {
    let version = projects::find(store.db(), id).await?.version;
    store
        .write(FireTransition {
            registry: store.workflows().clone(),
            project_id: id,
            expected_version: version,
            request: FireRequest {
                transition: transition.into(),
                comment: comment.map(Into::into),
            },
            actor,
            now: at(2021, 4, 1),
        })
        .await
}

/// Records a PDF saying `text` as evidence for `requirement`, uploaded by the council on 2021-05-01.
pub async fn upload(store: &Store, id: i64, requirement: &str, text: &str) -> documents::Model {
    let bytes = format!("%PDF-1.7 {text}").into_bytes();
    let size = bytes.len() as i64;
    let sha256 = store.blobs().put(bytes).await.expect("store bytes");
    store
        .write(RecordDocument {
            registry: store.workflows().clone(),
            project_id: id,
            requirement: requirement.into(),
            filename: format!("{requirement}.pdf"),
            media_type: "application/pdf".into(),
            size,
            sha256,
            expires_on: None,
            awaits_scan: false,
            actor: "user:2".into(),
            now: at(2021, 5, 1),
        })
        .await
        .expect("record document")
}

pub async fn upload_and_accept(store: &Store, id: i64, requirement: &str) {
    let doc = upload(
        store,
        id,
        requirement,
        &format!("evidence for {requirement}"),
    )
    .await;
    let status = store
        .write(ReviewDocument {
            registry: store.workflows().clone(),
            project_id: doc.project_id,
            document_id: doc.id,
            decision: ReviewDecision::Accepted,
            comment: None,
            actor: "user:1".into(),
            now: at(2021, 5, 2),
        })
        .await
        .expect("review");
    assert_eq!(status, RequirementStatus::Accepted);
}

pub const ELIGIBILITY: [&str; 7] = [
    "council_backed",
    "regional_perimeter",
    "minimum_services",
    "legal_status",
    "own_staff",
    "autonomous_accounting",
    "intercert_commitment",
];

/// Drives a project from `invited` to `awaiting_incubation`: interest, identification, the seven criteria
/// accepted, retained, legal structure recorded, subsidy granted.
pub async fn drive_to_awaiting_incubation(store: &Store, id: i64) {
    fire(store, id, "express_interest", council(), None)
        .await
        .expect("express interest");
    fire(store, id, "open_identification", officer(), None)
        .await
        .expect("open identification");
    for key in ELIGIBILITY {
        upload_and_accept(store, id, key).await;
    }
    fire(store, id, "retain_project", officer(), None)
        .await
        .expect("retain");
    patch(store, id, "legal_form", json!("GIP")).await;
    upload_and_accept(store, id, "registration_proof").await;
    fire(store, id, "record_legal_structure", officer(), None)
        .await
        .expect("legal structure");
    patch(store, id, "subsidy_amount_eur", json!(1_000_000)).await;
    upload_and_accept(store, id, "grant_agreement").await;
    fire(store, id, "grant_subsidy", officer(), None)
        .await
        .expect("subsidy");
}

pub async fn patch(store: &Store, id: i64, key: &str, value: serde_json::Value) {
    store
        .write(PatchFields {
            registry: store.workflows().clone(),
            project_id: id,
            patch: BTreeMap::from([(key.to_owned(), value)]),
            actor: "user:1".into(),
            now: at(2021, 6, 1),
        })
        .await
        .expect("patch");
}

/// Runs the same async test body against SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}
