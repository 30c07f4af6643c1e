//! `incubator remind --now <RFC 3339> [--dry-run]`: one scheduler pass at a given instant, the same pass
//! the service runs periodically, so that tests and officers can see what goes out on a date.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use incubator_mailer::Scheduler;

use crate::settings::Settings;

#[derive(Debug, Clone, Args)]
pub struct RemindArgs {
    /// The instant the pass runs at, e.g. `2024-11-04T09:00:00+01:00`; the current time when absent.
    #[arg(long, value_parser = parse_instant)]
    pub now: Option<DateTime<Utc>>,
    /// Report what would go out and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 time such as 2024-11-04T09:00:00+01:00: {e}")
        })
}

pub async fn run(settings: &Settings, args: RemindArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_store().await?;
    let now = args.now.unwrap_or_else(Utc::now);
    let scheduler = Scheduler::new(store);
    let report = scheduler
        .pass(now, args.dry_run, |r| {
            let what = if r.new {
                if args.dry_run { "would send" } else { "queued" }
            } else {
                "already sent"
            };
            println!(
                "{what}: project {} (region {}) deadline {} due {} step {} template {} to {}",
                r.project_id,
                r.region_code,
                r.deadline_key,
                r.due_at.to_rfc3339(),
                r.step,
                r.template,
                r.to_roles.join(",")
            );
        })
        .await?;
    if let Some(week) = &report.digest {
        let what = if args.dry_run { "would send" } else { "queued" };
        println!("{what}: officers' digest of week {week}");
    }
    println!(
        "{} pass at {}: {} deadline(s) due, {} reminder(s) {}, {} already sent, {} mail row(s) queued",
        if args.dry_run { "dry" } else { "scheduler" },
        now.to_rfc3339(),
        report.examined,
        report.reminders,
        if args.dry_run { "to send" } else { "recorded" },
        report.already_sent,
        report.mails
    );
    Ok(ExitCode::SUCCESS)
}
