//! `incubator config check` and the layered configuration, run as an operator would: a file, environment
//! variables and flags, in a folder of its own and with an environment holding only what the test sets.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn root() -> PathBuf {
    Path::new(ROOT).canonicalize().expect("repository root")
}

/// `incubator ARGS` in `cwd` with exactly the variables given.
fn incubator(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incubator"));
    command.current_dir(cwd).args(args).env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run incubator")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A configuration file in a fresh folder, pointing at the repository's workflows and templates.
fn config(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = root();
    let text = format!(
        "[server]\nworkflows = \"{}\"\n\n[mail]\ntemplates = \"{}\"\n\n{body}",
        root.join("workflows").display(),
        root.join("templates/email").display()
    );
    let path = dir.path().join("incubator.toml");
    std::fs::write(&path, text).expect("write the configuration");
    (dir, path)
}

fn check(dir: &Path, file: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let output = incubator(
        dir,
        &["config", "check", "--config", file.to_str().unwrap()],
        env,
    );
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[test]
fn a_good_configuration_passes_and_its_secrets_stay_hidden() {
    let (dir, file) = config("[metrics]\nbearer_token = \"file-token-s3cret\"\n");
    let (ok, out, err) = check(
        dir.path(),
        &file,
        &[
            (
                "DATABASE_URL",
                "postgres://app:pa55word@db.example:5432/incubator",
            ),
            ("SMTP_URL", "smtps://mailer:hunter2@mail.example:465"),
            ("INCUBATOR_SERVER__PUBLIC_URL", "https://incubateur.example"),
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(
            "url = \"postgres://app:***@db.example:5432/incubator\"  # environment variable DATABASE_URL"
        ),
        "{out}"
    );
    assert!(
        out.contains("smtp_url = \"smtps://mailer:***@mail.example:465\""),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "bearer_token = \"***\"  # file {}",
            file.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("max_attempts = 8  # default"),
        "defaults shown: {out}"
    );
    assert!(out.contains("configuration OK"), "{out}");
    for secret in ["pa55word", "hunter2", "file-token-s3cret"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown"
        );
    }
}

#[test]
fn the_example_configuration_checks() {
    let root = root();
    let output = incubator(
        &root,
        &["config", "check", "--config", "incubator.example.toml"],
        &[],
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn a_wrong_url_is_named_with_its_key_and_source() {
    let (dir, file) = config("[database]\nurl = \"mysql://app:pa55word@db/x\"\n");
    let (ok, _, err) = check(
        dir.path(),
        &file,
        &[("SMTP_URL", "smtp://mail.example:notaport")],
    );
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "error: file {}: `database.url`: `mysql://app:***@db/x` is neither postgres://… nor sqlite:…",
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("error: environment variable SMTP_URL: `mail.smtp_url`:"),
        "{err}"
    );
    assert!(err.contains("2 problem(s)"), "every problem listed: {err}");
    assert!(!err.contains("pa55word"));
}

#[test]
fn a_template_the_workflows_name_but_the_folder_lacks_fails_the_check() {
    let (dir, file) = config("");
    let templates = dir.path().join("email");
    let source = root().join("templates/email");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "project_declined" {
            copy_dir(&entry.path(), &templates.join(entry.file_name()));
        }
    }
    let (ok, _, err) = check(
        dir.path(),
        &file,
        &[("INCUBATOR_MAIL__TEMPLATES", templates.to_str().unwrap())],
    );
    assert!(!ok);
    assert!(err.contains("project_declined"), "{err}");
    assert!(
        err.contains("environment variable INCUBATOR_MAIL__TEMPLATES"),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn an_unknown_key_fails_the_check_naming_it_and_the_file() {
    let (dir, file) = config("[sessions]\nidle_timout = \"10m\"\n");
    let (ok, _, err) = check(dir.path(), &file, &[]);
    assert!(!ok);
    assert!(
        err.contains(&format!("{}:8:1: `sessions.idle_timout`", file.display())),
        "{err}"
    );
}

#[test]
fn a_wrong_type_in_the_file_is_shown_at_its_line_and_column() {
    let (dir, file) = config("[login_throttle]\nfree_failures = \"three\"\n");
    let (ok, out, err) = check(dir.path(), &file, &[]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}:8:17: `login_throttle.free_failures`: invalid type: string \"three\", expected u32",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("for example `free_failures = 3`"), "{err}");
    assert!(out.is_empty(), "nothing shown as effective: {out}");
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let (dir, file) = config("[database]\nmax_connections = 4\n\n[log]\nformat = \"text\"\n");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text = text.replace("[server]\n", "[server]\ndata_dir = \"/from/file\"\n");
    std::fs::write(&file, text).unwrap();
    let env = [
        ("INCUBATOR_SERVER__DATA_DIR", "/from/env"),
        ("INCUBATOR_LOG__FORMAT", "json"),
    ];
    let (ok, out, err) = check(dir.path(), &file, &env);
    assert!(ok, "{err}");
    assert!(
        out.contains("data_dir = \"/from/env\"  # environment variable INCUBATOR_SERVER__DATA_DIR"),
        "{out}"
    );
    assert!(
        out.contains("format = \"json\"  # environment variable INCUBATOR_LOG__FORMAT"),
        "{out}"
    );
    assert!(
        out.contains(&format!("max_connections = 4  # file {}", file.display())),
        "{out}"
    );
    let output = incubator(
        dir.path(),
        &[
            "config",
            "check",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            "/from/flag",
        ],
        &env,
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("data_dir = \"/from/flag\"  # flag --data-dir"),
        "{out}"
    );
}

#[test]
fn the_file_is_found_by_variable_or_in_the_current_folder() {
    let (dir, file) = config("[database]\nmax_connections = 5\n");
    let (ok, out, _) = {
        let output = incubator(dir.path(), &["config", "check"], &[]);
        (
            output.status.success(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    assert!(
        ok && out.contains("max_connections = 5  # file incubator.toml"),
        "{out}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let output = incubator(
        elsewhere.path(),
        &["config", "check"],
        &[("INCUBATOR_CONFIG", file.to_str().unwrap())],
    );
    assert!(text(&output.stdout).contains("max_connections = 5"));
    let output = incubator(
        elsewhere.path(),
        &["config", "check", "--config", "missing.toml"],
        &[],
    );
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("cannot read the configuration file missing.toml"));
}

/// `serve` warns about an unknown key and starts all the same; a wrong value stops it before anything
/// starts. Other commands read the same configuration.
#[test]
fn serve_warns_about_unknown_keys_and_refuses_wrong_values() {
    let (dir, _file) = config("[server_extra]\nbind_adress = \"0.0.0.0:80\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_incubator"))
        .current_dir(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start incubator serve");
    let stdout = child.stdout.take().unwrap();
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("listening on http://127.0.0.1:"));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(listening, "{err}");
    assert!(err.contains("unknown setting ignored"), "{err}");
    assert!(err.contains("server_extra"), "{err}");

    let output = incubator(
        dir.path(),
        &["serve", "--bind", "127.0.0.1:0"],
        &[("INCUBATOR_SERVER__REQUEST_TIMEOUT", "forever")],
    );
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(
            "environment variable INCUBATOR_SERVER__REQUEST_TIMEOUT: `server.request_timeout`"
        ),
        "{err}"
    );
    assert!(
        err.contains("for example `request_timeout = \"30s\"`"),
        "{err}"
    );

    let output = incubator(dir.path(), &["db", "migrate"], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning: unknown setting ignored"));
    assert!(dir.path().join("data/incubator.sqlite3").is_file());
}
