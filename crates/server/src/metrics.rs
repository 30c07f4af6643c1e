//! Request metrics in the Prometheus text format, kept in process: counters by route and status, a latency
//! histogram by route, requests in flight, and refused logins and uploads.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use incubator_store::gauges::Gauges;

use crate::app::AppState;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
    login_failures: AtomicU64,
    uploads_refused: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        drop(requests);
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = latency.entry(route.to_owned()).or_default();
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    pub fn login_failed(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// `reason`: `too_large`, `unrecognised`, `kind_not_accepted`.
    pub fn upload_refused(&self, reason: &'static str) {
        let mut refused = self
            .uploads_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *refused.entry(reason).or_default() += 1;
    }

    /// The text exposition: this process's counters, then the gauges read from the shared database.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP incubator_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE incubator_http_requests_total counter\n");
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "incubator_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        out.push_str("# HELP incubator_http_request_duration_seconds Time to answer HTTP requests, by route.\n");
        out.push_str("# TYPE incubator_http_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let route = escape(route);
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "incubator_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "incubator_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "incubator_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "incubator_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP incubator_http_requests_in_flight HTTP requests being answered.\n");
        out.push_str("# TYPE incubator_http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "incubator_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        if let Some(seconds) = process_cpu_seconds() {
            // The name every Prometheus client library gives it, so dashboards find it as they expect.
            out.push_str(
                "# HELP process_cpu_seconds_total User and system CPU time the process has spent.\n",
            );
            out.push_str("# TYPE process_cpu_seconds_total counter\n");
            let _ = writeln!(out, "process_cpu_seconds_total {seconds}");
        }
        out.push_str("# HELP incubator_login_failures_total Refused logins.\n");
        out.push_str("# TYPE incubator_login_failures_total counter\n");
        let _ = writeln!(
            out,
            "incubator_login_failures_total {}",
            self.login_failures.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP incubator_uploads_refused_total Evidence uploads refused, by reason.\n",
        );
        out.push_str("# TYPE incubator_uploads_refused_total counter\n");
        for (reason, n) in self
            .uploads_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "incubator_uploads_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP incubator_projects Projects by workflow and current state.\n");
        out.push_str("# TYPE incubator_projects gauge\n");
        for ((workflow, state), n) in &gauges.projects {
            let _ = writeln!(
                out,
                "incubator_projects{{workflow=\"{}\",state=\"{}\"}} {n}",
                escape(workflow),
                escape(state)
            );
        }
        out.push_str("# HELP incubator_mail_outbox Mails in the outbox by status: pending (queued or being sent), sent, dead (gave up; an admin may retry).\n");
        out.push_str("# TYPE incubator_mail_outbox gauge\n");
        for (status, n) in &gauges.outbox {
            let _ = writeln!(
                out,
                "incubator_mail_outbox{{status=\"{}\"}} {n}",
                escape(status)
            );
        }
        out.push_str("# HELP incubator_mail_oldest_pending_age_seconds Age of the oldest mail not yet delivered (0 when none waits).\n");
        out.push_str("# TYPE incubator_mail_oldest_pending_age_seconds gauge\n");
        let _ = writeln!(
            out,
            "incubator_mail_oldest_pending_age_seconds {}",
            gauges.oldest_pending_mail_seconds.unwrap_or(0.0)
        );
        out.push_str("# HELP incubator_deadlines_overdue Deadlines past due and still running (milestones excluded), by key: a state id or a programme goal.\n");
        out.push_str("# TYPE incubator_deadlines_overdue gauge\n");
        for (key, n) in &gauges.overdue_deadlines {
            let _ = writeln!(
                out,
                "incubator_deadlines_overdue{{key=\"{}\"}} {n}",
                escape(key)
            );
        }
        out.push_str("# HELP incubator_documents_scan Documents by antivirus scan status: pending (not served yet), clean, infected (quarantined).\n");
        out.push_str("# TYPE incubator_documents_scan gauge\n");
        for (status, n) in &gauges.documents_by_scan {
            let _ = writeln!(
                out,
                "incubator_documents_scan{{status=\"{}\"}} {n}",
                escape(status)
            );
        }
        out.push_str("# HELP incubator_documents_oldest_pending_scan_age_seconds How long the oldest document waiting for its antivirus scan has waited (0 when none waits); growing means the scanner is down or behind.\n");
        out.push_str("# TYPE incubator_documents_oldest_pending_scan_age_seconds gauge\n");
        let _ = writeln!(
            out,
            "incubator_documents_oldest_pending_scan_age_seconds {}",
            gauges.oldest_pending_scan_seconds.unwrap_or(0.0)
        );
        out
    }
}

/// User plus system CPU time of this process, all threads; `None` where the system cannot tell.
fn process_cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike;
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Some(micros as f64 / 1e6)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: times every request and counts it under its route template (never the raw path, whose ids
/// would make the label set unbounded).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let metrics = state.metrics();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.record("GET", "/api/v1/projects/{id}", 200, 0.02);
        metrics.record("GET", "/api/v1/projects/{id}", 404, 3.0);
        metrics.login_failed();
        let gauges = Gauges {
            projects: BTreeMap::from([(("csirt-incubation".to_owned(), "invited".to_owned()), 2)]),
            outbox: BTreeMap::from([("pending".to_owned(), 3), ("dead".to_owned(), 1)]),
            oldest_pending_mail_seconds: Some(42.5),
            overdue_deadlines: BTreeMap::from([("eligibility_review".to_owned(), 2)]),
            documents_by_scan: BTreeMap::from([("pending".to_owned(), 4)]),
            oldest_pending_scan_seconds: Some(90.0),
        };
        let text = metrics.render(&gauges);
        assert!(text.contains(
            "incubator_http_requests_total{method=\"GET\",route=\"/api/v1/projects/{id}\",status=\"404\"} 1"
        ));
        assert!(text.contains(
            "incubator_http_request_duration_seconds_bucket{route=\"/api/v1/projects/{id}\",le=\"0.025\"} 1"
        ));
        assert!(text.contains(
            "incubator_http_request_duration_seconds_bucket{route=\"/api/v1/projects/{id}\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("incubator_login_failures_total 1"));
        // The CPU time is this test process's own: it only grows, and work done between two reads shows.
        let cpu = |text: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
                .expect("process_cpu_seconds_total")
                .parse()
                .expect("a number")
        };
        let before = cpu(&text);
        let started = Instant::now();
        let mut spin = 0u64;
        while cpu(&metrics.render(&gauges)) < before + 0.05 {
            assert!(
                started.elapsed().as_secs() < 30,
                "process_cpu_seconds_total stays at {before} while this test spins"
            );
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        assert!(
            text.contains("incubator_projects{workflow=\"csirt-incubation\",state=\"invited\"} 2")
        );
        assert!(text.contains("incubator_mail_outbox{status=\"dead\"} 1"));
        assert!(text.contains("incubator_mail_oldest_pending_age_seconds 42.5"));
        assert!(text.contains("incubator_deadlines_overdue{key=\"eligibility_review\"} 2"));
        assert!(text.contains("incubator_documents_scan{status=\"pending\"} 4"));
        assert!(text.contains("incubator_documents_oldest_pending_scan_age_seconds 90"));
    }
}
