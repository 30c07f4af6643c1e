//! A real SMTP server on loopback: aiosmtpd running `smtp_sink.py`. Included by path from other crates'
//! tests too (the two-replica test of crates/cli), so it depends on nothing but std, serde and tokio.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The server's source, embedded: it runs as `python3 -c`, wherever the including test lives.
const SINK: &str = include_str!("../smtp_sink.py");

/// One message as the SMTP server accepted it, decoded by Python's `email` package.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// aiosmtpd on a loopback port, appending what it accepts to a file.
pub struct SmtpSink {
    port: u16,
    file: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// Whether the SMTP server can run here; in CI it must (`.ci/test` installs it), elsewhere the tests say
/// loudly that they did not run.
pub fn smtp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "aiosmtpd is missing in CI: .ci/test must install it"
        );
        eprintln!(
            "SKIPPED: python3 with aiosmtpd is not available (python3 -m pip install aiosmtpd)"
        );
    }
    ok
}

impl SmtpSink {
    /// `None` (said loudly) when aiosmtpd is not installed.
    pub fn start() -> Option<SmtpSink> {
        if !smtp_available() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("received.jsonl");
        let mut sink = SmtpSink {
            port,
            file,
            child: None,
            _dir: dir,
        };
        sink.restart();
        Some(sink)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Kills the server: connections are refused until [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the server again on the same port, keeping what it received.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new("python3")
                .arg("-c")
                .arg(SINK)
                .arg(self.port.to_string())
                .arg(&self.file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start python3");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .ok();
            if line.trim() == "READY" {
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous server for a moment.
            child.kill().ok();
            child.wait().ok();
            assert!(
                Instant::now() < deadline,
                "the SMTP sink did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn received(&self) -> Vec<Received> {
        let Ok(mut text) = std::fs::read_to_string(&self.file) else {
            return Vec::new();
        };
        // A line the server is still writing is not received yet.
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
        // French typography puts no-break spaces before colons; tests compare with plain spaces.
        // and mails travel with CRLF line ends; tests compare with plain spaces and \n.
        let text = text.replace(['\u{a0}', '\u{202f}'], " ");
        text.lines()
            .map(|line| {
                let mut message: Received = serde_json::from_str(line).expect("sink line");
                message.text = message.text.replace("\r\n", "\n");
                message.html = message.html.replace("\r\n", "\n");
                message
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived (or `timeout` passed) and returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n || Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
