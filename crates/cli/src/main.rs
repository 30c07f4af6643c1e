//! `incubator`: the command-line program of csirt-incubator.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod db_cmd;
mod remind_cmd;
mod serve_cmd;
mod user_cmd;
mod workflow_cmd;

#[derive(Debug, Parser)]
#[command(
    name = "incubator",
    version,
    about = "csirt-incubator: ANSSI's regional CSIRT incubation programme"
)]
struct Cli {
    #[command(flatten)]
    db: db_cmd::DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, draw and plan workflow definitions.
    #[command(subcommand)]
    Workflow(workflow_cmd::WorkflowCommand),
    /// Database administration.
    #[command(subcommand)]
    Db(db_cmd::DbCommand),
    /// The tamper-evident audit trail.
    #[command(subcommand)]
    Audit(db_cmd::AuditCommand),
    /// Write the whole programme (projects, events, documents' metadata, accounts) as JSON.
    Export {
        /// File to write; standard output when absent.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Restore an export into an empty database.
    Import {
        /// Export file, or `-` for standard input.
        file: PathBuf,
    },
    /// Run the web service (the JSON API).
    Serve(serve_cmd::ServeArgs),
    /// Accounts.
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// Run one scheduler pass (reminders, weekly digest) at a given time.
    Remind(remind_cmd::RemindArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let db = cli.db;
    let result = match cli.command {
        Command::Workflow(cmd) => return workflow_cmd::run(&db, cmd),
        Command::Db(cmd) => with_runtime(|| db_cmd::db(&db, cmd)),
        Command::Audit(cmd) => with_runtime(|| db_cmd::audit(&db, cmd)),
        Command::Export { output } => with_runtime(|| db_cmd::export(&db, output)),
        Command::Import { file } => with_runtime(|| db_cmd::import(&db, file)),
        Command::Serve(args) => serve_cmd::serve(&db, args),
        Command::User(cmd) => with_runtime(|| user_cmd::run(&db, cmd)),
        Command::Remind(args) => with_runtime(|| remind_cmd::run(&db, args)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

pub(crate) fn with_runtime<F: Future<Output = anyhow::Result<ExitCode>>>(
    command: impl FnOnce() -> F,
) -> anyhow::Result<ExitCode> {
    db_cmd::runtime()?.block_on(command())
}
