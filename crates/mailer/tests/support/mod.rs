//! A real SMTP server on loopback (aiosmtpd, `smtp_sink.py`) and a programme to mail about.

#![allow(dead_code)] // Each test binary uses its own part of the helpers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use incubator_engine::{Actor, FireRequest};
use incubator_mailer::MailConfig;
use incubator_mailer::config::{parse_mailbox, parse_public_url};
use incubator_notify::Templates;
use incubator_store::entities::users;
use incubator_store::projects::{CreateProject, FireTransition};
use incubator_store::users::NewUser;
use incubator_store::{Store, projects};
use serde::Deserialize;

use crate::common::{TestDb, deploy_anssi};

const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates/email");

/// One message as the SMTP server accepted it, decoded by Python's `email` package.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// aiosmtpd on a loopback port, appending what it accepts to a file.
pub struct SmtpSink {
    port: u16,
    file: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// Whether the SMTP server can run here; in CI it must (`.ci/test` installs it), elsewhere the tests say
/// loudly that they did not run.
pub fn smtp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "aiosmtpd is missing in CI: .ci/test must install it"
        );
        eprintln!(
            "SKIPPED: python3 with aiosmtpd is not available (python3 -m pip install aiosmtpd)"
        );
    }
    ok
}

impl SmtpSink {
    /// `None` (said loudly) when aiosmtpd is not installed.
    pub fn start() -> Option<SmtpSink> {
        if !smtp_available() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("received.jsonl");
        let mut sink = SmtpSink {
            port,
            file,
            child: None,
            _dir: dir,
        };
        sink.restart();
        Some(sink)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Kills the server: connections are refused until [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the server again on the same port, keeping what it received.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new("python3")
                .arg(SINK)
                .arg(self.port.to_string())
                .arg(&self.file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start python3");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .ok();
            if line.trim() == "READY" {
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous server for a moment.
            child.kill().ok();
            child.wait().ok();
            assert!(
                Instant::now() < deadline,
                "the SMTP sink did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn received(&self) -> Vec<Received> {
        let Ok(mut text) = std::fs::read_to_string(&self.file) else {
            return Vec::new();
        };
        // A line the server is still writing is not received yet.
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
        // French typography puts no-break spaces before colons; tests compare with plain spaces.
        // and mails travel with CRLF line ends; tests compare with plain spaces and \n.
        let text = text.replace(['\u{a0}', '\u{202f}'], " ");
        text.lines()
            .map(|line| {
                let mut message: Received = serde_json::from_str(line).expect("sink line");
                message.text = message.text.replace("\r\n", "\n");
                message.html = message.html.replace("\r\n", "\n");
                message
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived (or `timeout` passed) and returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n || Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn templates() -> Arc<Templates> {
    Arc::new(Templates::load(Path::new(TEMPLATES)).expect("templates load"))
}

/// Fast retries and short leases, so tests see several attempts in seconds.
pub fn config(data_dir: &Path, smtp_url: Option<String>) -> MailConfig {
    let mut config = MailConfig::new(
        parse_mailbox("Incubateur CSIRT <incubateur@anssi.example>").unwrap(),
        parse_public_url("https://incubateur.example.gouv.fr").unwrap(),
        data_dir,
    );
    config.smtp_url = smtp_url;
    config.backoff_base = Duration::from_millis(20);
    config.backoff_cap = Duration::from_millis(200);
    config.lease = Duration::from_secs(10);
    config.poll_interval = Duration::from_millis(50);
    config.smtp_timeout = Duration::from_secs(2);
    config
}

/// The people of the tests: one officer, two council accounts of Bretagne (53) in French and English, and
/// one of Île-de-France (11) who must never receive Bretagne's mails.
pub struct Programme {
    pub store: Store,
    pub officer: users::Model,
    pub council_fr: users::Model,
    pub council_en: users::Model,
    pub other_council: users::Model,
}

pub async fn programme(db: &TestDb) -> Programme {
    let store = db.store().await;
    deploy_anssi(&store).await;
    let now = crate::common::at(2021, 3, 1);
    let user = |email: &str, name: &str, role: &str, region: Option<&str>, lang: &str| NewUser {
        email: email.into(),
        name: name.into(),
        role: role.into(),
        region_code: region.map(str::to_owned),
        password_hash: "x".into(),
        lang: lang.into(),
    };
    let db_conn = store.db();
    let officer = incubator_store::users::create(
        db_conn,
        user(
            "olivia.officier@anssi.example",
            "Olivia Officier",
            "officer",
            None,
            "fr",
        ),
        now,
    )
    .await
    .unwrap();
    let council_fr = incubator_store::users::create(
        db_conn,
        user(
            "claire.conseil@bretagne.example",
            "Claire Conseil",
            "council",
            Some("53"),
            "fr",
        ),
        now,
    )
    .await
    .unwrap();
    let council_en = incubator_store::users::create(
        db_conn,
        user(
            "ewan.english@bretagne.example",
            "Ewan English",
            "council",
            Some("53"),
            "en",
        ),
        now,
    )
    .await
    .unwrap();
    let other_council = incubator_store::users::create(
        db_conn,
        user(
            "ines.autre@idf.example",
            "Inès Autre",
            "council",
            Some("11"),
            "fr",
        ),
        now,
    )
    .await
    .unwrap();
    Programme {
        store,
        officer,
        council_fr,
        council_en,
        other_council,
    }
}

impl Programme {
    pub async fn create_project(&self, region: &str, now: DateTime<Utc>) -> i64 {
        self.store
            .write(CreateProject {
                registry: self.store.workflows().clone(),
                region_code: region.into(),
                workflow_id: "csirt-incubation".into(),
                actor: Actor {
                    id: format!("user:{}", self.officer.id),
                    roles: vec!["officer".into()],
                },
                now,
            })
            .await
            .expect("create project")
    }

    pub async fn fire(
        &self,
        project_id: i64,
        transition: &str,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) {
        let version = projects::find(self.store.db(), project_id)
            .await
            .unwrap()
            .version;
        self.store
            .write(FireTransition {
                registry: self.store.workflows().clone(),
                project_id,
                expected_version: version,
                request: FireRequest {
                    transition: transition.into(),
                    comment: comment.map(str::to_owned),
                },
                actor: Actor {
                    id: format!("user:{}", self.officer.id),
                    roles: vec!["officer".into()],
                },
                now,
            })
            .await
            .expect("fire transition");
    }
}
