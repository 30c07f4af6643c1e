//! A real SMTP server on loopback (aiosmtpd, `smtp_sink.py`) and a programme to mail about.

#![allow(dead_code)] // Each test binary uses its own part of the helpers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use incubator_engine::{Actor, FireRequest};
use incubator_mailer::MailConfig;
use incubator_mailer::config::{parse_mailbox, parse_public_url};
use incubator_notify::Templates;
use incubator_store::entities::users;
use incubator_store::projects::{CreateProject, FireTransition};
use incubator_store::users::NewUser;
use incubator_store::{Store, projects};

use crate::common::{TestDb, deploy_anssi};

mod smtp;
#[allow(unused_imports)] // Not every test binary delivers mail.
pub use smtp::*;

const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates/email");

pub fn templates() -> Arc<Templates> {
    Arc::new(Templates::load(Path::new(TEMPLATES)).expect("templates load"))
}

/// Fast retries and short leases, so tests see several attempts in seconds.
pub fn config(data_dir: &Path, smtp_url: Option<String>) -> MailConfig {
    let mut config = MailConfig::new(
        parse_mailbox("Incubateur CSIRT <incubateur@anssi.example>").unwrap(),
        parse_public_url("https://incubateur.example.gouv.fr").unwrap(),
        data_dir,
    );
    config.smtp_url = smtp_url;
    config.backoff_base = Duration::from_millis(20);
    config.backoff_cap = Duration::from_millis(200);
    config.lease = Duration::from_secs(10);
    config.poll_interval = Duration::from_millis(50);
    config.smtp_timeout = Duration::from_secs(2);
    config
}

/// The people of the tests: one officer, two council accounts of Bretagne (53) in French and English, and
/// one of Île-de-France (11) who must never receive Bretagne's mails.
pub struct Programme {
    pub store: Store,
    pub officer: users::Model,
    pub council_fr: users::Model,
    pub council_en: users::Model,
    pub other_council: users::Model,
}

pub async fn programme(db: &TestDb) -> Programme {
    let store = db.store().await;
    deploy_anssi(&store).await;
    let now = crate::common::at(2021, 3, 1);
    let user = |email: &str, name: &str, role: &str, region: Option<&str>, lang: &str| NewUser {
        email: email.into(),
        name: name.into(),
        role: role.into(),
        region_code: region.map(str::to_owned),
        password_hash: "x".into(),
        lang: lang.into(),
    };
    let db_conn = store.db();
    let officer = incubator_store::users::create(
        db_conn,
        user(
            "olivia.officier@anssi.example",
            "Olivia Officier",
            "officer",
            None,
            "fr",
        ),
        now,
    )
    .await
    .unwrap();
    let council_fr = incubator_store::users::create(
        db_conn,
        user(
            "claire.conseil@bretagne.example",
            "Claire Conseil",
            "council",
            Some("53"),
            "fr",
        ),
        now,
    )
    .await
    .unwrap();
    let council_en = incubator_store::users::create(
        db_conn,
        user(
            "ewan.english@bretagne.example",
            "Ewan English",
            "council",
            Some("53"),
            "en",
        ),
        now,
    )
    .await
    .unwrap();
    let other_council = incubator_store::users::create(
        db_conn,
        user(
            "ines.autre@idf.example",
            "Inès Autre",
            "council",
            Some("11"),
            "fr",
        ),
        now,
    )
    .await
    .unwrap();
    Programme {
        store,
        officer,
        council_fr,
        council_en,
        other_council,
    }
}

impl Programme {
    pub async fn create_project(&self, region: &str, now: DateTime<Utc>) -> i64 {
        self.store
            .write(CreateProject {
                registry: self.store.workflows().clone(),
                region_code: region.into(),
                workflow_id: "csirt-incubation".into(),
                actor: Actor {
                    id: format!("user:{}", self.officer.id),
                    roles: vec!["officer".into()],
                },
                now,
            })
            .await
            .expect("create project")
    }

    pub async fn fire(
        &self,
        project_id: i64,
        transition: &str,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) {
        let version = projects::find(self.store.db(), project_id)
            .await
            .unwrap()
            .version;
        self.store
            .write(FireTransition {
                registry: self.store.workflows().clone(),
                project_id,
                expected_version: version,
                request: FireRequest {
                    transition: transition.into(),
                    comment: comment.map(str::to_owned),
                },
                actor: Actor {
                    id: format!("user:{}", self.officer.id),
                    roles: vec!["officer".into()],
                },
                now,
            })
            .await
            .expect("fire transition");
    }
}

/// Queues mail `n` of a backlog of milestone mails for the officers, as a transition's handler queues it.
pub async fn queue_officer_mail(
    txn: &impl sea_orm::ConnectionTrait,
    project: &incubator_store::entities::projects::Model,
    officer: &users::Model,
    n: usize,
    at: DateTime<Utc>,
) {
    let context = serde_json::json!({
        "project_id": project.id, "region_code": project.region_code, "workflow_id": "csirt-incubation",
        "workflow_version": project.workflow_version, "transition": "express_interest", "from_state": "invited",
        "to_state": "interest_expressed", "actor": format!("user:{}", officer.id),
        "comment": format!("mail {n}"), "at": at,
    });
    let mail = incubator_store::outbox::RoleMail {
        project,
        event_seq: None,
        template: "stage_entered",
        roles: &["officer".into()],
        context: &context,
    };
    incubator_store::outbox::enqueue(txn, mail, at)
        .await
        .unwrap();
}
