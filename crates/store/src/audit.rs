//! The tamper-evident audit trail: each event carries the SHA-256 of its content and of the previous
//! event of the same project, so editing or deleting one breaks every later link.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::entities::{events, projects};
use crate::error::StoreResult;

/// The `prev_hash` of a project's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Instants are kept to the microsecond: PostgreSQL stores no finer, and a hash must survive the round trip.
pub fn normalize(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The hashed content of an event: every column but the row id and the hash itself.
#[derive(Debug, Serialize)]
struct Hashed<'a> {
    project_id: i64,
    seq: i64,
    at: String,
    actor: &'a str,
    kind: &'a str,
    transition: Option<&'a str>,
    from_state: Option<&'a str>,
    to_state: Option<&'a str>,
    comment: Option<&'a str>,
    changes: &'a str,
    prev_hash: &'a str,
}

pub fn event_hash(e: &events::Model) -> String {
    let hashed = Hashed {
        project_id: e.project_id,
        seq: e.seq,
        at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        actor: &e.actor,
        kind: &e.kind,
        transition: e.transition.as_deref(),
        from_state: e.from_state.as_deref(),
        to_state: e.to_state.as_deref(),
        comment: e.comment.as_deref(),
        changes: &e.changes,
        prev_hash: &e.prev_hash,
    };
    // Serialising a struct of strings and integers cannot fail.
    let bytes = serde_json::to_vec(&hashed).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// The first broken link found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub project_id: i64,
    pub seq: i64,
    pub event_id: Option<i64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub projects: u64,
    pub events: u64,
    pub broken: Option<BrokenLink>,
}

/// Walks every project's chain in order and stops at the first broken link.
pub async fn verify(db: &impl ConnectionTrait) -> StoreResult<VerifyReport> {
    let mut report = VerifyReport {
        projects: 0,
        events: 0,
        broken: None,
    };
    let projects = projects::Entity::find()
        .order_by_asc(projects::Column::Id)
        .all(db)
        .await?;
    for project in projects {
        report.projects += 1;
        if let Some(broken) = verify_project(db, &project, &mut report.events).await? {
            report.broken = Some(broken);
            break;
        }
    }
    Ok(report)
}

async fn verify_project(
    db: &impl ConnectionTrait,
    project: &projects::Model,
    counted: &mut u64,
) -> StoreResult<Option<BrokenLink>> {
    let broken = |seq: i64, event_id: Option<i64>, reason: String| {
        Ok(Some(BrokenLink {
            project_id: project.id,
            seq,
            event_id,
            reason,
        }))
    };
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    // Pages keep memory flat however long a project's history grows.
    let mut pages = events::Entity::find()
        .filter(events::Column::ProjectId.eq(project.id))
        .order_by_asc(events::Column::Seq)
        .paginate(db, 1000);
    while let Some(page) = pages.fetch_and_next().await? {
        for event in page {
            *counted += 1;
            if event.seq != expected_seq {
                return broken(
                    expected_seq,
                    Some(event.id),
                    format!(
                        "event #{expected_seq} is missing (found #{} next)",
                        event.seq
                    ),
                );
            }
            if event.prev_hash != expected_prev {
                return broken(
                    event.seq,
                    Some(event.id),
                    "its previous-hash link does not match".into(),
                );
            }
            if event_hash(&event) != event.hash {
                return broken(
                    event.seq,
                    Some(event.id),
                    "its content does not match its hash".into(),
                );
            }
            expected_prev = event.hash;
            expected_seq += 1;
        }
    }
    if expected_seq - 1 != project.last_event_seq || expected_prev != project.last_event_hash {
        return broken(
            project.last_event_seq,
            None,
            format!(
                "the project records {} event(s) ending in {}, the chain has {} ending in {}",
                project.last_event_seq,
                short(&project.last_event_hash),
                expected_seq - 1,
                short(&expected_prev)
            ),
        );
    }
    Ok(None)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
