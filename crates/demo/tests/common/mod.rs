//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database on the server `TEST_DATABASE_URL`
//! names, so runs never collide.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use incubator_store::{DbConfig, Store};

pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub config: DbConfig,
}

impl TestDb {
    pub async fn store(&self) -> Store {
        Store::open(&self.config, self.dir.path())
            .await
            .expect("open store")
    }
}

pub async fn sqlite() -> TestDb {
    TestDb {
        dir: tempfile::tempdir().expect("tempdir"),
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
        "incubator_demo_t_{}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let url = incubator_store::db::create_postgres_database(&server, &name)
        .await
        .expect("create a test database on TEST_DATABASE_URL");
    Some(TestDb {
        dir: tempfile::tempdir().expect("tempdir"),
        config: DbConfig {
            url: Some(url),
            ..DbConfig::default()
        },
    })
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
