//! `incubator workflow …`: check definitions, draw them, plan them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};
use incubator_engine::{LoadError, Workflow, start_of_local_day};
use incubator_notify::Templates;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

pub fn run(cmd: WorkflowCommand) -> ExitCode {
    let result = match cmd {
        WorkflowCommand::Validate { files, templates } => validate(&files, &templates),
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

fn validate(files: &[PathBuf], templates: &Path) -> anyhow::Result<ExitCode> {
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
    Ok(if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
