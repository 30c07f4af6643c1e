//! Projects: one workflow instance per region and workflow. Every write is a [`UnitOfWork`] that the
//! committer runs inside a shared transaction.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use incubator_engine::{
    Actor, CohortInfo, CorrectionKind, Decision, Facts, FireRequest, Instance, RequirementStatus,
    Workflow,
};
use sea_orm::sea_query::{Expr, OnConflict, SimpleExpr};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QueryResult, QueryTrait, SelectTwoModel,
    SelectorTrait, Set, Statement,
};
use serde_json::json;

use crate::Store;
use crate::audit::normalize;
use crate::batch::Batch;
use crate::committer::UnitOfWork;
use crate::entities::events;
use crate::entities::{
    cohorts, deadlines, document_reviews, documents, links, projects, regions, requirements, users,
};
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::id_lists::in_ids;
use crate::outbox;
use crate::prepared::Prepared;
use crate::round::{self, Mail, ROUND_MAX, TransitionRows};
use crate::workflows::WorkflowRegistry;

/// A project as read in one consistent view: its row, typed facts, requirements, cohort and deadlines.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub project: projects::Model,
    pub facts: Facts,
    /// The requirements with a document (absent ones are missing). Their status depends on the day: read
    /// it through [`Snapshot::requirement_status`].
    pub requirements: BTreeMap<String, RequirementRecord>,
    pub cohort: Option<cohorts::Model>,
    pub deadlines: Vec<deadlines::Model>,
}

/// One requirement as stored: the status its reviews left, the expiry of its accepted evidence, and the
/// correction it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementRecord {
    pub stored: RequirementStatus,
    pub expires_on: Option<NaiveDate>,
    pub correction: Option<Correction>,
}

/// A correction the region owes on a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub kind: CorrectionKind,
    pub comment: String,
    pub due_on: NaiveDate,
    /// The document the correction was asked on.
    pub document_id: i64,
    /// The stage deadline it paused until the region answers.
    pub paused_deadline: Option<String>,
}

impl Snapshot {
    /// A requirement's status at `now`: the stored one, except that accepted evidence past its expiry date
    /// reads expired (the engine's rule). The API, the pages and the guards all read it here.
    pub fn requirement_status(
        &self,
        workflow: &Workflow,
        key: &str,
        now: DateTime<Utc>,
    ) -> RequirementStatus {
        self.requirements
            .get(key)
            .map_or(RequirementStatus::Missing, |r| {
                workflow.requirement_status_at(r.stored, r.expires_on, now)
            })
    }

    /// What the engine needs to decide at `now`, with nothing of the storage.
    pub fn instance(
        &self,
        workflow: &Workflow,
        now: DateTime<Utc>,
        child_completed: bool,
    ) -> Instance {
        Instance {
            state: self.project.state.clone(),
            entered_at: self.project.state_entered_at,
            facts: self.facts.clone(),
            requirements: self
                .requirements
                .keys()
                .map(|k| (k.clone(), self.requirement_status(workflow, k, now)))
                .collect(),
            cohort: self.cohort.as_ref().map(|c| CohortInfo {
                id: c.id.to_string(),
                starts_on: c.starts_on,
            }),
            child_completed,
        }
    }
}

pub async fn find(db: &impl ConnectionTrait, id: i64) -> StoreResult<projects::Model> {
    projects::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(StoreError::ProjectNotFound(id))
}

pub async fn snapshot(db: &impl ConnectionTrait, id: i64) -> StoreResult<Snapshot> {
    let mut snap = decision_view_by_id(db, id).await?;
    snap.deadlines = live_deadlines(db, id).await?;
    Ok(snap)
}

pub async fn snapshot_of(
    db: &impl ConnectionTrait,
    project: projects::Model,
) -> StoreResult<Snapshot> {
    let mut snap = decision_view(db, project).await?;
    snap.deadlines = live_deadlines(db, snap.project.id).await?;
    Ok(snap)
}

/// Several projects' snapshots and relatives, in the projects' order, read in a few statements whatever
/// their number (the programme's lists and dashboard show every region at once). The reads are not one
/// transaction: like the single-project reads, each project's parts are what was committed when read.
pub async fn snapshots_of_many(
    db: &impl ConnectionTrait,
    projects: Vec<projects::Model>,
) -> StoreResult<Vec<(Snapshot, Relatives)>> {
    let ids: Vec<i64> = projects.iter().map(|p| p.id).collect();
    let kin: Vec<Kin> = projects.iter().map(Kin::of).collect();
    let rows = all_in(db, requirements::Column::ProjectId, &ids, |within| {
        requirements::Entity::find().filter(within)
    })
    .await?;
    let views = views_of(db, projects, rows).await?;
    let live = all_in(db, deadlines::Column::ProjectId, &ids, |within| {
        deadlines::Entity::find()
            .filter(within)
            .filter(deadlines::Column::ClearedAt.is_null())
    })
    .await?;
    let mut deadlines = group_by(live, |d| d.project_id);
    let mut relatives = relatives_of_many(db, kin).await?;
    views
        .into_iter()
        .map(|(id, view)| {
            let mut snapshot = view?;
            // In the order the single-project read gives.
            snapshot.deadlines = deadlines.remove(&id).unwrap_or_default();
            snapshot.deadlines.sort_by_key(|d| (d.due_at, d.id));
            let kin = Kin::of(&snapshot.project);
            let relatives = relatives.remove(&kin).unwrap_or_default();
            Ok((snapshot, relatives))
        })
        .collect()
}

/// Which project a [`Relatives`] read is for: the project and its parent, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kin {
    pub project_id: i64,
    pub parent_id: Option<i64>,
}

impl Kin {
    pub fn of(project: &projects::Model) -> Self {
        Self {
            project_id: project.id,
            parent_id: project.parent_project_id,
        }
    }
}

/// Several projects' [`Relatives`], read in at most three statements whatever their number (parents, children,
/// links; none for parents when no project has one), each as
/// [`relatives`] gives it alone: what the store runs for the requests that ask at the same time
/// ([`Store::relatives`]) and what the programme's lists show.
pub async fn relatives_of_many(
    db: &impl ConnectionTrait,
    kin: Vec<Kin>,
) -> StoreResult<HashMap<Kin, Relatives>> {
    if let [one] = kin[..] {
        // Alone, statements of one id, prepared once for every request (one query on SQLite).
        return Ok(HashMap::from([(one, relatives(db, one).await?)]));
    }
    let ids: Vec<i64> = kin.iter().map(|k| k.project_id).collect();
    let parent_ids: Vec<i64> = kin.iter().filter_map(|k| k.parent_id).collect();
    let parents: BTreeMap<i64, projects::Model> =
        all_in(db, projects::Column::Id, &parent_ids, |within| {
            projects::Entity::find().filter(within)
        })
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let started = all_in(db, projects::Column::ParentProjectId, &ids, |within| {
        projects::Entity::find().filter(within)
    })
    .await?;
    let children = group_by(started, |c| c.parent_project_id.unwrap_or_default());
    let signed = all_in(db, links::Column::ProjectId, &ids, |within| {
        links::Entity::find().filter(within)
    })
    .await?;
    let links = group_by(signed, |l| l.project_id);
    Ok(kin
        .into_iter()
        .map(|kin| {
            // In the orders the single-project read gives.
            let mut children = children.get(&kin.project_id).cloned().unwrap_or_default();
            children.sort_by_key(|c| c.id);
            let mut links = links.get(&kin.project_id).cloned().unwrap_or_default();
            links.sort_by_key(|l| std::cmp::Reverse(l.id));
            let relatives = Relatives {
                parent: kin.parent_id.and_then(|p| parents.get(&p).cloned()),
                children,
                links,
            };
            (kin, relatives)
        })
        .collect())
}

/// The rows `query` selects given `column IN ids` (none, without a statement, for no ids).
async fn all_in<E: EntityTrait>(
    db: &impl ConnectionTrait,
    column: E::Column,
    ids: &[i64],
    query: impl FnOnce(SimpleExpr) -> sea_orm::Select<E>,
) -> StoreResult<Vec<E::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let within = in_ids(db.get_database_backend(), column, ids);
    Ok(query(within).all(db).await?)
}

fn group_by<T>(rows: Vec<T>, key: impl Fn(&T) -> i64) -> BTreeMap<i64, Vec<T>> {
    let mut groups: BTreeMap<i64, Vec<T>> = BTreeMap::new();
    for row in rows {
        groups.entry(key(&row)).or_default().push(row);
    }
    groups
}

/// The deadlines not cleared, soonest first.
async fn live_deadlines(
    db: &impl ConnectionTrait,
    project_id: i64,
) -> StoreResult<Vec<deadlines::Model>> {
    let statement = live_deadlines_statement(db.get_database_backend(), project_id);
    Ok(deadlines::Entity::find()
        .from_raw_sql(statement)
        .all(db)
        .await?)
}

fn live_deadlines_statement(backend: sea_orm::DbBackend, project_id: i64) -> Statement {
    static TEXT: Prepared = Prepared::new();
    TEXT.statement(backend, vec![project_id.into()], |backend| {
        deadlines::Entity::find()
            .filter(deadlines::Column::ProjectId.eq(project_id))
            .filter(deadlines::Column::ClearedAt.is_null())
            .order_by_asc(deadlines::Column::DueAt)
            .build(backend)
    })
}

/// What a decision needs (facts, requirements, cohort) without the deadlines, which no decision reads.
pub(crate) async fn decision_view(
    db: &impl ConnectionTrait,
    project: projects::Model,
) -> StoreResult<Snapshot> {
    let rows = requirements::Entity::find()
        .filter(requirements::Column::ProjectId.eq(project.id))
        .all(db)
        .await?;
    only_view(views_of(db, vec![project], rows).await?)
}

/// [`decision_view`] of the project `id`, its row and its requirements read in one statement: every
/// write to a project starts here.
pub(crate) async fn decision_view_by_id(
    db: &impl ConnectionTrait,
    id: i64,
) -> StoreResult<Snapshot> {
    static QUERY: Prepared = Prepared::new();
    let statement = QUERY.statement(db.get_database_backend(), vec![id.into()], |backend| {
        projects::Entity::find_by_id(id)
            .find_with_related(requirements::Entity)
            .build(backend)
    });
    let mut project = None;
    let mut rows = Vec::new();
    for row in db.query_all(statement).await? {
        let (found, requirement) =
            SelectTwoModel::<projects::Model, requirements::Model>::from_raw_query_result(row)?;
        project.get_or_insert(found);
        rows.extend(requirement);
    }
    let project = project.ok_or(StoreError::ProjectNotFound(id))?;
    only_view(views_of(db, vec![project], rows).await?)
}

/// The views decisions are taken on ([`Store::decision_view`]) of several projects, read together: what
/// the store runs for the requests that ask at the same time. A project not found is left out.
pub async fn decision_views(
    db: &impl ConnectionTrait,
    ids: Vec<i64>,
) -> StoreResult<HashMap<i64, StoreResult<Snapshot>>> {
    if let [id] = ids[..] {
        // Alone, the statement of one id, prepared once for every request.
        return Ok(match decision_view_by_id(db, id).await {
            Err(StoreError::ProjectNotFound(_)) => HashMap::new(),
            view => HashMap::from([(id, view)]),
        });
    }
    let found = projects::Entity::find()
        .filter(in_ids(
            db.get_database_backend(),
            projects::Column::Id,
            &ids,
        ))
        .find_with_related(requirements::Entity)
        .all(db)
        .await?;
    let (projects, rows): (Vec<_>, Vec<_>) = found.into_iter().unzip();
    let views = views_of(db, projects, rows.into_iter().flatten().collect()).await?;
    Ok(views.into_iter().collect())
}

/// The one view [`views_of`] gave for one project.
fn only_view(views: Vec<(i64, StoreResult<Snapshot>)>) -> StoreResult<Snapshot> {
    views
        .into_iter()
        .next()
        .map(|(_, view)| view)
        .unwrap_or_else(|| Err(StoreError::Corrupt("a project's view went missing".into())))
}

/// The projects' views without deadlines, in their order, from their rows and all their requirements' rows:
/// the requirements' records and the cohorts read in one statement each whatever the projects' number.
/// A project whose stored facts do not parse gets its own error.
async fn views_of(
    db: &impl ConnectionTrait,
    projects: Vec<projects::Model>,
    requirement_rows: Vec<requirements::Model>,
) -> StoreResult<Vec<(i64, StoreResult<Snapshot>)>> {
    let mut requirements = requirement_records_by_project(db, requirement_rows).await?;
    let cohort_ids: Vec<i64> = projects.iter().filter_map(|p| p.cohort_id).collect();
    let cohorts: BTreeMap<i64, cohorts::Model> =
        all_in(db, cohorts::Column::Id, &cohort_ids, |within| {
            cohorts::Entity::find().filter(within)
        })
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    Ok(projects
        .into_iter()
        .map(|project| {
            let id = project.id;
            let view = serde_json::from_str(&project.facts)
                .map_err(|e| StoreError::Corrupt(format!("facts of project {id}: {e}")))
                .map(|facts: Facts| Snapshot {
                    cohort: project.cohort_id.and_then(|c| cohorts.get(&c).cloned()),
                    requirements: requirements.remove(&id).unwrap_or_default(),
                    facts,
                    deadlines: Vec::new(),
                    project,
                });
            (id, view)
        })
        .collect())
}

/// The requirements' records, by project, with the expiry of their accepted evidence and their open
/// correction, in at most two statements whatever their number.
async fn requirement_records_by_project(
    db: &impl ConnectionTrait,
    rows: Vec<requirements::Model>,
) -> StoreResult<BTreeMap<i64, BTreeMap<String, RequirementRecord>>> {
    let accepted: Vec<i64> = rows.iter().filter_map(|r| r.accepted_document_id).collect();
    let expiries: BTreeMap<i64, NaiveDate> =
        all_in(db, documents::Column::Id, &accepted, |within| {
            documents::Entity::find().filter(within)
        })
        .await?
        .into_iter()
        .filter_map(|d| Some((d.id, d.expires_on?)))
        .collect();
    let asked: Vec<i64> = rows.iter().filter_map(|r| r.correction_review_id).collect();
    let corrections: BTreeMap<i64, Correction> =
        all_in(db, document_reviews::Column::Id, &asked, |within| {
            document_reviews::Entity::find().filter(within)
        })
        .await?
        .into_iter()
        .map(|review| Ok((review.id, correction_of(review)?)))
        .collect::<StoreResult<_>>()?;
    let mut by_project: BTreeMap<i64, BTreeMap<String, RequirementRecord>> = BTreeMap::new();
    for r in rows {
        let record = RequirementRecord {
            stored: parse_status(&r.status)?,
            expires_on: r
                .accepted_document_id
                .and_then(|d| expiries.get(&d).copied()),
            correction: r
                .correction_review_id
                .and_then(|c| corrections.get(&c).cloned()),
        };
        by_project
            .entry(r.project_id)
            .or_default()
            .insert(r.key, record);
    }
    Ok(by_project)
}

/// The correction a `correction_requested` review asked for.
pub(crate) fn correction_of(review: document_reviews::Model) -> StoreResult<Correction> {
    let corrupt = || StoreError::Corrupt(format!("correction review {} is incomplete", review.id));
    let kind = review
        .correction_kind
        .as_deref()
        .and_then(CorrectionKind::parse)
        .ok_or_else(corrupt)?;
    Ok(Correction {
        kind,
        comment: review.comment.clone().ok_or_else(corrupt)?,
        due_on: review.due_on.ok_or_else(corrupt)?,
        document_id: review.document_id,
        paused_deadline: review.paused_deadline,
    })
}

pub fn status_name(status: RequirementStatus) -> &'static str {
    match status {
        RequirementStatus::Missing => "missing",
        RequirementStatus::Pending => "pending",
        RequirementStatus::Accepted => "accepted",
        RequirementStatus::Rejected => "rejected",
        RequirementStatus::CorrectionRequested => "correction_requested",
        RequirementStatus::Expired => "expired",
    }
}

pub(crate) fn parse_status(s: &str) -> StoreResult<RequirementStatus> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("unknown requirement status `{s}`")))
}

/// Filters for listing projects.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    pub state: Option<String>,
    pub region_code: Option<String>,
    pub workflow_id: Option<String>,
}

pub async fn list(
    db: &impl ConnectionTrait,
    filter: &ProjectFilter,
) -> StoreResult<Vec<projects::Model>> {
    let mut query = projects::Entity::find().order_by_asc(projects::Column::RegionCode);
    if let Some(state) = &filter.state {
        query = query.filter(projects::Column::State.eq(state.as_str()));
    }
    if let Some(region) = &filter.region_code {
        query = query.filter(projects::Column::RegionCode.eq(region.as_str()));
    }
    if let Some(workflow) = &filter.workflow_id {
        query = query.filter(projects::Column::WorkflowId.eq(workflow.as_str()));
    }
    Ok(query.all(db).await?)
}

/// Creates a region's project on the newest version of a workflow, in its initial state.
#[derive(Debug)]
pub struct CreateProject {
    pub registry: Arc<WorkflowRegistry>,
    pub region_code: String,
    pub workflow_id: String,
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for CreateProject {
    type Output = i64;

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<i64> {
        insert_project(
            txn,
            &self.registry,
            &self.region_code,
            &self.workflow_id,
            &self.actor,
            normalize(self.now),
            None,
        )
        .await
    }
}

/// The transition of a parent project that starts a child project, as the child's first event records it.
#[derive(Debug, Clone, Copy)]
struct StartedBy<'a> {
    parent: &'a projects::Model,
    decision: &'a Decision,
}

/// Inserts a project in the initial state of the newest version of `workflow_id`, with its `created` event,
/// deadlines and mails, then starts the initial state's own child workflow if it names one.
async fn insert_project(
    txn: &DatabaseTransaction,
    registry: &Arc<WorkflowRegistry>,
    region_code: &str,
    workflow_id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
    started_by: Option<StartedBy<'_>>,
) -> StoreResult<i64> {
    let region = regions::Entity::find_by_id(region_code.to_owned())
        .one(txn)
        .await?
        .ok_or_else(|| StoreError::UnknownRegion(region_code.to_owned()))?;
    let workflow = registry.latest(txn, workflow_id).await?;
    if let Some(existing) = projects::Entity::find()
        .filter(projects::Column::RegionCode.eq(region.code.as_str()))
        .filter(projects::Column::WorkflowId.eq(workflow_id))
        .one(txn)
        .await?
    {
        return Err(StoreError::ProjectExists {
            region: region.code,
            workflow: workflow_id.to_owned(),
            existing: existing.id,
        });
    }
    let decision = workflow.start(actor, now);
    let inserted = projects::Entity::insert(projects::ActiveModel {
        id: NotSet,
        region_code: Set(region.code.clone()),
        workflow_id: Set(workflow_id.to_owned()),
        workflow_version: Set(workflow.version() as i32),
        state: Set(decision.to.clone()),
        state_entered_at: Set(now),
        facts: Set("{}".into()),
        cohort_id: Set(None),
        version: Set(0),
        last_event_hash: Set(crate::audit::GENESIS_HASH.into()),
        last_event_seq: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        parent_project_id: Set(started_by.map(|s| s.parent.id)),
    })
    .exec(txn)
    .await?;
    let project = find(txn, inserted.last_insert_id).await?;
    let mut changes = json!({ "region_code": region.code, "workflow": workflow_id,
                              "workflow_version": workflow.version() });
    if let Some(started_by) = started_by {
        // The parent's transition event is the next of its chain, written in this same transaction.
        changes["started_by"] = json!({
            "project_id": started_by.parent.id,
            "workflow": started_by.parent.workflow_id,
            "transition": started_by.decision.transition,
            "event_seq": started_by.parent.last_event_seq + 1,
        });
    }
    let child = start_child(txn, registry, &workflow, &project, &decision).await?;
    if let Some(child) = child {
        changes["child_project_id"] = json!(child);
    }
    apply(
        txn,
        &workflow,
        &project,
        &decision,
        NewEvent::transition("created", &decision, changes),
    )
    .await?;
    Ok(project.id)
}

/// Starts the child workflow of the state `decision` enters, if it names one: a project of the same region
/// on the child workflow's newest version, linked to `parent`. A child this parent started before (the state
/// entered again) is kept; a project of that workflow the region runs on its own refuses the transition.
/// Boxed with its `Send` bound spelt out: a child's initial state may start a child in turn.
fn start_child<'a>(
    txn: &'a DatabaseTransaction,
    registry: &'a Arc<WorkflowRegistry>,
    workflow: &'a Workflow,
    parent: &'a projects::Model,
    decision: &'a Decision,
) -> Pin<Box<dyn Future<Output = StoreResult<Option<i64>>> + Send + 'a>> {
    Box::pin(start_child_now(txn, registry, workflow, parent, decision))
}

async fn start_child_now(
    txn: &DatabaseTransaction,
    registry: &Arc<WorkflowRegistry>,
    workflow: &Workflow,
    parent: &projects::Model,
    decision: &Decision,
) -> StoreResult<Option<i64>> {
    let Some(child_workflow) = workflow
        .state(&decision.to)
        .and_then(|s| s.child.as_deref())
    else {
        return Ok(None);
    };
    if let Some(existing) = projects::Entity::find()
        .filter(projects::Column::RegionCode.eq(parent.region_code.as_str()))
        .filter(projects::Column::WorkflowId.eq(child_workflow))
        .one(txn)
        .await?
    {
        if existing.parent_project_id == Some(parent.id) {
            return Ok(Some(existing.id));
        }
        return Err(StoreError::ChildExists {
            state: decision.to.clone(),
            workflow: child_workflow.to_owned(),
            existing: existing.id,
        });
    }
    let actor = Actor {
        id: decision.actor.clone(),
        roles: Vec::new(),
    };
    let started_by = StartedBy { parent, decision };
    let id = insert_project(
        txn,
        registry,
        &parent.region_code,
        child_workflow,
        &actor,
        decision.at,
        Some(started_by),
    )
    .await?;
    Ok(Some(id))
}

/// Whether the child workflow of the project's current state has a child project in a success state.
pub async fn child_completed(
    db: &impl ConnectionTrait,
    registry: &WorkflowRegistry,
    workflow: &Workflow,
    project: &projects::Model,
) -> StoreResult<bool> {
    if workflow
        .state(&project.state)
        .is_none_or(|s| s.child.is_none())
    {
        return Ok(false);
    }
    let children = children(db, project.id).await?;
    child_completed_among(db, registry, workflow, project, &children).await
}

/// [`child_completed`], the project's children read already.
pub async fn child_completed_among(
    db: &impl ConnectionTrait,
    registry: &WorkflowRegistry,
    workflow: &Workflow,
    project: &projects::Model,
    children: &[projects::Model],
) -> StoreResult<bool> {
    let Some(child_workflow) = workflow
        .state(&project.state)
        .and_then(|s| s.child.as_deref())
    else {
        return Ok(false);
    };
    for child in children {
        if child.workflow_id != child_workflow {
            continue;
        }
        let definition = registry
            .get(db, &child.workflow_id, child.workflow_version)
            .await?;
        if definition
            .state(&child.state)
            .is_some_and(|s| s.is_success())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The projects a project's transitions started, oldest first.
pub async fn children(
    db: &impl ConnectionTrait,
    parent_id: i64,
) -> StoreResult<Vec<projects::Model>> {
    Ok(children_query(parent_id).all(db).await?)
}

fn children_query(parent_id: i64) -> sea_orm::Select<projects::Entity> {
    projects::Entity::find()
        .filter(projects::Column::ParentProjectId.eq(parent_id))
        .order_by_asc(projects::Column::Id)
}

/// What a project's view shows around it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relatives {
    /// The project whose transition started this one.
    pub parent: Option<projects::Model>,
    /// The projects this one's transitions started, oldest first.
    pub children: Vec<projects::Model>,
    /// Its signed links, newest first.
    pub links: Vec<links::Model>,
}

/// A project's [`Relatives`], read together (one query on SQLite).
pub async fn relatives(db: &impl ConnectionTrait, kin: Kin) -> StoreResult<Relatives> {
    let mut reads = Batch::unguarded(db.get_database_backend());
    read_relatives(&mut reads, kin);
    let mut relatives = Relatives::default();
    for row in reads.run(db).await? {
        // Only project rows have a `workflow_id`; the rest are links.
        if row.try_get::<String>("", "workflow_id").is_ok() {
            let read = projects::Model::from_query_result(&row, "")?;
            if Some(read.id) == kin.parent_id {
                relatives.parent = Some(read);
            } else {
                relatives.children.push(read);
            }
        } else {
            relatives
                .links
                .push(links::Model::from_query_result(&row, "")?);
        }
    }
    Ok(relatives)
}

/// Adds the reads of the project's [`Relatives`] to a batch.
fn read_relatives(batch: &mut Batch, kin: Kin) {
    static PARENT: Prepared = Prepared::new();
    static CHILDREN: Prepared = Prepared::new();
    static LINKS: Prepared = Prepared::new();
    let backend = batch.backend();
    let id = kin.project_id;
    if let Some(parent_id) = kin.parent_id {
        batch.read_after(
            PARENT.statement(backend, vec![parent_id.into()], |backend| {
                projects::Entity::find_by_id(parent_id).build(backend)
            }),
        );
    }
    batch.read_after(CHILDREN.statement(backend, vec![id.into()], |backend| {
        children_query(id).build(backend)
    }));
    batch.read_after(LINKS.statement(backend, vec![id.into()], |backend| {
        crate::links::list_query(id).build(backend)
    }));
}

/// The rows of one batch about a project, each told by its columns and ids.
#[derive(Debug, Default)]
struct Sorted {
    /// The project's own row (a bump's guard).
    project: Option<projects::Model>,
    deadlines: Vec<deadlines::Model>,
    relatives: Relatives,
}

fn sort_rows(project: &projects::Model, rows: Vec<QueryResult>) -> StoreResult<Sorted> {
    let mut sorted = sort_rows_of(&[project], rows)?;
    Ok(sorted.pop().unwrap_or_default())
}

/// The rows of one round about several projects, told apart by their keys (see
/// [`WriteDecision::may_join`]): a project row is one's own, its parent or one of its children.
fn sort_rows_of(projects: &[&projects::Model], rows: Vec<QueryResult>) -> StoreResult<Vec<Sorted>> {
    let mut sorted: Vec<Sorted> = projects.iter().map(|_| Sorted::default()).collect();
    let owner = |project_id: i64| {
        projects
            .iter()
            .position(|p| p.id == project_id)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("a row of project {project_id}, not asked for"))
            })
    };
    for row in rows {
        // Only project rows have a `workflow_id`, only deadlines a `key`; the rest are links.
        if row.try_get::<String>("", "workflow_id").is_ok() {
            let read = projects::Model::from_query_result(&row, "")?;
            if let Ok(own) = owner(read.id) {
                sorted[own].project = Some(read);
            } else if let Some(child) = projects
                .iter()
                .position(|p| p.parent_project_id == Some(read.id))
            {
                sorted[child].relatives.parent = Some(read);
            } else {
                let parent = owner(read.parent_project_id.unwrap_or(read.id))?;
                sorted[parent].relatives.children.push(read);
            }
        } else if row.try_get::<String>("", "key").is_ok() {
            let deadline = deadlines::Model::from_query_result(&row, "")?;
            sorted[owner(deadline.project_id)?].deadlines.push(deadline);
        } else {
            let link = links::Model::from_query_result(&row, "")?;
            sorted[owner(link.project_id)?].relatives.links.push(link);
        }
    }
    // Soonest first, as each read asked: a round's reads of one text may come as one, in any order.
    for one in &mut sorted {
        one.deadlines.sort_by_key(|d| (d.due_at, d.id));
    }
    Ok(sorted)
}

/// What the engine decides on: the snapshot with its child workflow's completion.
pub async fn instance_of(
    db: &impl ConnectionTrait,
    registry: &WorkflowRegistry,
    workflow: &Workflow,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> StoreResult<Instance> {
    let completed = child_completed(db, registry, workflow, &snapshot.project).await?;
    Ok(snapshot.instance(workflow, now, completed))
}

/// Fires a transition at the version the caller saw.
#[derive(Debug)]
pub struct FireTransition {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub expected_version: i64,
    pub request: FireRequest,
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for FireTransition {
    type Output = i64;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<i64> {
        Ok(self
            .fire(txn, None, ReadBack::Nothing)
            .await?
            .1
            .project
            .version)
    }
}

impl FireTransition {
    /// The decision on the project as `db` reads it, with the snapshot and workflow it was taken on. A
    /// project outside `region_scope`, when one is given, answers as a missing one.
    async fn decide(
        &self,
        db: &impl ConnectionTrait,
        region_scope: Option<&str>,
    ) -> StoreResult<(Snapshot, Arc<Workflow>, Decision)> {
        let snapshot = decision_view_by_id(db, self.project_id).await?;
        self.decide_on(db, snapshot, region_scope).await
    }

    /// [`FireTransition::decide`] on the project's view read already.
    async fn decide_on(
        &self,
        db: &impl ConnectionTrait,
        snapshot: Snapshot,
        region_scope: Option<&str>,
    ) -> StoreResult<(Snapshot, Arc<Workflow>, Decision)> {
        let now = normalize(self.now);
        let project = &snapshot.project;
        // Before anything about the project is told, even its version in a conflict.
        if region_scope.is_some_and(|region| region != project.region_code) {
            return Err(StoreError::ProjectNotFound(project.id));
        }
        if project.version != self.expected_version {
            return Err(StoreError::Conflict {
                project_id: project.id,
                expected: self.expected_version,
                current: project.version,
            });
        }
        let workflow = self
            .registry
            .get(db, &project.workflow_id, project.workflow_version)
            .await?;
        let instance = instance_of(db, &self.registry, &workflow, &snapshot, now).await?;
        let decision = workflow.fire(&instance, &self.request, &self.actor, now)?;
        Ok((snapshot, workflow, decision))
    }

    /// Fires and writes; returns what the decision was taken on and what the writes' round read back (the
    /// project row as written, always; the rest as `read_back` asks).
    async fn fire(
        &self,
        txn: &DatabaseTransaction,
        region_scope: Option<&str>,
        read_back: ReadBack,
    ) -> StoreResult<(Snapshot, Written)> {
        let (snapshot, workflow, decision) = self.decide(txn, region_scope).await?;
        let project = &snapshot.project;
        let changes = match start_child(txn, &self.registry, &workflow, project, &decision).await? {
            Some(child) => json!({ "child_project_id": child }),
            None => json!({}),
        };
        let written = apply_reading(
            txn,
            &workflow,
            project,
            &decision,
            NewEvent::transition("transition", &decision, changes),
            read_back,
        )
        .await?;
        Ok((snapshot, written))
    }
}

/// Fires a transition and answers with the project as this same transaction leaves it: what the caller is
/// shown is exactly what was committed, without reading the project again once the commit is done.
#[derive(Debug)]
pub struct FireTransitionAndRead {
    pub fire: FireTransition,
    /// The one region the caller may see (a council account's), if it is confined to one: the project is
    /// checked against it on the same read the decision is taken on.
    pub region_scope: Option<String>,
}

/// What [`FireTransitionAndRead`] answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The project as the transition left it.
    pub snapshot: Snapshot,
    /// Its relatives, when the writes' own round could read them (SQLite). On PostgreSQL they would cost
    /// the writer round trips of its own while it holds the project's lane: read them after the commit.
    pub relatives: Option<Relatives>,
}

#[async_trait::async_trait]
impl UnitOfWork for FireTransitionAndRead {
    type Output = Fired;

    fn project_id(&self) -> Option<i64> {
        self.fire.project_id()
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<Fired> {
        let read_back = ReadBack::for_answer(txn.get_database_backend());
        let (before, written) = self
            .fire
            .fire(txn, self.region_scope.as_deref(), read_back)
            .await?;
        Ok(Fired::of(before, written, read_back))
    }
}

impl Fired {
    /// A transition changes the project row and its deadlines; facts, requirements and cohort stay as the
    /// decision read them.
    fn of(before: Snapshot, written: Written, read_back: ReadBack) -> Self {
        Self {
            snapshot: Snapshot {
                project: written.project,
                deadlines: written.deadlines,
                ..before
            },
            relatives: (read_back == ReadBack::DeadlinesAndRelatives).then_some(written.relatives),
        }
    }
}

/// A transition decided before the writer is asked ([`decide`]), for [`write_decided`].
#[derive(Debug)]
pub struct Decided(Plan);

#[derive(Debug)]
enum Plan {
    Writes(Box<DecidedWrites>),
    /// A decision that starts a child project, which reads and writes more than a project's row: taken
    /// again inside the writer, as a whole.
    InWriter(FireTransitionAndRead),
}

/// The decision's writes, holding only on the project version it was taken on.
#[derive(Debug)]
struct DecidedWrites {
    before: Snapshot,
    unit: WriteDecision,
    read_back: ReadBack,
}

/// Decides a transition on the committed project as `db` reads it, outside the writer: the decision's
/// reads and the engine's work run on the caller's task, alongside other requests', and the writer is left
/// with only the writes. They hold only if the project is still at the version the decision read (the
/// bump's optimistic check; otherwise the caller gets the conflict it would have got a moment later): every
/// write to a project's row, requirements, documents or cohort raises that version, and cohorts, child
/// projects' completion and workflow versions, which it does not cover, never go back.
/// The project's view is read together with other requests' ([`Store::decision_view`]).
pub async fn decide(store: &Store, unit: FireTransitionAndRead) -> StoreResult<Decided> {
    let db = store.db();
    let snapshot = store.decision_view(unit.fire.project_id).await?;
    let (before, workflow, decision) = unit
        .fire
        .decide_on(db, snapshot, unit.region_scope.as_deref())
        .await?;
    if workflow
        .state(&decision.to)
        .is_some_and(|state| state.child.is_some())
    {
        return Ok(Decided(Plan::InWriter(unit)));
    }
    let read_back = ReadBack::for_answer(db.get_database_backend());
    let writes = Writes::new(
        db.get_database_backend(),
        &workflow,
        &before.project,
        &decision,
        NewEvent::transition("transition", &decision, json!({})),
        read_back,
    );
    let unit = WriteDecision {
        project: before.project.clone(),
        writes,
    };
    Ok(Decided(Plan::Writes(Box::new(DecidedWrites {
        before,
        unit,
        read_back,
    }))))
}

/// Has the writer write a decided transition; answers with the project as the writes left it.
pub async fn write_decided(store: &Store, decided: Decided) -> StoreResult<Fired> {
    match decided.0 {
        Plan::Writes(writes) => {
            let DecidedWrites {
                before,
                unit,
                read_back,
            } = *writes;
            Ok(Fired::of(before, store.write(unit).await?, read_back))
        }
        Plan::InWriter(unit) => store.write(unit).await,
    }
}

/// [`decide`] on the store's committed state, then [`write_decided`]: a request's transition.
pub async fn fire(store: &Store, unit: FireTransitionAndRead) -> StoreResult<Fired> {
    write_decided(store, decide(store, unit).await?).await
}

/// The writes of a decision taken outside the writer.
#[derive(Debug)]
pub(crate) struct WriteDecision {
    /// The row as the decision read it: the bump holds only on its version.
    project: projects::Model,
    writes: Writes,
}

#[async_trait::async_trait]
impl UnitOfWork for WriteDecision {
    type Output = Written;

    fn project_id(&self) -> Option<i64> {
        Some(self.project.id)
    }

    /// The bump, the batch's guard.
    fn writes_first(&self) -> bool {
        true
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<Written> {
        self.writes.run(txn, &self.project).await
    }
}

impl WriteDecision {
    /// Whether these writes may share a round with `others'` ([`write_together`]): on PostgreSQL, where a
    /// round is a round trip to the server and each write's start costs the server more than its few rows.
    /// On SQLite, measured, sharing saved nothing: a unit's time there is its statements' own work. The
    /// round's rows are told apart by project, so no two may be of one project, nor of a parent and its
    /// child, nor of two children of one parent (each would read it).
    pub(crate) fn may_join(&self, others: &[&WriteDecision]) -> bool {
        let (id, parent) = (self.project.id, self.project.parent_project_id);
        matches!(self.writes, Writes::Round(..))
            && others.len() < ROUND_MAX
            && others.iter().all(|other| {
                let (other_id, other_parent) = (other.project.id, other.project.parent_project_id);
                id != other_id
                    && parent != Some(other_id)
                    && other_parent != Some(id)
                    && (parent.is_none() || parent != other_parent)
            })
    }
}

/// Several decided writes in one round (see [`round`]): two round trips to PostgreSQL for them all (the
/// writes, then the deadlines they left) where each would take its own. The answer is each unit's, in
/// order; an error is the round's, in which case none of them can be told.
pub(crate) async fn write_together(
    txn: &DatabaseTransaction,
    units: &[&WriteDecision],
) -> StoreResult<Vec<StoreResult<Written>>> {
    let mut parts = Vec::with_capacity(units.len());
    let mut read_back = ReadBack::Nothing;
    for unit in units {
        match &unit.writes {
            Writes::Round(rows, asked) => {
                parts.push((&unit.project, &**rows));
                read_back = read_back.max(*asked);
            }
            Writes::Statements(_) => {
                return Err(StoreError::Corrupt(
                    "a round of writes of statements (SQLite's)".into(),
                ));
            }
        }
    }
    write_round(txn, &parts, read_back).await
}

/// The units' writes as one [`round`], each answered on its own: a unit whose bump did not hold (its
/// project moved since its decision) wrote nothing and gets its conflict.
async fn write_round(
    txn: &DatabaseTransaction,
    units: &[(&projects::Model, &TransitionRows)],
    read_back: ReadBack,
) -> StoreResult<Vec<StoreResult<Written>>> {
    debug_assert!(
        read_back != ReadBack::DeadlinesAndRelatives,
        "a round reads no relatives"
    );
    if let [(project, rows)] = units {
        // Alone, a change's writes cost PostgreSQL less as statements of their own (BENCHMARKS.md, session 13).
        let batch = transition_statements(txn.get_database_backend(), project, rows, read_back);
        let rows = batch.run(txn).await?;
        return Ok(vec![written(txn, project, sort_rows(project, rows)?).await]);
    }
    let rows = round::write(txn, units, read_back != ReadBack::Nothing).await?;
    let projects: Vec<&projects::Model> = units.iter().map(|(project, _)| *project).collect();
    let mut answers = Vec::with_capacity(units.len());
    for (project, sorted) in projects.iter().zip(sort_rows_of(&projects, rows)?) {
        answers.push(written(txn, project, sorted).await);
    }
    Ok(answers)
}

/// Writes a decision: the state change under the optimistic version check, the event, the deadlines and
/// the emails. Returns the project's new version.
pub(crate) async fn apply(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project: &projects::Model,
    decision: &Decision,
    event: NewEvent,
) -> StoreResult<i64> {
    let written = apply_reading(txn, workflow, project, decision, event, ReadBack::Nothing).await?;
    Ok(written.project.version)
}

/// What a change's round of writes reads back after them, in the same query; later variants read more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ReadBack {
    Nothing,
    Deadlines,
    DeadlinesAndRelatives,
}

impl ReadBack {
    /// For a transition's answer: the relatives too where they ride along with the writes (SQLite); on
    /// PostgreSQL they would cost the writer round trips of its own while it holds the project's lane.
    fn for_answer(backend: sea_orm::DbBackend) -> Self {
        if Batch::reads_ride_along(backend) {
            Self::DeadlinesAndRelatives
        } else {
            Self::Deadlines
        }
    }
}

/// [`apply`], as one round of writes; returns the project row they left and what `read_back` asked for,
/// read by the same round.
async fn apply_reading(
    txn: &DatabaseTransaction,
    workflow: &Workflow,
    project: &projects::Model,
    decision: &Decision,
    event: NewEvent,
    read_back: ReadBack,
) -> StoreResult<Written> {
    let backend = txn.get_database_backend();
    Writes::new(backend, workflow, project, decision, event, read_back)
        .run(txn, project)
        .await
}

/// A decision's writes, as its backend takes them.
#[derive(Debug)]
enum Writes {
    /// SQLite: statements of one query (see [`Batch`]), with the reads `ReadBack` asked for.
    Statements(Batch),
    /// PostgreSQL: rows for a [`round`], alone or shared with other projects'.
    Round(Box<TransitionRows>, ReadBack),
}

impl Writes {
    fn new(
        backend: sea_orm::DbBackend,
        workflow: &Workflow,
        project: &projects::Model,
        decision: &Decision,
        event: NewEvent,
        read_back: ReadBack,
    ) -> Self {
        let rows = transition_rows(workflow, project, decision, event);
        match backend {
            sea_orm::DbBackend::Postgres => Self::Round(Box::new(rows), read_back),
            _ => Self::Statements(transition_statements(backend, project, &rows, read_back)),
        }
    }

    async fn run(
        &self,
        txn: &DatabaseTransaction,
        project: &projects::Model,
    ) -> StoreResult<Written> {
        match self {
            Self::Statements(writes) => {
                let rows = writes.run(txn).await?;
                written(txn, project, sort_rows(project, rows)?).await
            }
            Self::Round(rows, read_back) => write_round(txn, &[(project, &**rows)], *read_back)
                .await?
                .pop()
                .unwrap_or_else(|| Err(StoreError::Corrupt("a round of one answered none".into()))),
        }
    }
}

/// What a decision writes, as rows.
fn transition_rows(
    workflow: &Workflow,
    project: &projects::Model,
    decision: &Decision,
    event: NewEvent,
) -> TransitionRows {
    let at = normalize(decision.at);
    let event = crate::events::chained(project, event, at);
    // A deadline set again needs no clearing first: its upsert replaces the row whole (and on PostgreSQL
    // the writes are one statement, in which no row may change twice).
    let clear = decision
        .clear_deadlines
        .iter()
        .filter(|key| !decision.set_deadlines.iter().any(|d| &d.key == *key))
        .cloned()
        .collect();
    let set = decision
        .set_deadlines
        .iter()
        .map(|deadline| (deadline.key.clone(), normalize(deadline.due_at)))
        .collect();
    let mails = decision
        .emails
        .iter()
        .map(|email| Mail {
            template: email.template.clone(),
            context: json!({
                "project_id": project.id,
                "region_code": project.region_code,
                "workflow_id": workflow.id(),
                "workflow_version": workflow.version(),
                "transition": decision.transition,
                "from_state": decision.from,
                "to_state": decision.to,
                "actor": decision.actor,
                "comment": decision.comment,
                "at": at,
            }),
            roles: workflow.account_roles(&email.to_roles),
        })
        .collect();
    TransitionRows {
        event,
        state: decision.to.clone(),
        at,
        updated_at: normalize(Utc::now()),
        clear,
        set,
        mails,
    }
}

/// A decision's rows as statements of one [`Batch`], with the reads `read_back` asks for.
fn transition_statements(
    backend: sea_orm::DbBackend,
    project: &projects::Model,
    rows: &TransitionRows,
    read_back: ReadBack,
) -> Batch {
    let (event, at) = (&rows.event, rows.at);
    static BUMP: Prepared = Prepared::new();
    let values = bump_values(
        project,
        event.seq,
        &event.hash,
        rows.updated_at,
        [rows.state.clone().into(), at.into()],
    );
    let bump = BUMP.statement(backend, values, |backend| {
        bump_statement(backend, project, event, rows.updated_at, |update| {
            update
                .col_expr(projects::Column::State, Expr::value(rows.state.clone()))
                .col_expr(projects::Column::StateEnteredAt, Expr::value(at))
        })
    });
    let mut writes = chained_writes(bump, event);
    if !rows.clear.is_empty() {
        writes.push(clear_deadlines_statement(
            backend,
            project.id,
            &rows.clear,
            at,
        ));
    }
    for (key, due_at) in &rows.set {
        set_deadline_statements(&mut writes, project.id, key, *due_at, at);
    }
    for mail in &rows.mails {
        let mail = outbox::RoleMail {
            project,
            event_seq: Some(event.seq),
            template: &mail.template,
            roles: &mail.roles,
            context: &mail.context,
        };
        if let Some(insert) = outbox::enqueue_statement(backend, mail, at) {
            writes.push(insert);
        }
    }
    if read_back != ReadBack::Nothing {
        writes.read_after(live_deadlines_statement(backend, project.id));
    }
    if read_back == ReadBack::DeadlinesAndRelatives {
        read_relatives(&mut writes, Kin::of(project));
    }
    writes
}

/// Appends `event` to the project's chain and raises its version under the optimistic check, in one round
/// of writes; `extra` adds the caller's columns to the same update. Returns the new version and the event's
/// sequence number.
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    project: &projects::Model,
    event: NewEvent,
    at: DateTime<Utc>,
    extra: impl FnOnce(sea_orm::UpdateMany<projects::Entity>) -> sea_orm::UpdateMany<projects::Entity>,
) -> StoreResult<(i64, i64)> {
    let backend = txn.get_database_backend();
    let event = crate::events::chained(project, event, at);
    let bump = bump_statement(backend, project, &event, normalize(Utc::now()), extra);
    let rows = chained_writes(bump, &event).run(txn).await?;
    let sorted = sort_rows(project, rows)?;
    Ok((
        written(txn, project, sorted).await?.project.version,
        event.seq,
    ))
}

/// The writes every change of a project starts with: the version bump under the optimistic check, which
/// records the new chain head (the batch's guard), and the event, written only when the check holds.
fn chained_writes(bump: Statement, event: &events::Model) -> Batch {
    let backend = bump.db_backend;
    let mut writes = Batch::guarded_by(bump);
    writes.push_if_guard_holds(crate::events::insert_statement(backend, event));
    writes
}

/// The values [`bump_statement`] binds, in its order, with those of the columns `extra` sets.
fn bump_values<const N: usize>(
    project: &projects::Model,
    seq: i64,
    hash: &str,
    updated_at: DateTime<Utc>,
    extra: [sea_orm::Value; N],
) -> Vec<sea_orm::Value> {
    let mut values = vec![
        (project.version + 1).into(),
        seq.into(),
        hash.to_owned().into(),
        updated_at.into(),
    ];
    values.extend(extra);
    values.extend([project.id.into(), project.version.into()]);
    values
}

/// The version bump of [`record`] to the chain head `event`, returning the row it leaves (none when the
/// version check fails).
fn bump_statement(
    backend: sea_orm::DbBackend,
    project: &projects::Model,
    event: &events::Model,
    updated_at: DateTime<Utc>,
    extra: impl FnOnce(sea_orm::UpdateMany<projects::Entity>) -> sea_orm::UpdateMany<projects::Entity>,
) -> Statement {
    let update = projects::Entity::update_many()
        .col_expr(projects::Column::Version, Expr::value(project.version + 1))
        .col_expr(projects::Column::LastEventSeq, Expr::value(event.seq))
        .col_expr(
            projects::Column::LastEventHash,
            Expr::value(event.hash.clone()),
        )
        .col_expr(projects::Column::UpdatedAt, Expr::value(updated_at))
        .filter(projects::Column::Id.eq(project.id))
        .filter(projects::Column::Version.eq(project.version));
    backend.build(extra(update).into_query().returning_all())
}

/// What a round of writes to a project read back: the row its bump returned and the reads after it.
#[derive(Debug)]
pub(crate) struct Written {
    project: projects::Model,
    deadlines: Vec<deadlines::Model>,
    relatives: Relatives,
}

/// The rows of a round of writes to `project`; a conflict when the version check found the row changed.
async fn written(
    txn: &DatabaseTransaction,
    project: &projects::Model,
    sorted: Sorted,
) -> StoreResult<Written> {
    match sorted.project {
        Some(bumped) => Ok(Written {
            project: bumped,
            deadlines: sorted.deadlines,
            relatives: sorted.relatives,
        }),
        None => {
            // Another writer got there first (another replica on PostgreSQL): name the version it left.
            let current = find(txn, project.id).await?.version;
            Err(StoreError::Conflict {
                project_id: project.id,
                expected: project.version,
                current,
            })
        }
    }
}

/// Clears the project's live deadlines among `keys`: the scheduler looks at them no more.
pub(crate) async fn clear_deadlines(
    txn: &impl ConnectionTrait,
    project_id: i64,
    keys: &[String],
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    txn.execute(clear_deadlines_statement(backend, project_id, keys, at))
        .await?;
    Ok(())
}

fn clear_deadlines_statement(
    backend: sea_orm::DbBackend,
    project_id: i64,
    keys: &[String],
    at: DateTime<Utc>,
) -> Statement {
    deadlines::Entity::update_many()
        .col_expr(deadlines::Column::ClearedAt, Expr::value(Some(at)))
        .filter(deadlines::Column::ProjectId.eq(project_id))
        .filter(deadlines::Column::Key.is_in(keys.iter().map(String::as_str)))
        .filter(deadlines::Column::ClearedAt.is_null())
        .build(backend)
}

pub(crate) async fn set_deadline(
    txn: &impl ConnectionTrait,
    project_id: i64,
    key: &str,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut writes = Batch::unguarded(txn.get_database_backend());
    set_deadline_statements(&mut writes, project_id, key, due_at, now);
    writes.run(txn).await?;
    Ok(())
}

/// [`set_deadline`]'s writes: the deadline, and the scheduler's first look at it (it plans the next itself).
fn set_deadline_statements(
    writes: &mut Batch,
    project_id: i64,
    key: &str,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let backend = writes.backend();
    static UPSERT: Prepared = Prepared::new();
    let none = Option::<DateTime<Utc>>::None;
    let values = vec![
        project_id.into(),
        key.to_owned().into(),
        due_at.into(),
        now.into(),
        none.into(),
        none.into(),
    ];
    writes.push(UPSERT.statement(backend, values, |backend| {
        let mut upsert = deadlines::Entity::insert(deadlines::ActiveModel {
            id: NotSet,
            project_id: Set(project_id),
            key: Set(key.to_owned()),
            due_at: Set(due_at),
            set_at: Set(now),
            cleared_at: Set(None),
            paused_at: Set(None),
        })
        .on_conflict(
            OnConflict::columns([deadlines::Column::ProjectId, deadlines::Column::Key])
                .update_columns([
                    deadlines::Column::DueAt,
                    deadlines::Column::SetAt,
                    deadlines::Column::ClearedAt,
                    deadlines::Column::PausedAt,
                ])
                .to_owned(),
        )
        .into_query();
        if backend == sea_orm::DbBackend::Postgres {
            // The look below reads the deadline from this statement's rows (see `Batch::rows_of_last`).
            upsert.returning_all();
        }
        backend.build(&upsert)
    }));
    let deadlines = writes.rows_of_last("deadlines");
    writes.push(crate::reminders::look_at_statement(
        backend, &deadlines, project_id, key, now,
    ));
}

/// Accounts an email addressed to account roles (see `Workflow::account_roles`) reaches: the region's council
/// accounts for `council`, every officer for `officer`.
pub(crate) async fn recipients(
    txn: &impl ConnectionTrait,
    region_code: &str,
    roles: &[String],
) -> StoreResult<Vec<users::Model>> {
    let Some(audience) = audience(region_code, roles) else {
        return Ok(Vec::new());
    };
    Ok(users::Entity::find()
        .filter(audience.condition)
        .filter(users::Column::Disabled.eq(false))
        .order_by_asc(users::Column::Id)
        .all(txn)
        .await?)
}

/// Which accounts some roles name (see [`audience`]).
pub(crate) struct Audience {
    pub(crate) condition: sea_orm::Condition,
    /// The values `condition` binds, in order.
    pub(crate) values: Vec<sea_orm::Value>,
    /// Which of the three shapes `condition` has (council accounts, officers, both): its values aside,
    /// conditions of one shape are the same text.
    pub(crate) shape: usize,
}

/// Whether account roles name the region's council accounts, and whether they name the officers.
pub(crate) fn addressed(roles: &[String]) -> (bool, bool) {
    (
        roles.iter().any(|r| r == "council"),
        roles.iter().any(|r| r == "officer"),
    )
}

/// Which accounts the roles name, disabled ones included; `None` when they name none.
pub(crate) fn audience(region_code: &str, roles: &[String]) -> Option<Audience> {
    let (council, officer) = addressed(roles);
    if !council && !officer {
        return None;
    }
    let mut condition = sea_orm::Condition::any();
    let mut values = Vec::new();
    if council {
        condition = condition.add(
            sea_orm::Condition::all()
                .add(users::Column::Role.eq("council"))
                .add(users::Column::RegionCode.eq(region_code)),
        );
        values.extend(["council".into(), region_code.into()]);
    }
    if officer {
        condition = condition.add(users::Column::Role.eq("officer"));
        values.push("officer".into());
    }
    Some(Audience {
        condition,
        values,
        shape: usize::from(council) + 2 * usize::from(officer) - 1,
    })
}
