//! Starts the real service on a free loopback port against a fresh database: a SQLite file in a temporary
//! folder, or a fresh PostgreSQL database on the server `TEST_DATABASE_URL` names (skipped loudly when unset).

#![allow(dead_code)] // Each test binary uses its own part of the helpers.

pub mod clamd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use incubator_server::{Application, LoginThrottleConfig, ServerConfig};
use incubator_store::DbConfig;
use incubator_store::users::{self, NewUser};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";
/// Small enough to send over in a test, large enough for every real fixture.
pub const TEST_UPLOAD_LIMIT: usize = 256 * 1024;

pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub config: DbConfig,
    pub backend: &'static str,
}

pub fn sqlite() -> TestDb {
    TestDb {
        dir: tempfile::tempdir().expect("tempdir"),
        config: DbConfig::default(),
        backend: "sqlite",
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh database on the PostgreSQL server, or `None` (said loudly) when `TEST_DATABASE_URL` is unset.
pub async fn postgres() -> Option<TestDb> {
    let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!(
            "SKIPPED: TEST_DATABASE_URL is not set, the PostgreSQL run of the API tests did not happen"
        );
        return None;
    };
    let name = format!(
        "incubator_api_{}_{}_{}",
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
        backend: "postgres",
    })
}

pub fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

/// The configuration tests run with: the real defaults but a free port, the repository's workflows, a
/// smaller upload limit and a quicker login throttle.
pub fn test_config(db: &TestDb) -> ServerConfig {
    let mut config = ServerConfig::new(db.dir.path());
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.db = db.config.clone();
    config.workflows_dir = Some(workflows_dir());
    config.max_upload_bytes = TEST_UPLOAD_LIMIT;
    config.login_throttle = LoginThrottleConfig {
        free_failures: 2,
        // Well above an argon2 check in a debug build, so that the waits are told apart from the hashing.
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(4),
        window: Duration::from_secs(60),
    };
    config
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub store: incubator_store::Store,
    /// The running service's state, for what only it knows (such as the login throttle's counts).
    pub state: incubator_server::app::AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn(db: TestDb) -> TestApp {
    let config = test_config(&db);
    spawn_with(db, config).await
}

pub async fn spawn_with(db: TestDb, config: ServerConfig) -> TestApp {
    let app = Application::build(config)
        .await
        .expect("build the application");
    let port = app.port();
    let store = app.state().store().clone();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        db,
        store,
        state,
        stop: Some(stop),
        server: Some(server),
    }
}

/// A logged-in account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an account the way `incubator user add` does, then logs in over HTTP.
    pub async fn account(&self, email: &str, role: &str, region: Option<&str>) -> Account {
        let password_hash = incubator_server::auth::hash_password(PASSWORD).expect("hash");
        let user = users::create(
            self.store.db(),
            NewUser {
                email: email.into(),
                name: email.into(),
                role: role.into(),
                region_code: region.map(Into::into),
                password_hash,
                lang: "fr".into(),
            },
            Utc::now(),
        )
        .await
        .expect("create account");
        let token = self.login(email, PASSWORD).await;
        Account { id: user.id, token }
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self.try_login(email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        response.json::<Value>().await.unwrap()["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn try_login(&self, email: &str, password: &str) -> Response {
        self.http
            .post(self.url("/api/v1/auth/token"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("send")
    }

    pub async fn get(&self, who: &Account, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&who.token)
            .send()
            .await
            .expect("send")
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        who: &Account,
        path: &str,
        body: &Value,
    ) -> Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&who.token)
            .json(body)
            .send()
            .await
            .expect("send")
    }

    pub async fn post(&self, who: &Account, path: &str, body: &Value) -> Response {
        self.send_json(reqwest::Method::POST, who, path, body).await
    }

    pub async fn patch(&self, who: &Account, path: &str, body: &Value) -> Response {
        self.send_json(reqwest::Method::PATCH, who, path, body)
            .await
    }

    pub async fn put(&self, who: &Account, path: &str, body: &Value) -> Response {
        self.send_json(reqwest::Method::PUT, who, path, body).await
    }

    /// A multipart upload with the given (claimed) file name and media type.
    pub async fn upload(
        &self,
        who: &Account,
        project: i64,
        requirement: &str,
        filename: &str,
        claimed_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_owned())
            .mime_str(claimed_type)
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("requirement", requirement.to_owned())
            .part("file", part);
        self.http
            .post(self.url(&format!("/api/v1/projects/{project}/documents")))
            .bearer_auth(&who.token)
            .multipart(form)
            .send()
            .await
            .expect("send")
    }

    /// The project as `who` sees it (asserting 200).
    pub async fn project(&self, who: &Account, id: i64) -> Value {
        let response = self.get(who, &format!("/api/v1/projects/{id}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn fire(
        &self,
        who: &Account,
        id: i64,
        transition: &str,
        comment: Option<&str>,
    ) -> Response {
        let version = self.project(who, id).await["version"].as_i64().unwrap();
        let body =
            json!({ "transition": transition, "expected_version": version, "comment": comment });
        self.post(who, &format!("/api/v1/projects/{id}/transitions"), &body)
            .await
    }

    /// Everything a refused request must leave as it was: the project as the officer sees it, its audit
    /// trail, its documents, and the evidence files on disk.
    pub async fn fingerprint(
        &self,
        officer: &Account,
        id: i64,
    ) -> (Value, Value, Value, Vec<PathBuf>) {
        let project = self.project(officer, id).await;
        let events = self
            .get(officer, &format!("/api/v1/projects/{id}/events"))
            .await
            .json()
            .await
            .unwrap();
        let documents = self
            .get(officer, &format!("/api/v1/projects/{id}/documents"))
            .await
            .json()
            .await
            .unwrap();
        (project, events, documents, self.evidence_files())
    }

    /// Every evidence file stored under the data directory.
    pub fn evidence_files(&self) -> Vec<PathBuf> {
        let root = self.db.dir.path().join("documents");
        let mut files = Vec::new();
        for shard in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                files.push(file.path());
            }
        }
        files.sort();
        files
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Stops the service and starts it again on the same database and files, with `change` made to its
    /// configuration (such as the programme's clock moved on); accounts and their tokens stay.
    pub async fn restart_with(mut self, change: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let db = std::mem::replace(&mut self.db, sqlite());
        self.stop().await;
        let mut config = test_config(&db);
        change(&mut config);
        spawn_with(db, config).await
    }
}

/// The JSON body of a response that must have succeeded.
pub async fn expect_ok(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(
        status.is_success(),
        "expected success, got {status}: {body}"
    );
    body
}

/// Reads a problem document, checking its media type and the RFC 9457 members.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(media, "application/problem+json");
    let body: Value = response.json().await.expect("problem JSON");
    assert!(
        body["type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("urn:csirt-incubator:problem:"),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16());
    body
}

/// A minimal but well-formed PDF.
pub fn pdf(text: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> \
         endobj\n% {text}\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

/// The 8-byte PNG signature and an IHDR chunk header: what recognition looks at.
pub fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    bytes.extend_from_slice(b"\x90wS\xde\0\0\0\0IEND\xaeB`\x82");
    bytes
}

/// An ELF executable header: what an attacker would rename `.pdf`.
pub fn elf() -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
    bytes.resize(4096, 0);
    bytes
}

/// A DOCX as Word writes it, reduced to the parts recognition needs.
pub fn docx() -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    out.start_file("[Content_Types].xml", options).unwrap();
    out.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>").unwrap();
    out.start_file("word/document.xml", options).unwrap();
    out.write_all(b"<w:document/>").unwrap();
    out.finish().unwrap().into_inner()
}

/// Runs each async test body against a SQLite file and, when `TEST_DATABASE_URL` is set, PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::postgres().await else { return };
                    super::$name(db).await;
                }
            )*
        }
    };
}
