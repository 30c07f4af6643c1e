//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database on the server `TEST_DATABASE_URL`
//! names, so runs never collide.

#![allow(dead_code)] // Each test binary uses its own part of the helpers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use incubator_store::{DbConfig, Store};

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

pub async fn deploy_anssi(store: &Store) {
    let source = std::fs::read_to_string(ANSSI_WORKFLOW).expect("read workflow");
    store
        .deploy_workflow(&source, ANSSI_WORKFLOW, at(2021, 3, 1))
        .await
        .expect("deploy");
}

pub fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
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
