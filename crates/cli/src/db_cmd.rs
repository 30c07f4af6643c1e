//! Commands that work on the programme's database: migrations, audit, export and import.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use incubator_store::{DbConfig, SqliteSync, Store, audit, transfer};

/// How every subcommand finds the database: `DATABASE_URL`, else a SQLite file in `--data-dir`.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Data directory: the SQLite file (when no DATABASE_URL) and the uploaded evidence.
    #[arg(
        long,
        env = "INCUBATOR_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `postgres://user@host/db` or `sqlite://path`; unset means the SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// SQLite durability: `full` survives power loss (default), `normal` only process crashes.
    #[arg(
        long,
        env = "INCUBATOR_SQLITE_SYNCHRONOUS",
        default_value = "full",
        global = true
    )]
    pub sqlite_synchronous: SyncArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SyncArg {
    Full,
    Normal,
}

impl DbArgs {
    pub fn config(&self) -> DbConfig {
        DbConfig {
            url: self.database_url.clone(),
            sqlite_sync: match self.sqlite_synchronous {
                SyncArg::Full => SqliteSync::Full,
                SyncArg::Normal => SqliteSync::Normal,
            },
            ..DbConfig::default()
        }
    }

    pub async fn open(&self) -> anyhow::Result<Store> {
        Store::open(&self.config(), &self.data_dir)
            .await
            .context("cannot open the database")
    }
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (the service also does it at start-up).
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk every project's hash chain and report the first broken link.
    Verify,
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub async fn db(args: &DbArgs, command: DbCommand) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Migrate => {
            let store = args.open().await?;
            println!(
                "database migrated ({})",
                incubator_store::db::backend_name(store.db())
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn audit(args: &DbArgs, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify => {
            let store = args.open().await?;
            let report = audit::verify(store.db()).await?;
            match report.broken {
                None => {
                    println!(
                        "audit trail intact: {} project(s), {} event(s)",
                        report.projects, report.events
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(link) => {
                    let event = link
                        .event_id
                        .map(|id| format!(" (event id {id})"))
                        .unwrap_or_default();
                    eprintln!(
                        "audit trail BROKEN at project {} event #{}{event}: {}",
                        link.project_id, link.seq, link.reason
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

pub async fn export(args: &DbArgs, output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let store = args.open().await?;
    let data = transfer::export(store.db(), chrono::Utc::now()).await?;
    let text = serde_json::to_string_pretty(&data)?;
    match output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn import(args: &DbArgs, input: PathBuf) -> anyhow::Result<ExitCode> {
    let text = if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(&input)
            .with_context(|| format!("cannot read {}", input.display()))?
    };
    let data: transfer::Export = match serde_json::from_str(&text) {
        Ok(data) => data,
        Err(e) => bail!(
            "{}:{}:{}: not an export file: {e}",
            input.display(),
            e.line(),
            e.column()
        ),
    };
    let store = args.open().await?;
    let (projects, events) = (data.projects.len(), data.events.len());
    transfer::import(store.db(), data).await?;
    println!("imported {projects} project(s) and {events} event(s)");
    Ok(ExitCode::SUCCESS)
}
