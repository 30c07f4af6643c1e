//! Versions 1 and 2 of the ANSSI workflow deployed side by side, projects in several states migrated with
//! and without a dry run: the dry run's report is what the real run does, deadlines and pending reminders
//! included, with one audit event per project and the audit chain still clean. Paused clocks are checked
//! against the database here and against the scheduler in the mailer's tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use common::{
    TestDb, at, council, create, deploy_anssi, drive_to_awaiting_incubation, fire, patch,
};
use incubator_engine::{FieldValue, MigrationRefused};
use incubator_store::clocks::{PauseDeadline, ResumeDeadline};
use incubator_store::entities::{deadlines, events, projects as project_rows};
use incubator_store::reminders::{self, ReminderKey};
use incubator_store::versions::{MigrationReport, MigrationRequest, migrate};
use incubator_store::{Store, StoreError, audit, projects};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

const V2: &str = "crates/engine/tests/fixtures/csirt-incubation-v2.yaml";

both_backends!(
    a_dry_run_reports_exactly_what_the_migration_then_does,
    an_unmapped_state_refuses_the_whole_migration_and_changes_nothing,
    a_paused_deadline_moves_by_the_pause_and_the_history_shows_it,
    milestones_ahead_wait_with_their_stage_clock,
);

fn v2_source() -> String {
    std::fs::read_to_string(common::workspace_file(V2)).expect("read v2 fixture")
}

fn request(projects: Option<Vec<i64>>, map: &[(&str, &str)], to_version: i32) -> MigrationRequest {
    MigrationRequest {
        workflow_id: "csirt-incubation".into(),
        to_version,
        projects,
        map: map
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
        actor: "user:9".into(),
        now: Utc.with_ymd_and_hms(2021, 9, 10, 8, 0, 0).unwrap(),
    }
}

/// Four projects on version 2: invited, in identification (with its first reminder sent), awaiting
/// incubation (a renamed state in version 3, and a value of a field version 3 drops), withdrawn.
async fn programme(store: &Store) -> [i64; 4] {
    deploy_anssi(store).await;
    let invited = create(store, "11").await;
    let identification = create(store, "24").await;
    fire(store, identification, "express_interest", council(), None)
        .await
        .unwrap();
    fire(
        store,
        identification,
        "open_identification",
        common::officer(),
        None,
    )
    .await
    .unwrap();
    let due = deadline_of(store, identification, "project_identification")
        .await
        .due_at;
    let key = ReminderKey {
        project_id: identification,
        deadline_key: "project_identification".into(),
        due_at: due,
        step: "before:P30D".into(),
    };
    reminders::record_sent(store.db(), &[key], at(2021, 9, 1))
        .await
        .unwrap();
    let awaiting = create(store, "53").await;
    drive_to_awaiting_incubation(store, awaiting).await;
    patch(store, awaiting, "carrier_name", json!("Breizh Cyber")).await;
    let withdrawn = create(store, "44").await;
    fire(store, withdrawn, "withdraw", council(), Some("no budget"))
        .await
        .unwrap();
    [invited, identification, awaiting, withdrawn]
}

/// The looks the scheduler has queued for a deadline.
async fn looks(store: &Store, deadline_id: i64) -> Vec<DateTime<Utc>> {
    reminders::queued_looks(store.db(), deadline_id)
        .await
        .unwrap()
}

async fn deadline_of(store: &Store, project_id: i64, key: &str) -> deadlines::Model {
    deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::Key.eq(key))
        .one(store.db())
        .await
        .unwrap()
        .expect("deadline")
}

async fn migrated_events(store: &Store, project_id: i64) -> Vec<events::Model> {
    events::Entity::find()
        .filter(events::Column::ProjectId.eq(project_id))
        .filter(events::Column::Kind.eq("workflow.migrated"))
        .all(store.db())
        .await
        .unwrap()
}

/// Everything of the programme a migration may touch, to check that a refusal or a dry run wrote nothing.
async fn everything(store: &Store) -> (Vec<project_rows::Model>, Vec<deadlines::Model>, u64) {
    let projects = project_rows::Entity::find().all(store.db()).await.unwrap();
    let deadlines = deadlines::Entity::find().all(store.db()).await.unwrap();
    let events = events::Entity::find().count(store.db()).await.unwrap();
    (projects, deadlines, events)
}

async fn a_dry_run_reports_exactly_what_the_migration_then_does(db: &TestDb) {
    let store = db.store().await;
    let [invited, identification, awaiting, withdrawn] = programme(&store).await;
    let deployed = store
        .deploy_workflow(&v2_source(), V2, at(2021, 9, 1))
        .await
        .unwrap();
    assert!(deployed.created);
    let again = store
        .deploy_workflow(&v2_source(), V2, at(2021, 9, 2))
        .await
        .unwrap();
    assert!(!again.created, "an unchanged file deploys as a no-op");

    let before = everything(&store).await;
    let req = request(None, &[], 3);
    let dry = migrate(&store, &req, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(everything(&store).await, before, "a dry run writes nothing");
    assert_eq!(dry.projects.len(), 4);

    let real = migrate(&store, &req, false).await.unwrap();
    assert!(!real.dry_run);
    assert_eq!(
        real.projects, dry.projects,
        "the dry run reports what the run does"
    );
    check_applied(&store, &real, req.now).await;

    // What the report says, in the programme's terms.
    let by_id: BTreeMap<i64, _> = real.projects.iter().map(|p| (p.project_id, p)).collect();
    let ident = &by_id[&identification].plan;
    let change = ident
        .deadlines
        .iter()
        .find(|d| d.key == "project_identification")
        .unwrap();
    // Entered on 1 April 2021 at noon in Paris: six months became nine.
    assert_eq!(
        change.old_due,
        Some(Utc.with_ymd_and_hms(2021, 10, 1, 10, 0, 0).unwrap())
    );
    assert_eq!(
        change.new_due,
        Some(Utc.with_ymd_and_hms(2022, 1, 1, 11, 0, 0).unwrap())
    );
    // The 30-day reminder went out on 1 September; under the new date it comes again on 2 December.
    assert!(change.reminders.carried.is_empty());
    let p30 = change
        .reminders
        .pending
        .iter()
        .find(|s| s.step == "before:P30D")
        .unwrap();
    assert_eq!(p30.old_send_at, None);
    assert_eq!(
        p30.new_send_at,
        Some(Utc.with_ymd_and_hms(2021, 12, 2, 8, 0, 0).unwrap())
    );
    assert_eq!(ident.requirements_added, ["audit_report"]);
    assert_eq!(ident.fields_added, ["audit_date"]);
    assert_eq!(ident.fields_removed, ["carrier_name"]);

    let moved = &by_id[&awaiting].plan;
    assert_eq!(
        (moved.from_state.as_str(), moved.to_state.as_str()),
        ("awaiting_incubation", "awaiting_session")
    );
    assert_eq!(
        moved.dropped_values,
        BTreeMap::from([("carrier_name".to_owned(), json!("Breizh Cyber"))])
    );
    let snap = projects::snapshot(store.db(), awaiting).await.unwrap();
    assert_eq!(snap.project.state, "awaiting_session");
    assert!(!snap.facts.contains_key("carrier_name"));
    assert_eq!(
        snap.facts.get("legal_form"),
        Some(&FieldValue::Text("GIP".into()))
    );
    assert!(by_id[&withdrawn].plan.deadlines.is_empty());
    assert_eq!(by_id[&invited].plan.to_state, "invited");

    // One event per project, the chain intact, and a second run has nothing left to do.
    for id in [invited, identification, awaiting, withdrawn] {
        assert_eq!(migrated_events(&store, id).await.len(), 1, "project {id}");
    }
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
    let rerun = migrate(&store, &req, false).await.unwrap();
    assert!(rerun.projects.is_empty());
    assert_eq!(rerun.unchanged.len(), 4);
}

/// The database holds what the report says: version, state, every deadline's due time and pause, the
/// reminders sent for the new due times, and the audit event carrying the report.
async fn check_applied(store: &Store, report: &MigrationReport, now: DateTime<Utc>) {
    let workflow = store
        .workflows()
        .get(store.db(), "csirt-incubation", 3)
        .await
        .unwrap();
    for project in &report.projects {
        let snap = projects::snapshot(store.db(), project.project_id)
            .await
            .unwrap();
        assert_eq!(snap.project.workflow_version, 3);
        assert_eq!(snap.project.state, project.plan.to_state);
        let live: BTreeMap<&str, &deadlines::Model> =
            snap.deadlines.iter().map(|d| (d.key.as_str(), d)).collect();
        let expected: BTreeSet<&str> = project
            .plan
            .deadlines
            .iter()
            .filter(|d| d.new_due.is_some())
            .map(|d| d.key.as_str())
            .collect();
        assert_eq!(live.keys().copied().collect::<BTreeSet<_>>(), expected);
        for change in &project.plan.deadlines {
            let Some(new_due) = change.new_due else {
                continue;
            };
            let row = live[change.key.as_str()];
            assert_eq!(row.due_at, new_due, "{}", change.key);
            assert_eq!(row.paused_at, change.paused_at);
            // What the scheduler will send from now on, from what the database holds.
            let sent = reminders::sent_steps(store.db(), project.project_id, &change.key, new_due)
                .await
                .unwrap();
            let carried: BTreeSet<String> = change.reminders.carried.iter().cloned().collect();
            assert_eq!(sent, carried, "{}", change.key);
            let pending: Vec<(String, DateTime<Utc>)> = workflow
                .reminder_plan(&change.key)
                .map(|plan| plan.pending_steps(new_due, now, &sent))
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.step, s.send_at))
                .collect();
            let reported: Vec<(String, DateTime<Utc>)> = change
                .reminders
                .pending
                .iter()
                .filter_map(|s| Some((s.step.clone(), s.new_send_at?)))
                .collect();
            assert_eq!(pending, reported, "{}", change.key);
            assert!(
                looks(store, row.id).await.contains(&now),
                "the scheduler looks at a migrated deadline at once"
            );
        }
        let events = migrated_events(store, project.project_id).await;
        let changes: serde_json::Value = serde_json::from_str(&events[0].changes).unwrap();
        assert_eq!(changes, serde_json::to_value(project).unwrap());
    }
}

async fn an_unmapped_state_refuses_the_whole_migration_and_changes_nothing(db: &TestDb) {
    let store = db.store().await;
    let [_, identification, awaiting, _] = programme(&store).await;
    let v3 = v2_source()
        .replace("version: 3", "version: 4")
        .replace("migrations:\n  awaiting_incubation: awaiting_session\n", "");
    store
        .deploy_workflow(&v3, "v3.yaml", at(2021, 9, 1))
        .await
        .unwrap();
    let before = everything(&store).await;
    for dry_run in [true, false] {
        let err = migrate(&store, &request(None, &[], 4), dry_run)
            .await
            .unwrap_err();
        match err {
            StoreError::MigrationRefused(MigrationRefused::Unmapped { states, .. }) => {
                assert_eq!(states, ["awaiting_incubation"]);
            }
            other => panic!("expected a refusal, got {other}"),
        }
        assert_eq!(everything(&store).await, before);
    }
    // Changing a deployed version is refused; migrating to one never deployed is too.
    let changed = v3.replace("P9M", "P10M");
    let err = store
        .deploy_workflow(&changed, "v3.yaml", at(2021, 9, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionImmutable { .. }), "{err}");
    let err = migrate(&store, &request(None, &[], 7), true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WorkflowNotDeployed { version: 7, .. }),
        "{err}"
    );

    // Only the projects named move; an explicit mapping settles the renamed state.
    let report = migrate(&store, &request(Some(vec![identification]), &[], 4), false)
        .await
        .unwrap();
    assert_eq!(report.projects.len(), 1);
    let mapped = request(
        Some(vec![awaiting]),
        &[("awaiting_incubation", "awaiting_session")],
        4,
    );
    let report = migrate(&store, &mapped, false).await.unwrap();
    assert_eq!(report.projects[0].plan.to_state, "awaiting_session");
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}

async fn a_paused_deadline_moves_by_the_pause_and_the_history_shows_it(db: &TestDb) {
    let store = db.store().await;
    let [_, identification, ..] = programme(&store).await;
    let key = "project_identification";
    let due = deadline_of(&store, identification, key).await.due_at;
    let pause = |reason: &str, now| PauseDeadline {
        registry: store.workflows().clone(),
        project_id: identification,
        key: key.into(),
        reason: reason.into(),
        actor: "user:1".into(),
        now,
    };
    let err = store.write(pause("  ", at(2021, 9, 5))).await.unwrap_err();
    assert!(err.to_string().contains("reason is required"), "{err}");
    store
        .write(pause("waiting for the region's correction", at(2021, 9, 5)))
        .await
        .unwrap();
    let row = deadline_of(&store, identification, key).await;
    assert_eq!(row.paused_at, Some(at(2021, 9, 5)));
    assert_eq!(
        looks(&store, row.id).await,
        Vec::<DateTime<Utc>>::new(),
        "the scheduler leaves it alone"
    );
    let err = store
        .write(pause("again", at(2021, 9, 6)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("paused already"), "{err}");

    let resumed = store
        .write(ResumeDeadline {
            registry: store.workflows().clone(),
            project_id: identification,
            key: key.into(),
            reason: "correction received".into(),
            actor: "user:1".into(),
            now: at(2021, 9, 25),
        })
        .await
        .unwrap();
    // Twenty days of pause: due twenty days later; the 30-day reminder sent on 1 September (before the
    // pause) is carried over, not sent again.
    assert_eq!(resumed.new_due, due + chrono::TimeDelta::days(20));
    assert_eq!(resumed.reminders.carried, ["before:P30D"]);
    let row = deadline_of(&store, identification, key).await;
    assert_eq!((row.due_at, row.paused_at), (resumed.new_due, None));
    assert!(looks(&store, row.id).await.contains(&at(2021, 9, 25)));
    let history: Vec<(String, Option<String>)> =
        incubator_store::events::list(store.db(), identification)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind.starts_with("deadline."))
            .map(|e| (e.kind, e.comment))
            .collect();
    assert_eq!(
        history,
        [
            (
                "deadline.paused".to_owned(),
                Some("waiting for the region's correction".to_owned())
            ),
            (
                "deadline.resumed".to_owned(),
                Some("correction received".to_owned())
            ),
        ]
    );
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}

/// A stage's milestones counted from the project's own anchor pause and resume with the stage's deadline
/// (continue: moved by the pause; restart: their offset from the resumption); those already passed stay;
/// a cohort's milestones are its calendar and never follow one project's clock.
async fn milestones_ahead_wait_with_their_stage_clock(db: &TestDb) {
    let store = db.store().await;
    deploy_anssi(&store).await;
    let anssi = std::fs::read_to_string(common::workspace_file("workflows/csirt-incubation.yaml"))
        .expect("read workflow");
    let shipped = store
        .workflows()
        .get(store.db(), "csirt-incubation", 2)
        .await
        .unwrap();
    assert!(shipped.milestones_on_clock("incubation").is_empty());
    let key = "project_identification";
    let review = "project_identification.eligibility_review";
    let kick_off = "project_identification.kick_off";
    for (version, on_resume, region) in [(3, "continue", "11"), (4, "restart", "24")] {
        let source = anssi
            .replacen("version: 2", &format!("version: {version}"), 1)
            .replacen(
                "      after: P6M\n      labels: {fr: Fin de l'identification, en: End of identification}\n",
                &format!(
                    "      after: P6M\n      on_resume: {on_resume}\n      labels: {{fr: Fin de l'identification, \
                     en: End of identification}}\n    milestones:\n      - id: kick_off\n        after: P0D\n        \
                     labels: {{fr: Lancement, en: Kick-off}}\n      - id: eligibility_review\n        after: P3M\n        \
                     labels: {{fr: Revue d'éligibilité, en: Eligibility review}}\n"
                ),
                1,
            );
        store
            .deploy_workflow(&source, "milestones.yaml", at(2021, 3, 1))
            .await
            .unwrap();
        let id = create(&store, region).await;
        fire(&store, id, "express_interest", council(), None)
            .await
            .unwrap();
        fire(&store, id, "open_identification", common::officer(), None)
            .await
            .unwrap();
        let due = |key| {
            let store = &store;
            async move { deadline_of(store, id, key).await }
        };
        assert_eq!(due(review).await.due_at, at(2021, 7, 1));
        let pause = |key: &str| PauseDeadline {
            registry: store.workflows().clone(),
            project_id: id,
            key: key.into(),
            reason: "waiting for the region's correction".into(),
            actor: "user:1".into(),
            now: at(2021, 5, 1),
        };
        let err = store.write(pause(review)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("runs on the clock of stage `project_identification`"),
            "{err}"
        );
        let paused = store.write(pause(key)).await.unwrap();
        let moved: Vec<&str> = paused.milestones.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(
            moved,
            [review],
            "{on_resume}: only the milestone ahead waits"
        );
        assert_eq!(due(review).await.paused_at, Some(at(2021, 5, 1)));
        assert_eq!(due(kick_off).await.paused_at, None);

        let resumed = store
            .write(ResumeDeadline {
                registry: store.workflows().clone(),
                project_id: id,
                key: key.into(),
                reason: "correction received".into(),
                actor: "user:1".into(),
                now: at(2021, 5, 21),
            })
            .await
            .unwrap();
        let (stage_due, review_due) = match on_resume {
            "continue" => (at(2021, 10, 21), at(2021, 7, 21)),
            // Six months of Paris time from 21 May cross the autumn change: an hour later in UTC.
            _ => (
                at(2021, 11, 21) + chrono::TimeDelta::hours(1),
                at(2021, 8, 21),
            ),
        };
        assert_eq!(resumed.new_due, stage_due, "{on_resume}");
        assert_eq!(resumed.milestones.len(), 1);
        assert_eq!(
            (resumed.milestones[0].old_due, resumed.milestones[0].new_due),
            (at(2021, 7, 1), review_due),
            "{on_resume}"
        );
        let row = due(review).await;
        assert_eq!(
            (row.due_at, row.paused_at),
            (review_due, None),
            "{on_resume}"
        );
        assert_eq!(due(kick_off).await.due_at, at(2021, 4, 1));
        let resumed_event = incubator_store::events::list(store.db(), id)
            .await
            .unwrap()
            .into_iter()
            .rfind(|e| e.kind == "deadline.resumed")
            .expect("resumed event");
        let changes: serde_json::Value = serde_json::from_str(&resumed_event.changes).unwrap();
        assert_eq!(changes["milestones"][0]["key"], review);
    }
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}
