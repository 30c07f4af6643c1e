//! Soak run: a realistic mix of API and page requests sent at a fixed rate (open loop: each request leaves
//! on schedule, whether or not the previous ones were answered) for a fixed time, against a running
//! `incubator serve` whose mails go to an SMTP sink. Every second it samples the server's resident memory,
//! the outbox by status, the mails the sink received, requests, errors and latency, into a CSV. Then it
//! waits for the outbox to drain and judges; it exits non-zero when a guarantee broke:
//!
//! - no error: every request got the answer its kind expects (no 5xx, no unexpected 4xx, no transport error);
//! - memory flat: the server's mean RSS over the last third of the run is not above the middle third's by
//!   more than `--rss-bound-mib` (the first third is warm-up: caches, pools and allocator arenas filling);
//! - outbox drained: within `--grace` seconds nothing is pending or dead, and the sink received every sent
//!   mail exactly once (distinct Message-IDs): at least one per transition and per review, plus those
//!   queued before the first request (the scheduler's pass at start-up); the scheduler's later passes may
//!   add reminders.
//!
//! `examples/soak.sh` sets everything up (server, SMTP sink, accounts) and plots the CSV.
//!
//! cargo run --release -p csirt-incubator --example soak -- --url URL --email E --password P \
//!     --council-password P --pid PID --sink mails.jsonl --csv soak.csv [--rate 50] [--seconds 600]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Read, Seek};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::task::JoinSet;

#[path = "common/api.rs"]
mod api;

use api::{Project, REGIONS, percentile_ms};

struct Args {
    url: String,
    email: String,
    password: String,
    council_password: String,
    pid: u32,
    sink: PathBuf,
    csv: PathBuf,
    rate: f64,
    seconds: u64,
    grace: u64,
    rss_bound_mib: f64,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        url: "http://127.0.0.1:8080".into(),
        email: String::new(),
        password: String::new(),
        council_password: String::new(),
        pid: 0,
        sink: PathBuf::new(),
        csv: PathBuf::from("soak.csv"),
        rate: 50.0,
        seconds: 600,
        grace: 60,
        rss_bound_mib: 8.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--email" => args.email = value,
            "--password" => args.password = value,
            "--council-password" => args.council_password = value,
            "--pid" => args.pid = value.parse()?,
            "--sink" => args.sink = value.into(),
            "--csv" => args.csv = value.into(),
            "--rate" => args.rate = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--grace" => args.grace = value.parse()?,
            "--rss-bound-mib" => args.rss_bound_mib = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    if args.email.is_empty() || args.council_password.is_empty() || args.pid == 0 {
        bail!("--email, --password, --council-password, --pid and --sink are required");
    }
    ensure!(
        args.rate > 0.0 && args.seconds >= 3,
        "a positive rate and at least 3 s"
    );
    Ok(args)
}

/// The mix, by weight out of 100: what officers and councils do on a working day, reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ListProjects,
    Regions,
    Project,
    Events,
    Documents,
    Download,
    Dashboard,
    RegionPage,
    Transition,
    Patch,
    Upload,
    Review,
}

const MIX: [(Kind, u32); 12] = [
    (Kind::ListProjects, 6),
    (Kind::Regions, 4),
    (Kind::Project, 10),
    (Kind::Events, 6),
    (Kind::Documents, 6),
    (Kind::Download, 4),
    (Kind::Dashboard, 5),
    (Kind::RegionPage, 5),
    (Kind::Transition, 20),
    (Kind::Patch, 12),
    (Kind::Upload, 12),
    (Kind::Review, 10),
];

impl Kind {
    fn pick(rng: &mut fastrand::Rng) -> Self {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut n = rng.u32(0..total);
        for (kind, weight) in MIX {
            if n < weight {
                return kind;
            }
            n -= weight;
        }
        unreachable!("the weights add up to the total")
    }

    fn name(self) -> &'static str {
        match self {
            Self::ListProjects => "GET projects",
            Self::Regions => "GET regions",
            Self::Project => "GET project",
            Self::Events => "GET events",
            Self::Documents => "GET documents",
            Self::Download => "GET document content",
            Self::Dashboard => "page dashboard",
            Self::RegionPage => "page region",
            Self::Transition => "POST transition",
            Self::Patch => "PATCH fields",
            Self::Upload => "POST document",
            Self::Review => "POST review",
        }
    }
}

/// Requirements of `csirt-incubation` that take a PDF, and the one that also takes a PNG.
const PDF_REQUIREMENTS: [&str; 4] = [
    "council_backed",
    "legal_status",
    "intercert_commitment",
    "grant_agreement",
];
const PNG_REQUIREMENT: &str = "registration_proof";

struct Load {
    http: reqwest::Client,
    url: String,
    officer: String,
    council: HashMap<String, String>,
    /// The officer's browser session (`Cookie` header) for the pages.
    session: String,
    /// Loop projects not in use: a request takes one, so that two never race on one version.
    idle_loops: Mutex<Vec<Project>>,
    /// `csirt-incubation` projects (id, region), where evidence is uploaded and reviewed.
    programme: Vec<(i64, String)>,
    unreviewed: Mutex<Vec<i64>>,
    uploaded: Mutex<Vec<i64>>,
    sequence: AtomicU64,
    stats: Mutex<Stats>,
}

#[derive(Default)]
struct Stats {
    by_kind: BTreeMap<Kind, KindStats>,
    /// Latencies since the last sample.
    window: Vec<Duration>,
    requests: u64,
    errors: u64,
    /// Requests of a kind that had nothing to act on (no idle loop project, nothing to review), sent as a
    /// project read instead.
    substituted: u64,
    /// Mails the server should send: one per transition (to the officer), one per review (to the council).
    mails_expected: u64,
    first_errors: Vec<String>,
}

#[derive(Default)]
struct KindStats {
    ok: u64,
    errors: u64,
    latencies: Vec<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Outcome = Result<(), String>;

impl Load {
    fn record(&self, kind: Kind, latency: Duration, outcome: Outcome) {
        let mut stats = lock(&self.stats);
        stats.requests += 1;
        stats.window.push(latency);
        let per = stats.by_kind.entry(kind).or_default();
        per.latencies.push(latency);
        match outcome {
            Ok(()) => {
                per.ok += 1;
                if matches!(kind, Kind::Transition | Kind::Review) {
                    stats.mails_expected += 1;
                }
            }
            Err(error) => {
                per.errors += 1;
                stats.errors += 1;
                if stats.first_errors.len() < 20 {
                    stats.first_errors.push(format!("{}: {error}", kind.name()));
                }
            }
        }
    }

    fn next(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    fn programme_project(&self, n: u64) -> &(i64, String) {
        &self.programme[n as usize % self.programme.len()]
    }

    /// Sends one request of `kind`, timed from `due`, the moment the schedule said it should leave.
    async fn run(&self, mut kind: Kind, due: Instant) {
        let n = self.next();
        let picked = kind;
        let outcome = match picked {
            Kind::Transition => self.on_idle_loop(&mut kind, n).await,
            // Half the field patches go to the loop projects, whose versions the transitions race for.
            Kind::Patch if n.is_multiple_of(2) => self.on_idle_loop(&mut kind, n).await,
            Kind::Patch => {
                let (id, _) = self.programme_project(n);
                let body = json!({ "carrier_name": format!("Structure {n}"), "subsidy_amount_eur": n * 100 });
                self.json(
                    self.http.patch(self.api(&format!("projects/{id}/fields"))),
                    &self.officer,
                    &body,
                    200,
                )
                .await
                .map(drop)
            }
            Kind::Review => {
                let document = lock(&self.unreviewed).pop();
                match document {
                    Some(id) => self.review(id, n).await,
                    None => {
                        kind = Kind::Project;
                        lock(&self.stats).substituted += 1;
                        self.read_project(n).await
                    }
                }
            }
            Kind::Upload => self.upload(n).await,
            Kind::Download => {
                let document = {
                    let uploaded = lock(&self.uploaded);
                    (!uploaded.is_empty()).then(|| uploaded[n as usize % uploaded.len()])
                };
                match document {
                    Some(id) => {
                        self.get(&self.api(&format!("documents/{id}/content")), &self.officer)
                            .await
                    }
                    None => self.get(&self.api("regions"), &self.officer).await,
                }
            }
            Kind::ListProjects => self.get(&self.api("projects"), &self.officer).await,
            Kind::Regions => self.get(&self.api("regions"), &self.officer).await,
            Kind::Project => self.read_project(n).await,
            Kind::Events | Kind::Documents => {
                let (id, _) = self.programme_project(n);
                let what = if kind == Kind::Events {
                    "events"
                } else {
                    "documents"
                };
                self.get(&self.api(&format!("projects/{id}/{what}")), &self.officer)
                    .await
            }
            Kind::Dashboard => self.page("/").await,
            Kind::RegionPage => {
                let region = REGIONS[n as usize % REGIONS.len()];
                self.page(&format!("/regions/{region}")).await
            }
        };
        self.record(kind, due.elapsed(), outcome);
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1/{path}", self.url)
    }

    /// Takes an idle loop project for a transition or a patch, and gives it back after; with none idle,
    /// reads a project instead.
    async fn on_idle_loop(&self, kind: &mut Kind, n: u64) -> Outcome {
        let taken = {
            let mut idle = lock(&self.idle_loops);
            let len = idle.len();
            (len > 0).then(|| idle.swap_remove(n as usize % len))
        };
        let Some(project) = taken else {
            *kind = Kind::Project;
            lock(&self.stats).substituted += 1;
            return self.read_project(n).await;
        };
        let (project, outcome) = self.on_loop(*kind, project, n).await;
        lock(&self.idle_loops).push(project);
        outcome
    }

    /// A programme project, read by its region's council or by the officer in turn.
    async fn read_project(&self, n: u64) -> Outcome {
        let (id, region) = self.programme_project(n);
        let token = if n.is_multiple_of(2) {
            &self.officer
        } else {
            &self.council[region]
        };
        self.get(&self.api(&format!("projects/{id}")), token).await
    }

    /// A transition round the loop, or a field patch, on a loop project held by this request alone.
    async fn on_loop(&self, kind: Kind, mut project: Project, n: u64) -> (Project, Outcome) {
        let url = self.api(&format!("projects/{}", project.id));
        let answer = if kind == Kind::Transition {
            let body = json!({ "transition": project.next_transition(), "expected_version": project.version });
            self.json(
                self.http.post(format!("{url}/transitions")),
                &self.officer,
                &body,
                200,
            )
            .await
        } else {
            let body = json!({ "note": format!("relevé {n}") });
            self.json(
                self.http.patch(format!("{url}/fields")),
                &self.officer,
                &body,
                200,
            )
            .await
        };
        let answer = answer.and_then(|body| {
            let state = body["state"].as_str().ok_or("no state in the answer")?;
            let version = body["version"].as_i64().ok_or("no version in the answer")?;
            Ok((state.to_owned(), version))
        });
        match answer {
            Ok((state, version)) => {
                project.state = state;
                project.version = version;
                (project, Ok(()))
            }
            Err(error) => {
                // Carry on from where the project really is, so one error does not become many.
                if let Ok(body) = self.json_get(&url, &self.officer).await {
                    project.state = body["state"].as_str().unwrap_or_default().to_owned();
                    project.version = body["version"].as_i64().unwrap_or_default();
                }
                (project, Err(error))
            }
        }
    }

    /// A council uploads a small real PDF or PNG, each one different, to its region's programme project.
    async fn upload(&self, n: u64) -> Outcome {
        let (id, region) = self.programme_project(n);
        let (requirement, name, bytes) = if n.is_multiple_of(4) {
            (PNG_REQUIREMENT, format!("kbis-{n}.png"), png(n))
        } else {
            let requirement = PDF_REQUIREMENTS[n as usize % PDF_REQUIREMENTS.len()];
            let text = format!("Region {region} piece {n} pour {requirement}");
            (requirement, format!("{requirement}-{n}.pdf"), pdf(&text))
        };
        let form = reqwest::multipart::Form::new()
            .text("requirement", requirement)
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            );
        let request = self
            .http
            .post(self.api(&format!("projects/{id}/documents")))
            .bearer_auth(&self.council[region])
            .multipart(form);
        let body = expect_json(request.send().await, 201).await?;
        let document = body["id"].as_i64().ok_or("no id in the answer")?;
        lock(&self.unreviewed).push(document);
        lock(&self.uploaded).push(document);
        Ok(())
    }

    /// The officer accepts or rejects an uploaded document; either mails the region's council.
    async fn review(&self, document: i64, n: u64) -> Outcome {
        let body = if n.is_multiple_of(3) {
            json!({ "decision": "rejected", "comment": format!("Illisible (relecture {n})") })
        } else {
            json!({ "decision": "accepted" })
        };
        let url = self.api(&format!("documents/{document}/review"));
        self.json(self.http.post(url), &self.officer, &body, 200)
            .await
            .map(drop)
    }

    async fn json(
        &self,
        request: reqwest::RequestBuilder,
        token: &str,
        body: &Value,
        status: u16,
    ) -> Result<Value, String> {
        expect_json(request.bearer_auth(token).json(body).send().await, status).await
    }

    async fn json_get(&self, url: &str, token: &str) -> Result<Value, String> {
        expect_json(self.http.get(url).bearer_auth(token).send().await, 200).await
    }

    async fn get(&self, url: &str, token: &str) -> Outcome {
        expect_body(self.http.get(url).bearer_auth(token).send().await, 200)
            .await
            .map(drop)
    }

    async fn page(&self, path: &str) -> Outcome {
        let request = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", &self.session);
        let body = expect_body(request.send().await, 200).await?;
        // A page answered 200 could still be the sign-in form: the session must have held.
        if String::from_utf8_lossy(&body).contains("name=\"password\"") {
            return Err(format!("{path}: the sign-in form instead of the page"));
        }
        Ok(())
    }
}

async fn expect_body(
    answer: reqwest::Result<reqwest::Response>,
    status: u16,
) -> Result<Vec<u8>, String> {
    let answer = answer.map_err(|e| format!("transport: {e}"))?;
    let got = answer.status().as_u16();
    let url = answer.url().path().to_owned();
    let body = answer
        .bytes()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    if got != status {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("{url}: {got} instead of {status}: {text}"));
    }
    Ok(body.to_vec())
}

async fn expect_json(
    answer: reqwest::Result<reqwest::Response>,
    status: u16,
) -> Result<Value, String> {
    let body = expect_body(answer, status).await?;
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

/// A one-page PDF with a line of text, its cross-reference table at the right offsets.
fn pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A 16×16 RGB PNG whose pixels depend on `seed`: a zlib stream of one stored block, CRCs computed.
fn png(seed: u64) -> Vec<u8> {
    const SIDE: u32 = 16;
    let mut raw = Vec::new();
    for y in 0..SIDE {
        raw.push(0); // no filter
        for x in 0..SIDE {
            let v = seed
                .wrapping_mul(0x9E37_79B9)
                .wrapping_add(u64::from(y * SIDE + x));
            raw.extend_from_slice(&[v as u8, (v >> 8) as u8, (v >> 16) as u8]);
        }
    }
    let len = u16::try_from(raw.len()).expect("a stored block holds 64 KiB");
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut header = Vec::new();
    header.extend_from_slice(&SIDE.to_be_bytes());
    header.extend_from_slice(&SIDE.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &header), (b"IDAT", &zlib), (b"IEND", &Vec::new())] {
        out.extend_from_slice(
            &u32::try_from(data.len())
                .expect("small chunk")
                .to_be_bytes(),
        );
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Signs in through the page form, as a browser does, and returns the session's `Cookie` header.
async fn page_session(url: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = http
        .get(format!("{url}/login"))
        .send()
        .await?
        .error_for_status()?;
    let mut cookies = set_cookies(&form);
    let body = form.text().await?;
    let marker = "name=\"csrf_token\" value=\"";
    let start = body
        .find(marker)
        .context("no form token on the sign-in page")?
        + marker.len();
    let token = body[start..].split('"').next().unwrap_or_default();
    let fields = [
        ("email", email),
        ("password", password),
        ("csrf_token", token),
        ("next", "/"),
    ];
    let encoded: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect();
    let answer = http
        .post(format!("{url}/login"))
        .header("cookie", cookie_header(&cookies))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded.join("&"))
        .send()
        .await?;
    ensure!(
        answer.status().as_u16() == 303,
        "page sign-in answered {}",
        answer.status()
    );
    cookies.extend(set_cookies(&answer));
    cookies.retain(|_, value| !value.is_empty());
    Ok(cookie_header(&cookies))
}

fn set_cookies(answer: &reqwest::Response) -> BTreeMap<String, String> {
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn cookie_header(cookies: &BTreeMap<String, String>) -> String {
    cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One row of the CSV.
#[derive(Debug, Clone, Default)]
struct Sample {
    at: f64,
    loading: bool,
    rss_kib: u64,
    pending: u64,
    sent: u64,
    dead: u64,
    received: u64,
    requests: u64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// What the sampler reads outside the load: the server's memory, its metrics and the sink's file.
struct Probe {
    http: reqwest::Client,
    url: String,
    pid: u32,
    sink: PathBuf,
    sink_read: u64,
    received: u64,
}

impl Probe {
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("the server process is gone")?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .context("no VmRSS")?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("VmRSS value")?
            .parse()?)
    }

    async fn outbox(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("incubator_mail_outbox{status=\"") {
                let (status, value) = rest.split_once("\"} ").context("outbox line")?;
                out.insert(status.to_owned(), value.trim().parse()?);
            }
        }
        Ok(out)
    }

    /// Mails the sink accepted: one JSON line each, counted as the file grows.
    fn received(&mut self) -> anyhow::Result<u64> {
        let Ok(mut file) = std::fs::File::open(&self.sink) else {
            return Ok(self.received);
        };
        file.seek(std::io::SeekFrom::Start(self.sink_read))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        // Only whole lines: the sink may be halfway through writing one.
        let whole = fresh.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.received += fresh[..whole].iter().filter(|&&b| b == b'\n').count() as u64;
        self.sink_read += whole as u64;
        Ok(self.received)
    }

    async fn sample(&mut self, at: f64, loading: bool, load: &Load) -> anyhow::Result<Sample> {
        let outbox = self.outbox().await?;
        let (mut window, requests, errors) = {
            let mut stats = lock(&load.stats);
            let window = std::mem::take(&mut stats.window);
            (window, stats.requests, stats.errors)
        };
        window.sort_unstable();
        Ok(Sample {
            at,
            loading,
            rss_kib: self.rss_kib()?,
            pending: outbox.get("pending").copied().unwrap_or_default(),
            sent: outbox.get("sent").copied().unwrap_or_default(),
            dead: outbox.get("dead").copied().unwrap_or_default(),
            received: self.received()?,
            requests,
            errors,
            p50_ms: percentile_ms(&window, 0.50),
            p99_ms: percentile_ms(&window, 0.99),
        })
    }
}

const CSV_HEADER: &str = "seconds,phase,rss_kib,outbox_pending,outbox_sent,outbox_dead,mails_received,requests,errors,p50_ms,p99_ms";

fn csv_row(s: &Sample) -> String {
    format!(
        "{:.1},{},{},{},{},{},{},{},{},{:.2},{:.2}",
        s.at,
        if s.loading { "load" } else { "drain" },
        s.rss_kib,
        s.pending,
        s.sent,
        s.dead,
        s.received,
        s.requests,
        s.errors,
        s.p50_ms,
        s.p99_ms
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()?;
    let officer = api::sign_in(&http, &args.url, &args.email, &args.password).await?;
    let mut council = HashMap::new();
    let mut programme = Vec::new();
    for region in REGIONS {
        let email = format!("council-{region}@soak.invalid");
        let token = api::sign_in(&http, &args.url, &email, &args.council_password).await?;
        council.insert(region.to_owned(), token);
        let project =
            api::open_project(&http, &args.url, &officer, region, "csirt-incubation").await?;
        programme.push((
            project["id"].as_i64().context("project id")?,
            region.to_owned(),
        ));
    }
    let loops = api::loop_projects(&http, &args.url, &officer).await?;
    let session = page_session(&args.url, &args.email, &args.password).await?;
    let load = Arc::new(Load {
        http: http.clone(),
        url: args.url.clone(),
        officer,
        council,
        session,
        idle_loops: Mutex::new(loops),
        programme,
        unreviewed: Mutex::default(),
        uploaded: Mutex::default(),
        sequence: AtomicU64::new(0),
        stats: Mutex::default(),
    });
    println!(
        "soak: {} requests/s for {} s against {} (server pid {}), then up to {} s for the outbox to drain",
        args.rate, args.seconds, args.url, args.pid, args.grace
    );
    let probe = Probe {
        http: http.clone(),
        url: args.url.clone(),
        pid: args.pid,
        sink: args.sink.clone(),
        sink_read: 0,
        received: 0,
    };
    let started = Instant::now();
    let loading = Arc::new(AtomicBool::new(true));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = tokio::spawn(sample_every_second(
        probe,
        args.csv.clone(),
        started,
        loading.clone(),
        samples.clone(),
        load.clone(),
    ));

    // Open loop: request i leaves at start + i / rate, however long the earlier ones take.
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let total = (args.rate * args.seconds as f64).round() as u64;
    let mut rng = fastrand::Rng::with_seed(0x50a4);
    let mut tasks = JoinSet::new();
    for i in 0..total {
        let due = started + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let kind = Kind::pick(&mut rng);
        let load = load.clone();
        tasks.spawn(async move { load.run(kind, due).await });
        while tasks.try_join_next().is_some() {}
        if sampler.is_finished() {
            break;
        }
    }
    while tasks.join_next().await.is_some() {}
    let load_seconds = started.elapsed().as_secs_f64();
    loading.store(false, Ordering::Relaxed);

    // The drain: sampled until nothing waits and the sink holds every sent mail, or the grace is over.
    let drain_started = Instant::now();
    while !sampler.is_finished() && drain_started.elapsed() < Duration::from_secs(args.grace) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let drained = lock(&samples)
            .last()
            .is_some_and(|s: &Sample| !s.loading && s.pending == 0 && s.received >= s.sent);
        if drained {
            break;
        }
    }
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    sampler.abort();
    if let Ok(ended) = sampler.await {
        ended.context("sampling")?;
    }
    let samples = std::mem::take(&mut *lock(&samples));
    let last_load = samples.iter().take_while(|s| s.loading).count();
    let verdict = judge(
        &args,
        &load,
        &samples[..last_load],
        &samples,
        load_seconds,
        drain_seconds,
    )?;
    if !verdict.is_empty() {
        for broken in &verdict {
            eprintln!("BROKEN: {broken}");
        }
        bail!("{} guarantee(s) broken", verdict.len());
    }
    println!("soak: every guarantee held");
    Ok(())
}

/// Samples once a second into `samples` and the CSV, until aborted (or until a probe fails, which ends
/// the run: the server went away).
async fn sample_every_second(
    mut probe: Probe,
    csv: PathBuf,
    started: Instant,
    loading: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    load: Arc<Load>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    writeln!(csv, "{CSV_HEADER}")?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let phase = loading.load(Ordering::Relaxed);
        let sample = probe
            .sample(started.elapsed().as_secs_f64(), phase, &load)
            .await?;
        writeln!(csv, "{}", csv_row(&sample))?;
        csv.flush()?;
        lock(&samples).push(sample);
    }
}

/// The least-squares slope of the samples' RSS over time.
fn rss_slope_mib_per_min(samples: &[Sample]) -> f64 {
    let n = samples.len().max(1) as f64;
    let mean_t = samples.iter().map(|s| s.at).sum::<f64>() / n;
    let mean_rss = mean_rss_kib(samples) / 1024.0;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for s in samples {
        let dt = s.at - mean_t;
        covariance += dt * (s.rss_kib as f64 / 1024.0 - mean_rss);
        variance += dt * dt;
    }
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance * 60.0
    }
}

fn mean_rss_kib(samples: &[Sample]) -> f64 {
    samples.iter().map(|s| s.rss_kib as f64).sum::<f64>() / samples.len().max(1) as f64
}

/// Prints the figures and returns the guarantees that broke.
fn judge(
    args: &Args,
    load: &Load,
    loading: &[Sample],
    all: &[Sample],
    load_seconds: f64,
    drain_seconds: f64,
) -> anyhow::Result<Vec<String>> {
    let mut broken = Vec::new();
    let stats = lock(&load.stats);
    let mut latencies: Vec<Duration> = stats
        .by_kind
        .values()
        .flat_map(|k| k.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    println!(
        "requests: {} in {load_seconds:.0} s ({:.1}/s); errors: {}; substituted: {}",
        stats.requests,
        stats.requests as f64 / load_seconds,
        stats.errors,
        stats.substituted
    );
    println!(
        "latency from the scheduled send: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!(
        "{:<22} {:>7} {:>7} {:>9} {:>9}",
        "kind", "ok", "errors", "p50 ms", "p99 ms"
    );
    for (kind, k) in &stats.by_kind {
        let mut sorted = k.latencies.clone();
        sorted.sort_unstable();
        println!(
            "{:<22} {:>7} {:>7} {:>9.1} {:>9.1}",
            kind.name(),
            k.ok,
            k.errors,
            percentile_ms(&sorted, 0.50),
            percentile_ms(&sorted, 0.99)
        );
    }
    if stats.errors > 0 {
        broken.push(format!(
            "{} request(s) failed; the first: {:#?}",
            stats.errors, stats.first_errors
        ));
    }

    // Memory: the first third is warm-up; the last third may not sit above the middle one.
    let third = loading.len() / 3;
    let (middle, last) = (&loading[third..2 * third], &loading[2 * third..]);
    let growth_mib = (mean_rss_kib(last) - mean_rss_kib(middle)) / 1024.0;
    let requests_per_third = stats.requests as f64 / 3.0;
    let rss = |s: &Sample| s.rss_kib as f64 / 1024.0;
    let max = loading.iter().map(rss).fold(0.0, f64::max);
    println!(
        "server RSS: start {:.1} MiB, end {:.1} MiB, max {max:.1} MiB; mean of the middle third {:.1} MiB, \
         of the last third {:.1} MiB: {growth_mib:+.2} MiB (bound {} MiB, which a leak of {:.2} KiB per \
         request would cross)",
        rss(&loading[0]),
        rss(&loading[loading.len() - 1]),
        mean_rss_kib(middle) / 1024.0,
        mean_rss_kib(last) / 1024.0,
        args.rss_bound_mib,
        args.rss_bound_mib * 1024.0 / requests_per_third
    );
    // A leak climbs at the same pace all along; caches filling up to their bounds climb slower and slower.
    let thirds = [&loading[..third], middle, last]
        .map(|part| format!("{:+.2}", rss_slope_mib_per_min(part)));
    println!(
        "server RSS trend by third: {} MiB per minute",
        thirds.join(", ")
    );
    if growth_mib > args.rss_bound_mib {
        broken.push(format!(
            "memory grew {growth_mib:.2} MiB from the middle third to the last (bound {} MiB)",
            args.rss_bound_mib
        ));
    }

    // The outbox: drained, nothing dead, every mail at the sink once.
    let end = all.last().context("no sample")?;
    let max_pending = all.iter().map(|s| s.pending).max().unwrap_or_default();
    // Queued before the first request: the scheduler's pass at start-up (the officers' weekly digest).
    let before = all.first().map_or(0, |s| s.pending + s.sent + s.dead);
    let message_ids = sink_message_ids(&args.sink)?;
    let distinct: HashSet<&String> = message_ids.iter().collect();
    println!(
        "outbox: pending at most {max_pending}, {} at the end ({drain_seconds:.0} s after the load); sent {}, \
         dead {}; the sink received {} mails ({} distinct Message-IDs); expected {} (one per transition \
         and per review) and {before} queued before the load",
        end.pending,
        end.sent,
        end.dead,
        message_ids.len(),
        distinct.len(),
        stats.mails_expected
    );
    if end.pending > 0 {
        broken.push(format!(
            "{} mail(s) still pending {} s after the load",
            end.pending, args.grace
        ));
    }
    if end.dead > 0 {
        broken.push(format!("{} mail(s) dead", end.dead));
    }
    if distinct.len() != message_ids.len() {
        broken.push(format!(
            "the sink received {} duplicate(s)",
            message_ids.len() - distinct.len()
        ));
    }
    // The scheduler's later passes may queue reminders (the programme's overdue goals for the projects
    // the run opened): more than expected is theirs, fewer is a lost mail.
    let expected = before + stats.mails_expected;
    println!(
        "mails queued by the scheduler during the run: {}",
        end.sent.saturating_sub(expected)
    );
    if message_ids.len() as u64 != end.sent || end.sent < expected {
        broken.push(format!(
            "mails: at least {expected} expected, {} sent, {} received",
            end.sent,
            message_ids.len()
        ));
    }
    Ok(broken)
}

fn sink_message_ids(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut ids = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let mail: Value = serde_json::from_str(&line?)?;
        ids.push(
            mail["message_id"]
                .as_str()
                .context("message_id")?
                .to_owned(),
        );
    }
    Ok(ids)
}
