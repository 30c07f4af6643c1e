//! Shared by the load generators: signing in, the benchmark loop projects (one per region and loop copy,
//! see `examples/workflows/bench-loop.yaml`) and percentiles.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

pub const REGIONS: [&str; 18] = [
    "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84",
    "93", "94",
];
/// Copies of the benchmark loop the scripts deploy (`bench-loop-0` … `bench-loop-3`).
pub const LOOPS: usize = 4;

/// A bearer token for the account.
pub async fn sign_in(
    http: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let answer: Value = http
        .post(format!("{url}/api/v1/auth/token"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["token"]
        .as_str()
        .context("no token in the answer")?
        .to_owned())
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: i64,
    pub state: String,
    pub version: i64,
}

impl Project {
    /// The next transition round the loop.
    pub fn next_transition(&self) -> &'static str {
        if self.state == "a" { "to_b" } else { "to_a" }
    }
}

/// The region's project of `workflow`: created, or found when it already exists (409).
pub async fn open_project(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    region: &str,
    workflow: &str,
) -> anyhow::Result<Value> {
    let created = http
        .post(format!("{url}/api/v1/projects"))
        .bearer_auth(token)
        .json(&json!({ "region_code": region, "workflow": workflow }))
        .send()
        .await?;
    if created.status().as_u16() != 409 {
        return Ok(created.error_for_status()?.json().await?);
    }
    let list: Value = http
        .get(format!(
            "{url}/api/v1/projects?region_code={region}&workflow={workflow}"
        ))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    list.as_array()
        .and_then(|a| a.first())
        .cloned()
        .context("project listed")
}

/// One loop project per region and loop copy, given the field the loop's guard needs.
pub async fn loop_projects(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<Vec<Project>> {
    let mut out = Vec::new();
    for n in 0..LOOPS {
        let workflow = format!("bench-loop-{n}");
        for region in REGIONS {
            let project = open_project(http, url, token, region, &workflow).await?;
            let id = project["id"].as_i64().context("project id")?;
            let patched: Value = http
                .patch(format!("{url}/api/v1/projects/{id}/fields"))
                .bearer_auth(token)
                .json(&json!({ "note": "bench" }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            out.push(Project {
                id,
                state: patched["state"].as_str().context("state")?.to_owned(),
                version: patched["version"].as_i64().context("version")?,
            });
        }
    }
    Ok(out)
}

/// The `p` quantile (0–1) of sorted durations, in milliseconds; 0 when there are none.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
