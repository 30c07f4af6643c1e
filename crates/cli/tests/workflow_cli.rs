//! `incubator workflow …` run as a program, on the shipped definitions and on broken copies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workflows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

/// A copy of the shipped email templates, but for the folders named in `without`.
fn templates_copy(without: &[&str]) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../templates/email");
    let dir = tempfile::tempdir().unwrap();
    copy(&shipped, dir.path());
    for name in without {
        std::fs::remove_dir_all(dir.path().join(name)).unwrap();
    }
    dir
}

fn incubator(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incubator"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_reports_each_sound_file_in_one_line() {
    let templates = templates_copy(&[]);
    let t = templates.path().to_str().unwrap();
    let out = incubator(
        &[
            "workflow",
            "validate",
            "csirt-incubation.yaml",
            "intercert-membership.yaml",
            "--templates",
            t,
        ],
        &workflows(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "csirt-incubation.yaml: ok — csirt-incubation v2, 11 states, 10 transitions, 9 requirements\n\
         intercert-membership.yaml: ok — intercert-membership v1, 7 states, 7 transitions, 4 requirements\n"
    );
}

#[test]
fn validate_lists_every_error_with_its_location() {
    let templates = templates_copy(&[]);
    let t = templates.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(workflows().join("csirt-incubation.yaml")).unwrap();
    let broken = source
        .replace("    to: subsidy\n", "    to: subsidies\n")
        .replace("      after: P3M\n", "      after: 3 months\n");
    std::fs::write(dir.path().join("broken.yaml"), broken).unwrap();
    let out = incubator(
        &["workflow", "validate", "broken.yaml", "--templates", t],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    // Three states wait P3M: each bad copy is reported, then the unknown state, in source order.
    assert_eq!(lines.len(), 4, "{stderr}");
    for line in &lines[..3] {
        assert!(
            line.starts_with("broken.yaml:") && line.contains(": bad duration: `3 months`"),
            "{stderr}"
        );
    }
    assert!(lines[3].contains(": unknown state `subsidies`"), "{stderr}");
    assert!(text(&out.stdout).is_empty());

    // Once it loads, missing templates are reported at their references.
    let templates = templates_copy(&["stage_entered"]);
    let t = templates.path().to_str().unwrap();
    let out = incubator(
        &[
            "workflow",
            "validate",
            "csirt-incubation.yaml",
            "intercert-membership.yaml",
            "--templates",
            t,
        ],
        &workflows(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let (first, references) = stderr.split_once('\n').unwrap();
    assert!(
        first.starts_with("error: ") && first.contains("stage_entered is missing"),
        "{stderr}"
    );
    for file in ["csirt-incubation.yaml:", "intercert-membership.yaml:"] {
        assert!(references.lines().any(|l| l.starts_with(file)), "{stderr}");
    }
    assert!(
        references
            .lines()
            .all(|l| l.contains("unknown email template `stage_entered`")),
        "{stderr}"
    );
}

#[test]
fn validate_renders_every_template_strictly_and_names_the_broken_file() {
    let templates = templates_copy(&[]);
    let t = templates.path().to_str().unwrap();
    let validate = || {
        incubator(
            &[
                "workflow",
                "validate",
                "csirt-incubation.yaml",
                "intercert-membership.yaml",
                "--templates",
                t,
            ],
            &workflows(),
        )
    };
    assert!(validate().status.success(), "{}", text(&validate().stderr));

    // A variable no reminder mail has, on the second line of the English text of one template.
    let broken = templates.path().join("deadline_reminder/en/text.hbs");
    let source = std::fs::read_to_string(&broken).unwrap();
    let (head, tail) = source.split_once('\n').unwrap();
    std::fs::write(&broken, format!("{head}\n{{{{sponsor_name}}}} {tail}")).unwrap();
    let out = validate();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2: `sponsor_name` is not part of the deadline_reminder context",
            broken.display()
        )),
        "{stderr}"
    );

    // A misspelt condition is as wrong as a misspelt variable.
    std::fs::write(&broken, format!("{{{{#if comentt}}}}x{{{{/if}}}}{source}")).unwrap();
    let stderr = text(&validate().stderr);
    assert!(
        stderr.contains(&format!("{}:1: `comentt` is not part", broken.display())),
        "{stderr}"
    );
}

#[test]
fn validate_names_a_missing_templates_directory() {
    let out = incubator(
        &[
            "workflow",
            "validate",
            "csirt-incubation.yaml",
            "--templates",
            "/nonexistent/templates",
        ],
        &workflows(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("templates directory `/nonexistent/templates`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn validate_checks_child_workflows_against_the_files_given() {
    let templates = templates_copy(&[]);
    let t = templates.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The shipped programme starts the InterCERT-FR application from `networking`.
    let parent = std::fs::read_to_string(workflows().join("csirt-incubation.yaml")).unwrap();
    assert!(parent.contains("    child: intercert-membership\n"));
    std::fs::write(dir.path().join("parent.yaml"), parent).unwrap();
    std::fs::copy(
        workflows().join("intercert-membership.yaml"),
        dir.path().join("child.yaml"),
    )
    .unwrap();
    let alone = incubator(
        &["workflow", "validate", "parent.yaml", "--templates", t],
        dir.path(),
    );
    assert_eq!(alone.status.code(), Some(1));
    assert!(
        text(&alone.stderr).contains("unknown child workflow `intercert-membership`"),
        "{}",
        text(&alone.stderr)
    );
    let together = incubator(
        &[
            "workflow",
            "validate",
            "parent.yaml",
            "child.yaml",
            "--templates",
            t,
        ],
        dir.path(),
    );
    assert!(together.status.success(), "{}", text(&together.stderr));
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let out = incubator(
        &[
            "workflow",
            "graph",
            "csirt-incubation.yaml",
            "--format",
            "mermaid",
        ],
        &workflows(),
    );
    assert!(out.status.success());
    let mermaid = text(&out.stdout);
    assert!(mermaid.starts_with("stateDiagram-v2\n"));
    assert!(mermaid.contains("  [*] --> invited\n"));
    let out = incubator(
        &[
            "workflow",
            "graph",
            "csirt-incubation.yaml",
            "--format",
            "dot",
        ],
        &workflows(),
    );
    assert!(text(&out.stdout).starts_with("digraph \"csirt-incubation\" {"));
}

#[test]
fn plan_prints_the_critical_path_and_the_goal_verdict() {
    let out = incubator(
        &[
            "workflow",
            "plan",
            "csirt-incubation.yaml",
            "--start",
            "2022-01-03",
        ],
        &workflows(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("plan from `invited` starting 2022-01-03 (Europe/Paris)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("critical path: P3Y6M at the latest, P1Y3M7D at the earliest"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  invited                      2022-01-03     2022-01-03\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  interest_expressed           2022-02-03     2022-04-03\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("goal operational_by_end_2024 (by 2024-12-31): at risk"),
        "{stdout}"
    );
    let late = incubator(
        &[
            "workflow",
            "plan",
            "csirt-incubation.yaml",
            "--from",
            "networking",
            "--start",
            "2024-11-15",
        ],
        &workflows(),
    );
    assert!(
        text(&late.stdout).contains("missed"),
        "{}",
        text(&late.stdout)
    );
    let unknown = incubator(
        &[
            "workflow",
            "plan",
            "csirt-incubation.yaml",
            "--from",
            "nowhere",
        ],
        &workflows(),
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("unknown state `nowhere`"));
}
