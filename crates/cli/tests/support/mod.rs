//! Running the real `incubator` program from tests: a service started on port 0, and accounts added the way
//! an operator adds them.

#![allow(dead_code)] // Each test binary uses its own part of the helpers.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// An `incubator serve` process, killed however the test ends.
pub struct Service {
    child: Child,
    /// Where it listens, as it printed it (`http://127.0.0.1:PORT`).
    pub url: String,
    /// What it printed before that line.
    pub printed: String,
}

impl Service {
    /// Starts `command` (an `incubator … serve --bind 127.0.0.1:0 …`) and waits until it says where it listens.
    pub fn start(mut command: Command) -> Service {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start incubator serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut printed = String::new();
        let mut service = Service {
            child,
            url: String::new(),
            printed: String::new(),
        };
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.split("listening on ").nth(1) {
                service.url = rest.trim().trim_end_matches('/').to_owned();
                service.printed = printed;
                // Keep reading, so that the service never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return service;
            }
            printed.push_str(&line);
            printed.push('\n');
        }
        panic!("the service never said where it listens:\n{printed}");
    }

    /// SIGKILL: no graceful shutdown, whatever was in flight is cut.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `incubator … user add` through `command` (the program with its database settings), the password on
/// standard input.
pub fn add_user(
    mut command: Command,
    (email, password): (&str, &str),
    role: &str,
    region: Option<&str>,
) {
    command.args([
        "user", "add", "--email", email, "--name", email, "--role", role,
    ]);
    if let Some(region) = region {
        command.args(["--region", region]);
    }
    let mut child = command
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run incubator user add");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
    assert!(child.wait().expect("wait").success(), "user add {email}");
}

/// Sends `request` and returns its JSON body, failing the test on any error status.
pub async fn ok_json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .send()
        .await
        .expect("send the request")
        .error_for_status()
        .expect("a success status")
        .json()
        .await
        .expect("a JSON body")
}

/// Runs `incubator ARGS --data-dir DATA_DIR` on the embedded SQLite file there, never a database of the
/// environment's, and returns what it printed.
pub fn incubator(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incubator"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run incubator")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
