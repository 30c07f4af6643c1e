//! `incubator serve`: the web service. Flags may also come from `INCUBATOR_…` variables; the database is
//! found like every other subcommand's (see [`DbArgs`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use incubator_server::{Application, ServerConfig};
use tracing_subscriber::EnvFilter;

use crate::db_cmd::DbArgs;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "INCUBATOR_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Folder of workflow definitions (`*.yaml`) deployed at start-up; unchanged ones are a no-op.
    #[arg(long, env = "INCUBATOR_WORKFLOWS", default_value = "./workflows")]
    workflows: PathBuf,
    /// Largest evidence file accepted, in bytes.
    #[arg(long, env = "INCUBATOR_MAX_UPLOAD_BYTES", default_value_t = incubator_server::config::DEFAULT_MAX_UPLOAD_BYTES)]
    max_upload_bytes: usize,
    /// Longest a request may take, in seconds (uploads: --upload-timeout-secs).
    #[arg(long, env = "INCUBATOR_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    #[arg(long, env = "INCUBATOR_UPLOAD_TIMEOUT_SECS", default_value_t = 300)]
    upload_timeout_secs: u64,
    /// The address users reach the service at; `https://…` turns HSTS on.
    #[arg(long, env = "INCUBATOR_PUBLIC_URL")]
    public_url: Option<String>,
    /// Origins allowed to call the API from a browser (comma-separated); none by default.
    #[arg(
        long = "cors-origin",
        env = "INCUBATOR_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Days an API token stays valid unless revoked.
    #[arg(long, env = "INCUBATOR_TOKEN_LIFETIME_DAYS", default_value_t = 30)]
    token_lifetime_days: u64,
    /// Folder of email templates (`<name>/{fr,en}/{subject,text,html}.hbs`), proven at start-up.
    #[arg(long, env = "INCUBATOR_TEMPLATES", default_value = "./templates/email")]
    templates: PathBuf,
    /// Load the demo programme (ANSSI's real programme, from public facts) and print the demo accounts.
    /// Loading again is a no-op.
    #[arg(long)]
    demo: bool,
    /// The date the demo is loaded as of: what was known and done by then (implies --demo).
    #[arg(long, value_name = "YYYY-MM-DD")]
    demo_as_of: Option<chrono::NaiveDate>,
    /// Log lines as text or as JSON objects; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "INCUBATOR_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn serve(db: &DbArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    let mut config = config(db, &args);
    let demo_as_of = (args.demo || args.demo_as_of.is_some())
        .then(|| args.demo_as_of.unwrap_or(incubator_demo::DEFAULT_AS_OF));
    // A demo as of a past date runs its programme from that date: deadlines, forecasts and new events read
    // as they would have then, and the demo stays coherent however long after it is started.
    let clock_offset = demo_as_of.map_or(chrono::TimeDelta::zero(), |as_of| {
        let now = chrono::Utc::now();
        as_of.and_time(now.time()).and_utc() - now
    });
    config.programme_clock_offset = clock_offset;
    crate::db_cmd::runtime()?.block_on(async move {
        // Templates first: one naming a variable its mail lacks stops the start, not a send months later.
        let templates = incubator_notify::Templates::load(&args.templates)
            .with_context(|| format!("email templates in {}", args.templates.display()))?;
        let mut mail = mail_config(db, &args)?;
        mail.programme_clock_offset = clock_offset;
        let app = Application::build(config)
            .await
            .context("cannot start the service")?;
        let (stop_mail, mail_shutdown) = tokio::sync::watch::channel(false);
        let mailer = incubator_mailer::spawn(
            app.state().store().clone(),
            std::sync::Arc::new(templates),
            std::sync::Arc::new(mail),
            mail_shutdown,
        )
        .context("cannot start mail delivery")?;
        if let Some(as_of) = demo_as_of {
            load_demo(app.state().store(), as_of).await?;
            println!("demo clock: the programme's today is {as_of}");
        }
        println!(
            "csirt-incubator is listening on http://{}:{}/",
            bind_host(&args),
            app.port()
        );
        let served = app.run(shutdown_signal()).await;
        // The delivery worker finishes the mail in hand; what is left stays queued for the next start.
        let _ = stop_mail.send(true);
        if let Err(e) = mailer.await {
            tracing::warn!(error = %e, "mail delivery task ended abnormally");
        }
        served.context("the service stopped on an error")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Loads the demo programme and prints what a newcomer needs to sign in.
async fn load_demo(store: &incubator_store::Store, as_of: chrono::NaiveDate) -> anyhow::Result<()> {
    let hasher = |password: &str| {
        // A demo password that cannot be hashed would be a bug in the demo data, not a user's error.
        incubator_server::auth::hash_password(password).unwrap_or_default()
    };
    let summary = incubator_demo::load(store, as_of, &hasher)
        .await
        .context("cannot load the demo programme")?;
    let applied = summary.steps_applied();
    println!(
        "demo programme as of {as_of}: {applied} step(s) applied (0 means it was loaded already)"
    );
    println!("demo accounts (email / password):");
    for account in &summary.accounts {
        let region = account
            .region_code
            .as_deref()
            .map(|c| format!(" (region {c})"))
            .unwrap_or_default();
        println!(
            "  {:<8} {:<40} {}{region}",
            account.role, account.email, account.password
        );
    }
    Ok(())
}

/// Mail settings come from `SMTP_URL`, `MAIL_FROM` and `PUBLIC_URL` (or their `INCUBATOR_` forms);
/// `--public-url` wins so that pages and mails agree on it.
fn mail_config(db: &DbArgs, args: &ServeArgs) -> anyhow::Result<incubator_mailer::MailConfig> {
    let public_url = args.public_url.clone();
    let mail =
        incubator_mailer::MailConfig::from_vars(&db.data_dir, |name| match (name, &public_url) {
            ("PUBLIC_URL" | "INCUBATOR_PUBLIC_URL", Some(url)) => Some(url.clone()),
            _ => std::env::var(name).ok(),
        })
        .context("mail settings")?;
    Ok(mail)
}

/// The host to print in the address to open: a wildcard bind is reached through loopback locally.
fn bind_host(args: &ServeArgs) -> String {
    match args.bind.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

fn config(db: &DbArgs, args: &ServeArgs) -> ServerConfig {
    let mut config = ServerConfig::new(db.data_dir.clone());
    config.bind = args.bind;
    config.db = db.config();
    config.workflows_dir = if args.workflows.is_dir() {
        Some(args.workflows.clone())
    } else {
        eprintln!(
            "warning: no workflows folder at {}: deploying none",
            args.workflows.display()
        );
        None
    };
    config.max_upload_bytes = args.max_upload_bytes;
    config.request_timeout = Duration::from_secs(args.request_timeout_secs);
    config.upload_timeout = Duration::from_secs(args.upload_timeout_secs);
    config.public_url = args.public_url.clone();
    config.cors_allowed_origins = args
        .cors_origins
        .iter()
        .filter(|o| !o.is_empty())
        .cloned()
        .collect();
    config.token_lifetime = Duration::from_secs(args.token_lifetime_days.saturating_mul(24 * 3600));
    config
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A subscriber set already (never in this binary) is not worth failing over.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Ctrl-C or SIGTERM (what a service manager sends): stop accepting, finish what is in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
