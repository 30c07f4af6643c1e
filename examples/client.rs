//! A small client of the JSON API: signs in, then prints, region by region, what is late and what is
//! missing — the state, the overdue deadlines, the requirements not accepted yet, the transitions the
//! account may fire now and why the others are blocked. A starting point for scripts of your own.
//!
//! ```sh
//! cargo run --bin incubator -- serve --demo          # in another terminal
//! INCUBATOR_PASSWORD=demo-officer-csirt cargo run -p csirt-incubator --example client -- \
//!     --email officer@demo.csirt-incubator.fr [--url http://127.0.0.1:8080]
//! ```
//!
//! The password comes from `INCUBATOR_PASSWORD` only, so that it stays out of shell history and `ps`.
//! Output against the demo (trimmed):
//!
//! ```text
//! 18 regions at http://127.0.0.1:8080, seen by officer@demo.csirt-incubator.fr
//!
//! 01 Guadeloupe — project 8, project_identification
//!   late:    project_identification (due 2022-09-15)
//!   missing: autonomous_accounting (missing), grant_agreement (missing), legal_status (missing), …
//!   blocked: retain_project → legal_structure
//!            · Justificatif non accepté : Budget prévisionnel et organisation comptable (aucun document déposé)
//!            · Justificatif non accepté : Catalogue de services (en attente de relecture)
//!            · …
//!   now:     decline_project → not_retained, withdraw → withdrawn
//!
//! 03 Guyane — project 10, not_retained
//!
//! 11 Île-de-France — project 13, incubation
//!   late:    incubation.kick_off (due 2022-08-31)
//!   now:     complete_incubation → networking, withdraw → withdrawn
//!
//! 53 Bretagne — project 17, awaiting_incubation
//!   blocked: start_incubation → incubation
//!            · Aucune session d'incubation attribuée
//!   now:     withdraw → withdrawn
//! ```

use anyhow::{Context, bail};
use reqwest::{Client, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The parts of the API's answers this client reads; serde ignores the rest.
#[derive(Deserialize)]
struct Token {
    token: String,
}

#[derive(Deserialize)]
struct Region {
    code: String,
    name: String,
    project_id: Option<i64>,
}

#[derive(Deserialize)]
struct Project {
    state: String,
    requirements: Vec<Requirement>,
    deadlines: Vec<Deadline>,
    transitions: Vec<Transition>,
}

#[derive(Deserialize)]
struct Requirement {
    key: String,
    status: String,
}

#[derive(Deserialize)]
struct Deadline {
    /// A state id, `state.milestone` or a goal id.
    state: String,
    due_at: chrono::DateTime<chrono::Utc>,
    overdue: bool,
}

#[derive(Deserialize)]
struct Transition {
    id: String,
    to: String,
    allowed: bool,
    /// False when the account's role may never fire it: not worth listing as blocked.
    role_allowed: bool,
    unmet: Vec<Unmet>,
}

#[derive(Deserialize)]
struct Unmet {
    fr: String,
}

/// An RFC 9457 problem, as every error of the API is answered.
#[derive(Deserialize)]
struct Problem {
    title: String,
    detail: String,
}

struct Api {
    http: Client,
    url: String,
    token: String,
}

impl Api {
    async fn sign_in(url: &str, email: &str, password: &str) -> anyhow::Result<Api> {
        let http = Client::new();
        let response = http
            .post(format!("{url}/api/v1/auth/token"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let token: Token = read(response).await.context("signing in")?;
        Ok(Api {
            http,
            url: url.to_owned(),
            token: token.token,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        read(response).await.with_context(|| format!("GET {path}"))
    }
}

/// The body as `T`, or the problem the API answered with, as `status title: detail`.
async fn read<T: DeserializeOwned>(response: Response) -> anyhow::Result<T> {
    let status = response.status();
    if status.is_success() {
        return Ok(response.json().await?);
    }
    match response.json::<Problem>().await {
        Ok(problem) => bail!("{status} {}: {}", problem.title, problem.detail),
        Err(_) => bail!("{status} with no problem document"),
    }
}

fn args() -> anyhow::Result<(String, String)> {
    let (mut url, mut email) = ("http://127.0.0.1:8080".to_owned(), None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = value.trim_end_matches('/').to_owned(),
            "--email" => email = Some(value),
            other => bail!("unknown flag {other}: the flags are --url and --email"),
        }
    }
    Ok((url, email.context("--email is required")?))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let (url, email) = args()?;
    let password = std::env::var("INCUBATOR_PASSWORD")
        .context("set INCUBATOR_PASSWORD to the account's password")?;
    let api = Api::sign_in(&url, &email, &password).await?;
    let regions: Vec<Region> = api.get("/regions").await?;
    println!("{} regions at {url}, seen by {email}", regions.len());
    for region in regions {
        println!();
        let Some(id) = region.project_id else {
            println!("{} {} — no project", region.code, region.name);
            continue;
        };
        let project: Project = api.get(&format!("/projects/{id}")).await?;
        println!(
            "{} {} — project {id}, {}",
            region.code, region.name, project.state
        );
        report(&project);
    }
    Ok(())
}

fn report(project: &Project) {
    let late: Vec<String> = project
        .deadlines
        .iter()
        .filter(|d| d.overdue)
        .map(|d| format!("{} (due {})", d.state, d.due_at.date_naive()))
        .collect();
    if !late.is_empty() {
        println!("  late:    {}", late.join(", "));
    }
    // A project with no transition left has ended: nothing is missing any more.
    if project.transitions.is_empty() {
        return;
    }
    let missing: Vec<String> = project
        .requirements
        .iter()
        .filter(|r| r.status != "accepted")
        .map(|r| format!("{} ({})", r.key, r.status))
        .collect();
    if !missing.is_empty() {
        println!("  missing: {}", missing.join(", "));
    }
    for t in project
        .transitions
        .iter()
        .filter(|t| t.role_allowed && !t.allowed)
    {
        println!("  blocked: {} → {}", t.id, t.to);
        for unmet in &t.unmet {
            println!("           · {}", unmet.fr);
        }
    }
    let now: Vec<String> = project
        .transitions
        .iter()
        .filter(|t| t.allowed)
        .map(|t| format!("{} → {}", t.id, t.to))
        .collect();
    if !now.is_empty() {
        println!("  now:     {}", now.join(", "));
    }
}
