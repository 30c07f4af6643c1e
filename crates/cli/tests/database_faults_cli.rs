//! PostgreSQL out of reach under load. The service reaches PostgreSQL through a TCP proxy the test owns (the
//! machine's PostgreSQL keeps serving everyone else); cutting the proxy closes every connection and refuses
//! new ones, as a stopped server does. While it is cut, every request is answered 503 `unavailable`
//! (problem+json) within the acquire timeout: no 500, no request left hanging until the client gives up.
//! Once it is restored, the same process serves again without a restart (`/healthz` back to 200, writes
//! acknowledged, mail delivered), and nothing was half-written: every acknowledged transition is there with
//! its event and its mail, every history whole, the audit chain verified.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use incubator_store::entities::outbox;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use support::{Backend, add_user, histories, ok_json, outbox_sent, token, workflows_folder};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

mod support;

#[path = "../../mailer/tests/support/smtp.rs"]
#[allow(dead_code)] // The mailer's tests use the rest of it.
mod smtp;

const OFFICER: (&str, &str) = ("officer@outage.example", "neuf lunes sur la lagune");
const REGIONS: [&str; 12] = [
    "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52",
];
/// Acknowledged transitions before the cut, and after the restore.
const BEFORE: usize = 60;
const AFTER: usize = 60;
/// How long the database stays out of reach.
const OUTAGE: Duration = Duration::from_secs(6);
const UNAVAILABLE: &str = "urn:csirt-incubator:problem:unavailable";

/// The phases of the run, as the clients see them when they send and when they hear back: up, cut, restored
/// but not yet seen healthy, healthy again, over.
const UP: u8 = 0;
const DOWN: u8 = 1;
const RESTORING: u8 = 2;
const BACK: u8 = 3;
const OVER: u8 = u8::MAX;

/// A TCP proxy to PostgreSQL: cut, it closes every connection and its listening socket (connections are
/// refused); restored, it listens on the same port again.
struct Proxy {
    port: u16,
    down: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, mut is_down) = watch::channel(false);
        tokio::spawn(async move {
            let mut listener = Some(listener);
            loop {
                let listening = match listener.take() {
                    Some(listener) => listener,
                    None => TcpListener::bind(("127.0.0.1", port))
                        .await
                        .expect("listen again on the proxy's port"),
                };
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listening.accept() => {
                            let Ok((mut client, _)) = accepted else { continue };
                            let upstream = upstream.clone();
                            connections.spawn(async move {
                                if let Ok(mut server) = TcpStream::connect(upstream).await {
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                                }
                            });
                        }
                        changed = is_down.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            if *is_down.borrow() {
                                break;
                            }
                        }
                    }
                }
                // Dropping the sockets closes them: the service's connections die mid-query.
                drop(listening);
                connections.shutdown().await;
                while *is_down.borrow() {
                    if is_down.changed().await.is_err() {
                        return;
                    }
                }
            }
        });
        Proxy { port, down }
    }

    fn cut(&self) {
        self.down.send_replace(true);
    }

    fn restore(&self) {
        self.down.send_replace(false);
    }
}

/// One answer, with the phases it was sent and heard in.
#[derive(Debug)]
struct Answer {
    sent: u8,
    heard: u8,
    #[allow(dead_code)] // Read through `Debug`, in the failure messages.
    what: String,
    outcome: Outcome,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    Conflict,
    Unavailable,
    /// Anything else: a 500, a wrong body, a transport error or the client's timeout.
    Wrong(String),
}

#[derive(Default)]
struct Run {
    phase: AtomicU8,
    acked: AtomicUsize,
    answers: Mutex<Vec<Answer>>,
    /// (project, seq of its event, transition) of each acknowledged transition: fired at version v, its
    /// event is the project's event v + 1.
    acks: Mutex<Vec<(i64, i64, String)>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_out_of_reach_under_load_gives_fast_503s_and_recovers_without_restart() {
    let Some(mut backend) = Backend::postgres("outage").await else {
        return;
    };
    let Some(sink) = smtp::SmtpSink::start() else {
        return;
    };
    let direct = backend.url();
    let mut proxied = url::Url::parse(&direct).unwrap();
    let upstream = format!(
        "{}:{}",
        proxied.host_str().unwrap(),
        proxied.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    proxied.set_port(Some(proxy.port)).unwrap();
    add_user(backend.incubator(), OFFICER, "officer", None);
    backend.database_url = Some(proxied.to_string());
    let workflows = workflows_folder("crash-loop.yaml", &["crash-loop".to_owned()]);
    let service = backend.serve(
        workflows.path(),
        &sink.url(),
        // Every refused request logs an error: expected here, and the assertions say what went wrong.
        &[
            ("INCUBATOR_DATABASE__ACQUIRE_TIMEOUT", "1s"),
            ("RUST_LOG", "off"),
        ],
    );
    // The client's timeout is what a hang would run into.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = service.url.clone();
    let auth = token(&http, &url, OFFICER).await;
    let mut projects = Vec::new();
    for region in REGIONS {
        let project = ok_json(
            http.post(format!("{url}/api/v1/projects"))
                .header("authorization", &auth)
                .json(&json!({"region_code": region, "workflow": "crash-loop"})),
        )
        .await;
        projects.push(project["id"].as_i64().unwrap());
    }

    let run = Arc::new(Run::default());
    let clients: Vec<_> = projects
        .iter()
        .map(|&project| {
            let (http, url, auth, run) = (http.clone(), url.clone(), auth.clone(), run.clone());
            tokio::spawn(async move { keep_going(project, &http, &url, &auth, &run).await })
        })
        .collect();
    wait_for_acks(&run, BEFORE).await;
    proxy.cut();
    run.phase.store(DOWN, Ordering::SeqCst);
    let cut_at = Instant::now();
    let mut health_down = Vec::new();
    while cut_at.elapsed() < OUTAGE {
        let health = http.get(format!("{url}/healthz")).send().await;
        health_down.push(answer(health).await.0);
    }
    proxy.restore();
    run.phase.store(RESTORING, Ordering::SeqCst);
    // The same process comes back by itself: its pool reconnects on the next request.
    let restored_at = Instant::now();
    loop {
        let answer = http.get(format!("{url}/healthz")).send().await;
        if answer.as_ref().is_ok_and(|a| a.status() == 200) {
            break;
        }
        assert!(
            restored_at.elapsed() < Duration::from_secs(30),
            "/healthz not back to 200: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.phase.store(BACK, Ordering::SeqCst);
    let acked_at_restore = run.acked.load(Ordering::SeqCst);
    wait_for_acks(&run, acked_at_restore + AFTER).await;
    run.phase.store(OVER, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    assert!(
        !health_down.is_empty() && health_down.iter().all(|o| *o == Outcome::Unavailable),
        "/healthz while the database is down: {health_down:?}"
    );
    let answers = run.answers.lock().await;
    let wrong: Vec<&Answer> = answers
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Wrong(_)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Before the cut and once healthy again, nothing is unavailable; during the outage, nothing succeeds.
    let misplaced: Vec<&Answer> = answers
        .iter()
        .filter(|a| match a.outcome {
            Outcome::Unavailable => a.sent == UP && a.heard == UP || a.sent == BACK,
            Outcome::Done | Outcome::Conflict => a.sent == DOWN && a.heard == DOWN,
            Outcome::Wrong(_) => false,
        })
        .collect();
    assert!(misplaced.is_empty(), "{misplaced:#?}");
    let unavailable = answers
        .iter()
        .filter(|a| a.outcome == Outcome::Unavailable)
        .count();
    assert!(
        unavailable >= REGIONS.len(),
        "every client heard 503s while the database was down, not a hang: {unavailable}"
    );
    drop(answers);

    // Nothing half-written: read straight from PostgreSQL.
    let db = sea_orm::Database::connect(&direct).await.unwrap();
    let history = histories(&db).await;
    let mails: BTreeSet<(Option<i64>, Option<i64>)> = outbox::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.project_id, m.event_seq))
        .collect();
    for (project, seq, transition) in run.acks.lock().await.iter() {
        let event = &history[project][(*seq - 1) as usize];
        assert_eq!(event.transition.as_deref(), Some(transition.as_str()));
        assert!(
            mails.contains(&(Some(*project), Some(*seq))),
            "the mail of {event:?}"
        );
    }
    backend.database_url = Some(direct);
    backend.audit_verify();
    // The mail worker outlived the outage: every mail queued goes out, each Message-ID at least once
    // (a mail the SMTP server took while the database was down cannot be marked sent: it goes again,
    // under the same Message-ID).
    let queued = outbox_sent(&db).await;
    assert!(queued >= BEFORE + AFTER, "a mail per transition: {queued}");
    let started = Instant::now();
    loop {
        let ids: BTreeSet<String> = sink.received().into_iter().map(|m| m.message_id).collect();
        if ids.len() == queued {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of {queued} mails at the SMTP server",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_acks(run: &Run, n: usize) {
    let started = Instant::now();
    while run.acked.load(Ordering::SeqCst) < n {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads the project and fires its next step, again and again, whatever the answers, until the run ends.
async fn keep_going(project: i64, http: &reqwest::Client, url: &str, auth: &str, run: &Run) {
    let (mut state, mut version) = ("a".to_owned(), 1);
    loop {
        let sent = run.phase.load(Ordering::SeqCst);
        if sent == OVER {
            return;
        }
        let read = http
            .get(format!("{url}/api/v1/projects/{project}"))
            .header("authorization", auth)
            .send()
            .await;
        let (outcome, body) = answer(read).await;
        if outcome == Outcome::Done {
            state = body["state"].as_str().unwrap_or_default().to_owned();
            version = body["version"].as_i64().unwrap_or_default();
        }
        record(run, sent, format!("read {project}"), outcome).await;

        let sent = run.phase.load(Ordering::SeqCst);
        let transition = if state == "a" { "to_b" } else { "to_a" };
        let fired = http
            .post(format!("{url}/api/v1/projects/{project}/transitions"))
            .header("authorization", auth)
            .json(&json!({"transition": transition, "expected_version": version}))
            .send()
            .await;
        let (outcome, _) = answer(fired).await;
        if outcome == Outcome::Done {
            run.acks
                .lock()
                .await
                .push((project, version + 1, transition.to_owned()));
            run.acked.fetch_add(1, Ordering::SeqCst);
        }
        record(run, sent, format!("{transition} on {project}"), outcome).await;
        if run.phase.load(Ordering::SeqCst) == DOWN {
            // Not a busy loop while every answer is an immediate refusal.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record(run: &Run, sent: u8, what: String, outcome: Outcome) {
    let heard = run.phase.load(Ordering::SeqCst);
    run.answers.lock().await.push(Answer {
        sent,
        heard,
        what,
        outcome,
    });
}

/// What a request came to: 2xx, 409, a 503 `unavailable` problem, or something wrong.
async fn answer(answer: reqwest::Result<reqwest::Response>) -> (Outcome, Value) {
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return (Outcome::Wrong(format!("no answer: {e}")), Value::Null),
    };
    let status = answer.status().as_u16();
    let media_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = match answer.json().await {
        Ok(body) => body,
        Err(e) => return (Outcome::Wrong(format!("{status}: {e}")), Value::Null),
    };
    let outcome = match status {
        200..=299 => Outcome::Done,
        409 => Outcome::Conflict,
        503 if media_type == "application/problem+json" && body["type"] == UNAVAILABLE => {
            Outcome::Unavailable
        }
        _ => Outcome::Wrong(format!("{status} {media_type} {body}")),
    };
    (outcome, body)
}
