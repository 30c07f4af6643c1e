//! What each template may name. Field names are the template variables; nested structs marked
//! `flatten` put their fields at the top level. Labels arrive in the mail's language; dates are
//! [`MailDate`]s, written by this crate. Every template also sees `lang` (`fr` or `en`).

use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

use crate::lang::Lang;
use crate::url::{LinkUrl, ProjectUrl, PublicUrl};

/// A date written out for a reader of the given language, e.g. « 31 décembre 2024 ».
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MailDate(String);

impl MailDate {
    pub fn new(date: NaiveDate, lang: Lang) -> MailDate {
        MailDate(lang.format_date(date))
    }
}

impl fmt::Display for MailDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The part every mail about one project shares.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectMail {
    pub public_url: PublicUrl,
    pub project_url: ProjectUrl,
    pub recipient_name: String,
    pub region_name: String,
    /// INSEE region code, e.g. `53`.
    pub region_code: String,
    pub workflow_label: String,
}

/// `stage_entered`: the project entered a new stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageEntered {
    #[serde(flatten)]
    pub project: ProjectMail,
    pub from_state_label: String,
    pub to_state_label: String,
    pub transition_label: String,
    pub actor_name: String,
    pub comment: Option<String>,
    pub at: MailDate,
    /// The deadline the new stage sets, if any.
    pub next_deadline: Option<NextDeadline>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextDeadline {
    pub label: String,
    pub due_on: MailDate,
}

/// `project_declined` and `project_withdrawn`: the project reached a terminal state other than success.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectClosed {
    #[serde(flatten)]
    pub project: ProjectMail,
    /// The comment the transition required.
    pub reason: String,
    pub actor_name: String,
    pub at: MailDate,
}

/// The part `document_accepted` and `document_rejected` share.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentReview {
    #[serde(flatten)]
    pub project: ProjectMail,
    pub requirement_label: String,
    pub filename: String,
    pub reviewer_name: String,
    /// Requirements of the current stage still without an accepted document.
    pub missing_requirements: Vec<String>,
}

/// `document_accepted`.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentAccepted {
    #[serde(flatten)]
    pub review: DocumentReview,
    pub comment: Option<String>,
}

/// `document_rejected`: the reviewer must say why, so the comment is not optional.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentRejected {
    #[serde(flatten)]
    pub review: DocumentReview,
    pub comment: String,
}

/// `correction_requested`: an officer asks the region for a corrected document by a day.
#[derive(Debug, Clone, Serialize)]
pub struct CorrectionRequested {
    #[serde(flatten)]
    pub review: DocumentReview,
    /// What is wrong, in the mail's language (incorrect, incomplete or outdated document).
    pub kind_label: String,
    /// What to correct.
    pub comment: String,
    pub due_on: MailDate,
    /// The deadline of the project's stage waits for the answer.
    pub stage_clock_paused: bool,
}

/// The part every deadline mail shares.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineStatus {
    #[serde(flatten)]
    pub project: ProjectMail,
    pub deadline_label: String,
    /// The stage the project is in.
    pub state_label: String,
    pub due_on: MailDate,
    /// What is still needed to leave the stage, one label each.
    pub missing: Vec<String>,
}

/// `deadline_reminder`: a deadline is coming.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineReminder {
    #[serde(flatten)]
    pub deadline: DeadlineStatus,
    /// 0 when the deadline is today.
    pub days_left: u32,
}

/// `deadline_overdue` (to the region) and `deadline_escalation` (to the programme officers).
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineOverdue {
    #[serde(flatten)]
    pub deadline: DeadlineStatus,
    pub days_overdue: u32,
}

/// `officers_digest`: the weekly state of the whole programme.
#[derive(Debug, Clone, Serialize)]
pub struct OfficersDigest {
    pub public_url: PublicUrl,
    pub recipient_name: String,
    /// The Monday of the week.
    pub week_of: MailDate,
    pub counts_by_stage: Vec<StageCount>,
    pub overdue: Vec<DigestOverdue>,
    pub due_soon: Vec<DigestDueSoon>,
    /// Mails the outbox gave up delivering.
    pub dead_mails: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageCount {
    pub label: String,
    pub count: u32,
}

/// One project's deadline, as a line of the digest.
#[derive(Debug, Clone, Serialize)]
pub struct DigestDeadline {
    pub region_name: String,
    pub deadline_label: String,
    pub due_on: MailDate,
    pub project_url: ProjectUrl,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestOverdue {
    #[serde(flatten)]
    pub deadline: DigestDeadline,
    pub days_overdue: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestDueSoon {
    #[serde(flatten)]
    pub deadline: DigestDeadline,
    /// 0 when the deadline is today.
    pub days_left: u32,
}

/// `link_invitation`: a person without an account (a sponsoring CSIRT) is asked for one document through a
/// signed link. No project page link: the recipient has no account to open it with.
#[derive(Debug, Clone, Serialize)]
pub struct LinkInvitation {
    pub public_url: PublicUrl,
    pub link_url: LinkUrl,
    pub recipient_name: String,
    pub region_name: String,
    pub workflow_label: String,
    /// The workflow role the recipient acts in, e.g. « CSIRT parrain ».
    pub role_label: String,
    pub requirement_label: String,
    pub requirement_hint: Option<String>,
    /// Who issued the link.
    pub sender_name: String,
    pub expires_on: MailDate,
}

/// The email templates, one folder each under the template directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TemplateKind {
    StageEntered,
    ProjectDeclined,
    ProjectWithdrawn,
    DocumentAccepted,
    DocumentRejected,
    CorrectionRequested,
    DeadlineReminder,
    DeadlineOverdue,
    DeadlineEscalation,
    OfficersDigest,
    LinkInvitation,
}

impl TemplateKind {
    pub const ALL: [TemplateKind; 11] = [
        TemplateKind::StageEntered,
        TemplateKind::ProjectDeclined,
        TemplateKind::ProjectWithdrawn,
        TemplateKind::DocumentAccepted,
        TemplateKind::DocumentRejected,
        TemplateKind::CorrectionRequested,
        TemplateKind::DeadlineReminder,
        TemplateKind::DeadlineOverdue,
        TemplateKind::DeadlineEscalation,
        TemplateKind::OfficersDigest,
        TemplateKind::LinkInvitation,
    ];

    /// The folder name, which is also how workflows refer to the template.
    pub fn name(self) -> &'static str {
        match self {
            TemplateKind::StageEntered => "stage_entered",
            TemplateKind::ProjectDeclined => "project_declined",
            TemplateKind::ProjectWithdrawn => "project_withdrawn",
            TemplateKind::DocumentAccepted => "document_accepted",
            TemplateKind::DocumentRejected => "document_rejected",
            TemplateKind::CorrectionRequested => "correction_requested",
            TemplateKind::DeadlineReminder => "deadline_reminder",
            TemplateKind::DeadlineOverdue => "deadline_overdue",
            TemplateKind::DeadlineEscalation => "deadline_escalation",
            TemplateKind::OfficersDigest => "officers_digest",
            TemplateKind::LinkInvitation => "link_invitation",
        }
    }

    pub fn from_name(name: &str) -> Option<TemplateKind> {
        TemplateKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mail to render: which template, with its context. Kinds sharing a context shape share a struct.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EmailContext {
    StageEntered(StageEntered),
    ProjectDeclined(ProjectClosed),
    ProjectWithdrawn(ProjectClosed),
    DocumentAccepted(DocumentAccepted),
    DocumentRejected(DocumentRejected),
    CorrectionRequested(CorrectionRequested),
    DeadlineReminder(DeadlineReminder),
    DeadlineOverdue(DeadlineOverdue),
    DeadlineEscalation(DeadlineOverdue),
    OfficersDigest(OfficersDigest),
    LinkInvitation(LinkInvitation),
}

impl EmailContext {
    pub fn kind(&self) -> TemplateKind {
        match self {
            EmailContext::StageEntered(_) => TemplateKind::StageEntered,
            EmailContext::ProjectDeclined(_) => TemplateKind::ProjectDeclined,
            EmailContext::ProjectWithdrawn(_) => TemplateKind::ProjectWithdrawn,
            EmailContext::DocumentAccepted(_) => TemplateKind::DocumentAccepted,
            EmailContext::DocumentRejected(_) => TemplateKind::DocumentRejected,
            EmailContext::CorrectionRequested(_) => TemplateKind::CorrectionRequested,
            EmailContext::DeadlineReminder(_) => TemplateKind::DeadlineReminder,
            EmailContext::DeadlineOverdue(_) => TemplateKind::DeadlineOverdue,
            EmailContext::DeadlineEscalation(_) => TemplateKind::DeadlineEscalation,
            EmailContext::OfficersDigest(_) => TemplateKind::OfficersDigest,
            EmailContext::LinkInvitation(_) => TemplateKind::LinkInvitation,
        }
    }
}
