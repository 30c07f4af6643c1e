//! The shipped templates, rendered as mails are, and the ways a template folder can be broken.

use std::fs;
use std::path::{Path, PathBuf};

use incubator_notify::{
    DocumentRejected, EmailContext, Lang, Sample, StageEntered, TemplateError, TemplateKind,
    Templates,
};

const PUBLIC_URL: &str = "https://incubateur.example.gouv.fr";
const PROJECT_URL: &str = "https://incubateur.example.gouv.fr/projects/12";
const NBSP: char = '\u{a0}';

fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/email")
}

fn templates() -> Templates {
    Templates::load(&template_dir()).unwrap_or_else(|error| panic!("{error}"))
}

/// Every sample of every kind in both languages, rendered.
fn every_mail() -> Vec<(TemplateKind, Lang, incubator_notify::RenderedEmail)> {
    let templates = templates();
    let mut mails = Vec::new();
    for kind in TemplateKind::ALL {
        for lang in Lang::ALL {
            for sample in kind.samples(lang) {
                let mail = templates
                    .render(lang, &sample)
                    .unwrap_or_else(|error| panic!("{error}"));
                mails.push((kind, lang, mail));
            }
        }
    }
    mails
}

#[test]
fn workflows_may_name_the_ten_templates() {
    let names = templates().names();
    let expected = [
        "correction_requested",
        "deadline_escalation",
        "deadline_overdue",
        "deadline_reminder",
        "document_accepted",
        "document_rejected",
        "link_invitation",
        "officers_digest",
        "project_declined",
        "project_withdrawn",
        "stage_entered",
    ];
    assert_eq!(
        names.iter().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn every_mail_links_back_to_the_public_url_in_its_language() {
    for (kind, lang, mail) in every_mail() {
        let which = format!("{kind} ({lang})");
        assert!(!mail.subject.is_empty(), "{which}: empty subject");
        assert!(mail.text.contains(PUBLIC_URL), "{which}: text without link");
        assert!(
            mail.html.contains(&format!(r#"href="{PUBLIC_URL}"#)),
            "{which}: html without link"
        );
        assert!(
            mail.html.contains(&format!(r#"<html lang="{lang}">"#)),
            "{which}: html not marked as {lang}"
        );
        if kind == TemplateKind::LinkInvitation {
            // Its recipient has no account: the mail leads to the link, never to the project's page.
            let link = format!("{PUBLIC_URL}/links/7.1767139200.4f2a");
            assert!(mail.text.contains(&link), "{which}: text without the link");
            assert!(
                mail.html.contains(&format!(r#"href="{link}""#)),
                "{which}: html without the link"
            );
            assert!(!mail.text.contains(PROJECT_URL), "{which}");
        } else if kind != TemplateKind::OfficersDigest {
            assert!(
                mail.text.contains(PROJECT_URL),
                "{which}: text without project link"
            );
            assert!(
                mail.html.contains(&format!(r#"href="{PROJECT_URL}""#)),
                "{which}: html without project link"
            );
        }
    }
}

#[test]
fn subjects_read_as_written_in_french_and_english() {
    let templates = templates();
    let subject = |kind: TemplateKind, lang| {
        let [full, _] = kind.samples(lang);
        templates.render(lang, &full).unwrap().subject
    };
    let region = "[Provence-Alpes-Côte d'Azur]";
    let french = [
        (
            TemplateKind::StageEntered,
            format!(
                "{region} Nouvelle étape pour le projet{NBSP}: Création de la structure juridique"
            ),
        ),
        (
            TemplateKind::ProjectDeclined,
            format!("{region} Projet de CSIRT régional non retenu"),
        ),
        (
            TemplateKind::ProjectWithdrawn,
            format!("{region} Retrait du projet de CSIRT régional"),
        ),
        (
            TemplateKind::DocumentAccepted,
            format!("{region} Document accepté{NBSP}: Délibération du conseil régional"),
        ),
        (
            TemplateKind::DocumentRejected,
            format!("{region} Document à reprendre{NBSP}: Délibération du conseil régional"),
        ),
        (
            TemplateKind::CorrectionRequested,
            format!(
                "{region} Correction demandée{NBSP}: Délibération du conseil régional, avant le 15 avril 2025"
            ),
        ),
        (
            TemplateKind::DeadlineReminder,
            format!(
                "{region} Rappel{NBSP}: Convention de subvention signée, échéance le 30 juin 2025"
            ),
        ),
        (
            TemplateKind::DeadlineOverdue,
            format!("{region} Échéance dépassée{NBSP}: Convention de subvention signée"),
        ),
        (
            TemplateKind::DeadlineEscalation,
            format!("{region} Retard de 3 jours{NBSP}: Convention de subvention signée"),
        ),
        (
            TemplateKind::OfficersDigest,
            "Synthèse hebdomadaire du programme – semaine du 10 mars 2025".to_owned(),
        ),
        (
            TemplateKind::LinkInvitation,
            format!("{region} Document demandé{NBSP}: Lettre du premier CSIRT parrain"),
        ),
    ];
    for (kind, expected) in french {
        assert_eq!(subject(kind, Lang::Fr), expected, "{kind}");
    }
    let english = [
        (
            TemplateKind::StageEntered,
            format!("{region} New stage for the project: Legal structure"),
        ),
        (
            TemplateKind::DocumentRejected,
            format!("{region} Document to be resubmitted: Regional council deliberation"),
        ),
        (
            TemplateKind::CorrectionRequested,
            format!(
                "{region} Correction requested: Regional council deliberation, by 15 April 2025"
            ),
        ),
        (
            TemplateKind::DeadlineEscalation,
            format!("{region} 3 days late: Signed grant agreement"),
        ),
        (
            TemplateKind::OfficersDigest,
            "Weekly programme digest – week of 10 March 2025".to_owned(),
        ),
        (
            TemplateKind::LinkInvitation,
            format!("{region} Document requested: Letter of the first sponsoring CSIRT"),
        ),
    ];
    for (kind, expected) in english {
        assert_eq!(subject(kind, Lang::En), expected, "{kind}");
    }
}

#[test]
fn stage_entered_text_reads_as_written() {
    let mail = templates()
        .render(
            Lang::Fr,
            &EmailContext::StageEntered(StageEntered::sample(Lang::Fr)),
        )
        .unwrap();
    let expected = "\
Bonjour Claire Martin,

Le projet de CSIRT régional que vous suivez est entré dans l’étape «\u{a0}Création de la structure juridique\u{a0}».

Région\u{a0}: Provence-Alpes-Côte d'Azur
Programme\u{a0}: Incubation des CSIRT régionaux
Étape précédente\u{a0}: Identification du projet
Décision\u{a0}: Retenir le projet
Par\u{a0}: Julien Moreau, le 14 mars 2025

Commentaire\u{a0}:
Les sept critères d'éligibilité sont remplis.
Prochaine étape : les statuts du GIP.

Prochaine échéance\u{a0}: Statuts déposés, au plus tard le 30 juin 2025.

Pour consulter le projet et les pièces attendues\u{a0}:
https://incubateur.example.gouv.fr/projects/12

Bien cordialement,

L’équipe du programme d’incubation des CSIRT régionaux
Agence nationale de la sécurité des systèmes d’information (ANSSI)

Ce message vous a été adressé automatiquement par la plateforme de suivi du programme\u{a0}; merci de ne pas y répondre.
https://incubateur.example.gouv.fr
";
    assert_eq!(mail.text, expected);
}

#[test]
fn a_rejected_document_mail_carries_the_reviewers_comment() {
    let comment = "Il manque la signature du président du conseil régional.";
    let rejected = DocumentRejected {
        comment: comment.to_owned(),
        ..DocumentRejected::sample(Lang::Fr)
    };
    let mail = templates()
        .render(Lang::Fr, &EmailContext::DocumentRejected(rejected))
        .unwrap();
    assert!(mail.text.contains(&format!("Motif{NBSP}:\n{comment}")));
    assert!(mail.html.contains(comment));
    assert!(mail.html.contains("Julien Moreau"));
}

#[test]
fn html_escapes_user_text_and_plain_text_keeps_it_as_typed() {
    let mut stage = StageEntered::sample(Lang::En);
    stage.comment = Some("<script>alert(1)</script> & co".to_owned());
    let mail = templates()
        .render(Lang::En, &EmailContext::StageEntered(stage))
        .unwrap();
    assert!(!mail.html.contains("<script>"));
    assert!(
        mail.html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co")
    );
    assert!(mail.text.contains("<script>alert(1)</script> & co"));
}

#[test]
fn user_text_cannot_break_the_subject_line() {
    let injection = "\r\nBcc: evil@example.org";
    let mut stage = StageEntered::sample(Lang::Fr);
    stage.project.region_name = format!("Bretagne{injection}");
    stage.to_state_label = format!("Incubation{injection}");
    stage.comment = Some(format!("Vu.{injection}"));
    let mut rejected = DocumentRejected::sample(Lang::Fr);
    rejected.review.project.region_name = format!("Bretagne{injection}");
    rejected.review.requirement_label = format!("Statuts{injection}\n\rBcc: evil@example.org");
    rejected.comment = format!("Non signé.{injection}");

    let templates = templates();
    for context in [
        EmailContext::StageEntered(stage),
        EmailContext::DocumentRejected(rejected),
    ] {
        for lang in Lang::ALL {
            let subject = templates.render(lang, &context).unwrap().subject;
            assert!(!subject.contains(['\r', '\n']), "{subject:?}");
            assert!(
                subject.starts_with("[Bretagne  Bcc: evil@example.org]"),
                "{subject:?}"
            );
        }
    }
}

#[test]
fn plain_text_bodies_hold_no_html() {
    for (kind, lang, mail) in every_mail() {
        // The samples hold neither `<` nor `&`: finding one means markup or an escape leaked in.
        assert!(!mail.text.contains('<'), "{kind} ({lang}): {}", mail.text);
        assert!(!mail.text.contains('&'), "{kind} ({lang}): {}", mail.text);
        assert!(
            !mail.subject.contains('&'),
            "{kind} ({lang}): {}",
            mail.subject
        );
        if kind != TemplateKind::OfficersDigest {
            assert!(
                mail.text.contains("Provence-Alpes-Côte d'Azur"),
                "{kind} ({lang})"
            );
        }
    }
}

// Broken template folders: each must stop loading with an error that names the file.

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Loads a copy of the shipped templates after `edit` broke it.
fn load_after(edit: impl FnOnce(&Path)) -> TemplateError {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&template_dir(), dir.path());
    edit(dir.path());
    Templates::load(dir.path()).expect_err("the broken templates loaded")
}

fn append(path: &Path, text: &str) {
    let mut source = fs::read_to_string(path).unwrap();
    source.push_str(text);
    fs::write(path, source).unwrap();
}

fn replace(path: &Path, from: &str, to: &str) {
    let source = fs::read_to_string(path).unwrap();
    assert!(source.contains(from), "{} lacks {from}", path.display());
    fs::write(path, source.replace(from, to)).unwrap();
}

#[test]
fn a_template_naming_a_missing_variable_fails_to_load() {
    let error = load_after(|dir| {
        append(
            &dir.join("document_rejected/en/text.hbs"),
            "{{no_such_variable}}\n",
        );
    });
    let message = error.to_string();
    let TemplateError::MissingVariable { at, variable, kind } = error else {
        panic!("{message}");
    };
    assert!(
        at.path.ends_with("document_rejected/en/text.hbs"),
        "{message}"
    );
    assert!(at.line.is_some(), "{message}");
    assert_eq!(variable, "no_such_variable");
    assert_eq!(kind, TemplateKind::DocumentRejected);
    assert!(
        message.contains("document_rejected/en/text.hbs"),
        "{message}"
    );
    assert!(message.contains("no_such_variable"), "{message}");
}

#[test]
fn a_misspelt_condition_fails_to_load() {
    let error = load_after(|dir| {
        replace(
            &dir.join("stage_entered/fr/html.hbs"),
            "{{#if comment}}",
            "{{#if commentaire}}",
        );
    });
    let message = error.to_string();
    assert!(
        matches!(&error, TemplateError::MissingVariable { at, variable, .. }
            if at.path.ends_with("stage_entered/fr/html.hbs") && variable == "commentaire"),
        "{message}"
    );
}

#[test]
fn a_missing_variable_in_a_partial_names_the_partial() {
    let error = load_after(|dir| {
        append(
            &dir.join("partials/footer_text.hbs"),
            "{{no_such_variable}}\n",
        );
    });
    let message = error.to_string();
    assert!(
        matches!(&error, TemplateError::MissingVariable { at, variable, .. }
            if at.path.ends_with("partials/footer_text.hbs") && variable == "no_such_variable"),
        "{message}"
    );
}

#[test]
fn an_unknown_template_folder_fails_to_load() {
    let error = load_after(|dir| {
        copy_dir(&dir.join("stage_entered"), &dir.join("project_paused"));
    });
    let message = error.to_string();
    assert!(
        matches!(&error, TemplateError::UnknownTemplate { name, .. } if name == "project_paused"),
        "{message}"
    );
    assert!(
        message.contains("stage_entered"),
        "the message lists the known names: {message}"
    );
}

#[test]
fn a_missing_part_fails_to_load() {
    let error = load_after(|dir| {
        fs::remove_file(dir.join("deadline_overdue/en/html.hbs")).unwrap();
    });
    let message = error.to_string();
    assert!(
        matches!(&error, TemplateError::Missing { path } if path.ends_with("deadline_overdue/en/html.hbs")),
        "{message}"
    );
}

#[test]
fn a_missing_language_or_template_fails_to_load() {
    for missing in ["officers_digest/en", "officers_digest"] {
        let error = load_after(|dir| fs::remove_dir_all(dir.join(missing)).unwrap());
        let message = error.to_string();
        assert!(
            matches!(&error, TemplateError::Missing { path } if path.ends_with(missing)),
            "{message}"
        );
    }
}

#[test]
fn a_stray_file_fails_to_load() {
    let error = load_after(|dir| {
        fs::write(dir.join("stage_entered/fr/html.hbs.orig"), "old").unwrap();
    });
    let message = error.to_string();
    assert!(
        matches!(&error, TemplateError::Unexpected { path } if path.ends_with("stage_entered/fr/html.hbs.orig")),
        "{message}"
    );
}

#[test]
fn invalid_handlebars_fails_to_load() {
    let error = load_after(|dir| {
        replace(&dir.join("document_accepted/fr/text.hbs"), "{{/if}}", "");
    });
    let message = error.to_string();
    assert!(
        matches!(&error, TemplateError::Syntax { path, .. } if path.ends_with("document_accepted/fr/text.hbs")),
        "{message}"
    );
}

#[test]
fn a_subject_on_two_lines_fails_to_load() {
    let error = load_after(|dir| {
        replace(&dir.join("project_declined/fr/subject.hbs"), "] ", "]\n");
    });
    let message = error.to_string();
    assert!(
        matches!(&error, TemplateError::MultilineSubject { at } if at.path.ends_with("project_declined/fr/subject.hbs")),
        "{message}"
    );
}
