//! Load generator for the HTTP API: transitions per second and p50/p99 latency at several client counts,
//! over loopback, next to the raw commit rate of the service's own database measured in the same run.
//!
//! Expects a running `incubator serve` whose workflows folder holds the benchmark loops `bench-loop-0..3`
//! (see `examples/bench_http.sh`, which sets everything up), and an officer account.
//!
//! cargo run --release -p csirt-incubator --example load -- --url http://127.0.0.1:8080 \
//!     --email E --password P --database URL [--clients 1,16,64] [--seconds 5]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[path = "common/api.rs"]
mod api;
#[path = "common/raw_commits.rs"]
mod raw_commits;

use api::{Project, percentile_ms};

struct Args {
    url: String,
    email: String,
    password: String,
    database: String,
    clients: Vec<usize>,
    seconds: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        url: "http://127.0.0.1:8080".into(),
        email: String::new(),
        password: String::new(),
        database: String::new(),
        clients: vec![1, 16, 64],
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--email" => args.email = value,
            "--password" => args.password = value,
            "--database" => args.database = value,
            "--clients" => {
                args.clients = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--seconds" => args.seconds = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.email.is_empty() || args.database.is_empty() {
        bail!("--email, --password and --database are required");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    let token = api::sign_in(&http, &args.url, &args.email, &args.password).await?;
    let projects = api::loop_projects(&http, &args.url, &token).await?;
    let db = sea_orm::Database::connect(&args.database).await?;
    let ids: Vec<i64> = projects.iter().map(|p| p.id).collect();
    println!(
        "{} projects; {} s per measure; {}",
        projects.len(),
        args.seconds,
        args.url
    );
    println!(
        "{:>8} {:>14} {:>14} {:>8} {:>9} {:>9} {:>8} {:>15} {:>14}",
        "clients",
        "raw commits/s",
        "transitions/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU ms",
        "mails waiting"
    );
    let raw_single = raw_commits::raw_rate(&db, &ids, 1, args.seconds).await?;
    for &clients in &args.clients {
        anyhow::ensure!(
            clients <= projects.len(),
            "at most {} clients",
            projects.len()
        );
        let raw = if clients == 1 {
            raw_single
        } else {
            raw_commits::raw_rate(&db, &ids, clients, args.seconds).await?
        };
        let before = ServerCounters::scrape(&http, &args.url).await?;
        let run = http_rate(&http, &args, &token, &projects[..clients]).await?;
        let after = ServerCounters::scrape(&http, &args.url).await?;
        println!(
            "{clients:>8} {raw:>14.0} {:>14.0} {:>8.2} {:>9.2} {:>9.2} {:>8} {:>15.3} {:>14.0}   (vs raw at 1: {:.2})",
            run.rate,
            run.rate / raw,
            run.p50_ms,
            run.p99_ms,
            run.errors,
            after.cpu_ms_per_transition_since(&before),
            after.mails_waiting,
            run.rate / raw_single
        );
    }
    Ok(())
}

/// What the server's `/metrics` says of its own work: CPU time and transitions answered. Their ratio, the
/// server's CPU per transition, is steadier between runs than the rates, which move with the machine. The
/// mails still waiting in the outbox are the work a run left for later: each transition queues one.
struct ServerCounters {
    cpu_seconds: f64,
    transitions: f64,
    mails_waiting: f64,
}

impl ServerCounters {
    async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Self> {
        let text = http
            .get(format!("{url}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        let cpu_seconds = text
            .lines()
            .find(|l| l.starts_with("process_cpu_seconds_total "))
            .and_then(value)
            .context("no process_cpu_seconds_total in /metrics")?;
        let transitions = text
            .lines()
            .filter(|l| {
                l.starts_with("incubator_http_requests_total{")
                    && l.contains("route=\"/api/v1/projects/{id}/transitions\"")
                    && l.contains("status=\"200\"")
            })
            .filter_map(value)
            .sum();
        let mails_waiting = text
            .lines()
            .find(|l| l.starts_with("incubator_mail_outbox{status=\"pending\"}"))
            .and_then(value)
            .unwrap_or(0.0);
        Ok(Self {
            cpu_seconds,
            transitions,
            mails_waiting,
        })
    }

    /// Milliseconds of server CPU per transition answered between `earlier` and this scrape.
    fn cpu_ms_per_transition_since(&self, earlier: &Self) -> f64 {
        1e3 * (self.cpu_seconds - earlier.cpu_seconds)
            / (self.transitions - earlier.transitions).max(1.0)
    }
}

async fn current(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: i64,
) -> anyhow::Result<Project> {
    let project: Value = http
        .get(format!("{url}/api/v1/projects/{id}"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Project {
        id,
        state: project["state"].as_str().context("state")?.to_owned(),
        version: project["version"].as_i64().context("version")?,
    })
}

/// The part of a transition's answer the generator reads.
#[derive(serde::Deserialize)]
struct Moved {
    state: String,
    version: i64,
}

struct Run {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Each client owns one project and fires the loop's next transition at the version it last saw.
async fn http_rate(
    http: &reqwest::Client,
    args: &Args,
    token: &str,
    projects: &[Project],
) -> anyhow::Result<Run> {
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut tasks = Vec::new();
    for project in projects {
        // Earlier measures moved the project on: start from where it is now.
        let project = current(http, &args.url, token, project.id).await?;
        let (http, stop, counting, done, errors, latencies) = (
            http.clone(),
            stop.clone(),
            counting.clone(),
            done.clone(),
            errors.clone(),
            latencies.clone(),
        );
        let url = format!("{}/api/v1/projects/{}/transitions", args.url, project.id);
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut project = project;
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let transition = project.next_transition();
                let started = Instant::now();
                let answer = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "transition": transition, "expected_version": project.version }))
                    .send()
                    .await?;
                let status = answer.status();
                if !status.is_success() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    bail!("transition refused: {status} {}", answer.text().await?);
                }
                // Only what the next request needs is kept: the generator shares the cores with the
                // server, and every value it builds for nothing is CPU the server does not get.
                let moved: Moved = answer.json().await?;
                let elapsed = started.elapsed();
                project.state = moved.state;
                project.version = moved.version;
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                    mine.push(elapsed);
                }
            }
            latencies.lock().await.extend(mine);
            anyhow::Ok(())
        }));
    }
    // One warm-up second, not counted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let mut all = latencies.lock().await.clone();
    all.sort_unstable();
    Ok(Run {
        rate: done.load(Ordering::Relaxed) as f64 / elapsed,
        p50_ms: percentile_ms(&all, 0.50),
        p99_ms: percentile_ms(&all, 0.99),
        errors: errors.load(Ordering::Relaxed),
    })
}
