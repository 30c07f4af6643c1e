//! Loading the demo programme into a real store (a SQLite file, and PostgreSQL when `TEST_DATABASE_URL` is
//! set), as of several dates.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};
use common::TestDb;
use incubator_demo::{ActionKind, DEFAULT_AS_OF, DemoSummary, Programme, load};
use incubator_engine::{Actor, FireRequest, Workflow};
use incubator_store::entities::{
    cohorts, deadlines, document_reviews, documents, events, outbox, users,
};
use incubator_store::projects::{FireTransition, ProjectFilter};
use incubator_store::{Store, audit, projects};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

const SESSION_1: [&str; 7] = ["24", "27", "28", "44", "75", "93", "94"];
const SESSION_2: [&str; 3] = ["11", "32", "76"];

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn hash(password: &str) -> String {
    format!("test-hash:{password}")
}

async fn load_as_of(store: &Store, as_of: NaiveDate) -> DemoSummary {
    load(store, as_of, &hash).await.expect("load the demo")
}

async fn workflow(store: &Store) -> std::sync::Arc<Workflow> {
    store
        .workflows()
        .latest(store.db(), incubator_demo::WORKFLOW_ID)
        .await
        .expect("workflow deployed by the demo")
}

/// Region code → state of its incubation project, as stored.
async fn states(store: &Store) -> BTreeMap<String, String> {
    let filter = ProjectFilter {
        workflow_id: Some(incubator_demo::WORKFLOW_ID.to_owned()),
        ..ProjectFilter::default()
    };
    projects::list(store.db(), &filter)
        .await
        .expect("list projects")
        .into_iter()
        .map(|p| (p.region_code, p.state))
        .collect()
}

/// Rows per table that loading writes.
async fn counts(store: &Store) -> BTreeMap<&'static str, u64> {
    let db = store.db();
    BTreeMap::from([
        (
            "events",
            events::Entity::find().count(db).await.expect("count"),
        ),
        (
            "documents",
            documents::Entity::find().count(db).await.expect("count"),
        ),
        (
            "reviews",
            document_reviews::Entity::find()
                .count(db)
                .await
                .expect("count"),
        ),
        (
            "users",
            users::Entity::find().count(db).await.expect("count"),
        ),
        (
            "cohorts",
            cohorts::Entity::find().count(db).await.expect("count"),
        ),
        (
            "deadlines",
            deadlines::Entity::find().count(db).await.expect("count"),
        ),
        (
            "outbox",
            outbox::Entity::find().count(db).await.expect("count"),
        ),
    ])
}

async fn assert_audit_clean(store: &Store) {
    let report = audit::verify(store.db()).await.expect("verify");
    assert_eq!(report.broken, None, "the audit chain is broken");
    assert!(report.events > 0);
}

/// Every region's stored state is the one its data says, as of the date.
async fn assert_states_follow_the_data(store: &Store, as_of: NaiveDate) {
    let programme = Programme::embedded().expect("demo data");
    let workflow = workflow(store).await;
    let stored = states(store).await;
    for region in &programme.regions {
        assert_eq!(
            stored.get(&region.code),
            region.state_as_of(&workflow, as_of).as_ref(),
            "region {} as of {as_of}",
            region.code
        );
    }
}

async fn the_default_date_shows_every_stage(db: &TestDb) {
    let store = db.store().await;
    let summary = load_as_of(&store, DEFAULT_AS_OF).await;
    assert_eq!(summary.as_of, DEFAULT_AS_OF);
    assert!(summary.workflow_deployed);
    assert!(summary.regions.iter().all(|r| r.diverged.is_none()));
    let workflow = workflow(&store).await;
    let stored = states(&store).await;
    assert_eq!(stored.len(), 18, "one project per region");
    let occupied: BTreeSet<&str> = stored.values().map(String::as_str).collect();
    for state in workflow.states() {
        assert!(
            occupied.contains(state.id.as_str()),
            "no region in `{}` as of {DEFAULT_AS_OF}: {stored:?}",
            state.id
        );
    }
    assert_states_follow_the_data(&store, DEFAULT_AS_OF).await;
    assert_audit_clean(&store).await;
}

async fn october_2022_has_the_first_session_networking_and_the_second_incubating(db: &TestDb) {
    let store = db.store().await;
    let as_of = date(2022, 10, 1);
    load_as_of(&store, as_of).await;
    let stored = states(&store).await;
    for code in SESSION_1 {
        let state = stored[code].as_str();
        assert!(
            state == "networking" || state == "operational",
            "first-session region {code} is {state}"
        );
    }
    // Two joined InterCERT-FR in the data by then? Only Bourgogne-Franche-Comté (20 September 2022).
    assert_eq!(stored["27"], "operational");
    assert_eq!(stored["28"], "networking");
    for code in SESSION_2 {
        assert_eq!(stored[code], "incubation", "second-session region {code}");
        let id = projects::list(
            store.db(),
            &ProjectFilter {
                region_code: Some(code.into()),
                ..ProjectFilter::default()
            },
        )
        .await
        .expect("list")[0]
            .id;
        let snap = projects::snapshot(store.db(), id).await.expect("snapshot");
        assert_eq!(
            snap.cohort.as_ref().map(|c| c.name.as_str()),
            Some("Session 2")
        );
        // Six months from the session's start: 1 March 2023 at midnight in Paris (UTC+1 in winter).
        let deadline = snap
            .deadlines
            .iter()
            .find(|d| d.key == "incubation")
            .expect("incubation deadline");
        assert_eq!(
            deadline.due_at,
            Utc.with_ymd_and_hms(2023, 2, 28, 23, 0, 0).unwrap()
        );
    }
    assert_states_follow_the_data(&store, as_of).await;
    assert_audit_clean(&store).await;
}

async fn april_2021_is_mostly_letters_and_answers(db: &TestDb) {
    let store = db.store().await;
    load_as_of(&store, date(2021, 4, 1)).await;
    let stored = states(&store).await;
    assert_eq!(stored.len(), 18);
    let invited = stored.values().filter(|s| *s == "invited").count();
    let interested = stored
        .values()
        .filter(|s| *s == "interest_expressed")
        .count();
    assert_eq!(invited + interested, 18, "{stored:?}");
    assert!(invited > interested, "{stored:?}");
    // Nothing but the letter and the answers: no document, no cohort announced yet.
    let c = counts(&store).await;
    assert_eq!((c["documents"], c["cohorts"]), (0, 0));
    // Deadlines and events are dated from the letter, not from today.
    let project = projects::list(
        store.db(),
        &ProjectFilter {
            region_code: Some("06".into()),
            ..ProjectFilter::default()
        },
    )
    .await
    .expect("list")
    .remove(0);
    let snap = projects::snapshot(store.db(), project.id)
        .await
        .expect("snapshot");
    let answer = snap
        .deadlines
        .iter()
        .find(|d| d.key == "invited")
        .expect("answer deadline");
    // Three calendar months after the letter, counted in Paris: 09:00 CET on 1 March, 09:00 CEST on 1 June.
    assert_eq!(
        answer.due_at,
        Utc.with_ymd_and_hms(2021, 6, 1, 7, 0, 0).unwrap()
    );
    assert_eq!(project.state_entered_at.date_naive(), date(2021, 3, 1));
}

async fn auvergne_rhone_alpes_withdraws_once_its_date_passes(db: &TestDb) {
    let store = db.store().await;
    load_as_of(&store, date(2021, 6, 29)).await;
    assert_eq!(states(&store).await["84"], "invited");
    let summary = load_as_of(&store, date(2021, 6, 30)).await;
    assert_eq!(states(&store).await["84"], "withdrawn");
    let ara = summary
        .regions
        .iter()
        .find(|r| r.code == "84")
        .expect("ARA outcome");
    assert_eq!(ara.applied, 1);
    let history = incubator_store::events::list(store.db(), ara.project_id.expect("project"))
        .await
        .expect("history");
    let withdrawal = history.last().expect("an event");
    assert_eq!(withdrawal.transition.as_deref(), Some("withdraw"));
    assert!(
        withdrawal
            .comment
            .as_deref()
            .is_some_and(|c| c.contains("ne rejoint pas"))
    );
    assert_eq!(withdrawal.at.date_naive(), date(2021, 6, 30));
}

async fn loading_twice_is_a_no_op(db: &TestDb) {
    let store = db.store().await;
    let first = load_as_of(&store, DEFAULT_AS_OF).await;
    assert!(first.changed());
    let before = counts(&store).await;
    assert_eq!(before["users"], 20, "one officer, one admin, 18 councils");
    let second = load_as_of(&store, DEFAULT_AS_OF).await;
    assert!(!second.changed(), "{second:?}");
    assert_eq!(second.steps_applied(), 0);
    assert_eq!(counts(&store).await, before);
    assert_eq!(
        second.regions.iter().map(|r| r.already_done).sum::<usize>(),
        first.regions.iter().map(|r| r.applied).sum::<usize>()
    );
    // An earlier date after a later one changes nothing either.
    let earlier = load_as_of(&store, date(2022, 1, 1)).await;
    assert!(!earlier.changed());
    assert_eq!(counts(&store).await, before);
    assert_audit_clean(&store).await;
}

async fn loading_in_two_steps_equals_loading_at_once(db: &TestDb) {
    let store = db.store().await;
    load_as_of(&store, date(2022, 3, 1)).await;
    let later = load_as_of(&store, DEFAULT_AS_OF).await;
    assert!(later.steps_applied() > 0);
    assert!(later.accounts.iter().all(|a| !a.created));
    assert_states_follow_the_data(&store, DEFAULT_AS_OF).await;

    let programme = Programme::embedded().expect("demo data");
    let expected_events: usize = programme
        .regions
        .iter()
        .map(|r| r.due(DEFAULT_AS_OF).len())
        .sum();
    // Entering `networking` starts the region's InterCERT-FR application, whose history opens with one event.
    let started_children = programme
        .regions
        .iter()
        .filter(|r| {
            r.due(DEFAULT_AS_OF).iter().any(|a| {
                matches!(&a.kind, ActionKind::Fire { transition, .. } if transition == "complete_incubation")
            })
        })
        .count();
    let children = projects::list(
        store.db(),
        &ProjectFilter {
            workflow_id: Some("intercert-membership".into()),
            ..ProjectFilter::default()
        },
    )
    .await
    .expect("list");
    assert!(started_children > 0);
    assert_eq!(children.len(), started_children);
    assert!(children.iter().all(|c| c.parent_project_id.is_some()));
    assert_eq!(
        counts(&store).await["events"],
        (expected_events + started_children) as u64
    );
    assert_audit_clean(&store).await;
}

async fn carriers_and_legal_forms_are_recorded_once_set(db: &TestDb) {
    let store = db.store().await;
    let end = date(2030, 1, 1);
    load_as_of(&store, end).await;
    assert_states_follow_the_data(&store, end).await;
    let programme = Programme::embedded().expect("demo data");
    let mut with_carrier = 0;
    for region in &programme.regions {
        let mut expected = BTreeMap::new();
        for action in region.due(end) {
            if let ActionKind::SetFields(patch) = &action.kind {
                expected.extend(patch.clone());
            }
        }
        let id = projects::list(
            store.db(),
            &ProjectFilter {
                region_code: Some(region.code.clone()),
                workflow_id: Some(incubator_demo::WORKFLOW_ID.to_owned()),
                ..ProjectFilter::default()
            },
        )
        .await
        .expect("list")[0]
            .id;
        let facts = projects::snapshot(store.db(), id)
            .await
            .expect("snapshot")
            .facts;
        let stored: BTreeMap<String, serde_json::Value> = facts
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("json")))
            .collect();
        assert_eq!(stored, expected, "facts of region {}", region.code);
        if let (Some(name), Some(kind)) = (&region.carrier_name, &region.carrier_kind)
            && expected.contains_key("carrier_name")
        {
            with_carrier += 1;
            assert_eq!(stored["carrier_name"], json!(name.value));
            assert_eq!(stored["carrier_kind"], json!(kind.value));
        }
        if let Some(form) = &region.legal_form
            && expected.contains_key("legal_form")
        {
            assert_eq!(stored["legal_form"], json!(form.value));
        }
        // Every region past the legal structure has its carrier and legal form.
        let past_legal = region.due(end).iter().any(|a| {
            matches!(&a.kind, ActionKind::Fire { transition, .. } if transition == "record_legal_structure")
        });
        if past_legal {
            for key in ["carrier_name", "carrier_kind", "legal_form"] {
                assert!(
                    stored.contains_key(key),
                    "region {} lacks {key}",
                    region.code
                );
            }
        }
    }
    assert!(
        with_carrier >= 14,
        "only {with_carrier} regions have a carrier"
    );
    // Centre-Val de Loire is carried by a GIP, not by the council.
    let cvl = programme.region("24").expect("CVL");
    assert_eq!(
        cvl.carrier_kind.as_ref().map(|f| f.value.as_str()),
        Some("gip")
    );
    assert_audit_clean(&store).await;
}

async fn accounts_and_evidence_are_usable(db: &TestDb) {
    let store = db.store().await;
    let summary = load_as_of(&store, DEFAULT_AS_OF).await;
    assert_eq!(summary.accounts.len(), 20);
    for account in &summary.accounts {
        assert!(account.password.chars().count() >= 12, "{account:?}");
        let user = incubator_store::users::find_by_email(store.db(), &account.email)
            .await
            .expect("find")
            .expect("account exists");
        assert_eq!(user.password_hash, hash(&account.password));
        assert_eq!(user.role, account.role);
    }
    let councils: BTreeSet<_> = summary
        .accounts
        .iter()
        .filter(|a| a.role == "council")
        .filter_map(|a| a.region_code.clone())
        .collect();
    assert_eq!(councils.len(), 18);
    // Council steps are signed by the region's account, officer steps by the officer.
    let officer = summary
        .accounts
        .iter()
        .find(|a| a.role == "officer")
        .expect("officer");
    let normandie = summary
        .accounts
        .iter()
        .find(|a| a.region_code.as_deref() == Some("28"))
        .expect("28");
    let id = summary
        .regions
        .iter()
        .find(|r| r.code == "28")
        .and_then(|r| r.project_id)
        .expect("28");
    let history = incubator_store::events::list(store.db(), id)
        .await
        .expect("history");
    let interest = history
        .iter()
        .find(|e| e.transition.as_deref() == Some("express_interest"))
        .expect("interest");
    assert_eq!(interest.actor, format!("user:{}", normandie.user_id));
    let retained = history
        .iter()
        .find(|e| e.transition.as_deref() == Some("retain_project"))
        .expect("retained");
    assert_eq!(retained.actor, format!("user:{}", officer.user_id));
    // Evidence is a PDF naming its region and requirement.
    let docs = incubator_store::documents::list(store.db(), id)
        .await
        .expect("documents");
    assert!(docs.len() >= 9);
    for doc in &docs {
        let bytes = store.blobs().get(&doc.sha256).await.expect("bytes");
        assert_eq!(bytes.len() as i64, doc.size);
        assert!(bytes.starts_with(b"%PDF-1.4"));
        assert!(bytes.ends_with(b"%%EOF\n"));
        assert!(bytes.windows(9).any(|w| w == b"Normandie"));
        let requirement = doc.requirement.as_bytes();
        assert!(bytes.windows(requirement.len()).any(|w| w == requirement));
    }
}

async fn a_region_someone_acted_on_is_left_alone(db: &TestDb) {
    let store = db.store().await;
    let summary = load_as_of(&store, DEFAULT_AS_OF).await;
    // Martinique expressed interest on 26 September 2022; the officer opens its identification by hand.
    let martinique = summary.regions.iter().find(|r| r.code == "02").expect("02");
    let id = martinique.project_id.expect("project");
    let officer = summary
        .accounts
        .iter()
        .find(|a| a.role == "officer")
        .expect("officer");
    let version = projects::find(store.db(), id).await.expect("find").version;
    store
        .write(FireTransition {
            registry: store.workflows().clone(),
            project_id: id,
            expected_version: version,
            request: FireRequest {
                transition: "open_identification".into(),
                comment: None,
            },
            actor: Actor {
                id: format!("user:{}", officer.user_id),
                roles: vec!["officer".into()],
            },
            now: Utc.with_ymd_and_hms(2022, 10, 20, 9, 0, 0).unwrap(),
        })
        .await
        .expect("fire by hand");
    let later = load_as_of(&store, date(2022, 12, 31)).await;
    // The same transition as the demo's next step: taken as done, not done twice.
    let outcome = later.regions.iter().find(|r| r.code == "02").expect("02");
    assert_eq!(
        (outcome.applied, outcome.diverged.as_deref()),
        (0, None),
        "{outcome:?}"
    );
    assert_eq!(outcome.state.as_deref(), Some("project_identification"));
    assert_eq!(
        incubator_store::events::list(store.db(), id)
            .await
            .expect("history")
            .len(),
        3
    );
    // The others moved on: the second session completed in December.
    assert_eq!(states(&store).await["11"], "networking");

    // La Réunion's registration proof waits for review; someone withdraws the region by hand instead.
    let reunion = later.regions.iter().find(|r| r.code == "04").expect("04");
    let rid = reunion.project_id.expect("project");
    let version = projects::find(store.db(), rid).await.expect("find").version;
    store
        .write(FireTransition {
            registry: store.workflows().clone(),
            project_id: rid,
            expected_version: version,
            request: FireRequest {
                transition: "withdraw".into(),
                comment: Some("Essai manuel".into()),
            },
            actor: Actor {
                id: format!("user:{}", officer.user_id),
                roles: vec!["officer".into()],
            },
            now: Utc.with_ymd_and_hms(2023, 1, 2, 9, 0, 0).unwrap(),
        })
        .await
        .expect("withdraw by hand");
    let events_before = incubator_store::events::list(store.db(), rid)
        .await
        .expect("history")
        .len();
    let again = load_as_of(&store, date(2030, 1, 1)).await;
    let r = again.regions.iter().find(|r| r.code == "04").expect("04");
    assert_eq!(r.state.as_deref(), Some("withdrawn"));
    assert_eq!(r.applied, 0);
    assert!(
        r.diverged
            .as_deref()
            .is_some_and(|d| d.contains("accept registration_proof")),
        "{r:?}"
    );
    assert_eq!(
        incubator_store::events::list(store.db(), rid)
            .await
            .expect("history")
            .len(),
        events_before
    );
    // The rest of the programme still loaded.
    assert_eq!(states(&store).await["53"], "operational");
    assert_audit_clean(&store).await;
}

both_backends!(
    the_default_date_shows_every_stage,
    october_2022_has_the_first_session_networking_and_the_second_incubating,
    april_2021_is_mostly_letters_and_answers,
    auvergne_rhone_alpes_withdraws_once_its_date_passes,
    loading_twice_is_a_no_op,
    loading_in_two_steps_equals_loading_at_once,
    carriers_and_legal_forms_are_recorded_once_set,
    accounts_and_evidence_are_usable,
    a_region_someone_acted_on_is_left_alone,
);
