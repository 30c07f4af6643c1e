//! Realistic contexts, one pair per template kind. Loading renders every template with both, which is
//! how a template naming a variable its context lacks is found at start-up rather than in production.

use chrono::NaiveDate;

use crate::context::*;
use crate::lang::Lang;
use crate::url::PublicUrl;

/// A context that can be made up, in the language of the mail it will fill.
pub trait Sample: Sized {
    /// Every optional part filled in and every list populated.
    fn sample(lang: Lang) -> Self;

    /// Every optional part left out and every list empty, so that `{{else}}` branches are proven too.
    fn sparse(lang: Lang) -> Self;
}

impl TemplateKind {
    /// The contexts loading renders this kind's templates with: [`Sample::sample`] and [`Sample::sparse`].
    pub fn samples(self, lang: Lang) -> [EmailContext; 2] {
        fn both<T: Sample>(lang: Lang, wrap: fn(T) -> EmailContext) -> [EmailContext; 2] {
            [wrap(T::sample(lang)), wrap(T::sparse(lang))]
        }
        match self {
            TemplateKind::StageEntered => both(lang, EmailContext::StageEntered),
            TemplateKind::ProjectDeclined => both(lang, EmailContext::ProjectDeclined),
            TemplateKind::ProjectWithdrawn => both(lang, EmailContext::ProjectWithdrawn),
            TemplateKind::DocumentAccepted => both(lang, EmailContext::DocumentAccepted),
            TemplateKind::DocumentRejected => both(lang, EmailContext::DocumentRejected),
            TemplateKind::CorrectionRequested => both(lang, EmailContext::CorrectionRequested),
            TemplateKind::DeadlineReminder => both(lang, EmailContext::DeadlineReminder),
            TemplateKind::DeadlineOverdue => both(lang, EmailContext::DeadlineOverdue),
            TemplateKind::DeadlineEscalation => both(lang, EmailContext::DeadlineEscalation),
            TemplateKind::OfficersDigest => both(lang, EmailContext::OfficersDigest),
            TemplateKind::LinkInvitation => both(lang, EmailContext::LinkInvitation),
        }
    }
}

/// The wording in the mail's language, as callers pick workflow labels.
fn say(lang: Lang, fr: &str, en: &str) -> String {
    match lang {
        Lang::Fr => fr.to_owned(),
        Lang::En => en.to_owned(),
    }
}

fn on(lang: Lang, year: i32, month: u32, day: u32) -> MailDate {
    let date = NaiveDate::from_ymd_opt(year, month, day).expect("sample dates are valid");
    MailDate::new(date, lang)
}

fn public_url() -> PublicUrl {
    PublicUrl::parse("https://incubateur.example.gouv.fr").expect("the sample URL is valid")
}

impl Sample for ProjectMail {
    fn sample(lang: Lang) -> Self {
        ProjectMail {
            public_url: public_url(),
            project_url: public_url().project_url(12),
            recipient_name: "Claire Martin".to_owned(),
            // An apostrophe and accents, so escaping mistakes show.
            region_name: "Provence-Alpes-Côte d'Azur".to_owned(),
            region_code: "93".to_owned(),
            workflow_label: say(
                lang,
                "Incubation des CSIRT régionaux",
                "Regional CSIRT incubation",
            ),
        }
    }

    fn sparse(lang: Lang) -> Self {
        ProjectMail::sample(lang)
    }
}

impl Sample for StageEntered {
    fn sample(lang: Lang) -> Self {
        StageEntered {
            project: ProjectMail::sample(lang),
            from_state_label: say(lang, "Identification du projet", "Project identification"),
            to_state_label: say(
                lang,
                "Création de la structure juridique",
                "Legal structure",
            ),
            transition_label: say(lang, "Retenir le projet", "Retain the project"),
            actor_name: "Julien Moreau".to_owned(),
            comment: Some(say(
                lang,
                "Les sept critères d'éligibilité sont remplis.\nProchaine étape : les statuts du GIP.",
                "All seven eligibility criteria are met.\nNext: the statutes of the GIP.",
            )),
            at: on(lang, 2025, 3, 14),
            next_deadline: Some(NextDeadline {
                label: say(lang, "Statuts déposés", "Statutes filed"),
                due_on: on(lang, 2025, 6, 30),
            }),
        }
    }

    fn sparse(lang: Lang) -> Self {
        StageEntered {
            comment: None,
            next_deadline: None,
            ..StageEntered::sample(lang)
        }
    }
}

impl Sample for ProjectClosed {
    fn sample(lang: Lang) -> Self {
        ProjectClosed {
            project: ProjectMail::sample(lang),
            reason: say(
                lang,
                "Le périmètre proposé couvre deux régions ; le programme soutient des projets strictement régionaux.",
                "The proposed perimeter spans two regions; the programme supports strictly regional projects.",
            ),
            actor_name: "Julien Moreau".to_owned(),
            at: on(lang, 2025, 4, 1),
        }
    }

    fn sparse(lang: Lang) -> Self {
        ProjectClosed::sample(lang)
    }
}

impl Sample for DocumentReview {
    fn sample(lang: Lang) -> Self {
        DocumentReview {
            project: ProjectMail::sample(lang),
            requirement_label: say(
                lang,
                "Délibération du conseil régional",
                "Regional council deliberation",
            ),
            filename: "deliberation-CR-2025-03.pdf".to_owned(),
            reviewer_name: "Julien Moreau".to_owned(),
            missing_requirements: vec![
                say(lang, "Statuts de la structure", "Statutes of the structure"),
                say(
                    lang,
                    "Organigramme et plan de recrutement",
                    "Organisation chart and hiring plan",
                ),
            ],
        }
    }

    fn sparse(lang: Lang) -> Self {
        DocumentReview {
            missing_requirements: Vec::new(),
            ..DocumentReview::sample(lang)
        }
    }
}

impl Sample for DocumentAccepted {
    fn sample(lang: Lang) -> Self {
        DocumentAccepted {
            review: DocumentReview::sample(lang),
            comment: Some(say(
                lang,
                "Document complet, merci.",
                "Complete, thank you.",
            )),
        }
    }

    fn sparse(lang: Lang) -> Self {
        DocumentAccepted {
            review: DocumentReview::sparse(lang),
            comment: None,
        }
    }
}

impl Sample for DocumentRejected {
    fn sample(lang: Lang) -> Self {
        DocumentRejected {
            review: DocumentReview::sample(lang),
            comment: say(
                lang,
                "La délibération transmise n'est pas signée. Merci de déposer la version signée et datée.",
                "The deliberation sent is not signed. Please upload the signed and dated version.",
            ),
        }
    }

    fn sparse(lang: Lang) -> Self {
        DocumentRejected {
            review: DocumentReview::sparse(lang),
            ..DocumentRejected::sample(lang)
        }
    }
}

impl Sample for CorrectionRequested {
    fn sample(lang: Lang) -> Self {
        CorrectionRequested {
            review: DocumentReview::sample(lang),
            kind_label: say(lang, "document incomplet", "incomplete document"),
            comment: say(
                lang,
                "L'annexe financière mentionnée page 3 est absente. Merci de joindre la délibération avec son annexe.",
                "The financial annex named on page 3 is missing. Please send the deliberation with its annex.",
            ),
            due_on: on(lang, 2025, 4, 15),
            stage_clock_paused: true,
        }
    }

    fn sparse(lang: Lang) -> Self {
        CorrectionRequested {
            review: DocumentReview::sparse(lang),
            stage_clock_paused: false,
            ..CorrectionRequested::sample(lang)
        }
    }
}

impl Sample for DeadlineStatus {
    fn sample(lang: Lang) -> Self {
        DeadlineStatus {
            project: ProjectMail::sample(lang),
            deadline_label: say(
                lang,
                "Convention de subvention signée",
                "Signed grant agreement",
            ),
            state_label: say(lang, "Financement par subvention", "Subsidy"),
            due_on: on(lang, 2025, 6, 30),
            missing: vec![
                say(lang, "Convention de subvention", "Grant agreement"),
                say(lang, "Montant de la subvention", "Subsidy amount"),
            ],
        }
    }

    fn sparse(lang: Lang) -> Self {
        DeadlineStatus {
            missing: Vec::new(),
            ..DeadlineStatus::sample(lang)
        }
    }
}

impl Sample for DeadlineReminder {
    fn sample(lang: Lang) -> Self {
        DeadlineReminder {
            deadline: DeadlineStatus::sample(lang),
            days_left: 14,
        }
    }

    fn sparse(lang: Lang) -> Self {
        DeadlineReminder {
            deadline: DeadlineStatus::sparse(lang),
            days_left: 0,
        }
    }
}

impl Sample for DeadlineOverdue {
    fn sample(lang: Lang) -> Self {
        DeadlineOverdue {
            deadline: DeadlineStatus::sample(lang),
            days_overdue: 3,
        }
    }

    fn sparse(lang: Lang) -> Self {
        DeadlineOverdue {
            deadline: DeadlineStatus::sparse(lang),
            days_overdue: 1,
        }
    }
}

impl Sample for OfficersDigest {
    fn sample(lang: Lang) -> Self {
        let line = |region: &str, fr: &str, en: &str, due_on, project_id: u32| DigestDeadline {
            region_name: region.to_owned(),
            deadline_label: say(lang, fr, en),
            due_on,
            project_url: public_url().project_url(project_id),
        };
        OfficersDigest {
            public_url: public_url(),
            recipient_name: "Julien Moreau".to_owned(),
            week_of: on(lang, 2025, 3, 10),
            counts_by_stage: [
                ("Lettre envoyée", "Letter sent", 5),
                ("Identification du projet", "Project identification", 4),
                ("Création de la structure juridique", "Legal structure", 3),
                ("Incubation", "Incubation", 3),
                ("Pleinement opérationnel", "Fully operational", 3),
            ]
            .into_iter()
            .map(|(fr, en, count)| StageCount {
                label: say(lang, fr, en),
                count,
            })
            .collect(),
            overdue: vec![DigestOverdue {
                deadline: line(
                    "Corse",
                    "Statuts déposés",
                    "Statutes filed",
                    on(lang, 2025, 3, 7),
                    4,
                ),
                days_overdue: 3,
            }],
            due_soon: vec![DigestDueSoon {
                deadline: line(
                    "Bretagne",
                    "Convention de subvention signée",
                    "Signed grant agreement",
                    on(lang, 2025, 3, 15),
                    9,
                ),
                days_left: 5,
            }],
            dead_mails: 1,
        }
    }

    fn sparse(lang: Lang) -> Self {
        OfficersDigest {
            counts_by_stage: Vec::new(),
            overdue: Vec::new(),
            due_soon: Vec::new(),
            dead_mails: 0,
            ..OfficersDigest::sample(lang)
        }
    }
}

impl Sample for LinkInvitation {
    fn sample(lang: Lang) -> Self {
        LinkInvitation {
            public_url: public_url(),
            link_url: public_url().link_url("7.1767139200.4f2a"),
            recipient_name: "CERT Sud-Est".to_owned(),
            region_name: "Provence-Alpes-Côte d'Azur".to_owned(),
            workflow_label: say(
                lang,
                "Adhésion à InterCERT-FR",
                "InterCERT-FR membership application",
            ),
            role_label: say(lang, "CSIRT parrain", "Sponsoring CSIRT"),
            requirement_label: say(
                lang,
                "Lettre du premier CSIRT parrain",
                "Letter of the first sponsoring CSIRT",
            ),
            requirement_hint: Some(say(
                lang,
                "Une lettre signée qui confirme votre parrainage.",
                "A signed letter confirming your sponsorship.",
            )),
            sender_name: "Julien Moreau".to_owned(),
            expires_on: on(lang, 2025, 12, 31),
        }
    }

    fn sparse(lang: Lang) -> Self {
        LinkInvitation {
            requirement_hint: None,
            ..LinkInvitation::sample(lang)
        }
    }
}
