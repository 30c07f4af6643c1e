//! `incubator`: the command-line program of csirt-incubator.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod config_cmd;
mod db_cmd;
mod remind_cmd;
mod serve_cmd;
mod settings;
mod user_cmd;
mod workflow_cmd;

// glibc's malloc gives each thread that allocates under contention an arena of its own and rarely returns
// their memory: under a steady load the service's resident memory kept growing (docs/reliability.md, Soak).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "incubator",
    version,
    about = "csirt-incubator: ANSSI's regional CSIRT incubation programme"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Settings every subcommand takes; each overrides its key of the configuration (docs/configuration.md).
#[derive(Debug, Clone, Args)]
struct GlobalArgs {
    /// Configuration file (TOML); when absent, `./incubator.toml` if there is one.
    #[arg(long, env = settings::CONFIG_VAR, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Data directory: the SQLite file (when no database URL) and the uploaded evidence [server.data_dir;
    /// default ./data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// `postgres://user@host/db` or `sqlite://path`; unset means the SQLite file in the data directory
    /// [database.url; also DATABASE_URL].
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// SQLite durability: `full` survives power loss (default), `normal` only process crashes
    /// [database.sqlite_synchronous].
    #[arg(long, value_enum, global = true)]
    sqlite_synchronous: Option<settings::SqliteSynchronous>,
}

impl GlobalArgs {
    fn flags(&self) -> settings::Flags {
        let mut flags = settings::Flags::default();
        flags.set("server.data_dir", "--data-dir", self.data_dir.as_ref());
        flags.set("database.url", "--database-url", self.database_url.as_ref());
        flags.set(
            "database.sqlite_synchronous",
            "--sqlite-synchronous",
            self.sqlite_synchronous,
        );
        flags
    }

    /// The layered settings; wrong values are an error listing each, unknown keys are left to the caller.
    fn load(&self, flags: settings::Flags) -> anyhow::Result<settings::Loaded> {
        let file = settings::ConfigFile::find(self.config.as_deref())?;
        settings::Settings::load(file.as_ref(), std::env::vars(), flags).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
            anyhow::anyhow!(
                "the configuration is wrong ({} problem(s)):\n{}",
                problems.len(),
                list.join("\n")
            )
        })
    }

    /// The settings, for commands that are not the service: unknown keys are warned about on stderr.
    fn settings(&self, flags: settings::Flags) -> anyhow::Result<settings::Settings> {
        let loaded = self.load(flags)?;
        for unknown in &loaded.unknown {
            eprintln!("warning: unknown setting ignored: {unknown}");
        }
        Ok(loaded.settings)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The configuration (file, environment, flags): see docs/configuration.md.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
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
    let global = cli.global;
    let mut flags = global.flags();
    let result = match cli.command {
        Command::Workflow(cmd) => return workflow_cmd::run(cmd, || global.settings(flags)),
        Command::Config(cmd) => return config_cmd::run(global.config.as_deref(), flags, cmd),
        Command::Serve(args) => {
            args.flags(&mut flags);
            global
                .load(flags)
                .and_then(|loaded| serve_cmd::serve(loaded, args))
        }
        Command::Db(cmd) => global
            .settings(flags)
            .and_then(|s| with_runtime(|| db_cmd::db(&s, cmd))),
        Command::Audit(cmd) => global
            .settings(flags)
            .and_then(|s| with_runtime(|| db_cmd::audit(&s, cmd))),
        Command::Export { output } => global
            .settings(flags)
            .and_then(|s| with_runtime(|| db_cmd::export(&s, output))),
        Command::Import { file } => global
            .settings(flags)
            .and_then(|s| with_runtime(|| db_cmd::import(&s, file))),
        Command::User(cmd) => global
            .settings(flags)
            .and_then(|s| with_runtime(|| user_cmd::run(&s, cmd))),
        Command::Remind(args) => global
            .settings(flags)
            .and_then(|s| with_runtime(|| remind_cmd::run(&s, args))),
    };
    report(result)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
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
