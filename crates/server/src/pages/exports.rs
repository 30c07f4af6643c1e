//! What officers take away: the country table as CSV, and each region's deadlines as an iCalendar feed a
//! calendar client subscribes to. Both show only what the account may see: a council account, its region.
//!
//! A calendar client cannot sign in, so the feed's URL carries a key: the SHA-256 of the account id and
//! its password hash. It needs no table, dies with the account (disabled accounts get nothing) and changes
//! when the password is reset, which is how a leaked feed URL is revoked.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use incubator_store::account_admin;
use incubator_store::entities::users;
use sha2::{Digest, Sha256};

use super::programme::{deadlines, due_day, forecast_view, visible_region, visible_regions};
use super::session::{Viewer, same_secret};
use super::{Lang, PageError, query_param};
use crate::access::{Caller, Role};
use crate::app::AppState;
use crate::error::ApiError;

pub fn feed_key(user: &users::Model) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"csirt-incubator calendar feed\0");
    hasher.update(user.id.to_be_bytes());
    hasher.update(user.password_hash.as_bytes());
    hex::encode(hasher.finalize())
}

/// The feed of a region's deadlines for this account.
pub fn feed_path(user: &users::Model, region: &str) -> String {
    format!("/feeds/{}/{}/regions/{region}.ics", user.id, feed_key(user))
}

/// A CSV cell: quoted when needed, and a leading `= + - @` defused so that a spreadsheet never runs it.
fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Every region the viewer may see, one row each.
pub async fn regions_csv(
    State(state): State<AppState>,
    viewer: Viewer,
    lang: Lang,
    uri: Uri,
) -> Result<Response, PageError> {
    let workflow = query_param(&uri, "workflow");
    let regions = visible_regions(&state, &viewer.caller, workflow.as_deref()).await?;
    let now = state.programme_now();
    let pages = state.pages();
    let columns = [
        "csv.region_code",
        "csv.region",
        "csv.workflow",
        "csv.stage_key",
        "csv.stage",
        "csv.stage_since",
        "csv.cohort",
        "csv.overdue",
        "csv.next_deadline",
        "csv.next_deadline_due",
        "csv.forecast_earliest",
        "csv.forecast_latest",
        "csv.goal_met",
    ];
    let mut out = String::new();
    let header_row: Vec<String> = columns
        .iter()
        .map(|c| cell(&pages.message(lang, c)))
        .collect();
    out.push_str(&header_row.join(","));
    out.push_str("\r\n");
    let yes_no = |b: bool| pages.message(lang, if b { "common.yes" } else { "common.no" });
    for region in &regions {
        let mut row = vec![region.code.clone(), region.name.clone()];
        match &region.project {
            Some(project) => {
                let rows = deadlines(region, lang, now);
                let overdue = rows.iter().filter(|d| d.overdue).count();
                let next = rows.iter().filter(|d| !d.passed).min_by_key(|d| d.due_at);
                let forecast = forecast_view(project, lang);
                row.extend([
                    project.workflow.id().to_owned(),
                    project.state().to_owned(),
                    project.state_label(lang),
                    project
                        .local_date(project.snapshot.project.state_entered_at)
                        .to_string(),
                    project
                        .snapshot
                        .cohort
                        .as_ref()
                        .map(|c| c.name.clone())
                        .unwrap_or_default(),
                    overdue.to_string(),
                    next.map(|d| d.label.clone()).unwrap_or_default(),
                    next.map(|d| d.due.clone()).unwrap_or_default(),
                    forecast
                        .as_ref()
                        .map(|f| f.earliest.clone())
                        .unwrap_or_default(),
                    forecast
                        .as_ref()
                        .map(|f| f.latest.clone())
                        .unwrap_or_default(),
                    forecast
                        .as_ref()
                        .map(|f| yes_no(f.can_make_it))
                        .unwrap_or_default(),
                ]);
            }
            None => row.extend(std::iter::repeat_n(String::new(), columns.len() - 2)),
        }
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"regions.csv\""),
            ),
        ],
        out,
    )
        .into_response())
}

/// RFC 5545 text: backslash, semicolon, comma and line breaks escaped.
fn ical_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace("\r\n", "\\n")
        .replace(['\n', '\r'], "\\n")
}

/// Lines longer than 75 octets folded (RFC 5545 §3.1), never inside a UTF-8 character.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

/// A region's open deadlines as all-day events, for a calendar subscription.
pub async fn region_calendar(
    State(state): State<AppState>,
    lang: Lang,
    Path((user_id, key, file)): Path<(i64, String, String)>,
) -> Result<Response, PageError> {
    let not_found = || ApiError::NotFound("no such calendar".into());
    let code = file.strip_suffix(".ics").ok_or_else(not_found)?.to_owned();
    let user = account_admin::find(state.store().db(), user_id)
        .await
        .map_err(|_| not_found())?;
    if user.disabled || !same_secret(&feed_key(&user), &key) {
        return Err(not_found().into());
    }
    let role = Role::parse(&user.role).ok_or_else(not_found)?;
    let caller = Caller {
        user_id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        role,
        region: user.region_code.clone(),
        token_sha256: String::new(),
    };
    let region = visible_region(&state, &caller, &code, None).await?;
    // The account's own language: a calendar client sends no cookie.
    let lang = Lang::parse(&user.lang).unwrap_or(lang);
    let now = state.programme_now();
    let pages = state.pages();
    let host = state
        .config()
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map_or("csirt-incubator", |(_, rest)| {
            rest.split('/').next().unwrap_or("csirt-incubator")
        })
        .to_owned();
    let mut out = String::new();
    let calendar_name = format!("{} — {}", pages.message(lang, "ical.name"), region.name);
    for line in [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//csirt-incubator//deadlines//FR".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        format!("X-WR-CALNAME:{}", ical_text(&calendar_name)),
    ] {
        out.push_str(&fold(&line));
    }
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    for deadline in deadlines(&region, lang, now) {
        let Some(project) = &region.project else {
            break;
        };
        let day = due_day(project, deadline.due_at);
        let summary = format!("{} — {}", region.name, deadline.label);
        let description = if deadline.overdue {
            pages.message(lang, "ical.overdue")
        } else {
            pages.message(lang, "ical.due")
        };
        for line in [
            "BEGIN:VEVENT".to_owned(),
            format!(
                "UID:deadline-{}-{}@{host}",
                project.snapshot.project.id,
                deadline.key.replace(['@', ' '], "-")
            ),
            format!("DTSTAMP:{stamp}"),
            format!("DTSTART;VALUE=DATE:{}", day.format("%Y%m%d")),
            format!(
                "DTEND;VALUE=DATE:{}",
                (day + Duration::days(1)).format("%Y%m%d")
            ),
            format!("SUMMARY:{}", ical_text(&summary)),
            format!("DESCRIPTION:{}", ical_text(&description)),
            "TRANSP:TRANSPARENT".to_owned(),
            "END:VEVENT".to_owned(),
        ] {
            out.push_str(&fold(&line));
        }
    }
    out.push_str(&fold("END:VCALENDAR"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/calendar; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("inline; filename=\"deadlines.ics\""),
            ),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("Bretagne"), "Bretagne");
        assert_eq!(
            cell("Provence-Alpes-Côte d'Azur"),
            "Provence-Alpes-Côte d'Azur"
        );
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("x\"y,"), "\"x\"\"y,\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn ical_text_is_escaped_and_folded() {
        assert_eq!(ical_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = fold(&long);
        assert!(folded.split("\r\n").all(|l| l.len() <= 75), "{folded}");
        assert_eq!(folded.replace("\r\n ", "").trim_end(), long);
    }
}
