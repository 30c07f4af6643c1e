//! Scale-out, as docs/deployment.md describes it: two `incubator serve` processes share one PostgreSQL
//! database (and one data folder for evidence), clients spread over both, and one replica is killed
//! (SIGKILL) midway. No acknowledged transition is lost, transitions stay serialised per project, every
//! queued mail arrives, and none twice beyond the one SMTP exchange the killed replica may have had in flight
//! (docs/mail.md: the same Message-ID, so receivers can drop it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Backend, add_user, ok_json};
use tokio::sync::Mutex;

mod support;

#[path = "../../mailer/tests/support/smtp.rs"]
#[allow(dead_code)] // The mailer's tests use the rest of it.
mod smtp;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const OFFICER: (&str, &str) = ("officer@replicas.example", "quatre vents sur la lande");
const REGIONS: [&str; 8] = ["11", "24", "27", "28", "32", "44", "52", "53"];
/// Acknowledged transitions before one replica is killed, and in all.
const KILL_AFTER: usize = 80;
const TOTAL: usize = 200;

#[derive(Debug, Clone)]
struct Ack {
    project: i64,
    version: i64,
    transition: String,
    replica: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_the_load_and_lose_nothing_when_one_is_killed() {
    let Some(backend) = Backend::postgres("replicas").await else {
        return;
    };
    let Some(sink) = smtp::SmtpSink::start() else {
        return;
    };
    // Evidence lives in the data folder, which replicas share (a shared volume in production).
    let workflows = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{ROOT}/examples/workflows/bench-loop.yaml"),
        workflows.path().join("bench-loop.yaml"),
    )
    .unwrap();
    std::fs::copy(
        format!("{ROOT}/workflows/csirt-incubation.yaml"),
        workflows.path().join("csirt-incubation.yaml"),
    )
    .unwrap();

    // Both replicas start at once against the empty database: one migrates, the other waits for it.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| backend.serve(workflows.path(), &sink.url(), &[]));
        let b = s.spawn(|| backend.serve(workflows.path(), &sink.url(), &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    add_user(backend.incubator(), OFFICER, "officer", None);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let urls = [a.url.clone(), b.url.clone()];
    // A token issued by one replica is good on the other.
    let token = http
        .post(format!("{}/api/v1/auth/token", urls[0]))
        .json(&json!({"email": OFFICER.0, "password": OFFICER.1}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = format!("Bearer {token}");

    let mut projects = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        let url = &urls[i % 2];
        let project: Value = ok_json(
            http.post(format!("{url}/api/v1/projects"))
                .header("authorization", &auth)
                .json(&json!({"region_code": region, "workflow": "bench-loop"})),
        )
        .await;
        let id = project["id"].as_i64().unwrap();
        http.patch(format!("{}/api/v1/projects/{id}/fields", urls[(i + 1) % 2]))
            .header("authorization", &auth)
            .json(&json!({"note": "mesure"}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        projects.push(id);
    }

    // Evidence uploaded through one replica is served by the other.
    let anssi: Value = ok_json(
        http.post(format!("{}/api/v1/projects", urls[0]))
            .header("authorization", &auth)
            .json(&json!({"region_code": "75", "workflow": "csirt-incubation"})),
    )
    .await;
    let anssi_id = anssi["id"].as_i64().unwrap();
    for (i, transition) in ["express_interest", "open_identification"]
        .iter()
        .enumerate()
    {
        http.post(format!(
            "{}/api/v1/projects/{anssi_id}/transitions",
            urls[i % 2]
        ))
        .header("authorization", &auth)
        .json(&json!({"transition": transition, "expected_version": i + 1}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    }
    let evidence = b"%PDF-1.4\n% deliberation du conseil regional\n%%EOF\n".to_vec();
    let document: Value = http
        .post(format!("{}/api/v1/projects/{anssi_id}/documents", urls[0]))
        .header("authorization", &auth)
        .multipart(
            reqwest::multipart::Form::new()
                .text("requirement", "council_backed")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(evidence.clone())
                        .file_name("deliberation.pdf")
                        .mime_str("application/pdf")
                        .unwrap(),
                ),
        )
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let served = http
        .get(format!(
            "{}/api/v1/documents/{}/content",
            urls[1], document["id"]
        ))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.as_ref(), evidence.as_slice());

    // Two clients per project, one on each replica, race for every step; a client whose replica is gone
    // carries on through the other, as a load balancer would send it.
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let acked = Arc::new(AtomicUsize::new(0));
    let a_alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut clients = Vec::new();
    for &project in &projects {
        for home in 0..2 {
            let (http, urls, auth) = (http.clone(), urls.clone(), auth.clone());
            let (acks, acked, a_alive) = (acks.clone(), acked.clone(), a_alive.clone());
            clients.push(tokio::spawn(async move {
                while acked.load(Ordering::SeqCst) < TOTAL {
                    let replica = if a_alive.load(Ordering::SeqCst) {
                        home
                    } else {
                        1
                    };
                    let url = &urls[replica];
                    let Ok(response) = http
                        .get(format!("{url}/api/v1/projects/{project}"))
                        .header("authorization", &auth)
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let Ok(current) = response.json::<Value>().await else {
                        continue;
                    };
                    let transition = if current["state"] == "a" {
                        "to_b"
                    } else {
                        "to_a"
                    };
                    let fired = http
                        .post(format!("{url}/api/v1/projects/{project}/transitions"))
                        .header("authorization", &auth)
                        .json(&json!({
                            "transition": transition,
                            "expected_version": current["version"],
                        }))
                        .send()
                        .await;
                    let Ok(fired) = fired else { continue };
                    match fired.status().as_u16() {
                        200 => {
                            let Ok(body) = fired.json::<Value>().await else {
                                continue;
                            };
                            acks.lock().await.push(Ack {
                                project,
                                version: body["version"].as_i64().unwrap(),
                                transition: transition.to_owned(),
                                replica,
                            });
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        409 => {}
                        other => panic!("unexpected status {other} from replica {replica}"),
                    }
                }
            }));
        }
    }
    let mut a = Some(a);
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL: no graceful shutdown, requests and mail deliveries cut wherever they are.
    a.take().unwrap().kill();
    a_alive.store(false, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client task");
    }
    let acks = acks.lock().await.clone();
    let by_replica = acks.iter().fold([0usize; 2], |mut n, ack| {
        n[ack.replica] += 1;
        n
    });
    assert!(
        by_replica[0] > 0 && by_replica[1] > 0,
        "load spread over both replicas: {by_replica:?}"
    );

    // Every acknowledged transition is in the audit trail at the version it was acknowledged with, and each
    // project's history is one serial chain of alternating steps.
    let mut transitions = 0;
    for &project in &projects {
        let events: Vec<Value> = http
            .get(format!("{}/api/v1/projects/{project}/events", urls[1]))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let by_seq: BTreeMap<i64, &Value> = events
            .iter()
            .map(|e| (e["seq"].as_i64().unwrap(), e))
            .collect();
        assert_eq!(
            by_seq.keys().copied().collect::<Vec<_>>(),
            (1..=events.len() as i64).collect::<Vec<_>>(),
            "contiguous history of project {project}"
        );
        for ack in acks.iter().filter(|ack| ack.project == project) {
            let event = by_seq
                .get(&ack.version)
                .unwrap_or_else(|| panic!("acknowledged {ack:?} is missing"));
            assert_eq!(event["transition"], ack.transition.as_str(), "{ack:?}");
        }
        let steps: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "transition")
            .collect();
        for pair in steps.windows(2) {
            assert_eq!(pair[0]["to_state"], pair[1]["from_state"], "serial history");
        }
        transitions += steps.len();
    }
    assert!(transitions >= TOTAL);
    backend.audit_verify();

    // Every queued mail ends up sent (the dead replica's leased ones come back to the live one after the
    // lease), each once at the SMTP server, save the one exchange the killed replica may have had in flight.
    let db = sea_orm::Database::connect(backend.url()).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            use sea_orm::ConnectionTrait;
            db.query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap() as usize
        }
    };
    let queued = count("SELECT COUNT(*) AS n FROM outbox").await;
    assert!(queued >= transitions, "a mail per transition: {queued}");
    let started = Instant::now();
    while count("SELECT COUNT(*) AS n FROM outbox WHERE status = 'sent'").await < queued {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mail still undelivered a minute after the kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let messages = sink.wait_for(queued, Duration::from_secs(10)).await;
    let ids: BTreeSet<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), queued, "every queued mail arrived");
    assert!(
        messages.len() <= queued + 1,
        "at most the one mail in flight on the killed replica is sent again: {} for {queued}",
        messages.len()
    );
}
