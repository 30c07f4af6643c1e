//! `incubator user add`: accounts are created from the command line, the password read from standard input
//! so that it never appears in the shell history or the process list.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use incubator_server::password_policy;
use incubator_store::users::{self, NewUser};

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add(AddArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
    #[arg(long, value_enum)]
    role: RoleArg,
    /// A council account's region (INSEE code, e.g. 53); officers and admins have none.
    #[arg(long)]
    region: Option<String>,
    /// Language of the account's emails.
    #[arg(long, default_value = "fr", value_parser = ["fr", "en"])]
    lang: String,
    /// Read the password from the first line of standard input.
    #[arg(long, required = true)]
    password_stdin: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Officer,
    Council,
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::Council => "council",
            Self::Admin => "admin",
        }
    }
}

pub async fn run(settings: &Settings, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add(args) => add(settings, args).await,
    }
}

async fn add(settings: &Settings, args: AddArgs) -> anyhow::Result<ExitCode> {
    if !args.password_stdin {
        bail!("give the password on standard input with --password-stdin");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if let Err(weak) = password_policy::check(&password, &[&args.email, &args.name]) {
        bail!("{weak}");
    }
    let password_hash =
        tokio::task::spawn_blocking(move || incubator_server::auth::hash_password(&password))
            .await
            .context("the hashing task failed")??;
    let store = settings.open_store().await?;
    let user = users::create(
        store.db(),
        NewUser {
            email: args.email,
            name: args.name,
            role: args.role.as_str().to_owned(),
            region_code: args.region,
            password_hash,
            lang: args.lang,
        },
        chrono::Utc::now(),
    )
    .await?;
    let region = user
        .region_code
        .as_deref()
        .map(|r| format!(" of region {r}"))
        .unwrap_or_default();
    println!(
        "account {} created: {} ({}{region})",
        user.id, user.email, user.role
    );
    Ok(ExitCode::SUCCESS)
}
