//! A real ClamAV daemon for the antivirus tests: its own configuration, unix socket and signature database
//! in a temporary folder (no network, so no freshclam): one body signature for the EICAR test string.
//! `None`, said loudly, when clamd is not installed (`.ci/test` installs it, so CI never skips).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use incubator_antivirus::ClamdAddress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The name clamd reports for the test signature (it marks signatures from a local database UNOFFICIAL).
pub const SIGNATURE: &str = "Incubator.Test.EICAR.UNOFFICIAL";

/// The EICAR anti-malware test string, put together at run time so that neither this source nor the test
/// binary carries it whole for an antivirus on a developer's machine to flag.
pub fn eicar() -> String {
    let head = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR";
    let tail = "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    format!("{head}{tail}")
}

pub struct Clamd {
    dir: tempfile::TempDir,
    binary: PathBuf,
    child: Option<Child>,
}

impl Clamd {
    /// Starts clamd and waits until it answers, or `None` when it is not installed.
    pub async fn start() -> Option<Clamd> {
        let Some(binary) = ["/usr/sbin/clamd", "/usr/bin/clamd", "/usr/local/sbin/clamd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        else {
            eprintln!(
                "SKIPPED: clamd is not installed (Debian's clamav-daemon; .ci/test installs it): the \
                 antivirus test did not run"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("db")).unwrap();
        // An .ndb body signature: any file type, anywhere in the bytes.
        let hex: String = eicar().bytes().map(|b| format!("{b:02x}")).collect();
        let signature = SIGNATURE.trim_end_matches(".UNOFFICIAL");
        std::fs::write(
            dir.path().join("db/test.ndb"),
            format!("{signature}:0:*:{hex}\n"),
        )
        .unwrap();
        let conf = format!(
            "Foreground yes\nDatabaseDirectory {db}\nLocalSocket {socket}\nStreamMaxLength 1M\n\
             LogFile {log}\nPidFile {pid}\n",
            db = dir.path().join("db").display(),
            socket = dir.path().join("clamd.sock").display(),
            log = dir.path().join("clamd.log").display(),
            pid = dir.path().join("clamd.pid").display(),
        );
        std::fs::write(dir.path().join("clamd.conf"), conf).unwrap();
        let mut clamd = Clamd {
            dir,
            binary,
            child: None,
        };
        clamd.resume().await;
        Some(clamd)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("clamd.sock")
    }

    pub fn address(&self) -> ClamdAddress {
        ClamdAddress::Unix(self.socket())
    }

    /// Kills the daemon: scans fail until [`Clamd::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts the daemon (again) and waits until it answers PING.
    pub async fn resume(&mut self) {
        let child = Command::new(&self.binary)
            .arg("--config-file")
            .arg(self.dir.path().join("clamd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clamd");
        self.child = Some(child);
        let started = Instant::now();
        while !pong(&self.socket()).await {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "clamd did not answer within two minutes; its log: {}",
                std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn pong(socket: &Path) -> bool {
    let Ok(mut stream) = tokio::net::UnixStream::connect(socket).await else {
        return false;
    };
    let mut answer = Vec::new();
    stream.write_all(b"zPING\0").await.is_ok()
        && stream.read_to_end(&mut answer).await.is_ok()
        && answer == b"PONG\0"
}
