//! Crashes of the real service (`incubator serve`, SIGKILLed: no destructor, no flush), on a SQLite file and
//! on PostgreSQL:
//! - in the middle of 200 concurrent clients firing transitions and uploading evidence: after a restart on
//!   the same data, every acknowledged transition is there once with its event and its mail, every
//!   acknowledged upload has its row and its file (SHA-256 checked), no row lacks its file and no file lacks
//!   its row, every queued mail reaches the SMTP server once (save the one exchange in flight at the kill,
//!   resent under the same Message-ID), and the audit chain verifies;
//! - while a reminder falls due: it goes out once after the restart, and not again after another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use incubator_store::entities::{documents, outbox};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{
    Backend, Service, add_user, histories, ok_json, outbox_sent, token, workflows_folder,
};
use tokio::sync::Mutex;

mod support;

#[path = "../../mailer/tests/support/smtp.rs"]
#[allow(dead_code)] // The mailer's tests use the rest of it.
mod smtp;

const OFFICER: (&str, &str) = ("officer@crash.example", "sept lieues sous la lande");
const REGIONS: [&str; 18] = [
    "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84",
    "93", "94",
];
/// Copies of the crash workflow: a region has one project per workflow, so 18 × 6 = 108 projects.
const COPIES: usize = 6;
/// Clients at once; with fewer projects than clients, some race on a project (409s, not acknowledged).
const CLIENTS: usize = 200;
/// Acknowledged writes (transitions and uploads) before the kill.
const KILL_AFTER: usize = 400;
/// The services' upload timeout: a file younger than it may belong to an upload still on its way to its
/// row, so the start-up sweep spares it. The test restarts once it has passed. (Long enough for 200
/// clients on a busy machine: a 408 before the kill fails the test.)
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
enum Ack {
    /// `seq`: the version the transition was fired at, plus one. (The answer's version may be later
    /// still: an upload to the project can commit between the transition and the answer's read.)
    Transition {
        project: i64,
        seq: i64,
        transition: String,
    },
    Upload {
        project: i64,
        document: i64,
        sha256: String,
    },
}

/// What the clients share: their acknowledgements, and whatever they received that they should not have.
#[derive(Default)]
struct Run {
    acks: Mutex<Vec<Ack>>,
    acked: AtomicUsize,
    killed: AtomicBool,
    unexpected: Mutex<Vec<String>>,
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    auth: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_200_clients_sqlite() {
    crash_and_restart(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_200_clients_postgres() {
    let Some(backend) = Backend::postgres("crash").await else {
        return;
    };
    crash_and_restart(backend).await;
}

async fn crash_and_restart(backend: Backend) {
    let Some(sink) = smtp::SmtpSink::start() else {
        return;
    };
    let ids: Vec<String> = (0..COPIES).map(|i| format!("crash-loop-{i}")).collect();
    let workflows = workflows_folder("crash-loop.yaml", &ids);
    let timeout = format!("{}s", UPLOAD_TIMEOUT.as_secs());
    let settings = [("INCUBATOR_SERVER__UPLOAD_TIMEOUT", timeout.as_str())];
    let mut service = backend.serve(workflows.path(), &sink.url(), &settings);
    add_user(backend.incubator(), OFFICER, "officer", None);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let client = Client {
        auth: token(&http, &service.url, OFFICER).await,
        url: service.url.clone(),
        http,
    };
    let mut projects = Vec::new();
    for id in &ids {
        for region in REGIONS {
            let project = ok_json(
                client
                    .http
                    .post(format!("{}/api/v1/projects", client.url))
                    .header("authorization", &client.auth)
                    .json(&json!({"region_code": region, "workflow": id})),
            )
            .await;
            projects.push(project["id"].as_i64().unwrap());
        }
    }

    let run = Arc::new(Run::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(keep_writing(
                n,
                projects[n % projects.len()],
                client.clone(),
                run.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    while run.acked.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(started.elapsed() < Duration::from_secs(180), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.killed.store(true, Ordering::SeqCst);
    service.kill();
    for task in clients {
        task.await.expect("client task");
    }
    let unexpected = run.unexpected.lock().await;
    assert!(unexpected.is_empty(), "before the kill: {unexpected:#?}");
    let acks = run.acks.lock().await.clone();
    let transitions = acks
        .iter()
        .filter(|a| matches!(a, Ack::Transition { .. }))
        .count();
    assert!(
        transitions > 0 && transitions < acks.len(),
        "both transitions and uploads acknowledged"
    );

    // Files written by uploads cut before their commit are orphans now; past the upload timeout, the
    // restart's sweep may take them.
    tokio::time::sleep(UPLOAD_TIMEOUT + Duration::from_secs(1)).await;
    let _service = backend.serve(workflows.path(), &sink.url(), &settings);
    let db = sea_orm::Database::connect(backend.url()).await.unwrap();
    let history = histories(&db).await;
    let outbox = outbox::Entity::find().all(&db).await.unwrap();
    let mails: BTreeSet<(i64, i64)> = outbox
        .iter()
        .filter(|m| m.template == "stage_entered")
        .filter_map(|m| Some((m.project_id?, m.event_seq?)))
        .collect();
    let stored: BTreeMap<i64, documents::Model> = documents::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    for ack in &acks {
        match ack {
            Ack::Transition {
                project,
                seq,
                transition,
            } => {
                let event = &history[project][(*seq - 1) as usize];
                assert_eq!(
                    event.transition.as_deref(),
                    Some(transition.as_str()),
                    "{ack:?}: {event:?}"
                );
                assert!(mails.contains(&(*project, *seq)), "{ack:?}: no mail");
            }
            Ack::Upload {
                project,
                document,
                sha256,
            } => {
                let row = stored
                    .get(document)
                    .unwrap_or_else(|| panic!("{ack:?}: no row"));
                assert_eq!((row.project_id, &row.sha256), (*project, sha256), "{ack:?}");
                let uploaded = history[project]
                    .iter()
                    .filter(|e| e.kind == "document_uploaded")
                    .filter(|e| {
                        serde_json::from_str::<Value>(&e.changes).unwrap()["document_id"]
                            == *document
                    })
                    .count();
                assert_eq!(uploaded, 1, "{ack:?}: its event, once");
            }
        }
    }
    // Every row has its file, whole; every file has its row.
    let folder = backend.data.path().join("documents");
    let referenced: BTreeSet<&str> = stored.values().map(|d| d.sha256.as_str()).collect();
    for sha256 in &referenced {
        let bytes = std::fs::read(folder.join(&sha256[..2]).join(sha256))
            .unwrap_or_else(|e| panic!("the file of {sha256}: {e}"));
        assert_eq!(hex::encode(Sha256::digest(&bytes)), *sha256, "a torn file");
    }
    let files = files_under(&folder);
    let orphans: Vec<&String> = files
        .iter()
        .filter(|name| !referenced.contains(name.as_str()))
        .collect();
    assert!(orphans.is_empty(), "files without a row: {orphans:?}");
    backend.audit_verify();
    assert_eq!(
        outbox_sent(&db).await,
        outbox.len(),
        "mail queued after the restart"
    );
    every_mail_arrives_once(&db, &sink).await;
}

/// One client: a transition, then an upload, on its project, until the service is killed.
async fn keep_writing(n: usize, project: i64, client: Client, run: Arc<Run>) {
    let mut round = 0usize;
    while !run.killed.load(Ordering::SeqCst) {
        round += 1;
        let outcome = if round % 2 == 1 {
            fire(&client, project).await
        } else {
            upload(&client, project, n, round).await
        };
        match outcome {
            Ok(Some(ack)) => {
                run.acks.lock().await.push(ack);
                run.acked.fetch_add(1, Ordering::SeqCst);
            }
            Ok(None) => {}
            // Once the service is killed, requests in flight fail; before, nothing may.
            Err(e) if !run.killed.load(Ordering::SeqCst) => run.unexpected.lock().await.push(e),
            Err(_) => return,
        }
    }
}

/// The next step of the loop; `None` when another client moved the project first (409).
async fn fire(client: &Client, project: i64) -> Result<Option<Ack>, String> {
    let current: Value = client
        .http
        .get(format!("{}/api/v1/projects/{project}", client.url))
        .header("authorization", &client.auth)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("read project {project}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("read project {project}: {e}"))?;
    let transition = if current["state"] == "a" {
        "to_b"
    } else {
        "to_a"
    };
    let fired = client
        .http
        .post(format!(
            "{}/api/v1/projects/{project}/transitions",
            client.url
        ))
        .header("authorization", &client.auth)
        .json(&json!({"transition": transition, "expected_version": current["version"]}))
        .send()
        .await
        .map_err(|e| format!("fire {transition} on {project}: {e}"))?;
    match fired.status().as_u16() {
        200 => Ok(Some(Ack::Transition {
            project,
            seq: current["version"].as_i64().expect("a version") + 1,
            transition: transition.to_owned(),
        })),
        409 => Ok(None),
        status => Err(format!(
            "fire {transition} on {project}: {status} {}",
            fired.text().await.unwrap_or_default()
        )),
    }
}

/// A PDF or a PNG whose bytes no other upload has.
async fn upload(
    client: &Client,
    project: i64,
    n: usize,
    round: usize,
) -> Result<Option<Ack>, String> {
    let note = format!("client {n} round {round}");
    let (bytes, name, media_type) = if round.is_multiple_of(4) {
        (pdf(&note), "piece.pdf", "application/pdf")
    } else {
        (png(&note), "piece.png", "image/png")
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let form = reqwest::multipart::Form::new()
        .text("requirement", "evidence")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(name)
                .mime_str(media_type)
                .unwrap(),
        );
    let answer = client
        .http
        .post(format!(
            "{}/api/v1/projects/{project}/documents",
            client.url
        ))
        .header("authorization", &client.auth)
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("upload to {project}: {e}"))?;
    if answer.status().as_u16() != 201 {
        return Err(format!(
            "upload to {project}: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        ));
    }
    let body: Value = answer.json().await.map_err(|e| e.to_string())?;
    if body["sha256"] != sha256.as_str() {
        return Err(format!("upload to {project}: stored as {}", body["sha256"]));
    }
    Ok(Some(Ack::Upload {
        project,
        document: body["id"].as_i64().expect("a document id"),
        sha256,
    }))
}

fn pdf(note: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n% {note}\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
         2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

/// A 1×1 PNG carrying `note` in a `tEXt` chunk.
fn png(note: &str) -> Vec<u8> {
    const SIGNATURE_AND_HEADER: &str =
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489";
    const DATA_AND_END: &str =
        "0000000d4944415478da636460f85f0f0002870180eb47ba920000000049454e44ae426082";
    let mut bytes = hex::decode(SIGNATURE_AND_HEADER).unwrap();
    let mut chunk = b"tEXtComment\0".to_vec();
    chunk.extend_from_slice(note.as_bytes());
    bytes.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
    bytes.extend_from_slice(&chunk);
    bytes.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    bytes.extend_from_slice(&hex::decode(DATA_AND_END).unwrap());
    bytes
}

/// The names of the files under `folder`, at any depth.
fn files_under(folder: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return names;
    };
    for entry in entries {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            names.extend(files_under(&entry.path()));
        } else {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

/// Every queued mail reaches the SMTP server, once by Message-ID, with at most one exchange twice: the
/// one a killed service had in flight.
async fn every_mail_arrives_once(db: &DatabaseConnection, sink: &smtp::SmtpSink) {
    let queued = outbox_sent(db).await;
    let messages = sink.wait_for(queued, Duration::from_secs(10)).await;
    let ids: BTreeSet<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), queued, "every queued mail arrived");
    assert!(
        messages.len() <= queued + 1,
        "at most the mail in flight at the kill is sent again: {} for {queued}",
        messages.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_due_while_the_service_is_down_is_sent_once_after_the_restart_sqlite() {
    reminder_across_a_crash(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_due_while_the_service_is_down_is_sent_once_after_the_restart_postgres() {
    let Some(backend) = Backend::postgres("reminder").await else {
        return;
    };
    reminder_across_a_crash(backend).await;
}

/// The fixture's deadline falls due ten seconds after the project starts.
async fn reminder_across_a_crash(backend: Backend) {
    let Some(sink) = smtp::SmtpSink::start() else {
        return;
    };
    let workflows = workflows_folder("reminder-soon.yaml", &["reminder-soon".to_owned()]);
    let mut service: Service = backend.serve(workflows.path(), &sink.url(), &[]);
    add_user(backend.incubator(), OFFICER, "officer", None);
    let http = reqwest::Client::new();
    let auth = token(&http, &service.url, OFFICER).await;
    let project = ok_json(
        http.post(format!("{}/api/v1/projects", service.url))
            .header("authorization", &auth)
            .json(&json!({"region_code": "53", "workflow": "reminder-soon"})),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let due = Instant::now() + Duration::from_secs(10);
    service.kill();
    let db = sea_orm::Database::connect(backend.url()).await.unwrap();
    let reminders = || async {
        outbox::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.template.starts_with("deadline_"))
            .collect::<Vec<_>>()
    };
    assert!(
        reminders().await.is_empty(),
        "nothing was due before the kill"
    );
    tokio::time::sleep_until((due + Duration::from_secs(2)).into()).await;

    let mut service = backend.serve(workflows.path(), &sink.url(), &[]);
    let started = Instant::now();
    while reminders().await.is_empty() || reminders().await.iter().any(|m| m.status != "sent") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the reminder was not sent after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = reminders().await;
    let templates: Vec<&str> = sent.iter().map(|m| m.template.as_str()).collect();
    assert_eq!(
        templates,
        ["deadline_overdue", "deadline_escalation"],
        "the overdue notice and its escalation, once each"
    );
    assert!(sent.iter().all(|m| m.project_id == Some(project)));
    // Several scheduler passes, then a second crash and restart: nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    service.kill();
    let _service = backend.serve(workflows.path(), &sink.url(), &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(reminders().await.len(), sent.len(), "queued again");
    let all = outbox::Entity::find().all(&db).await.unwrap();
    let received = sink.received();
    let ids: BTreeSet<&str> = received.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(
        (received.len(), ids.len()),
        (all.len(), all.len()),
        "each mail at the SMTP server once"
    );
}
