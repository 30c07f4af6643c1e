//! `incubator serve`: the web service, configured by [`crate::settings`]; its flags are the top layer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use incubator_server::Application;
use tracing_subscriber::EnvFilter;

use crate::settings::{Flags, Loaded, LogFormat};

/// Flags of `serve`; each also has a key in the configuration (docs/configuration.md), which it overrides.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [server.bind; default 127.0.0.1:8080].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Folder of workflow definitions (`*.yaml`) deployed at start-up; unchanged ones are a no-op
    /// [server.workflows; default ./workflows].
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// Largest evidence file accepted, in bytes [server.max_upload_bytes].
    #[arg(long)]
    max_upload_bytes: Option<u64>,
    /// Longest a request may take, in seconds [server.request_timeout].
    #[arg(long)]
    request_timeout_secs: Option<u64>,
    /// Longest an upload may take, in seconds [server.upload_timeout].
    #[arg(long)]
    upload_timeout_secs: Option<u64>,
    /// The address users reach the service at; `https://…` turns HSTS on [server.public_url].
    #[arg(long)]
    public_url: Option<String>,
    /// Origins allowed to call the API from a browser (comma-separated) [server.cors_origins; none].
    #[arg(long = "cors-origin", value_delimiter = ',')]
    cors_origins: Option<Vec<String>>,
    /// Days an API token stays valid unless revoked [sessions.token_lifetime].
    #[arg(long)]
    token_lifetime_days: Option<u64>,
    /// Folder of email templates (`<name>/{fr,en}/{subject,text,html}.hbs`), proven at start-up
    /// [mail.templates; default ./templates/email].
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Load the demo programme (ANSSI's real programme, from public facts) and print the demo accounts.
    /// Loading again is a no-op.
    #[arg(long)]
    demo: bool,
    /// The date the demo is loaded as of: what was known and done by then (implies --demo).
    #[arg(long, value_name = "YYYY-MM-DD")]
    demo_as_of: Option<chrono::NaiveDate>,
    /// Log lines as text or as JSON objects; the level comes from RUST_LOG (default `info`) [log.format].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

impl ServeArgs {
    pub fn flags(&self, flags: &mut Flags) {
        flags.set("server.bind", "--bind", self.bind);
        flags.set("server.workflows", "--workflows", self.workflows.as_ref());
        flags.set(
            "server.max_upload_bytes",
            "--max-upload-bytes",
            self.max_upload_bytes,
        );
        let seconds = |n: Option<u64>| n.map(|n| format!("{n}s"));
        flags.set(
            "server.request_timeout",
            "--request-timeout-secs",
            seconds(self.request_timeout_secs),
        );
        flags.set(
            "server.upload_timeout",
            "--upload-timeout-secs",
            seconds(self.upload_timeout_secs),
        );
        flags.set(
            "server.public_url",
            "--public-url",
            self.public_url.as_ref(),
        );
        flags.set(
            "server.cors_origins",
            "--cors-origin",
            self.cors_origins.as_ref(),
        );
        flags.set(
            "sessions.token_lifetime",
            "--token-lifetime-days",
            self.token_lifetime_days.map(|n| format!("{n}d")),
        );
        flags.set("mail.templates", "--templates", self.templates.as_ref());
        flags.set("log.format", "--log-format", self.log_format);
    }
}

pub fn serve(loaded: Loaded, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = loaded.settings;
    init_logs(settings.log.format);
    // A misspelt key is most likely a setting the operator believes set: said loudly, but not fatal, so
    // that a configuration written for a newer version still starts an older one.
    for unknown in &loaded.unknown {
        tracing::warn!(key = %unknown.key, at = %unknown.at, "unknown setting ignored: {}", unknown.message);
    }
    let mut config = settings.server_config();
    config.workflows_dir = if settings.server.workflows.is_dir() {
        Some(settings.server.workflows.clone())
    } else {
        tracing::warn!(
            "no workflows folder at {}: deploying none",
            settings.server.workflows.display()
        );
        None
    };
    let demo_as_of = (args.demo || args.demo_as_of.is_some())
        .then(|| args.demo_as_of.unwrap_or(incubator_demo::DEFAULT_AS_OF));
    // A demo as of a past date runs its programme from that date: deadlines, forecasts and new events read
    // as they would have then, and the demo stays coherent however long after it is started.
    let clock_offset = demo_as_of.map_or(chrono::TimeDelta::zero(), |as_of| {
        let now = chrono::Utc::now();
        as_of.and_time(now.time()).and_utc() - now
    });
    config.programme_clock_offset = clock_offset;
    let bind = config.bind;
    crate::db_cmd::runtime()?.block_on(async move {
        // Templates first: one naming a variable its mail lacks stops the start, not a send months later.
        let templates = incubator_notify::Templates::load(&settings.mail.templates)
            .with_context(|| format!("email templates in {}", settings.mail.templates.display()))?;
        let mut mail = settings.mail_config().context("mail settings")?;
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
            bind_host(bind),
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

/// The host to print in the address to open: a wildcard bind is reached through loopback locally.
fn bind_host(bind: SocketAddr) -> String {
    match bind.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
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
