//! clamd's INSTREAM command, over TCP or a unix socket (the transport is clamav-client's), and the reading
//! of its answer, which is ours: only `stream: OK` is clean, only `stream: <signature> FOUND` infected;
//! anything else (`… ERROR`, such as a stream over clamd's `StreamMaxLength`) is no verdict.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clamav_client::tokio::{Socket, Tcp, scan_buffer};

/// Where clamd listens: `tcp://host:port`, or a unix socket as `unix:///path` or an absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    Tcp(String),
    Unix(PathBuf),
}

impl FromStr for ClamdAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(host_port) = text.strip_prefix("tcp://") {
            let host_port = host_port.trim_end_matches('/');
            match host_port.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(Self::Tcp(host_port.to_owned()))
                }
                _ => Err(format!(
                    "`{text}` names no host and port: write tcp://127.0.0.1:3310"
                )),
            }
        } else if let Some(path) = text.strip_prefix("unix://") {
            Self::unix(path, text)
        } else if text.starts_with('/') {
            Self::unix(text, text)
        } else {
            Err(format!(
                "`{text}` is not a clamd address: write tcp://host:port, or the absolute path of its unix \
                 socket (/run/clamav/clamd.ctl)"
            ))
        }
    }
}

impl ClamdAddress {
    fn unix(path: &str, text: &str) -> Result<Self, String> {
        if path.starts_with('/') {
            Ok(Self::Unix(PathBuf::from(path)))
        } else {
            Err(format!(
                "`{text}`: a unix socket is named by an absolute path"
            ))
        }
    }
}

impl fmt::Display for ClamdAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(host_port) => write!(f, "tcp://{host_port}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// What clamd said of some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The name of the signature the bytes matched.
    Infected(String),
}

/// A scan that gave no verdict; the document stays pending and is tried again.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("clamd at {address} is unreachable or failed: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("clamd at {address} gave no answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("clamd at {address} answered with an error: {answer}")]
    Refused { address: String, answer: String },
}

/// One clamd, reached afresh for each scan (clamd closes an INSTREAM connection after its answer).
#[derive(Debug, Clone)]
pub struct Clamd {
    address: ClamdAddress,
    timeout: Duration,
}

impl Clamd {
    pub fn new(address: ClamdAddress, timeout: Duration) -> Self {
        Self { address, timeout }
    }

    pub async fn scan(&self, bytes: &[u8]) -> Result<Verdict, ScanError> {
        let address = self.address.to_string();
        let scan = async {
            match &self.address {
                ClamdAddress::Tcp(host_port) => {
                    let tcp = Tcp {
                        host_address: host_port.as_str(),
                    };
                    scan_buffer(bytes, tcp, None).await
                }
                ClamdAddress::Unix(path) => {
                    let socket = Socket {
                        socket_path: path.as_path(),
                    };
                    scan_buffer(bytes, socket, None).await
                }
            }
        };
        let answer = match tokio::time::timeout(self.timeout, scan).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(source)) => return Err(ScanError::Io { address, source }),
            Err(_) => {
                return Err(ScanError::Timeout {
                    address,
                    timeout: self.timeout,
                });
            }
        };
        read_answer(&answer).map_err(|answer| ScanError::Refused { address, answer })
    }
}

/// `stream: OK` or `stream: <signature> FOUND` (NUL-terminated with the `z` commands); anything else is
/// returned as the error clamd gave.
fn read_answer(answer: &[u8]) -> Result<Verdict, String> {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim_end_matches(['\0', '\n', ' ']);
    let Some(result) = text.strip_prefix("stream: ") else {
        return Err(text.to_owned());
    };
    if result == "OK" {
        return Ok(Verdict::Clean);
    }
    match result.strip_suffix(" FOUND") {
        Some(signature) if !signature.is_empty() => Ok(Verdict::Infected(signature.to_owned())),
        _ => Err(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_is_clean_and_only_found_is_infected() {
        assert_eq!(read_answer(b"stream: OK\0"), Ok(Verdict::Clean));
        assert_eq!(
            read_answer(b"stream: Eicar-Test-Signature FOUND\0"),
            Ok(Verdict::Infected("Eicar-Test-Signature".into()))
        );
        // Errors mention neither verdict as a whole: they are not read as one.
        for answer in [
            &b"INSTREAM size limit exceeded. ERROR\0"[..],
            b"stream: OK FOUND ERROR\0",
            b"stream:  FOUND\0",
            b"",
        ] {
            assert!(read_answer(answer).is_err(), "{answer:?}");
        }
    }

    #[test]
    fn addresses_are_tcp_or_an_absolute_socket_path() {
        assert_eq!(
            "tcp://127.0.0.1:3310".parse(),
            Ok(ClamdAddress::Tcp("127.0.0.1:3310".into()))
        );
        assert_eq!(
            "unix:///run/clamav/clamd.ctl".parse(),
            Ok(ClamdAddress::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            "/run/clamav/clamd.ctl".parse(),
            Ok(ClamdAddress::Unix("/run/clamav/clamd.ctl".into()))
        );
        for wrong in [
            "127.0.0.1:3310",
            "tcp://127.0.0.1",
            "tcp://:3310",
            "unix://clamd.ctl",
        ] {
            assert!(wrong.parse::<ClamdAddress>().is_err(), "{wrong}");
        }
        let address: ClamdAddress = "tcp://localhost:3310".parse().unwrap();
        assert_eq!(address.to_string(), "tcp://localhost:3310");
    }
}
