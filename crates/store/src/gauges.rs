//! What an operator alerts on, read from the database when `/metrics` is scraped: every replica reports the
//! same shared truth (mail queued or dead, late deadlines), not what its own process happened to see.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{ConnectionTrait, FromQueryResult};

use crate::entities::{deadlines, documents, outbox, projects};
use crate::error::StoreResult;
use crate::outbox::PENDING;
use crate::scans::ScanStatus;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// Projects by (workflow, state).
    pub projects: BTreeMap<(String, String), u64>,
    /// Outbox rows by status (`pending`, `sent`, `dead`).
    pub outbox: BTreeMap<String, u64>,
    /// Age of the oldest mail still waiting to be delivered; `None` when nothing waits.
    pub oldest_pending_mail_seconds: Option<f64>,
    /// Running (not cleared, not paused) deadlines already past, milestones excluded, by key (a state's id or
    /// a programme goal's).
    pub overdue_deadlines: BTreeMap<String, u64>,
    /// Documents by antivirus scan status (`pending`, `clean`, `infected`).
    pub documents_by_scan: BTreeMap<String, u64>,
    /// How long the oldest document waiting for its scan has waited; `None` when none waits. Growing means
    /// the scanner is down or behind.
    pub oldest_pending_scan_seconds: Option<f64>,
}

#[derive(Debug, FromQueryResult)]
struct KeyCount {
    key: String,
    n: i64,
}

#[derive(Debug, FromQueryResult)]
struct PairCount {
    a: String,
    b: String,
    n: i64,
}

#[derive(Debug, FromQueryResult)]
struct Oldest {
    oldest: Option<DateTime<Utc>>,
}

/// Reads the gauges as of `now`, the programme's clock, which also stamps deadlines and queued mail.
pub async fn read(db: &impl ConnectionTrait, now: DateTime<Utc>) -> StoreResult<Gauges> {
    let backend = db.get_database_backend();

    let by_state = Query::select()
        .expr_as(Expr::col(projects::Column::WorkflowId), Alias::new("a"))
        .expr_as(Expr::col(projects::Column::State), Alias::new("b"))
        .expr_as(Func::count(Expr::val(1)), Alias::new("n"))
        .from(projects::Entity)
        .group_by_col(projects::Column::WorkflowId)
        .group_by_col(projects::Column::State)
        .to_owned();
    let projects = PairCount::find_by_statement(backend.build(&by_state))
        .all(db)
        .await?
        .into_iter()
        .map(|r| ((r.a, r.b), count(r.n)))
        .collect();

    let by_status = Query::select()
        .expr_as(Expr::col(outbox::Column::Status), Alias::new("key"))
        .expr_as(Func::count(Expr::val(1)), Alias::new("n"))
        .from(outbox::Entity)
        .group_by_col(outbox::Column::Status)
        .to_owned();
    let mut outbox: BTreeMap<String, u64> = KeyCount::find_by_statement(backend.build(&by_status))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.key, count(r.n)))
        .collect();
    // Alerts compare against zero: a status with no row is reported as 0, not left out.
    for status in [PENDING, crate::delivery::SENT, crate::delivery::DEAD] {
        outbox.entry(status.to_owned()).or_default();
    }

    let oldest = Query::select()
        .expr_as(
            Func::min(Expr::col(outbox::Column::CreatedAt)),
            Alias::new("oldest"),
        )
        .from(outbox::Entity)
        .and_where(Expr::col(outbox::Column::Status).eq(PENDING))
        .to_owned();
    let oldest_pending_mail_seconds = Oldest::find_by_statement(backend.build(&oldest))
        .one(db)
        .await?
        .and_then(|r| r.oldest)
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);

    // engine::is_milestone_key, in SQL: milestone keys contain a dot (`incubation.mid_term`) and state ids
    // cannot. A milestone passing is the programme moving on, not a region being late.
    let overdue = Query::select()
        .expr_as(Expr::col(deadlines::Column::Key), Alias::new("key"))
        .expr_as(Func::count(Expr::val(1)), Alias::new("n"))
        .from(deadlines::Entity)
        .and_where(Expr::col(deadlines::Column::ClearedAt).is_null())
        .and_where(Expr::col(deadlines::Column::PausedAt).is_null())
        .and_where(Expr::col(deadlines::Column::DueAt).lt(now))
        .and_where(Expr::col(deadlines::Column::Key).not_like("%.%"))
        .group_by_col(deadlines::Column::Key)
        .to_owned();
    let overdue_deadlines = KeyCount::find_by_statement(backend.build(&overdue))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.key, count(r.n)))
        .collect();

    let by_scan = Query::select()
        .expr_as(Expr::col(documents::Column::ScanStatus), Alias::new("key"))
        .expr_as(Func::count(Expr::val(1)), Alias::new("n"))
        .from(documents::Entity)
        .group_by_col(documents::Column::ScanStatus)
        .to_owned();
    let mut documents_by_scan: BTreeMap<String, u64> =
        KeyCount::find_by_statement(backend.build(&by_scan))
            .all(db)
            .await?
            .into_iter()
            .map(|r| (r.key, count(r.n)))
            .collect();
    for status in [ScanStatus::Pending, ScanStatus::Clean, ScanStatus::Infected] {
        documents_by_scan
            .entry(status.as_str().to_owned())
            .or_default();
    }
    let oldest_scan = Query::select()
        .expr_as(
            Func::min(Expr::col(documents::Column::UploadedAt)),
            Alias::new("oldest"),
        )
        .from(documents::Entity)
        .and_where(Expr::col(documents::Column::ScanStatus).eq(ScanStatus::Pending.as_str()))
        .to_owned();
    let oldest_pending_scan_seconds = Oldest::find_by_statement(backend.build(&oldest_scan))
        .one(db)
        .await?
        .and_then(|r| r.oldest)
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);

    Ok(Gauges {
        projects,
        outbox,
        oldest_pending_mail_seconds,
        overdue_deadlines,
        documents_by_scan,
        oldest_pending_scan_seconds,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}
