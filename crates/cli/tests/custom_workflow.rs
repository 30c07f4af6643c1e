//! `examples/custom-workflow/`: another programme (ANSSI's Parcours de cybersécurité) with its own
//! definition and its own emails, run by the unchanged binary. The definition validates against its
//! templates, the service starts on them, and a pathway moves over real HTTP with its mails rendered in the
//! Parcours' own words.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::{Service, add_user};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/custom-workflow"
);
const WORKFLOW: &str = "parcours-cybersecurite";
const REGION: &str = "53";
const OFFICER: (&str, &str) = ("charge.mission@anssi.example", "parcours-officer-pw");
const COUNCIL: (&str, &str) = ("rssi@bretagne.example", "parcours-council-pw");
/// Words of the Parcours' own footer, in no template of the incubation programme.
const PARCOURS_SIGNATURE: &str = "L’équipe Parcours de cybersécurité";
/// The sender is configuration, not a template: the programme's own, given as `serve` reads it.
const PARCOURS_SENDER: &str = "parcours-cyber@anssi.example";

fn incubator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incubator"));
    command.env_remove("DATABASE_URL").env_remove("SMTP_URL");
    command
}

fn templates() -> PathBuf {
    Path::new(EXAMPLE).join("templates/email")
}

#[test]
fn the_definition_validates_against_its_own_templates() {
    let definition = Path::new(EXAMPLE).join(format!("workflows/{WORKFLOW}.yaml"));
    let output = incubator()
        .args(["workflow", "validate"])
        .arg(&definition)
        .arg("--templates")
        .arg(templates())
        .output()
        .expect("run incubator workflow validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ok — parcours-cybersecurite v1"),
        "{stdout}"
    );
}

#[test]
fn the_templates_render_every_sample_in_the_parcours_voice() {
    // Loading renders every kind with its samples in strict mode, in both languages.
    let loaded = incubator_notify::Templates::load(&templates()).expect("the Parcours' templates");
    for lang in incubator_notify::Lang::ALL {
        for kind in incubator_notify::TemplateKind::ALL {
            for sample in kind.samples(lang) {
                let mail = loaded.render(lang, &sample).unwrap();
                let voice = match lang {
                    incubator_notify::Lang::Fr => "Parcours de cybersécurité",
                    incubator_notify::Lang::En => "Cybersecurity pathway",
                };
                assert!(mail.text.contains(voice), "{kind} {lang:?}:\n{}", mail.text);
                assert!(mail.html.contains(voice), "{kind} {lang:?}:\n{}", mail.html);
            }
        }
    }
}

/// The program with the test's data folder, and never a database or SMTP server of the environment's.
fn in_folder(data: &Path) -> Command {
    let mut command = incubator();
    command.arg("--data-dir").arg(data);
    command
}

/// Starts `incubator serve` on the example's folders.
fn serve(data: &Path) -> Service {
    let mut command = in_folder(data);
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--workflows"])
        .arg(Path::new(EXAMPLE).join("workflows"))
        .arg("--templates")
        .arg(templates())
        .env(
            "MAIL_FROM",
            format!("Parcours de cybersécurité <{PARCOURS_SENDER}>"),
        )
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    Service::start(command)
}

/// One signed-in account talking to the API.
struct Api {
    http: Client,
    base: String,
    token: String,
}

impl Api {
    async fn sign_in(base: &str, (email, password): (&str, &str)) -> Api {
        let http = Client::new();
        let answer: Value = http
            .post(format!("{base}/api/v1/auth/token"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            http,
            base: base.to_owned(),
            token: answer["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Sends a request and returns the status with the body read as JSON.
    async fn call(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn ok(&self, request: reqwest::RequestBuilder) -> Value {
        let (status, body) = self.call(request).await;
        assert!(status.is_success(), "{status}: {body:#}");
        body
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(self.http.get(self.url(path))).await
    }

    async fn fire(&self, project: i64, transition: &str) -> (StatusCode, Value) {
        let version = self.get(&format!("/projects/{project}")).await["version"].clone();
        let body =
            json!({ "transition": transition, "expected_version": version, "comment": null });
        self.call(
            self.http
                .post(self.url(&format!("/projects/{project}/transitions")))
                .json(&body),
        )
        .await
    }

    /// A small PDF as the evidence of `requirement`; returns the document's id.
    async fn upload(&self, project: i64, requirement: &str) -> i64 {
        let pdf = format!("%PDF-1.4\n% {requirement}\n%%EOF\n").into_bytes();
        let file = Part::bytes(pdf)
            .file_name(format!("{requirement}.pdf"))
            .mime_str("application/pdf")
            .unwrap();
        let form = Form::new()
            .text("requirement", requirement.to_owned())
            .part("file", file);
        let request = self
            .http
            .post(self.url(&format!("/projects/{project}/documents")))
            .multipart(form);
        self.ok(request).await["id"].as_i64().unwrap()
    }

    async fn accept(&self, document: i64) -> Value {
        let request = self
            .http
            .post(self.url(&format!("/documents/{document}/review")))
            .json(&json!({ "decision": "accepted", "comment": "Pièce conforme." }));
        self.ok(request).await
    }
}

fn unmet_codes(problem: &Value) -> Vec<String> {
    problem["unmet"]
        .as_array()
        .unwrap_or_else(|| panic!("no unmet list in {problem:#}"))
        .iter()
        .map(|u| u["code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pathway_moves_over_http_with_mails_in_its_own_words() {
    let data = tempfile::tempdir().unwrap();
    add_user(in_folder(data.path()), OFFICER, "officer", None);
    add_user(in_folder(data.path()), COUNCIL, "council", Some(REGION));
    let service = serve(data.path());
    let base = service.url.clone();
    let officer = Api::sign_in(&base, OFFICER).await;
    let council = Api::sign_in(&base, COUNCIL).await;

    let created = officer
        .ok(officer
            .http
            .post(officer.url("/projects"))
            .json(&json!({ "region_code": REGION, "workflow": WORKFLOW })))
        .await;
    let project = created["id"].as_i64().unwrap();
    assert_eq!(created["state"], "application");

    // The application needs its RSSI named: refused until the field is set.
    let (status, problem) = council.fire(project, "submit_application").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    assert_eq!(unmet_codes(&problem), ["field_missing"]);
    council
        .ok(council
            .http
            .patch(council.url(&format!("/projects/{project}/fields")))
            .json(&json!({ "rssi_name": "Claire Le Goff" })))
        .await;
    let (status, moved) = council.fire(project, "submit_application").await;
    assert_eq!(status, StatusCode::OK, "{moved:#}");
    assert_eq!(moved["state"], "selection");

    // Selection waits for the three eligibility documents, each reviewed by the officer.
    let (status, problem) = officer.fire(project, "select").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    assert_eq!(unmet_codes(&problem), ["requirement_not_accepted"; 3]);
    for requirement in [
        "application_form",
        "rssi_appointment",
        "executive_commitment",
    ] {
        let document = council.upload(project, requirement).await;
        let review = officer.accept(document).await;
        assert_eq!(review["requirement_status"], "accepted", "{requirement}");
    }
    let (status, moved) = officer.fire(project, "select").await;
    assert_eq!(status, StatusCode::OK, "{moved:#}");

    let seen = council.get(&format!("/projects/{project}")).await;
    assert_eq!(seen["state"], "initial_package");
    assert_eq!(seen["workflow"], WORKFLOW);
    let deadlines: Vec<&str> = seen["deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    for key in [
        "initial_package",
        "initial_package.kick_off",
        "initial_package.on_site_audit",
        "completed_by_end_2024",
    ] {
        assert!(deadlines.contains(&key), "{key} not in {deadlines:?}");
    }

    let events = officer.get(&format!("/projects/{project}/events")).await;
    let events = events.as_array().unwrap();
    let transitions: Vec<&str> = events
        .iter()
        .filter_map(|e| e["transition"].as_str())
        .collect();
    assert_eq!(transitions, ["create", "submit_application", "select"]);
    let reviewed = events
        .iter()
        .filter(|e| e["kind"] == "document_reviewed")
        .count();
    assert_eq!(reviewed, 3);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "the trail is chained"
        );
    }

    // Without SMTP_URL the mails are .eml files; the officer's "stage entered" one is in the Parcours' voice.
    let outbox = data.path().join("outbox");
    let mail = wait_for_mail(
        &outbox,
        "Votre parcours passe à l’étape « Instruction de la candidature »",
    );
    assert!(mail.contains(PARCOURS_SIGNATURE), "{mail}");
    assert!(mail.contains(&format!("<{PARCOURS_SENDER}>")), "{mail}");
    assert!(!mail.contains("CSIRT"), "{mail}");
    drop(service);
}

/// The first `.eml` under `outbox` whose decoded text contains `wanted`. Delivery runs in the background, so
/// this polls; the bound only turns a mail that never comes into a failure with what did come.
fn wait_for_mail(outbox: &Path, wanted: &str) -> String {
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen = std::fs::read_dir(outbox)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|eml| decode_quoted_printable(&eml))
            .collect();
        if let Some(mail) = seen.iter().find(|m| m.contains(wanted)) {
            return mail.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no mail says {wanted:?}; the outbox holds:\n{}",
        seen.join("\n----\n")
    );
}

/// Undoes quoted-printable (RFC 2045 §6.7), the encoding lettre gives the text and HTML parts: soft line
/// breaks, then `=XX` bytes. Lines that are not encoded pass through unchanged.
fn decode_quoted_printable(eml: &str) -> String {
    let joined = eml.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
