//! Running the real `incubator` program from tests: a service started on port 0, and accounts added the way
//! an operator adds them.

#![allow(dead_code)] // Each test binary uses its own part of the helpers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use incubator_store::entities::{events, outbox, projects};
use sea_orm::{DatabaseConnection, EntityTrait};

/// An `incubator serve` process, killed however the test ends.
pub struct Service {
    child: Child,
    /// Where it listens, as it printed it (`http://127.0.0.1:PORT`).
    pub url: String,
    /// What it printed before that line.
    pub printed: String,
}

impl Service {
    /// Starts `command` (an `incubator … serve --bind 127.0.0.1:0 …`) and waits until it says where it listens.
    pub fn start(mut command: Command) -> Service {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start incubator serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut printed = String::new();
        let mut service = Service {
            child,
            url: String::new(),
            printed: String::new(),
        };
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.split("listening on ").nth(1) {
                service.url = rest.trim().trim_end_matches('/').to_owned();
                service.printed = printed;
                // Keep reading, so that the service never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return service;
            }
            printed.push_str(&line);
            printed.push('\n');
        }
        panic!("the service never said where it listens:\n{printed}");
    }

    /// SIGKILL: no graceful shutdown, whatever was in flight is cut.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `incubator … user add` through `command` (the program with its database settings), the password on
/// standard input.
pub fn add_user(
    mut command: Command,
    (email, password): (&str, &str),
    role: &str,
    region: Option<&str>,
) {
    command.args([
        "user", "add", "--email", email, "--name", email, "--role", role,
    ]);
    if let Some(region) = region {
        command.args(["--region", region]);
    }
    let mut child = command
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run incubator user add");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
    assert!(child.wait().expect("wait").success(), "user add {email}");
}

/// Sends `request` and returns its JSON body, failing the test on any error status.
pub async fn ok_json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .send()
        .await
        .expect("send the request")
        .error_for_status()
        .expect("a success status")
        .json()
        .await
        .expect("a JSON body")
}

/// Runs `incubator ARGS --data-dir DATA_DIR` on the embedded SQLite file there, never a database of the
/// environment's, and returns what it printed.
pub fn incubator(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incubator"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run incubator")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Where a test's service keeps its record: the data folder's SQLite file, or a fresh PostgreSQL database
/// of `TEST_DATABASE_URL`. The data folder (evidence files) is the test's in both cases.
pub struct Backend {
    pub database_url: Option<String>,
    pub data: tempfile::TempDir,
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend {
            database_url: None,
            data: tempfile::tempdir().expect("data folder"),
        }
    }

    /// A fresh database named after `test`; `None`, said loudly, when `TEST_DATABASE_URL` is not set.
    pub async fn postgres(test: &str) -> Option<Backend> {
        let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("SKIPPED: TEST_DATABASE_URL is not set: {test} needs PostgreSQL");
            return None;
        };
        let name = format!(
            "incubator_t_{test}_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let url = incubator_store::db::create_postgres_database(&server, &name)
            .await
            .expect("a fresh database on TEST_DATABASE_URL");
        Some(Backend {
            database_url: Some(url),
            data: tempfile::tempdir().expect("data folder"),
        })
    }

    /// The program on this database and data folder, never on a database of the environment's.
    pub fn incubator(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_incubator"));
        command.arg("--data-dir").arg(self.data.path());
        match &self.database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        command
    }

    /// The database as the test reads it, beside the service.
    pub fn url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rw",
                self.data.path().join("incubator.sqlite3").display()
            )
        })
    }

    /// `incubator serve` on port 0 with the workflows of `workflows`, the shipped templates, mail to
    /// `smtp_url` polled often, retried soon and leased briefly (a killed process's mails come back within
    /// seconds), and the scheduler passing every second; `extra` settings (`INCUBATOR_…` variables) on top.
    pub fn serve(&self, workflows: &Path, smtp_url: &str, extra: &[(&str, &str)]) -> Service {
        let mut command = self.incubator();
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .arg("--workflows")
            .arg(workflows)
            .arg("--templates")
            .arg(format!("{ROOT}/templates/email"))
            .env("SMTP_URL", smtp_url)
            .env("MAIL_FROM", "Incubateur CSIRT <incubateur@tests.example>")
            .env("INCUBATOR_MAIL__LEASE", "6s")
            .env("INCUBATOR_MAIL__SMTP_TIMEOUT", "1s")
            .env("INCUBATOR_MAIL__POLL_INTERVAL", "100ms")
            .env("INCUBATOR_MAIL__BACKOFF_BASE", "100ms")
            .env("INCUBATOR_MAIL__BACKOFF_CAP", "1s")
            .env("INCUBATOR_MAIL__SCHEDULER_INTERVAL", "1s")
            .env("RUST_LOG", "error")
            .stderr(Stdio::inherit());
        for (key, value) in extra {
            command.env(key, value);
        }
        Service::start(command)
    }

    /// `incubator audit verify`, failing the test unless the chain verifies.
    pub fn audit_verify(&self) {
        let verified = self
            .incubator()
            .args(["audit", "verify"])
            .output()
            .expect("run incubator audit verify");
        assert!(
            verified.status.success(),
            "audit verify: {}{}",
            text(&verified.stdout),
            text(&verified.stderr)
        );
    }
}

/// A folder of workflow definitions: the fixture `file` (in `tests/fixtures`) once per id of `ids`, its
/// `id:` line rewritten.
pub fn workflows_folder(file: &str, ids: &[String]) -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("workflows folder");
    let source = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("read the fixture");
    let original = source
        .lines()
        .find(|line| line.starts_with("id: "))
        .expect("an id line")
        .to_owned();
    for id in ids {
        let copy = source.replacen(&original, &format!("id: {id}"), 1);
        std::fs::write(folder.path().join(format!("{id}.yaml")), copy).expect("write a workflow");
    }
    folder
}

/// An officer's bearer token, asked of the service at `url`.
pub async fn token(http: &reqwest::Client, url: &str, (email, password): (&str, &str)) -> String {
    let answer = ok_json(
        http.post(format!("{url}/api/v1/auth/token"))
            .json(&serde_json::json!({"email": email, "password": password})),
    )
    .await;
    format!("Bearer {}", answer["token"].as_str().expect("a token"))
}

/// Each project's events in order, after checking that its history is whole: seqs 1…n, n its version.
pub async fn histories(db: &DatabaseConnection) -> BTreeMap<i64, Vec<events::Model>> {
    let mut history: BTreeMap<i64, Vec<events::Model>> = BTreeMap::new();
    let mut all = events::Entity::find().all(db).await.unwrap();
    all.sort_by_key(|e| (e.project_id, e.seq));
    for event in all {
        history.entry(event.project_id).or_default().push(event);
    }
    for project in projects::Entity::find().all(db).await.unwrap() {
        let events = history.get(&project.id).map_or(&[][..], |e| e.as_slice());
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=project.version).collect::<Vec<_>>(),
            "project {}: history and version disagree",
            project.id
        );
    }
    history
}

/// Waits until every outbox row is sent (a minute at most) and returns how many there are.
pub async fn outbox_sent(db: &DatabaseConnection) -> usize {
    let started = std::time::Instant::now();
    loop {
        let rows = outbox::Entity::find()
            .all(db)
            .await
            .expect("read the outbox");
        if rows.iter().all(|m| m.status == "sent") {
            return rows.len();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "mail still undelivered after a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
