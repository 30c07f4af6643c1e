//! From an outbox row to a rendered mail: the row's frozen context (ids, keys, instants) plus what is
//! looked up at delivery in the mail's language (workflow labels, region name, people's names).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use incubator_engine::model::Labels;
use incubator_engine::{Actor, CorrectionKind, Workflow};
use incubator_notify::{
    CorrectionRequested, DeadlineOverdue, DeadlineReminder, DeadlineStatus, DigestDeadline,
    DigestDueSoon, DigestOverdue, DocumentAccepted, DocumentRejected, DocumentReview, EmailContext,
    Lang, LinkInvitation, MailDate, NextDeadline, OfficersDigest, ProjectClosed, ProjectMail,
    PublicUrl, StageCount, StageEntered, TemplateKind,
};
use incubator_store::entities::{deadlines, links, outbox, projects, regions, users};
use incubator_store::{Store, delivery, projects as project_repo};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use tokio::sync::OnceCell;

/// One recipient of a row, as `crates/store/src/outbox.rs` writes them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Recipient {
    pub email: String,
    pub name: String,
}

/// Why a row cannot become a mail. Such a row is dead: trying again would fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error("{0}")]
    Data(String),
    #[error("database error: {0}")]
    Store(#[from] incubator_store::StoreError),
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Template(#[from] incubator_notify::TemplateError),
}

impl RenderFailure {
    /// A database that does not answer may answer later; bad data or templates will not get better.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RenderFailure::Db(_)
                | RenderFailure::Store(
                    incubator_store::StoreError::Db(_)
                        | incubator_store::StoreError::Unavailable(_)
                )
        )
    }
}

fn data(message: impl Into<String>) -> RenderFailure {
    RenderFailure::Data(message.into())
}

pub fn recipients(row: &outbox::Model) -> Result<Vec<Recipient>, RenderFailure> {
    serde_json::from_str(&row.recipients)
        .map_err(|e| data(format!("recipients of mail {}: {e}", row.id)))
}

/// Context keys every project mail has.
#[derive(Debug, Deserialize)]
struct ProjectKeys {
    project_id: i64,
    workflow_id: String,
    workflow_version: i32,
}

#[derive(Debug, Deserialize)]
struct TransitionKeys {
    transition: String,
    from_state: String,
    to_state: String,
    actor: String,
    comment: Option<String>,
    at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct ReviewKeys {
    requirement: String,
    filename: String,
    reviewer: String,
    comment: Option<String>,
}

/// What a correction request adds to a review's keys.
#[derive(Debug, Deserialize)]
struct CorrectionKeys {
    correction_kind: CorrectionKind,
    due_on: NaiveDate,
    stage_clock_paused: bool,
}

/// What an issued link's mail freezes: the link (whose token is signed again here) and who issued it.
#[derive(Debug, Deserialize)]
struct LinkKeys {
    link_id: i64,
    sender: String,
}

/// What the scheduler freezes in a reminder's row.
#[derive(Debug, Deserialize)]
struct ReminderKeys {
    deadline_key: String,
    due_at: DateTime<Utc>,
    send_at: DateTime<Utc>,
}

/// What the scheduler freezes in a digest's row.
#[derive(Debug, Deserialize)]
struct DigestKeys {
    week_of: NaiveDate,
    at: DateTime<Utc>,
}

/// How many days ahead the digest lists a deadline as due soon.
const DUE_SOON_DAYS: i64 = 14;

fn keys<T: for<'de> Deserialize<'de>>(row: &outbox::Model) -> Result<T, RenderFailure> {
    serde_json::from_str(&row.context).map_err(|e| {
        data(format!(
            "context of mail {} ({}): {e}",
            row.id, row.template
        ))
    })
}

pub fn pick(labels: &Labels, lang: Lang) -> String {
    match lang {
        Lang::Fr => labels.fr.clone(),
        Lang::En => labels.en.clone(),
    }
}

/// The calendar day a deadline falls on: the day of its last instant, so "by the end of 31 December"
/// reads 31 December.
pub fn due_day(due_at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    (due_at - TimeDelta::nanoseconds(1))
        .with_timezone(&tz)
        .date_naive()
}

/// Whole days late at `at`, rounded up and at least one: the first notice, sent when the deadline passes,
/// says one day; the round two weeks later says fourteen, even across a change of time.
pub fn days_late(due_at: DateTime<Utc>, at: DateTime<Utc>) -> u32 {
    let seconds = (at - due_at).num_seconds().max(1);
    u32::try_from((seconds + 86_399) / 86_400).unwrap_or(u32::MAX)
}

pub fn local_day(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// The label of a deadline key (see `Workflow::deadline_labels`), or the key itself.
pub fn deadline_label(workflow: &Workflow, key: &str, lang: Lang) -> String {
    workflow
        .deadline_labels(key)
        .map_or_else(|| key.to_owned(), |labels| pick(&labels, lang))
}

fn state_label(workflow: &Workflow, state: &str, lang: Lang) -> String {
    workflow
        .state(state)
        .map_or_else(|| state.to_owned(), |s| pick(&s.labels, lang))
}

/// Builds the template context of rows for one language and greeting each. A renderer serves one batch of
/// mails: it reads the regions and the people it names once, however many of its mails name them.
#[derive(Debug)]
pub struct Renderer<'a> {
    store: &'a Store,
    public_url: &'a PublicUrl,
    /// Every region by code, read on first need.
    regions: OnceCell<HashMap<String, regions::Model>>,
    /// Accounts' names by id, as read on first need (`None`: no such account).
    names: Mutex<HashMap<i64, Option<String>>>,
}

impl<'a> Renderer<'a> {
    pub fn new(store: &'a Store, public_url: &'a PublicUrl) -> Self {
        Self {
            store,
            public_url,
            regions: OnceCell::new(),
            names: Mutex::new(HashMap::new()),
        }
    }

    async fn regions(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<&HashMap<String, regions::Model>, RenderFailure> {
        self.regions
            .get_or_try_init(|| async {
                let all = regions::Entity::find().all(db).await?;
                Ok(all.into_iter().map(|r| (r.code.clone(), r)).collect())
            })
            .await
    }

    /// An actor id as people read it: an account's name for `user:N`, the service for the scheduler.
    async fn actor_name(
        &self,
        db: &impl ConnectionTrait,
        actor: &str,
        lang: Lang,
    ) -> Result<String, RenderFailure> {
        if let Some(id) = actor
            .strip_prefix("user:")
            .and_then(|id| id.parse::<i64>().ok())
        {
            let known = self.lock_names().get(&id).cloned();
            let name = match known {
                Some(name) => name,
                None => {
                    let name = users::Entity::find_by_id(id)
                        .one(db)
                        .await?
                        .map(|user| user.name);
                    self.lock_names().insert(id, name.clone());
                    name
                }
            };
            if let Some(name) = name {
                return Ok(name);
            }
        }
        Ok(match (actor, lang) {
            ("scheduler" | "system", Lang::Fr) => "l’équipe du programme".to_owned(),
            ("scheduler" | "system", Lang::En) => "the programme team".to_owned(),
            _ => actor.to_owned(),
        })
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Option<String>>> {
        // The map holds only finished lookups: a panic elsewhere leaves nothing half-written in it.
        self.names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn context(
        &self,
        db: &impl ConnectionTrait,
        row: &outbox::Model,
        lang: Lang,
        recipient_name: &str,
    ) -> Result<EmailContext, RenderFailure> {
        let kind = TemplateKind::from_name(&row.template)
            .ok_or_else(|| data(format!("mail {}: no template `{}`", row.id, row.template)))?;
        if kind == TemplateKind::OfficersDigest {
            return self.digest(db, row, lang, recipient_name).await;
        }
        let ids: ProjectKeys = keys(row)?;
        let workflow = self
            .store
            .workflows()
            .get(db, &ids.workflow_id, ids.workflow_version)
            .await?;
        let project = project_repo::find(db, ids.project_id).await?;
        let region = self
            .regions(db)
            .await?
            .get(&project.region_code)
            .ok_or_else(|| {
                data(format!(
                    "region {} of project {}",
                    project.region_code, project.id
                ))
            })?;
        let tz = workflow.timezone();
        let base = ProjectMail {
            public_url: self.public_url.clone(),
            project_url: self.public_url.project_url(project.id),
            recipient_name: recipient_name.to_owned(),
            region_name: region.name.clone(),
            region_code: region.code.clone(),
            workflow_label: pick(workflow.labels(), lang),
        };
        Ok(match kind {
            TemplateKind::StageEntered => {
                let t: TransitionKeys = keys(row)?;
                let next_deadline = deadlines::Entity::find()
                    .filter(deadlines::Column::ProjectId.eq(project.id))
                    .filter(deadlines::Column::Key.eq(t.to_state.as_str()))
                    .filter(deadlines::Column::ClearedAt.is_null())
                    .one(db)
                    .await?
                    .map(|d| NextDeadline {
                        label: deadline_label(&workflow, &d.key, lang),
                        due_on: MailDate::new(due_day(d.due_at, tz), lang),
                    });
                EmailContext::StageEntered(StageEntered {
                    project: base,
                    from_state_label: state_label(&workflow, &t.from_state, lang),
                    to_state_label: state_label(&workflow, &t.to_state, lang),
                    transition_label: workflow
                        .transition(&t.transition)
                        .map_or_else(|| t.transition.clone(), |tr| pick(&tr.labels, lang)),
                    actor_name: self.actor_name(db, &t.actor, lang).await?,
                    comment: t.comment.filter(|c| !c.trim().is_empty()),
                    at: MailDate::new(local_day(t.at, tz), lang),
                    next_deadline,
                })
            }
            TemplateKind::ProjectDeclined | TemplateKind::ProjectWithdrawn => {
                let t: TransitionKeys = keys(row)?;
                let closed = ProjectClosed {
                    project: base,
                    reason: t.comment.unwrap_or_default(),
                    actor_name: self.actor_name(db, &t.actor, lang).await?,
                    at: MailDate::new(local_day(t.at, tz), lang),
                };
                if kind == TemplateKind::ProjectDeclined {
                    EmailContext::ProjectDeclined(closed)
                } else {
                    EmailContext::ProjectWithdrawn(closed)
                }
            }
            TemplateKind::DocumentAccepted
            | TemplateKind::DocumentRejected
            | TemplateKind::CorrectionRequested => {
                let r: ReviewKeys = keys(row)?;
                let missing =
                    missing(db, self.store, &workflow, &project, row.created_at, lang).await?;
                let review = DocumentReview {
                    project: base,
                    requirement_label: workflow
                        .requirement(&r.requirement)
                        .map_or_else(|| r.requirement.clone(), |req| pick(&req.labels, lang)),
                    filename: r.filename,
                    reviewer_name: self.actor_name(db, &r.reviewer, lang).await?,
                    missing_requirements: missing.requirements,
                };
                if kind == TemplateKind::DocumentAccepted {
                    EmailContext::DocumentAccepted(DocumentAccepted {
                        review,
                        comment: r.comment,
                    })
                } else {
                    let comment = r.comment.ok_or_else(|| {
                        data(format!("mail {}: a {kind} mail without comment", row.id))
                    })?;
                    if kind == TemplateKind::DocumentRejected {
                        EmailContext::DocumentRejected(DocumentRejected { review, comment })
                    } else {
                        let c: CorrectionKeys = keys(row)?;
                        let (fr, en) = c.correction_kind.words();
                        EmailContext::CorrectionRequested(CorrectionRequested {
                            review,
                            kind_label: match lang {
                                Lang::Fr => fr.to_owned(),
                                Lang::En => en.to_owned(),
                            },
                            comment,
                            due_on: MailDate::new(c.due_on, lang),
                            stage_clock_paused: c.stage_clock_paused,
                        })
                    }
                }
            }
            TemplateKind::DeadlineReminder
            | TemplateKind::DeadlineOverdue
            | TemplateKind::DeadlineEscalation => {
                let r: ReminderKeys = keys(row)?;
                let due = due_day(r.due_at, tz);
                let sent_on = local_day(r.send_at, tz);
                let status = DeadlineStatus {
                    project: base,
                    deadline_label: deadline_label(&workflow, &r.deadline_key, lang),
                    state_label: state_label(&workflow, &project.state, lang),
                    due_on: MailDate::new(due, lang),
                    missing: missing(db, self.store, &workflow, &project, row.created_at, lang)
                        .await?
                        .everything,
                };
                let days_left =
                    u32::try_from((due - sent_on).num_days().max(0)).unwrap_or(u32::MAX);
                let days_overdue = days_late(r.due_at, r.send_at);
                match kind {
                    TemplateKind::DeadlineReminder => {
                        EmailContext::DeadlineReminder(DeadlineReminder {
                            deadline: status,
                            days_left,
                        })
                    }
                    TemplateKind::DeadlineOverdue => {
                        EmailContext::DeadlineOverdue(DeadlineOverdue {
                            deadline: status,
                            days_overdue,
                        })
                    }
                    _ => EmailContext::DeadlineEscalation(DeadlineOverdue {
                        deadline: status,
                        days_overdue,
                    }),
                }
            }
            TemplateKind::LinkInvitation => {
                let l: LinkKeys = keys(row)?;
                let link = links::Entity::find_by_id(l.link_id)
                    .one(db)
                    .await?
                    .ok_or_else(|| data(format!("mail {}: link {} missing", row.id, l.link_id)))?;
                let token = incubator_store::links::token_of(db, &link).await?;
                let requirement = workflow.requirement(&link.requirement);
                EmailContext::LinkInvitation(LinkInvitation {
                    public_url: self.public_url.clone(),
                    link_url: self.public_url.link_url(&token),
                    recipient_name: recipient_name.to_owned(),
                    region_name: region.name.clone(),
                    workflow_label: pick(workflow.labels(), lang),
                    role_label: workflow
                        .roles()
                        .get(&link.role)
                        .map_or_else(|| link.role.clone(), |labels| pick(labels, lang)),
                    requirement_label: requirement
                        .map_or_else(|| link.requirement.clone(), |r| pick(&r.labels, lang)),
                    requirement_hint: requirement
                        .and_then(|r| r.hint.as_ref())
                        .map(|h| pick(h, lang)),
                    sender_name: self.actor_name(db, &l.sender, lang).await?,
                    expires_on: MailDate::new(local_day(link.expires_at, tz), lang),
                })
            }
            TemplateKind::OfficersDigest => unreachable!("handled above"),
        })
    }

    /// The week's state of the whole programme, as of the instant the scheduler queued the digest.
    async fn digest(
        &self,
        db: &impl ConnectionTrait,
        row: &outbox::Model,
        lang: Lang,
        recipient_name: &str,
    ) -> Result<EmailContext, RenderFailure> {
        let d: DigestKeys = keys(row)?;
        let all = projects::Entity::find()
            .order_by_asc(projects::Column::RegionCode)
            .all(db)
            .await?;
        let regions = self.regions(db).await?;
        let mut counts: Vec<(String, u32)> = Vec::new();
        let mut overdue = Vec::new();
        let mut due_soon = Vec::new();
        for project in &all {
            let workflow = self
                .store
                .workflows()
                .get(db, &project.workflow_id, project.workflow_version)
                .await?;
            let label = state_label(&workflow, &project.state, lang);
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
            let tz = workflow.timezone();
            let today = local_day(d.at, tz);
            let live = deadlines::Entity::find()
                .filter(deadlines::Column::ProjectId.eq(project.id))
                .filter(deadlines::Column::ClearedAt.is_null())
                .order_by_asc(deadlines::Column::DueAt)
                .all(db)
                .await?;
            for deadline in live {
                let due = due_day(deadline.due_at, tz);
                let line = DigestDeadline {
                    region_name: regions
                        .get(&project.region_code)
                        .map(|r| r.name.clone())
                        .unwrap_or_default(),
                    deadline_label: deadline_label(&workflow, &deadline.key, lang),
                    due_on: MailDate::new(due, lang),
                    project_url: self.public_url.project_url(project.id),
                };
                let days = (due - today).num_days();
                if deadline.due_at <= d.at {
                    let days_overdue =
                        u32::try_from((today - due).num_days().max(0)).unwrap_or(u32::MAX);
                    overdue.push(DigestOverdue {
                        deadline: line,
                        days_overdue,
                    });
                } else if days <= DUE_SOON_DAYS {
                    due_soon.push(DigestDueSoon {
                        deadline: line,
                        days_left: u32::try_from(days.max(0)).unwrap_or(0),
                    });
                }
            }
        }
        let dead_mails =
            u32::try_from(delivery::count(db, delivery::DEAD).await?).unwrap_or(u32::MAX);
        Ok(EmailContext::OfficersDigest(OfficersDigest {
            public_url: self.public_url.clone(),
            recipient_name: recipient_name.to_owned(),
            week_of: MailDate::new(d.week_of, lang),
            counts_by_stage: counts
                .into_iter()
                .map(|(label, count)| StageCount { label, count })
                .collect(),
            overdue,
            due_soon,
            dead_mails,
        }))
    }
}

/// What a project still lacks to leave its stage forward (ways out to a failure are not counted).
struct Missing {
    /// Requirement labels only, for the review mails.
    requirements: Vec<String>,
    /// Requirements, fields and other conditions, for the deadline mails.
    everything: Vec<String>,
}

/// Evidence expiry is judged at `at`, when the mail was queued.
async fn missing(
    db: &impl ConnectionTrait,
    store: &Store,
    workflow: &Workflow,
    project: &projects::Model,
    at: DateTime<Utc>,
    lang: Lang,
) -> Result<Missing, RenderFailure> {
    let snapshot = project_repo::snapshot_of(db, project.clone()).await?;
    let officer = Actor {
        id: "mailer".into(),
        roles: vec!["officer".into()],
    };
    let mut seen = BTreeSet::new();
    let mut found = Missing {
        requirements: Vec::new(),
        everything: Vec::new(),
    };
    let instance =
        project_repo::instance_of(db, store.workflows(), workflow, &snapshot, at).await?;
    for view in workflow.evaluate(&instance, &officer) {
        let forward = workflow
            .state(&view.to)
            .is_none_or(|s| !s.is_terminal() || s.is_success());
        if !forward {
            continue;
        }
        for unmet in view.unmet {
            if !seen.insert((unmet.code.clone(), unmet.subject.clone())) {
                continue;
            }
            let subject = unmet.subject.as_deref().unwrap_or_default();
            let requirement = workflow
                .requirement(subject)
                .filter(|_| unmet.code == "requirement_not_accepted");
            let field = workflow
                .field(subject)
                .filter(|_| unmet.code.starts_with("field_"));
            let label = match (requirement, field) {
                (Some(req), _) => {
                    found.requirements.push(pick(&req.labels, lang));
                    pick(&req.labels, lang)
                }
                (None, Some(field)) => pick(&field.labels, lang),
                _ => match lang {
                    Lang::Fr => unmet.fr,
                    Lang::En => unmet.en,
                },
            };
            if !found.everything.contains(&label) {
                found.everything.push(label);
            }
        }
    }
    Ok(found)
}
