//! The storage suite, run against a SQLite file and against PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use common::{
    ELIGIBILITY, TestDb, at, council, create, deploy_anssi, drive_to_awaiting_incubation, fire,
    officer, upload_and_accept,
};
use incubator_engine::FireRequest;
use incubator_store::cohorts::{AssignCohort, CreateCohort};
use incubator_store::entities::deadlines;
use incubator_store::fields::PatchFields;
use incubator_store::links::{IssueLink, LinkHolder};
use incubator_store::projects::FireTransition;
use incubator_store::{
    Store, StoreError, UnitOfWork, audit, events, projects, reminders, transfer,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Statement,
    TransactionTrait,
};
use serde_json::json;

async fn drives_a_region_from_invited_to_operational(db: &TestDb) {
    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "24").await;
    fire(&store, id, "express_interest", council(), None)
        .await
        .expect("express interest");
    fire(&store, id, "open_identification", officer(), None)
        .await
        .expect("open identification");
    for key in ELIGIBILITY {
        upload_and_accept(&store, id, key).await;
    }
    fire(&store, id, "retain_project", officer(), None)
        .await
        .expect("retain");
    let patch = BTreeMap::from([("legal_form".to_owned(), json!("GIP"))]);
    store
        .write(PatchFields {
            registry: store.workflows().clone(),
            project_id: id,
            patch,
            actor: "user:1".into(),
            now: at(2021, 6, 1),
        })
        .await
        .expect("patch");
    upload_and_accept(&store, id, "registration_proof").await;
    fire(&store, id, "record_legal_structure", officer(), None)
        .await
        .expect("legal structure");
    let patch = BTreeMap::from([("subsidy_amount_eur".to_owned(), json!(1_000_000))]);
    let registry = store.workflows().clone();
    store
        .write(PatchFields {
            registry,
            project_id: id,
            patch,
            actor: "user:1".into(),
            now: at(2021, 7, 1),
        })
        .await
        .expect("patch");
    upload_and_accept(&store, id, "grant_agreement").await;
    fire(&store, id, "grant_subsidy", officer(), None)
        .await
        .expect("subsidy");
    let cohort = store
        .write(CreateCohort {
            name: "Session 1".into(),
            starts_on: chrono::NaiveDate::from_ymd_opt(2022, 2, 1).unwrap(),
            now: at(2021, 12, 1),
        })
        .await
        .expect("cohort");
    store
        .write(AssignCohort {
            registry: store.workflows().clone(),
            project_id: id,
            cohort_id: Some(cohort.id),
            actor: "user:1".into(),
            now: at(2022, 1, 1),
        })
        .await
        .expect("assign");
    fire(&store, id, "start_incubation", officer(), None)
        .await
        .expect("start incubation");
    let snap = projects::snapshot(store.db(), id).await.unwrap();
    let incubation = snap
        .deadlines
        .iter()
        .find(|d| d.key == "incubation")
        .expect("incubation deadline");
    // Six months from the cohort's start, 2022-02-01 at midnight in Paris (UTC+2 in summer).
    assert_eq!(
        incubation.due_at,
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2022, 7, 31, 22, 0, 0).unwrap()
    );
    fire(&store, id, "complete_incubation", officer(), None)
        .await
        .expect("complete");
    let patch = BTreeMap::from([("intercert_member_since".to_owned(), json!("2022-09-15"))]);
    let registry = store.workflows().clone();
    store
        .write(PatchFields {
            registry,
            project_id: id,
            patch,
            actor: "user:1".into(),
            now: at(2022, 9, 15),
        })
        .await
        .expect("patch");
    fire(&store, id, "join_intercert", officer(), None)
        .await
        .expect("join");
    let snap = projects::snapshot(store.db(), id).await.unwrap();
    assert_eq!(snap.project.state, "operational");
    assert!(
        snap.deadlines.is_empty(),
        "a terminal state clears every deadline: {:?}",
        snap.deadlines
    );
    // `networking` started the region's InterCERT-FR application, a project with a chain of its own.
    let children = projects::children(store.db(), id).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].workflow_id, "intercert-membership");
    assert_eq!(children[0].state, "drafting");
    let report = audit::verify(store.db()).await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.projects, 2);
    assert_eq!(
        report.events as i64,
        snap.project.last_event_seq + children[0].last_event_seq
    );
}

async fn a_refused_transition_writes_nothing(db: &TestDb) {
    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "53").await;
    fire(&store, id, "express_interest", council(), None)
        .await
        .unwrap();
    fire(&store, id, "open_identification", officer(), None)
        .await
        .unwrap();
    let before = projects::find(store.db(), id).await.unwrap();
    let events_before = events::list(store.db(), id).await.unwrap().len();
    let err = fire(&store, id, "retain_project", officer(), None)
        .await
        .unwrap_err();
    match err {
        StoreError::Refused(incubator_engine::Refusal::Unmet { unmet, .. }) => {
            assert_eq!(unmet.len(), 7)
        }
        other => panic!("expected the seven unmet requirements, got {other:?}"),
    }
    let err = fire(&store, id, "open_identification", council(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    let err = fire(&store, id, "decline_project", officer(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    assert_eq!(projects::find(store.db(), id).await.unwrap(), before);
    assert_eq!(
        events::list(store.db(), id).await.unwrap().len(),
        events_before
    );
}

async fn fifty_writers_at_one_version_one_wins(db: &TestDb) {
    let store = Arc::new(db.store().await);
    deploy_anssi(&store).await;
    let id = create(&store, "11").await;
    one_of_fifty_wins(std::slice::from_ref(&store), id, Decision::InWriter).await;
    // Decided outside the writer, as requests are: most tasks read the version before any write lands, so
    // the writer's version check is what refuses them.
    let id = create(&store, "24").await;
    one_of_fifty_wins(std::slice::from_ref(&store), id, Decision::Outside).await;
}

/// Tokens read together, as concurrent requests' are, authenticate exactly whom each authenticates alone:
/// not a revoked token, an expired one, one never issued, nor one of a disabled account.
async fn tokens_read_together_authenticate_as_each_alone(db: &TestDb) {
    use incubator_store::entities::users;
    use incubator_store::tokens;
    use incubator_store::users::{NewUser, create as create_user};
    use sea_orm::sea_query::Expr;
    let store = db.store().await;
    let now = at(2022, 1, 1);
    let mut digests = Vec::new();
    for (n, case) in ["live", "revoked", "expired", "disabled", "live too"]
        .into_iter()
        .enumerate()
    {
        let account = NewUser {
            email: format!("{n}@x.example"),
            name: case.into(),
            role: "officer".into(),
            region_code: None,
            password_hash: "-".into(),
            lang: "fr".into(),
        };
        let user = create_user(store.db(), account, now).await.unwrap();
        let digest = format!("{n:064}");
        let expires_at = if case == "expired" {
            at(2021, 12, 31)
        } else {
            at(2022, 2, 1)
        };
        tokens::issue(store.db(), user.id, &digest, at(2021, 12, 1), expires_at)
            .await
            .unwrap();
        match case {
            "revoked" => assert!(tokens::revoke(store.db(), &digest, now).await.unwrap()),
            "disabled" => {
                users::Entity::update_many()
                    .col_expr(users::Column::Disabled, Expr::value(true))
                    .filter(users::Column::Id.eq(user.id))
                    .exec(store.db())
                    .await
                    .unwrap();
            }
            _ => {}
        }
        digests.push(digest);
    }
    digests.push("f".repeat(64));
    let together = tokens::authenticate_many(store.db(), digests.clone(), now)
        .await
        .unwrap();
    let mut authenticated = Vec::new();
    for digest in &digests {
        let alone = tokens::authenticate(store.db(), digest, now).await.unwrap();
        let read_together = together.get(digest).map(|user| user.as_ref().unwrap());
        assert_eq!(read_together, alone.as_ref(), "token {digest}");
        authenticated.extend(alone.map(|user| user.name));
    }
    assert_eq!(authenticated, ["live", "live too"]);
}

/// A decision taken on a version another transition has since left writes nothing: the writer's version
/// check refuses it, naming the current version, and the project, its history and its mails are as the
/// other transition left them.
async fn a_decision_on_a_left_version_writes_nothing(db: &TestDb) {
    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "32").await;
    fire(&store, id, "express_interest", council(), None)
        .await
        .unwrap();
    let version = projects::find(store.db(), id).await.unwrap().version;
    let late = projects::decide(
        &store,
        decided_unit(&store, id, version, "open_identification"),
    )
    .await
    .expect("decided on the committed version");
    let first = projects::fire(&store, decided_unit(&store, id, version, "withdraw"))
        .await
        .expect("the other transition");
    assert_eq!(first.snapshot.project.state, "withdrawn");
    let history = events::list(store.db(), id).await.unwrap();
    let mails = mail_count(&store).await;
    match projects::write_decided(&store, late).await {
        Err(StoreError::Conflict {
            expected, current, ..
        }) => assert_eq!((expected, current), (version, version + 1)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        projects::find(store.db(), id).await.unwrap(),
        first.snapshot.project
    );
    assert_eq!(events::list(store.db(), id).await.unwrap(), history);
    assert_eq!(mail_count(&store).await, mails);
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}

/// Requests' transitions on many projects at once (on PostgreSQL the writer sends their decided writes in
/// shared rounds): each gets its own project, deadlines and answer; one decided on a version left meanwhile
/// is refused alone, naming the current version, and writes nothing.
async fn decided_writes_sharing_rounds_each_get_their_own_answer(db: &TestDb) {
    use incubator_store::entities::outbox;
    let store = Arc::new(db.store().await);
    deploy_anssi(&store).await;
    let officer_account = incubator_store::users::NewUser {
        email: "officer@x.example".into(),
        name: "Officer".into(),
        role: "officer".into(),
        region_code: None,
        password_hash: "-".into(),
        lang: "fr".into(),
    };
    incubator_store::users::create(store.db(), officer_account, at(2021, 4, 1))
        .await
        .unwrap();
    let regions = [
        "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76",
        "84", "93", "94",
    ];
    let mut decided = Vec::new();
    for region in regions {
        let id = create(&store, region).await;
        let unit = decided_unit(&store, id, 1, "express_interest");
        decided.push((id, projects::decide(&store, unit).await.unwrap()));
    }
    // One project moves on after its decision was taken: that decision's version is left.
    let (stale, _) = decided[7];
    fire(&store, stale, "withdraw", council(), Some("raison"))
        .await
        .unwrap();
    let history = events::list(store.db(), stale).await.unwrap();
    let mails = mail_count(&store).await;
    let tasks: Vec<_> = decided
        .into_iter()
        .map(|(id, decided)| {
            let store = store.clone();
            tokio::spawn(async move { (id, projects::write_decided(&store, decided).await) })
        })
        .collect();
    let mut fired = 0u64;
    for task in tasks {
        let (id, answer) = task.await.unwrap();
        if id == stale {
            match answer {
                Err(StoreError::Conflict {
                    expected, current, ..
                }) => assert_eq!((expected, current), (1, 2)),
                other => panic!("expected a conflict, got {other:?}"),
            }
            assert_eq!(events::list(store.db(), id).await.unwrap(), history);
            continue;
        }
        let answer = answer.unwrap();
        let committed = projects::snapshot(store.db(), id).await.unwrap();
        assert_eq!(answer.snapshot.project, committed.project);
        assert_eq!(
            (
                answer.snapshot.project.state.as_str(),
                answer.snapshot.project.version
            ),
            ("interest_expressed", 2)
        );
        assert_eq!(answer.snapshot.deadlines, committed.deadlines);
        assert!(!answer.snapshot.deadlines.is_empty());
        assert!(
            answer.snapshot.deadlines.iter().all(|d| d.project_id == id),
            "another project's deadline in the answer of {id}"
        );
        if let Some(relatives) = answer.relatives {
            assert_eq!(
                relatives,
                projects::relatives(store.db(), projects::Kin::of(&committed.project))
                    .await
                    .unwrap()
            );
        }
        let events = events::list(store.db(), id).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].to_state.as_deref(), Some("interest_expressed"));
        // The officer's mail of its own transition, once.
        let own_mails = outbox::Entity::find()
            .filter(outbox::Column::ProjectId.eq(id))
            .count(store.db())
            .await
            .unwrap();
        assert_eq!(own_mails, 1, "mails of project {id}");
        fired += 1;
    }
    assert_eq!(fired, regions.len() as u64 - 1);
    assert_eq!(mail_count(&store).await - mails, fired);
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}

/// The programme's lists read many projects at once; each must come out exactly as its own view reads it.
async fn a_list_reads_each_project_as_its_own_view_does(db: &TestDb) {
    let store = db.store().await;
    deploy_anssi(&store).await;
    // One in incubation's last step with a cohort and a child project (which has a parent and a link),
    // one half-way through eligibility, one just created.
    let far = create(&store, "24").await;
    drive_to_awaiting_incubation(&store, far).await;
    let cohort = store
        .write(CreateCohort {
            name: "Session 1".into(),
            starts_on: chrono::NaiveDate::from_ymd_opt(2022, 2, 1).unwrap(),
            now: at(2021, 12, 1),
        })
        .await
        .expect("cohort");
    store
        .write(AssignCohort {
            registry: store.workflows().clone(),
            project_id: far,
            cohort_id: Some(cohort.id),
            actor: "user:1".into(),
            now: at(2022, 1, 1),
        })
        .await
        .expect("assign");
    for transition in ["start_incubation", "complete_incubation"] {
        fire(&store, far, transition, officer(), None)
            .await
            .expect(transition);
    }
    let child = projects::children(store.db(), far).await.unwrap()[0].id;
    store
        .write(IssueLink {
            registry: store.workflows().clone(),
            project_id: child,
            role: "sponsor".into(),
            requirement: "first_sponsor_letter".into(),
            holder: LinkHolder::parse("cert@example.org", "CERT parrain").unwrap(),
            lang: "fr".into(),
            expires_at: at(2023, 1, 1),
            actor: "user:1".into(),
            now: at(2022, 9, 1),
        })
        .await
        .expect("link");
    let half = create(&store, "32").await;
    fire(&store, half, "express_interest", council(), None)
        .await
        .expect("interest");
    fire(&store, half, "open_identification", officer(), None)
        .await
        .expect("identification");
    upload_and_accept(&store, half, ELIGIBILITY[0]).await;
    let new = create(&store, "11").await;

    let mut all = projects::list(store.db(), &projects::ProjectFilter::default())
        .await
        .unwrap();
    all.sort_by_key(|p| std::cmp::Reverse(p.id));
    assert_eq!(all.len(), 4);
    let listed = projects::snapshots_of_many(store.db(), all.clone())
        .await
        .unwrap();
    let mut expected = Vec::new();
    for project in all {
        let relatives = projects::relatives(store.db(), projects::Kin::of(&project))
            .await
            .unwrap();
        expected.push((
            projects::snapshot_of(store.db(), project).await.unwrap(),
            relatives,
        ));
    }
    assert_eq!(listed, expected);
    // The views decisions are taken on, read together as concurrent requests' are, are each one's alone.
    let together = projects::decision_views(store.db(), vec![far, child, 999_999, half, new])
        .await
        .unwrap();
    assert_eq!(together.len(), 4, "a missing project is left out");
    for id in [far, child, half, new] {
        let alone = store.decision_view(id).await.unwrap();
        assert_eq!(together[&id].as_ref().unwrap(), &alone);
    }
    assert!(matches!(
        store.decision_view(999_999).await,
        Err(StoreError::ProjectNotFound(999_999))
    ));
    // What the comparison covered.
    let of = |id: i64| listed.iter().find(|(s, _)| s.project.id == id).unwrap();
    assert!(of(far).0.cohort.is_some() && !of(far).0.deadlines.is_empty());
    assert_eq!(of(far).1.children.len(), 1);
    assert_eq!(of(child).1.parent.as_ref().map(|p| p.id), Some(far));
    assert_eq!(of(child).1.links.len(), 1);
    assert!(!of(half).0.requirements.is_empty());
    assert!(of(new).0.requirements.is_empty());
    assert!(
        projects::snapshots_of_many(store.db(), Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn mail_count(store: &Store) -> u64 {
    incubator_store::entities::outbox::Entity::find()
        .count(store.db())
        .await
        .unwrap()
}

fn decided_unit(
    store: &Store,
    id: i64,
    version: i64,
    transition: &str,
) -> projects::FireTransitionAndRead {
    let actor = if transition == "withdraw" {
        council()
    } else {
        officer()
    };
    projects::FireTransitionAndRead {
        fire: FireTransition {
            registry: store.workflows().clone(),
            project_id: id,
            expected_version: version,
            request: FireRequest {
                transition: transition.into(),
                comment: Some("raison".into()),
            },
            actor,
            now: at(2021, 4, 2),
        },
        region_scope: None,
    }
}

/// Two replicas (each its own pool and writer) on one database: their writes meet in the database, not in
/// one writer, and the loser still hears a conflict naming the current version.
async fn two_replicas_at_one_version_one_wins(db: &TestDb) {
    let first = db.store().await;
    deploy_anssi(&first).await;
    let second = db.store().await;
    let mut ids = Vec::new();
    for region in ["11", "24", "27", "28", "32"] {
        ids.push(create(&first, region).await);
    }
    let replicas = [Arc::new(first), Arc::new(second)];
    let decided = create(&replicas[0], "44").await;
    for id in ids {
        one_of_fifty_wins(&replicas, id, Decision::InWriter).await;
    }
    // Decided outside the writers: each writer's transaction starts on the bump, and still waits for the
    // other's write lock instead of failing on it.
    one_of_fifty_wins(&replicas, decided, Decision::Outside).await;
}

/// Where the fifty tasks' transitions are decided.
#[derive(Debug, Clone, Copy)]
enum Decision {
    /// Inside the writer, on its transaction (`Store::write` of a `FireTransition`).
    InWriter,
    /// On the task, before the writer is asked (`projects::fire`, as requests are).
    Outside,
}

/// Fires one transition from fifty tasks at the project's current version, spread over the replicas:
/// exactly one wins, the others get a conflict naming the new version, one event is recorded.
async fn one_of_fifty_wins(replicas: &[Arc<Store>], id: i64, decision: Decision) {
    let project = projects::find(replicas[0].db(), id).await.unwrap();
    let version = project.version;
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let store = replicas[n % replicas.len()].clone();
            let region = project.region_code.clone();
            tokio::spawn(async move {
                let fire = FireTransition {
                    registry: store.workflows().clone(),
                    project_id: id,
                    expected_version: version,
                    request: FireRequest {
                        transition: "express_interest".into(),
                        comment: None,
                    },
                    actor: council(),
                    now: at(2021, 4, 1),
                };
                match decision {
                    Decision::InWriter => store.write(fire).await.map(|_| ()),
                    Decision::Outside => {
                        let unit = projects::FireTransitionAndRead {
                            fire,
                            region_scope: Some(region),
                        };
                        projects::fire(&store, unit).await.map(|_| ())
                    }
                }
            })
        })
        .collect();
    let mut won = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict {
                current, expected, ..
            }) => {
                assert_eq!(expected, version);
                assert_eq!(
                    current,
                    version + 1,
                    "the conflict names the current version"
                );
                conflicts += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won, conflicts), (1, 49));
    let transitions = events::list(replicas[0].db(), id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.transition.as_deref() == Some("express_interest"))
        .count();
    assert_eq!(transitions, 1);
}

async fn tampering_is_detected_and_named(db: &TestDb) {
    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "28").await;
    fire(&store, id, "express_interest", council(), None)
        .await
        .unwrap();
    fire(&store, id, "withdraw", council(), Some("budget"))
        .await
        .unwrap();
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
    let backend = store.db().get_database_backend();
    store
        .db()
        .execute(Statement::from_string(
            backend,
            format!(
                "UPDATE events SET comment = 'changed later' WHERE project_id = {id} AND seq = 3"
            ),
        ))
        .await
        .unwrap();
    let broken = audit::verify(store.db())
        .await
        .unwrap()
        .broken
        .expect("tampering detected");
    assert_eq!((broken.project_id, broken.seq), (id, 3));
}

async fn export_then_import_is_lossless(db: &TestDb) {
    let store = db.store().await;
    deploy_anssi(&store).await;
    for region in ["24", "27", "94"] {
        let id = create(&store, region).await;
        fire(&store, id, "express_interest", council(), None)
            .await
            .unwrap();
    }
    upload_and_accept(&store, 1, "council_backed").await;
    let exported = transfer::export(store.db(), at(2022, 1, 1)).await.unwrap();
    let text = serde_json::to_string(&exported).unwrap();

    let target = common::sqlite().await;
    let restored = target.store().await;
    transfer::import(restored.db(), serde_json::from_str(&text).unwrap())
        .await
        .unwrap();
    let again = transfer::export(restored.db(), at(2022, 1, 1))
        .await
        .unwrap();
    assert_eq!(again, exported);
    assert_eq!(audit::verify(restored.db()).await.unwrap().broken, None);
    // Importing into a database that is not empty is refused and changes nothing.
    let err = transfer::import(restored.db(), serde_json::from_str(&text).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    let count = incubator_store::entities::projects::Entity::find()
        .count(restored.db())
        .await
        .unwrap();
    assert_eq!(count, 3);
}

async fn deploying_is_idempotent_and_versions_immutable(db: &TestDb) {
    let store = db.store().await;
    let source = std::fs::read_to_string(common::ANSSI_WORKFLOW).unwrap();
    let first = store
        .deploy_workflow(&source, "a.yaml", at(2021, 1, 1))
        .await
        .unwrap();
    assert!(first.created);
    let again = store
        .deploy_workflow(&source, "a.yaml", at(2021, 1, 2))
        .await
        .unwrap();
    assert!(!again.created);
    let changed = source.replacen("labels:", "# a comment changes the content\nlabels:", 1);
    let err = store
        .deploy_workflow(&changed, "a.yaml", at(2021, 1, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VersionImmutable { .. }),
        "{err:?}"
    );
}

/// The ANSSI programme deployed and a project in each of twelve regions; their ids.
async fn twelve_projects(store: &Store) -> Vec<i64> {
    deploy_anssi(store).await;
    let mut ids = Vec::new();
    for region in [
        "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52",
    ] {
        ids.push(create(store, region).await);
    }
    ids
}

async fn refusals_in_a_shared_batch_leave_the_others_committed(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let ids = twelve_projects(&store).await;
    // Interleaved, so that batches mix units that succeed with units the engine refuses.
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, &id)| {
            let store = store.clone();
            let transition = if n % 2 == 0 {
                "express_interest"
            } else {
                "retain_project"
            };
            tokio::spawn(async move {
                let result = store
                    .write(FireTransition {
                        registry: store.workflows().clone(),
                        project_id: id,
                        expected_version: 1,
                        request: FireRequest {
                            transition: transition.into(),
                            comment: None,
                        },
                        actor: officer(),
                        now: at(2021, 4, 1),
                    })
                    .await;
                (n, id, result)
            })
        })
        .collect();
    for task in tasks {
        let (n, id, result) = task.await.unwrap();
        let project = projects::find(store.db(), id).await.unwrap();
        if n % 2 == 0 {
            assert_eq!(result.unwrap(), 2);
            assert_eq!(
                (project.state.as_str(), project.version),
                ("interest_expressed", 2)
            );
        } else {
            assert!(matches!(result, Err(StoreError::Refused(_))), "{result:?}");
            assert_eq!((project.state.as_str(), project.version), ("invited", 1));
        }
        assert_eq!(
            events::list(store.db(), id).await.unwrap().len() as i64,
            project.version
        );
    }
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}

/// A unit of work with a defect: it writes, then panics.
struct PanicsAfterWriting {
    project_id: i64,
}

#[async_trait::async_trait]
impl UnitOfWork for PanicsAfterWriting {
    type Output = ();

    async fn run(&mut self, txn: &sea_orm::DatabaseTransaction) -> Result<(), StoreError> {
        txn.execute_unprepared("UPDATE regions SET name = 'Défaillance' WHERE code = '53'")
            .await?;
        panic!("a defect in a unit of work (this test's own panic)");
    }

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }
}

/// A write that panics fails alone: its own writes are undone, the writes that shared its batch are
/// committed, and its writer serves every later write (a panic used to end the writer task, and with it
/// every write on its lane until a restart).
async fn a_write_that_panics_fails_alone_and_the_writer_goes_on(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let ids = twelve_projects(&store).await;
    let faulty = |n: usize| n.is_multiple_of(3);
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, &id)| {
            let store = store.clone();
            tokio::spawn(async move {
                if faulty(n) {
                    store
                        .write(PanicsAfterWriting { project_id: id })
                        .await
                        .map(|()| 0)
                } else {
                    fire(&store, id, "express_interest", council(), None).await
                }
            })
        })
        .collect();
    for (n, task) in tasks.into_iter().enumerate() {
        let result = task.await.expect("the caller's task");
        if faulty(n) {
            assert!(
                matches!(result, Err(StoreError::NotCommitted(_))),
                "{result:?}"
            );
        } else {
            assert_eq!(result.unwrap(), 2);
        }
    }
    let region = incubator_store::entities::regions::Entity::find_by_id("53")
        .one(store.db())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(region.name, "Défaillance");
    // Every lane still writes.
    for (n, &id) in ids.iter().enumerate() {
        let transition = if faulty(n) {
            "express_interest"
        } else {
            "open_identification"
        };
        fire(&store, id, transition, officer(), None)
            .await
            .unwrap_or_else(|e| panic!("{transition} on {id} after the panic: {e:?}"));
    }
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}

async fn gauges_count_late_deadlines_and_waiting_mail(db: &TestDb) {
    use incubator_store::entities::{deadlines, outbox};
    use incubator_store::gauges;
    use sea_orm::{ActiveValue::NotSet, Set};

    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "24").await;
    let empty = gauges::read(store.db(), at(2021, 3, 16)).await.unwrap();
    assert_eq!(
        empty.projects,
        BTreeMap::from([(("csirt-incubation".to_owned(), "invited".to_owned()), 1)])
    );
    assert!(empty.overdue_deadlines.is_empty(), "{empty:?}");
    assert_eq!(empty.oldest_pending_mail_seconds, None);

    // A milestone already past is the programme moving on, not lateness: not counted.
    deadlines::Entity::insert(deadlines::ActiveModel {
        id: NotSet,
        project_id: Set(id),
        key: Set("incubation.kick_off".into()),
        due_at: Set(at(2021, 3, 20)),
        set_at: Set(at(2021, 3, 15)),
        cleared_at: Set(None),
        paused_at: Set(None),
    })
    .exec(store.db())
    .await
    .unwrap();
    for (status, created) in [
        ("pending", at(2021, 3, 15)),
        ("pending", at(2021, 3, 16)),
        ("dead", at(2021, 3, 1)),
    ] {
        outbox::Entity::insert(outbox::ActiveModel {
            id: NotSet,
            project_id: Set(Some(id)),
            event_seq: Set(None),
            template: Set("stage_entered".into()),
            lang: Set("fr".into()),
            recipients: Set("[]".into()),
            context: Set("{}".into()),
            status: Set(status.into()),
            attempts: Set(0),
            next_attempt_at: Set(created),
            lease_until: Set(None),
            leased_by: Set(None),
            last_error: Set(None),
            created_at: Set(created),
            sent_at: Set(None),
        })
        .exec(store.db())
        .await
        .unwrap();
    }

    let late = gauges::read(store.db(), at(2030, 1, 1)).await.unwrap();
    // The state's own deadline and the programme's goal (operational by the end of 2024) are both late.
    assert_eq!(
        late.overdue_deadlines,
        BTreeMap::from([
            ("invited".to_owned(), 1),
            ("operational_by_end_2024".to_owned(), 1)
        ])
    );
    assert_eq!(
        late.outbox,
        BTreeMap::from([
            ("dead".to_owned(), 1),
            ("pending".to_owned(), 2),
            ("sent".to_owned(), 0)
        ])
    );
    let oldest = gauges::read(store.db(), at(2021, 3, 17)).await.unwrap();
    assert_eq!(oldest.oldest_pending_mail_seconds, Some(2.0 * 86_400.0));
}

/// The scheduler's queue of looks came out of the `deadlines` table in an upgrade: a database migrated from
/// the older schema keeps every running deadline's next look, and rolling the upgrade back puts it back.
async fn upgrading_keeps_every_queued_look(db: &TestDb) {
    use incubator_migrations::{Migrator, MigratorTrait};
    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "53").await;
    let deadline = deadlines::Entity::find()
        .filter(deadlines::Column::ProjectId.eq(id))
        .one(store.db())
        .await
        .unwrap()
        .expect("the invited state's deadline");
    let looks = reminders::queued_looks(store.db(), deadline.id)
        .await
        .unwrap();
    assert_eq!(
        looks.len(),
        1,
        "a new deadline is looked at once: {looks:?}"
    );

    let backend = store.db().get_database_backend();
    let (first, second) = match backend {
        sea_orm::DbBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    // Down to the schema before the queue of looks, past the migrations added since.
    let steps = Migrator::migrations()
        .iter()
        .rev()
        .position(|m| m.name() == "m20261201_000015_create_deadline_checks")
        .expect("the queue's migration")
        + 1;
    Migrator::down(store.db(), Some(steps as u32))
        .await
        .unwrap();
    let row = store
        .db()
        .query_one(Statement::from_sql_and_values(
            backend,
            format!("SELECT next_check_at FROM deadlines WHERE id = {first}"),
            [deadline.id.into()],
        ))
        .await
        .unwrap()
        .expect("the deadline");
    let back: Option<DateTime<Utc>> = row.try_get("", "next_check_at").unwrap();
    assert_eq!(
        back,
        Some(looks[0]),
        "rolled back, the look is the row's again"
    );

    // The older schema's look, somewhere ahead, then the upgrade again.
    store
        .db()
        .execute(Statement::from_sql_and_values(
            backend,
            format!("UPDATE deadlines SET next_check_at = {first} WHERE id = {second}"),
            [at(2021, 7, 1).into(), deadline.id.into()],
        ))
        .await
        .unwrap();
    Migrator::up(store.db(), None).await.unwrap();
    assert_eq!(
        reminders::queued_looks(store.db(), deadline.id)
            .await
            .unwrap(),
        [at(2021, 7, 1)]
    );
}

/// A transition's mails go to the accounts its roles name, one row each, in each account's language, with
/// the recipient written as JSON whatever the name holds; disabled accounts and other regions' councils get
/// none.
async fn transition_mails_reach_each_account_once(db: &TestDb) {
    use incubator_store::entities::outbox;
    use incubator_store::users::{NewUser, create as create_user};
    let store = db.store().await;
    deploy_anssi(&store).await;
    let account = |email: &str, name: &str, role: &str, region: Option<&str>, lang: &str| NewUser {
        email: email.into(),
        name: name.into(),
        role: role.into(),
        region_code: region.map(Into::into),
        password_hash: "-".into(),
        lang: lang.into(),
    };
    let accounts = [
        account(
            "o1@x.example",
            "Zoé \"la\" Chargée \\ 東京",
            "officer",
            None,
            "fr",
        ),
        account("o2@x.example", "Ann O'Fficer", "officer", None, "en"),
        account("gone@x.example", "Disabled", "officer", None, "fr"),
        account(
            "c24@x.example",
            "Conseil Dordogne",
            "council",
            Some("24"),
            "fr",
        ),
        account(
            "c53@x.example",
            "Conseil Bretagne",
            "council",
            Some("53"),
            "fr",
        ),
    ];
    let mut users = Vec::new();
    for new in accounts {
        users.push(create_user(store.db(), new, at(2021, 1, 1)).await.unwrap());
    }
    incubator_store::account_admin::set_disabled(store.db(), users[2].id, true, at(2021, 1, 2))
        .await
        .unwrap();
    let id = create(&store, "24").await;
    fire(&store, id, "express_interest", council(), None)
        .await
        .expect("express interest");
    fire(&store, id, "open_identification", officer(), None)
        .await
        .expect("open identification");
    let rows = outbox::Entity::find()
        .filter(outbox::Column::ProjectId.eq(id))
        .all(store.db())
        .await
        .unwrap();
    let row_for = |seq: i64| -> Vec<(String, String)> {
        let mut rows: Vec<&outbox::Model> =
            rows.iter().filter(|r| r.event_seq == Some(seq)).collect();
        rows.sort_by_key(|r| r.id);
        rows.iter()
            .map(|r| (r.recipients.clone(), r.lang.clone()))
            .collect()
    };
    let expected = |picked: &[usize]| -> Vec<(String, String)> {
        picked
            .iter()
            .map(|&i| {
                let u = &users[i];
                let recipients = json!([{ "email": u.email, "name": u.name }]).to_string();
                (recipients, u.lang.clone())
            })
            .collect()
    };
    // Event 2: `express_interest` mails the officers; event 3: `open_identification` the region's council
    // and the officers, by account.
    assert_eq!(row_for(2), expected(&[0, 1]));
    assert_eq!(row_for(3), expected(&[0, 1, 3]));
    assert!(
        rows.iter()
            .all(|r| r.status == "pending" && r.attempts == 0)
    );
}

both_backends!(
    a_list_reads_each_project_as_its_own_view_does,
    tokens_read_together_authenticate_as_each_alone,
    a_documents_list_carries_each_ones_latest_review,
    decided_writes_sharing_rounds_each_get_their_own_answer,
    reviews_and_patches_of_one_project_queue_instead_of_colliding,
    transition_mails_reach_each_account_once,
    upgrading_keeps_every_queued_look,
    gauges_count_late_deadlines_and_waiting_mail,
    refusals_in_a_shared_batch_leave_the_others_committed,
    a_write_that_panics_fails_alone_and_the_writer_goes_on,
    drives_a_region_from_invited_to_operational,
    a_refused_transition_writes_nothing,
    fifty_writers_at_one_version_one_wins,
    a_decision_on_a_left_version_writes_nothing,
    two_replicas_at_one_version_one_wins,
    tampering_is_detected_and_named,
    export_then_import_is_lossless,
    deploying_is_idempotent_and_versions_immutable,
);

/// Replicas started together against a fresh PostgreSQL database all come up: one migrates, the others wait
/// for it and find nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let config = db.config.clone();
            let dir = db.data_dir().to_owned();
            tokio::spawn(async move { Store::open(&config, &dir).await })
        })
        .collect();
    for open in opens {
        open.await
            .expect("task")
            .expect("every replica opens the store");
    }
    let store = db.store().await;
    let regions = store
        .db()
        .query_one(Statement::from_string(
            store.db().get_database_backend(),
            "SELECT COUNT(*) AS n FROM regions",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(regions, 18);
}

/// On PostgreSQL decided writes queued together share one statement (a round); when that statement fails,
/// no unit's answer is known, so each runs again on its own: the unit at fault gets its error and the
/// others are committed as if they had never met it. The writers are held on a table lock while the
/// writes queue, so the faulty one is sure to be in a round with others; a trigger makes its event fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_round_runs_its_units_apart() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let store = Arc::new(db.store().await);
    deploy_anssi(&store).await;
    let regions = [
        "01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76",
        "84", "93", "94",
    ];
    let mut decided = Vec::new();
    for region in regions {
        let id = create(&store, region).await;
        let unit = decided_unit(&store, id, 1, "express_interest");
        decided.push((id, projects::decide(&store, unit).await.unwrap()));
    }
    let (faulty, faulty_decision) = decided.pop().unwrap();
    let faulty_history = events::list(store.db(), faulty).await.unwrap();
    let pg = store.db().get_database_backend();
    for sql in [
        "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'event refused by the test'; END $$"
            .to_owned(),
        format!(
            "CREATE TRIGGER refuse_event BEFORE INSERT ON events FOR EACH ROW \
             WHEN (NEW.project_id = {faulty}) EXECUTE FUNCTION refuse_event()"
        ),
    ] {
        store
            .db()
            .execute(Statement::from_string(pg, sql))
            .await
            .unwrap();
    }
    let holder = sea_orm::Database::connect(db.url()).await.unwrap();
    let hold = holder.begin().await.unwrap();
    hold.execute(Statement::from_string(
        pg,
        "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE",
    ))
    .await
    .unwrap();
    let spawn = |(id, decision)| {
        let store = store.clone();
        tokio::spawn(async move { (id, projects::write_decided(&store, decision).await) })
    };
    // Each writer lane takes its first unit and waits on the lock; the rest of its units queue behind it,
    // the faulty one last.
    let mut tasks: Vec<_> = decided.into_iter().map(spawn).collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tasks.push(spawn((faulty, faulty_decision)));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    hold.commit().await.unwrap();

    let mut committed = 0;
    for task in tasks {
        let (id, answer) = task.await.unwrap();
        if id == faulty {
            let error = answer.expect_err("the faulty unit's event is refused");
            assert!(
                error.to_string().contains("event refused by the test"),
                "{error}"
            );
            assert_eq!(events::list(store.db(), id).await.unwrap(), faulty_history);
            let project = projects::snapshot(store.db(), id).await.unwrap().project;
            assert_eq!((project.state.as_str(), project.version), ("invited", 1));
            continue;
        }
        let answer = answer.unwrap_or_else(|e| panic!("project {id}: {e}"));
        assert_eq!(answer.snapshot.project.version, 2);
        let events = events::list(store.db(), id).await.unwrap();
        assert_eq!(events.len(), 2, "events of project {id}");
        assert_eq!(events[1].to_state.as_deref(), Some("interest_expressed"));
        committed += 1;
    }
    assert_eq!(committed, regions.len() - 1);
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}

/// SQLite's log is copied back into the database file by the store's own checkpoints, after commits, not
/// by the commits themselves (they would make their whole batch wait): the file grows with the programme's
/// data though no commit came near SQLite's threshold and nobody asked for a checkpoint.
#[tokio::test]
async fn the_log_is_checkpointed_off_the_commit_path() {
    let db = common::sqlite().await;
    let file = db.data_dir().join("incubator.sqlite3");
    let store = db.store().await;
    deploy_anssi(&store).await;
    let before = std::fs::metadata(&file).unwrap().len();
    let regions = [
        "11", "24", "27", "28", "32", "44", "52", "53", "75", "76", "84", "93", "94",
    ];
    for region in regions {
        let id = create(&store, region).await;
        fire(&store, id, "express_interest", council(), None)
            .await
            .unwrap();
    }
    let waited_since = std::time::Instant::now();
    let after = loop {
        let after = std::fs::metadata(&file).unwrap().len();
        if after > before || waited_since.elapsed() > std::time::Duration::from_secs(10) {
            break after;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        after > before,
        "the database file stayed at {before} bytes: nothing was checkpointed"
    );
}

/// On SQLite the writer has a connection of its own: readers holding every pooled connection (long
/// exports, a slow page) delay no write.
#[tokio::test]
async fn writes_go_on_while_readers_hold_every_pooled_connection() {
    let mut db = common::sqlite().await;
    db.config.max_connections = 2;
    db.config.acquire_timeout = std::time::Duration::from_secs(1);
    let store = db.store().await;
    deploy_anssi(&store).await;
    let held = [
        store.db().begin().await.unwrap(),
        store.db().begin().await.unwrap(),
    ];
    let id = tokio::time::timeout(std::time::Duration::from_secs(10), create(&store, "53"))
        .await
        .expect("the write waited for a pooled connection");
    drop(held);
    assert_eq!(
        projects::find(store.db(), id).await.unwrap().region_code,
        "53"
    );
}

/// PostgreSQL restarted (or a proxy in between cut every connection) while the store sat idle: its first
/// reads and writes afterwards are served on new connections, not answered with the dead ones' errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_dropped_while_idle_are_replaced() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "53").await;
    fire(&store, id, "express_interest", council(), None)
        .await
        .unwrap();
    let admin = sea_orm::Database::connect(db.url()).await.unwrap();
    let dropped = admin
        .query_all(Statement::from_string(
            admin.get_database_backend(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap();
    assert!(
        dropped.len() >= 2,
        "the store's reader and writer connections: {}",
        dropped.len()
    );
    // Past the time a connection used moments ago is trusted without a ping.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let version = fire(&store, id, "open_identification", officer(), None).await;
    assert!(version.is_ok(), "the first write afterwards: {version:?}");
    create(&store, "75").await;
}

/// The start-up sweep of evidence files: it removes the old files no row names (an upload cut by a crash
/// before its row) and old temporary files, and spares a file a row names, a young file (an upload on its
/// way to its row), and a named file a sweep cut short had set aside, which it puts back.
#[tokio::test]
async fn the_sweep_removes_only_old_files_no_row_names() {
    let db = common::sqlite().await;
    let store = db.store().await;
    deploy_anssi(&store).await;
    let id = create(&store, "53").await;
    upload_and_accept(&store, id, "council_backed").await;
    let named = incubator_store::blobs::BlobStore::sha256(b"%PDF-1.7 evidence for council_backed");
    let blobs = store.blobs();
    let orphan = blobs
        .put(b"%PDF-1.7 cut before its row".to_vec())
        .await
        .unwrap();
    let young = blobs.put(b"%PDF-1.7 on its way".to_vec()).await.unwrap();
    let [named_path, orphan_path, young_path] =
        [&named, &orphan, &young].map(|sha256| blobs.path_of(sha256).unwrap());
    let temporary = orphan_path.with_file_name(".tmpA1b2C3");
    std::fs::write(&temporary, b"%PDF-1.7 half").unwrap();
    let set_aside = named_path.with_file_name(format!("{named}.sweeping"));
    std::fs::rename(&named_path, &set_aside).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for path in [&set_aside, &orphan_path, &temporary] {
        let file = std::fs::File::open(path).unwrap();
        file.set_modified(an_hour_ago).unwrap();
    }

    let removed = blobs
        .sweep(store.db(), std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(!orphan_path.exists() && !temporary.exists());
    assert!(named_path.is_file() && !set_aside.exists(), "put back");
    assert!(young_path.is_file());

    // Storing bytes already there freshens their file: a sweep now spares it until its row commits.
    let stale = blobs
        .put(b"%PDF-1.7 stored long ago".to_vec())
        .await
        .unwrap();
    let stale_path = blobs.path_of(&stale).unwrap();
    std::fs::File::open(&stale_path)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    blobs
        .put(b"%PDF-1.7 stored long ago".to_vec())
        .await
        .unwrap();
    let removed = blobs
        .sweep(store.db(), std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(removed, 0);
    assert!(stale_path.is_file());
}

/// The documents' list reads every review of the project at once: each document must come with its own
/// latest review, as reading it alone gives, and nothing of another project's.
async fn a_documents_list_carries_each_ones_latest_review(db: &TestDb) {
    use incubator_store::documents::{
        ReviewDecision, ReviewDocument, latest_review, list_reviewed,
    };
    let store = db.store().await;
    common::deploy_anssi(&store).await;
    let ours = common::create(&store, "11").await;
    let theirs = common::create(&store, "53").await;
    let review = |project_id: i64, document_id: i64, decision: ReviewDecision, day: u32| {
        let store = store.clone();
        async move {
            store
                .write(ReviewDocument {
                    registry: store.workflows().clone(),
                    project_id,
                    document_id,
                    decision,
                    comment: Some(format!("revu le {day}")),
                    actor: "user:1".into(),
                    now: common::at(2021, 5, day),
                })
                .await
                .unwrap();
        }
    };
    let first = common::upload(&store, ours, "regional_perimeter", "premier")
        .await
        .id;
    let second = common::upload(&store, ours, "regional_perimeter", "second")
        .await
        .id;
    let elsewhere = common::upload(&store, theirs, "regional_perimeter", "ailleurs")
        .await
        .id;
    let unreviewed = common::upload(&store, ours, "regional_perimeter", "en-attente")
        .await
        .id;
    review(ours, first, ReviewDecision::Rejected, 2).await;
    review(theirs, elsewhere, ReviewDecision::Rejected, 3).await;
    review(ours, second, ReviewDecision::Rejected, 4).await;
    review(ours, first, ReviewDecision::Accepted, 5).await;

    let listed = list_reviewed(store.db(), ours).await.unwrap();
    let ids: Vec<i64> = listed.iter().map(|(d, _)| d.id).collect();
    assert_eq!(ids, [first, second, unreviewed]);
    let decisions: Vec<Option<&str>> = listed
        .iter()
        .map(|(_, r)| r.as_ref().map(|r| r.decision.as_str()))
        .collect();
    assert_eq!(decisions, [Some("accepted"), Some("rejected"), None]);
    for (document, review) in &listed {
        let alone = latest_review(store.db(), document.id).await.unwrap();
        assert_eq!(review, &alone, "document {}", document.id);
    }
}

/// Reviews, uploads and field patches carry no version: fired together at one project they must queue
/// behind each other, every one committed with its own event (on PostgreSQL a review once ran beside a
/// patch and the two took the same event number).
async fn reviews_and_patches_of_one_project_queue_instead_of_colliding(db: &TestDb) {
    use incubator_store::documents::{RecordDocument, ReviewDecision, ReviewDocument};
    let store = db.store().await;
    common::deploy_anssi(&store).await;
    let id = common::create(&store, "11").await;
    let mut documents = Vec::new();
    for i in 0..20 {
        let bytes = format!("%PDF-1.7 délibération {i}").into_bytes();
        let size = bytes.len() as i64;
        let sha256 = store.blobs().put(bytes).await.unwrap();
        let doc = store
            .write(RecordDocument {
                registry: store.workflows().clone(),
                project_id: id,
                requirement: "regional_perimeter".into(),
                filename: format!("deliberation-{i}.pdf"),
                media_type: "application/pdf".into(),
                size,
                sha256,
                expires_on: None,
                awaits_scan: false,
                actor: "user:2".into(),
                now: common::at(2021, 5, 1),
            })
            .await
            .unwrap();
        documents.push(doc.id);
    }
    let before = events::list(store.db(), id).await.unwrap().len();
    let mut writes = tokio::task::JoinSet::new();
    for (i, document_id) in documents.into_iter().enumerate() {
        let review = store.clone();
        writes.spawn(async move {
            review
                .write(ReviewDocument {
                    registry: review.workflows().clone(),
                    project_id: id,
                    document_id,
                    decision: ReviewDecision::Rejected,
                    comment: Some(format!("illisible ({i})")),
                    actor: "user:1".into(),
                    now: common::at(2021, 5, 2),
                })
                .await
                .map(|_| ())
        });
        let patch = store.clone();
        writes.spawn(async move {
            patch
                .write(PatchFields {
                    registry: patch.workflows().clone(),
                    project_id: id,
                    patch: BTreeMap::from([("carrier_name".to_owned(), json!(format!("GIP {i}")))]),
                    actor: "user:2".into(),
                    now: common::at(2021, 5, 2),
                })
                .await
                .map(|_| ())
        });
    }
    while let Some(done) = writes.join_next().await {
        done.unwrap().expect("every write commits");
    }
    let history = events::list(store.db(), id).await.unwrap();
    assert_eq!(history.len(), before + 40);
    assert_eq!(audit::verify(store.db()).await.unwrap().broken, None);
}
