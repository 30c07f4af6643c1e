//! Commands that work on the programme's database: migrations, audit, export and import. Every command
//! finds the database the same way, from [`Settings`]: `database.url`, else a SQLite file in `server.data_dir`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use incubator_store::{audit, transfer};

use crate::settings::Settings;

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

pub async fn db(settings: &Settings, command: DbCommand) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Migrate => {
            let store = settings.open_store().await?;
            println!(
                "database migrated ({})",
                incubator_store::db::backend_name(store.db())
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn audit(settings: &Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify => {
            let store = settings.open_store().await?;
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

pub async fn export(settings: &Settings, output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let store = settings.open_store().await?;
    let data = transfer::export(store.db(), chrono::Utc::now()).await?;
    let text = serde_json::to_string_pretty(&data)?;
    match output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn import(settings: &Settings, input: PathBuf) -> anyhow::Result<ExitCode> {
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
    let store = settings.open_store().await?;
    let (projects, events) = (data.projects.len(), data.events.len());
    transfer::import(store.db(), data).await?;
    println!("imported {projects} project(s) and {events} event(s)");
    Ok(ExitCode::SUCCESS)
}
