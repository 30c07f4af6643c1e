//! `incubator workflow …`: check definitions, draw them, plan them; deploy them and migrate running projects
//! to a new version.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};
use incubator_engine::{LoadError, Workflow, start_of_local_day};
use incubator_notify::Templates;
use incubator_store::versions::{MigrationReport, MigrationRequest, migrate};

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check definitions: syntax, references, graph, email templates and child workflows.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder of email templates, one subfolder per template.
        #[arg(long, default_value = "templates/email")]
        templates: PathBuf,
    },
    /// Print a definition as a diagram.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Print the planned timeline: the critical path with entry dates, and the goal verdict.
    Plan {
        file: PathBuf,
        /// State to plan from (default: the initial state).
        #[arg(long)]
        from: Option<String>,
        /// Day the project enters that state, YYYY-MM-DD (default: today).
        #[arg(long)]
        start: Option<NaiveDate>,
    },
    /// Store definitions as deployed versions: an unchanged file is a no-op, a changed file under a
    /// deployed version is refused (raise `version`).
    Deploy {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Move running projects to another deployed version: state mapping, requirements and fields that
    /// appear or vanish, every deadline and pending reminder recomputed. One transaction per project.
    Migrate {
        /// Workflow id, e.g. `csirt-incubation`.
        #[arg(long)]
        workflow: String,
        /// Target version (deployed before).
        #[arg(long)]
        to: i32,
        /// Project ids, comma-separated (default: every project of the workflow).
        #[arg(long, value_delimiter = ',')]
        projects: Option<Vec<i64>>,
        /// Where a state that no longer exists goes: `--map old_state=new_state`, repeatable.
        #[arg(long = "map", value_parser = parse_mapping)]
        map: Vec<(String, String)>,
        /// Print what would change and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((old, new)) if !old.trim().is_empty() && !new.trim().is_empty() => {
            Ok((old.trim().to_owned(), new.trim().to_owned()))
        }
        _ => Err(format!(
            "`{text}` is not a mapping: write OLD_STATE=NEW_STATE, e.g. awaiting_incubation=awaiting_session"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// `settings` is read only by the commands that touch the database: checking or drawing a definition needs
/// no configuration.
pub fn run(cmd: WorkflowCommand, settings: impl FnOnce() -> anyhow::Result<Settings>) -> ExitCode {
    let result = match cmd {
        WorkflowCommand::Deploy { files } => {
            settings().and_then(|s| crate::with_runtime(|| deploy(&s, files)))
        }
        WorkflowCommand::Migrate {
            workflow,
            to,
            projects,
            map,
            dry_run,
            json,
        } => {
            let request = MigrationRequest {
                workflow_id: workflow,
                to_version: to,
                projects,
                map: map.into_iter().collect::<BTreeMap<_, _>>(),
                actor: "cli".into(),
                now: Utc::now(),
            };
            settings().and_then(|s| crate::with_runtime(|| migrate_cmd(&s, request, dry_run, json)))
        }
        WorkflowCommand::Validate { files, templates } => Ok(if check(&files, &templates) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        WorkflowCommand::Graph { file, format } => graph(&file, format),
        WorkflowCommand::Plan { file, from, start } => plan(&file, from.as_deref(), start),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads one definition, printing its errors; `None` when it does not load.
fn load(file: &Path) -> Option<Workflow> {
    let name = file.display().to_string();
    match fs::read_to_string(file) {
        Err(error) => {
            eprintln!("{name}: cannot read: {error}");
            None
        }
        Ok(source) => Workflow::from_yaml(&source, &name)
            .map_err(|errors| print_errors(errors.errors()))
            .ok(),
    }
}

fn print_errors(errors: &[LoadError]) {
    for error in errors {
        eprintln!("{error}");
    }
}

fn template_names(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let entries = fs::read_dir(dir)
        .with_context(|| format!("templates directory `{}` cannot be read", dir.display()))?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("reading templates directory `{}`", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// The template names workflows may refer to. The templates are loaded as the service loads them: every
/// one rendered strictly, in fr and en, with the contexts mail delivery fills in, so a template naming a
/// variable its mail will not have fails here, with its file and line. When they do not load, that is
/// reported and the folders found still serve to check each workflow's references.
fn known_templates(dir: &Path) -> (bool, Option<BTreeSet<String>>) {
    let folders = match template_names(dir) {
        Ok(folders) => folders,
        Err(error) => {
            eprintln!("error: {error:#}");
            return (false, None);
        }
    };
    match Templates::load(dir) {
        Ok(templates) => (true, Some(templates.names())),
        Err(error) => {
            eprintln!("error: {error}");
            (false, Some(folders))
        }
    }
}

/// Checks definitions together (child workflows are looked up among them) against a templates folder,
/// printing a line per definition and every error; whether all are sound.
pub fn check(files: &[PathBuf], templates: &Path) -> bool {
    let (mut sound, known_templates) = known_templates(templates);
    let loaded: Vec<(&PathBuf, Option<Workflow>)> = files.iter().map(|f| (f, load(f))).collect();
    // Child workflows are looked up among the definitions validated together.
    let known_ids: BTreeSet<String> = loaded
        .iter()
        .filter_map(|(_, w)| w.as_ref())
        .map(|w| w.id().to_owned())
        .collect();
    for (file, workflow) in &loaded {
        let Some(workflow) = workflow else {
            sound = false;
            continue;
        };
        let mut errors = workflow.check_children(&known_ids);
        if let Some(known) = &known_templates {
            errors.extend(workflow.check_templates(known));
        }
        if errors.is_empty() {
            println!(
                "{}: ok — {} v{}, {} states, {} transitions, {} requirements",
                file.display(),
                workflow.id(),
                workflow.version(),
                workflow.states().len(),
                workflow.transitions().len(),
                workflow.requirements().len()
            );
        } else {
            errors.sort_by_key(|e| (e.line, e.column));
            print_errors(&errors);
            sound = false;
        }
    }
    sound
}

fn graph(file: &Path, format: GraphFormat) -> anyhow::Result<ExitCode> {
    let Some(workflow) = load(file) else {
        return Ok(ExitCode::FAILURE);
    };
    print!(
        "{}",
        match format {
            GraphFormat::Dot => workflow.to_dot(),
            GraphFormat::Mermaid => workflow.to_mermaid(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn plan(file: &Path, from: Option<&str>, start: Option<NaiveDate>) -> anyhow::Result<ExitCode> {
    let Some(workflow) = load(file) else {
        return Ok(ExitCode::FAILURE);
    };
    let tz = workflow.timezone();
    let from = from.unwrap_or(&workflow.initial_state().id);
    if workflow.state(from).is_none() {
        bail!("unknown state `{from}` in {}", workflow.id());
    }
    let start = start.unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive());
    let Some(plan) = workflow.plan(from, start_of_local_day(start, tz)) else {
        bail!("no successful end can be reached from `{from}`");
    };
    let day = |t: chrono::DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d").to_string();
    let path = &plan.critical_path;
    println!(
        "{} v{}: plan from `{from}` starting {start} ({tz})",
        workflow.id(),
        workflow.version()
    );
    println!(
        "critical path: {} at the latest, {} at the earliest",
        path.longest.total, path.shortest.total
    );
    println!("  {:<28} {:<14} latest entry", "state", "earliest entry");
    for stage in &plan.timeline {
        println!(
            "  {:<28} {:<14} {}",
            stage.state,
            day(stage.earliest_entry),
            day(stage.latest_entry)
        );
    }
    println!(
        "success between {} and {}",
        day(plan.earliest),
        day(plan.latest)
    );
    if let Some(goal) = &plan.goal {
        let by = day(goal.due - chrono::TimeDelta::seconds(1));
        let verdict = match (goal.can_make_it, goal.on_time_at_latest) {
            (_, true) => "on time, even at the latest",
            (true, false) => {
                "at risk: on time only if stages run faster than their planned maximum"
            }
            (false, _) => "missed: even the earliest success comes after it",
        };
        println!("goal {} (by {by}): {verdict}", goal.goal);
    }
    Ok(ExitCode::SUCCESS)
}

async fn deploy(settings: &Settings, files: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let store = settings.open_store().await?;
    let mut sound = true;
    for file in &files {
        let name = file.display().to_string();
        let source =
            fs::read_to_string(file).with_context(|| format!("{name}: cannot read the file"))?;
        match store.deploy_workflow(&source, &name, Utc::now()).await {
            Ok(deployed) => println!(
                "{name}: {} v{} {}",
                deployed.id,
                deployed.version,
                if deployed.created {
                    "created"
                } else {
                    "unchanged"
                }
            ),
            Err(error) => {
                eprintln!("{name}: {error}");
                sound = false;
            }
        }
    }
    Ok(if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn migrate_cmd(
    settings: &Settings,
    request: MigrationRequest,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store().await?;
    let report = migrate(&store, &request, dry_run).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", human_report(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as an officer reads it: per project, the state, what appears and vanishes, every deadline
/// and pending reminder, old → new (`—` where there is none).
fn human_report(report: &MigrationReport) -> String {
    use std::fmt::Write;
    let at = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or("—".to_owned(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        })
    };
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut out = String::new();
    let verb = if report.dry_run {
        "dry run, nothing written"
    } else {
        "applied"
    };
    let _ = writeln!(
        out,
        "{} → v{}: {} project(s) ({verb})",
        report.workflow_id,
        report.to_version,
        report.projects.len()
    );
    for p in &report.projects {
        let plan = &p.plan;
        let _ = writeln!(
            out,
            "project {} (region {}): v{} → v{}, state {} → {}",
            p.project_id,
            p.region_code,
            plan.from_version,
            plan.to_version,
            plan.from_state,
            plan.to_state
        );
        let _ = writeln!(
            out,
            "  requirements: +{} / -{}",
            list(&plan.requirements_added),
            list(&plan.requirements_removed)
        );
        let _ = writeln!(
            out,
            "  fields: +{} / -{}",
            list(&plan.fields_added),
            list(&plan.fields_removed)
        );
        for (key, value) in &plan.dropped_values {
            let _ = writeln!(out, "  value dropped: {key} = {value}");
        }
        for d in &plan.deadlines {
            let paused = d.paused_at.map_or(String::new(), |p| {
                format!(" (paused since {})", at(Some(p)))
            });
            let _ = writeln!(
                out,
                "  deadline {}: {} → {}{paused}",
                d.key,
                at(d.old_due),
                at(d.new_due)
            );
            for s in &d.reminders.pending {
                let _ = writeln!(
                    out,
                    "    reminder {}: {} → {}",
                    s.step,
                    at(s.old_send_at),
                    at(s.new_send_at)
                );
            }
            if !d.reminders.carried.is_empty() {
                let _ = writeln!(
                    out,
                    "    already sent, not sent again: {}",
                    d.reminders.carried.join(", ")
                );
            }
        }
    }
    if !report.unchanged.is_empty() {
        let ids: Vec<String> = report.unchanged.iter().map(i64::to_string).collect();
        let _ = writeln!(
            out,
            "already on v{}: project(s) {}",
            report.to_version,
            ids.join(", ")
        );
    }
    out
}
