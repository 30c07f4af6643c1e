//! `incubator config check`: the layered configuration checked as the service would use it, without
//! starting anything.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use incubator_mailer::config::{DEFAULT_PUBLIC_URL, parse_mailbox, parse_public_url};
use incubator_server::config::redact_url;

use crate::settings::{ConfigFile, Flags, Loaded, Problem, Settings};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration (file, environment, flags) and print the effective settings, each with
    /// where it came from, secrets hidden. Checks every value's type, unknown keys, the database and SMTP
    /// URLs, the sender, the public address, the allowed origins, that every workflow definition of the
    /// workflows folder loads and that the email templates load strictly and cover every template the
    /// workflows name. It connects to nothing: neither the database nor the SMTP server is tried. Exits 1
    /// with every problem listed.
    Check,
}

pub fn run(config: Option<&Path>, flags: Flags, command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Check => check(config, flags),
    }
}

fn check(config: Option<&Path>, flags: Flags) -> ExitCode {
    let file = match ConfigFile::find(config) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let loaded = match Settings::load(file.as_ref(), std::env::vars(), flags) {
        Ok(loaded) => loaded,
        Err(problems) => return fail(&problems),
    };
    match &loaded.file {
        Some(path) => println!(
            "# effective settings, from {} and the defaults, environment and flags",
            path.display()
        ),
        None => println!(
            "# effective settings: no configuration file, the defaults, environment and flags"
        ),
    }
    print!("{}", loaded.render());
    let mut problems = loaded.unknown.clone();
    problems.extend(check_values(&loaded));
    problems.extend(check_files(&loaded));
    if problems.is_empty() {
        println!("configuration OK");
        ExitCode::SUCCESS
    } else {
        fail(&problems)
    }
}

fn fail(problems: &[Problem]) -> ExitCode {
    for problem in problems {
        eprintln!("error: {problem}");
    }
    eprintln!("the configuration has {} problem(s)", problems.len());
    ExitCode::FAILURE
}

/// Values well typed but wrong: URLs, the sender, origins.
fn check_values(loaded: &Loaded) -> Vec<Problem> {
    let settings = &loaded.settings;
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_owned(),
            at: loaded.source(key),
            message,
        });
    };
    if let Some(url) = &settings.database.url
        && let Err(message) = check_database_url(url)
    {
        problem("database.url", message);
    }
    if let Err(e) = parse_mailbox(&settings.mail.from) {
        problem("mail.from", e.to_string());
    }
    let public_url = settings.server.public_url.as_deref();
    if let Err(e) = parse_public_url(public_url.unwrap_or(DEFAULT_PUBLIC_URL)) {
        problem("server.public_url", e.to_string());
    }
    for origin in &settings.server.cors_origins {
        if !is_origin(origin) {
            problem(
                "server.cors_origins",
                format!(
                    "`{origin}` is not an origin: a scheme, a host and maybe a port, nothing after"
                ),
            );
        }
    }
    if let Some(scanner) = settings.server_config().antivirus
        && let Err(message) = scanner.check()
    {
        problem("antivirus.lease", message);
    }
    if let Ok(mail) = settings.mail_config()
        && let Some(url) = &mail.smtp_url
    {
        // Parsed by lettre itself, as delivery will; its pool wants a runtime to be built in.
        let built = crate::db_cmd::runtime()
            .map_err(|e| e.to_string())
            .and_then(|runtime| {
                let _inside = runtime.enter();
                incubator_mailer::Transport::from_config(&mail)
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
        if let Err(message) = built {
            problem(
                "mail.smtp_url",
                format!(
                    "`{}` is not an SMTP URL lettre reads: {message}",
                    redact_url(url)
                ),
            );
        }
    }
    problems
}

/// `sqlite:…` or `postgres://…` that parses, with a host; the message never shows a password.
fn check_database_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    if let Some(path) = url.strip_prefix("sqlite:") {
        return if path.trim_start_matches('/').is_empty() {
            Err(format!("`{shown}` names no database file"))
        } else {
            Ok(())
        };
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!("`{shown}` is neither postgres://… nor sqlite:…"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("`{shown}` does not parse: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{shown}` names no host"));
    }
    Ok(())
}

fn is_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.path() == "/"
            && !origin.ends_with('/')
            && url.query().is_none()
            && url.fragment().is_none()
    })
}

/// The workflows folder and the email templates, checked as the service loads them.
fn check_files(loaded: &Loaded) -> Vec<Problem> {
    let settings = &loaded.settings;
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_owned(),
            at: loaded.source(key),
            message,
        });
    };
    let templates = &settings.mail.templates;
    if let Err(e) = incubator_notify::Templates::load(templates) {
        problem(
            "mail.templates",
            format!(
                "the email templates in {} do not load: {e}",
                templates.display()
            ),
        );
    }
    let workflows = &settings.server.workflows;
    match incubator_server::app::workflow_files(workflows) {
        Err(e) => problem(
            "server.workflows",
            format!(
                "cannot read the workflows folder {}: {e}",
                workflows.display()
            ),
        ),
        Ok(files) if files.is_empty() => {
            println!(
                "note: no workflow definition in {}: the service will deploy none",
                workflows.display()
            );
        }
        Ok(files) => {
            if !crate::workflow_cmd::check(&files, templates) {
                problem(
                    "server.workflows",
                    format!(
                        "the workflow definitions in {} do not all check against the templates in {} \
                         (see above)",
                        workflows.display(),
                        templates.display()
                    ),
                );
            }
        }
    }
    problems
}
