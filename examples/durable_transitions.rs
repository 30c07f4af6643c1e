//! Durable transitions per second through the store's group committer, next to the raw commit rate of the
//! same database measured in the same run (a bare transaction with one update and two inserts, one per
//! commit).
//!
//! cargo run --release -p incubator-store --example durable_transitions -- \
//!     --backend sqlite-full|sqlite-normal|postgres [--writers 1,16,64] [--seconds 5]
//!
//! With `--backend postgres`, `DATABASE_URL` names a server database in which a scratch database is made.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[path = "common/raw_commits.rs"]
mod raw_commits;
use raw_commits::{measure, raw_rate};

use anyhow::Context;
use chrono::Utc;
use incubator_engine::{Actor, FireRequest};
use incubator_store::fields::PatchFields;
use incubator_store::projects::{CreateProject, FireTransition, FireTransitionAndRead};
use incubator_store::{DbConfig, SqliteSync, Store};
use sea_orm::{ConnectionTrait, Database, Statement};

// The service's allocator (crates/cli), so that the figures are those of what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A two-state loop with a guard, an email and a deadline on each side: every transition does the work a
/// real one does (version check, event in the hash chain, deadlines cleared and set, outbox row).
const LOOP_WORKFLOW: &str = include_str!("workflows/bench-loop.yaml");
const WORKFLOWS: usize = 4;
const REGIONS: [&str; 18] = [
    "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84",
    "93", "94",
];

struct Args {
    backend: String,
    writers: Vec<usize>,
    seconds: u64,
    /// PostgreSQL: use the fixed scratch database `incubator_bench_keep`, left behind for pgbench.
    keep: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        backend: "sqlite-full".into(),
        writers: vec![1, 16, 64],
        seconds: 5,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            args.keep = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backend" => args.backend = value,
            "--writers" => {
                args.writers = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--seconds" => args.seconds = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dir = tempfile::tempdir()?;
    let config = match args.backend.as_str() {
        "sqlite-full" => DbConfig {
            sqlite_sync: SqliteSync::Full,
            ..DbConfig::default()
        },
        "sqlite-normal" => DbConfig {
            sqlite_sync: SqliteSync::Normal,
            ..DbConfig::default()
        },
        "postgres" => DbConfig {
            url: Some(scratch_postgres(args.keep).await?),
            max_connections: 80,
            ..DbConfig::default()
        },
        other => anyhow::bail!("unknown backend {other}"),
    };
    let store = Store::open(&config, dir.path()).await?;
    let projects = setup(&store).await?;
    println!(
        "backend: {}  ({} projects, {} s per measure)",
        args.backend,
        projects.len(),
        args.seconds
    );
    println!(
        "{:>8} {:>14} {:>14} {:>8}",
        "writers", "raw commits/s", "transitions/s", "ratio"
    );
    let raw_single = raw_rate(store.db(), &projects, 1, args.seconds).await?;
    for &writers in &args.writers {
        let raw = if writers == 1 {
            raw_single
        } else {
            raw_rate(store.db(), &projects, writers, args.seconds).await?
        };
        let durable = transition_rate(&store, &projects, writers, args.seconds).await?;
        println!(
            "{writers:>8} {raw:>14.0} {durable:>14.0} {:>8.2}   (vs raw at 1 writer: {:.2})",
            durable / raw,
            durable / raw_single
        );
    }
    Ok(())
}

async fn scratch_postgres(keep: bool) -> anyhow::Result<String> {
    let server =
        std::env::var("DATABASE_URL").context("set DATABASE_URL to a PostgreSQL database")?;
    let name = if keep {
        "incubator_bench_keep".to_owned()
    } else {
        format!("incubator_bench_{}", std::process::id())
    };
    let admin = Database::connect(&server).await?;
    let backend = admin.get_database_backend();
    admin
        .execute(Statement::from_string(
            backend,
            format!("DROP DATABASE IF EXISTS {name}"),
        ))
        .await?;
    admin
        .execute(Statement::from_string(
            backend,
            format!("CREATE DATABASE {name}"),
        ))
        .await?;
    let base = server.rsplit_once('/').context("URL with a database")?.0;
    Ok(format!("{base}/{name}"))
}

async fn setup(store: &Store) -> anyhow::Result<Vec<i64>> {
    let officer_account = incubator_store::users::NewUser {
        email: "officer@bench.invalid".into(),
        name: "Bench officer".into(),
        role: "officer".into(),
        region_code: None,
        password_hash: "-".into(),
        lang: "fr".into(),
    };
    incubator_store::users::create(store.db(), officer_account, Utc::now()).await?;
    let mut projects = Vec::new();
    for n in 0..WORKFLOWS {
        let source = LOOP_WORKFLOW.replace("id: bench-loop", &format!("id: bench-loop-{n}"));
        store
            .deploy_workflow(&source, "bench-loop.yaml", Utc::now())
            .await?;
        for region in REGIONS {
            let id = store
                .write(CreateProject {
                    registry: store.workflows().clone(),
                    region_code: region.into(),
                    workflow_id: format!("bench-loop-{n}"),
                    actor: officer(),
                    now: Utc::now(),
                })
                .await?;
            let patch =
                std::collections::BTreeMap::from([("note".to_owned(), serde_json::json!("bench"))]);
            let registry = store.workflows().clone();
            store
                .write(PatchFields {
                    registry,
                    project_id: id,
                    patch,
                    actor: "bench".into(),
                    now: Utc::now(),
                })
                .await?;
            projects.push(id);
        }
    }
    Ok(projects)
}

fn officer() -> Actor {
    Actor {
        id: "bench".into(),
        roles: vec!["officer".into()],
    }
}

/// Each writer owns projects of its own (no conflicts) and fires the loop's next transition.
async fn transition_rate(
    store: &Store,
    projects: &[i64],
    writers: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, stop, done) = (store.clone(), stop.clone(), done.clone());
        let id = projects[w % projects.len()];
        // Writers beyond the number of projects share them and would conflict; the bench keeps them apart.
        anyhow::ensure!(
            writers <= projects.len(),
            "at most {} writers",
            projects.len()
        );
        tasks.push(tokio::spawn(async move {
            let mut project = incubator_store::projects::find(store.db(), id).await?;
            while !stop.load(Ordering::Relaxed) {
                let transition = if project.state == "a" { "to_b" } else { "to_a" };
                // As the service fires one: decided on the committed project, then written by the
                // committer under the version check.
                let fire = FireTransition {
                    registry: store.workflows().clone(),
                    project_id: id,
                    expected_version: project.version,
                    request: FireRequest {
                        transition: transition.into(),
                        comment: None,
                    },
                    actor: officer(),
                    now: Utc::now(),
                };
                let fired = incubator_store::projects::fire(
                    &store,
                    FireTransitionAndRead {
                        fire,
                        region_scope: None,
                    },
                )
                .await?;
                project.version = fired.snapshot.project.version;
                project.state = if transition == "to_b" {
                    "b".into()
                } else {
                    "a".into()
                };
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    measure(stop, done, seconds, tasks).await
}
