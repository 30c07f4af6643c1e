//! The demo programme: ANSSI's regional CSIRT incubation as it went, from public facts where they exist and
//! plausible, marked-as-illustrative ones where they do not (see `demo.yaml`).
//!
//! [`load`] replays every step dated on or before an *as-of* date through the store's units of work, each
//! with its own date as `now`, so events, deadlines and reminders fall when they would have. It creates the
//! demo accounts and the cohorts first. Loading is idempotent: a step is skipped when the project's history
//! already holds its event, so loading again (as of the same or a later date) only adds what is missing.

mod data;
mod pdf;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use incubator_engine::{Actor, FireRequest, Workflow};
use incubator_store::cohorts::{AssignCohort, CreateCohort};
use incubator_store::documents::{RecordDocument, ReviewDecision, ReviewDocument};
use incubator_store::entities::events;
use incubator_store::fields::PatchFields;
use incubator_store::projects::{CreateProject, FireTransition, ProjectFilter};
use incubator_store::users::NewUser;
use incubator_store::{Store, StoreError, cohorts, documents, projects, users};
use serde::Serialize;
use serde_json::Value;

pub use data::{
    Action, ActionKind, By, Cohort, Dated, Fact, Programme, Provenance, Region, Source,
};

/// The workflow the demo runs on, embedded so that an empty database can be loaded.
pub const WORKFLOW_ID: &str = "csirt-incubation";
pub const WORKFLOW_SOURCE: &str = include_str!("../../../workflows/csirt-incubation.yaml");
const WORKFLOW_FILE: &str = "workflows/csirt-incubation.yaml";
/// The workflows the programme's stages start as child projects (id, file, source): `networking` opens the
/// region's InterCERT-FR membership application.
const CHILD_WORKFLOWS: [(&str, &str, &str); 1] = [(
    "intercert-membership",
    "workflows/intercert-membership.yaml",
    include_str!("../../../workflows/intercert-membership.yaml"),
)];

/// Demo accounts live under this domain.
pub const EMAIL_DOMAIN: &str = "demo.csirt-incubator.fr";

/// The default as-of date: mid-programme, when every stage of the workflow holds at least one region (the
/// second session is under way, two first-session CSIRTs have joined InterCERT-FR, Auvergne-Rhône-Alpes has
/// withdrawn, one overseas project was not retained and Mayotte has not answered yet).
pub const DEFAULT_AS_OF: NaiveDate = match NaiveDate::from_ymd_opt(2022, 10, 15) {
    Some(date) => date,
    None => NaiveDate::MIN,
};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo data is invalid: {0}")]
    Data(String),
    #[error("the account {email} exists already as {found}, not as the demo's {expected}")]
    Account {
        email: String,
        found: String,
        expected: String,
    },
    #[error("a cohort `{name}` exists already, starting on {found} instead of {expected}")]
    Cohort {
        name: String,
        found: NaiveDate,
        expected: NaiveDate,
    },
    #[error("region {region}, step of {on} ({action}): {source}")]
    Step {
        region: String,
        on: NaiveDate,
        action: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a loading task failed: {0}")]
    Task(String),
}

/// A demo account and its known password, for the service to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoAccount {
    pub email: String,
    pub password: String,
    /// `admin`, `officer` or `council`.
    pub role: String,
    pub region_code: Option<String>,
    pub name: String,
    pub user_id: i64,
    /// False when the account existed already (its password is then whatever it was set to).
    pub created: bool,
}

/// What loading did to one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionOutcome {
    pub code: String,
    pub project_id: Option<i64>,
    /// The project's state after loading (`None`: no project, the as-of date is before the letter).
    pub state: Option<String>,
    /// Steps written by this load.
    pub applied: usize,
    /// Steps found already done.
    pub already_done: usize,
    /// Set when the project's history differs from the demo's (someone acted on it): nothing was written.
    pub diverged: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoSummary {
    pub as_of: NaiveDate,
    pub workflow_deployed: bool,
    pub accounts: Vec<DemoAccount>,
    pub cohorts_created: Vec<String>,
    pub regions: Vec<RegionOutcome>,
}

impl DemoSummary {
    pub fn steps_applied(&self) -> usize {
        self.regions.iter().map(|r| r.applied).sum()
    }

    /// Whether this load wrote anything at all.
    pub fn changed(&self) -> bool {
        self.workflow_deployed
            || self.steps_applied() > 0
            || !self.cohorts_created.is_empty()
            || self.accounts.iter().any(|a| a.created)
    }
}

/// Loads the demo programme as of `as_of`. `hasher` turns a demo password into the stored hash (the server
/// owns the algorithm). See the crate documentation for what is written and when.
pub async fn load(
    store: &Store,
    as_of: NaiveDate,
    hasher: &(dyn Fn(&str) -> String + Sync),
) -> Result<DemoSummary, DemoError> {
    let programme = Programme::embedded()?;
    let letter_at = morning(programme.letter.on);
    let (workflow, workflow_deployed) = workflow(store, letter_at).await?;
    programme.check_against(&workflow)?;
    let accounts = accounts(store, hasher, letter_at).await?;
    let (cohort_ids, cohorts_created) = cohorts(store, &programme, as_of).await?;

    let officer = actor(&accounts, "officer", None)?;
    let cohort_ids = Arc::new(cohort_ids);
    let mut tasks = tokio::task::JoinSet::new();
    // Regions are independent: replaying them side by side lets the store group their commits.
    for region in programme.regions {
        let replay = Replay {
            store: store.clone(),
            workflow: workflow.clone(),
            officer: officer.clone(),
            council: actor(&accounts, "council", Some(&region.code))?,
            cohort_ids: cohort_ids.clone(),
            region,
            as_of,
        };
        tasks.spawn(replay.run());
    }
    let mut regions = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(outcome)) => regions.push(outcome),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(DemoError::Task(e.to_string()));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    regions.sort_by(|a, b| a.code.cmp(&b.code));
    let summary = DemoSummary {
        as_of,
        workflow_deployed,
        accounts,
        cohorts_created,
        regions,
    };
    tracing::info!(
        %as_of,
        steps = summary.steps_applied(),
        diverged = summary.regions.iter().filter(|r| r.diverged.is_some()).count(),
        "demo programme loaded"
    );
    Ok(summary)
}

/// 08:00 UTC on a day: the instant of a day's first demo action.
fn morning(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN))
        .and_utc()
}

/// The newest deployed version of the workflow, deploying the embedded one on an empty database, and the
/// child workflows it starts when none of theirs is deployed.
async fn workflow(store: &Store, now: DateTime<Utc>) -> Result<(Arc<Workflow>, bool), DemoError> {
    for (id, file, source) in CHILD_WORKFLOWS {
        match store.workflows().latest(store.db(), id).await {
            Ok(_) => {}
            Err(StoreError::UnknownWorkflow(_)) => {
                store.deploy_workflow(source, file, now).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    match store.workflows().latest(store.db(), WORKFLOW_ID).await {
        Ok(workflow) => Ok((workflow, false)),
        Err(StoreError::UnknownWorkflow(_)) => {
            let deployed = store
                .deploy_workflow(WORKFLOW_SOURCE, WORKFLOW_FILE, now)
                .await?;
            let workflow = store.workflows().latest(store.db(), WORKFLOW_ID).await?;
            Ok((workflow, deployed.created))
        }
        Err(e) => Err(e.into()),
    }
}

struct AccountSpec {
    email: String,
    password: String,
    role: &'static str,
    region_code: Option<String>,
    name: String,
}

fn account_specs() -> Vec<AccountSpec> {
    let mut specs = vec![
        AccountSpec {
            email: format!("admin@{EMAIL_DOMAIN}"),
            password: "demo-admin-csirt".into(),
            role: "admin",
            region_code: None,
            name: "Administrateur (démo)".into(),
        },
        AccountSpec {
            email: format!("officer@{EMAIL_DOMAIN}"),
            password: "demo-officer-csirt".into(),
            role: "officer",
            region_code: None,
            name: "Chargé de mission ANSSI (démo)".into(),
        },
    ];
    for (code, name, single) in incubator_store::regions::REGIONS {
        let body = match (code, single) {
            ("06", _) => "Département de Mayotte".to_owned(),
            (_, true) => format!("Collectivité de {name}"),
            (_, false) => format!("Conseil régional {name}"),
        };
        specs.push(AccountSpec {
            email: format!("council-{code}@{EMAIL_DOMAIN}"),
            password: format!("demo-council-{code}"),
            role: "council",
            region_code: Some(code.to_owned()),
            name: format!("{body} (démo)"),
        });
    }
    specs
}

async fn accounts(
    store: &Store,
    hasher: &(dyn Fn(&str) -> String + Sync),
    now: DateTime<Utc>,
) -> Result<Vec<DemoAccount>, DemoError> {
    let mut accounts = Vec::new();
    for spec in account_specs() {
        let expected = describe(spec.role, spec.region_code.as_deref());
        let (user, created) = match users::find_by_email(store.db(), &spec.email).await? {
            Some(user) => {
                let found = describe(&user.role, user.region_code.as_deref());
                if found != expected {
                    return Err(DemoError::Account {
                        email: spec.email,
                        found,
                        expected,
                    });
                }
                (user, false)
            }
            None => {
                let new = NewUser {
                    email: spec.email.clone(),
                    name: spec.name.clone(),
                    role: spec.role.to_owned(),
                    region_code: spec.region_code.clone(),
                    password_hash: hasher(&spec.password),
                    lang: "fr".into(),
                };
                (users::create(store.db(), new, now).await?, true)
            }
        };
        accounts.push(DemoAccount {
            email: user.email,
            password: spec.password,
            role: user.role,
            region_code: user.region_code,
            name: user.name,
            user_id: user.id,
            created,
        });
    }
    Ok(accounts)
}

fn describe(role: &str, region: Option<&str>) -> String {
    match region {
        Some(code) => format!("{role} of region {code}"),
        None => role.to_owned(),
    }
}

fn actor(accounts: &[DemoAccount], role: &str, region: Option<&str>) -> Result<Actor, DemoError> {
    accounts
        .iter()
        .find(|a| a.role == role && a.region_code.as_deref() == region)
        .map(|a| Actor {
            id: format!("user:{}", a.user_id),
            roles: vec![role.to_owned()],
        })
        .ok_or_else(|| DemoError::Data(format!("no demo {}", describe(role, region))))
}

/// The cohorts announced by `as_of`, created when missing; returns their ids by name and the names created.
async fn cohorts(
    store: &Store,
    programme: &Programme,
    as_of: NaiveDate,
) -> Result<(BTreeMap<String, i64>, Vec<String>), DemoError> {
    let existing = cohorts::list(store.db()).await?;
    let mut ids = BTreeMap::new();
    let mut created = Vec::new();
    for cohort in programme.cohorts.iter().filter(|c| c.announced.on <= as_of) {
        let id = match existing.iter().find(|c| c.name == cohort.name) {
            Some(found) if found.starts_on != cohort.starts_on => {
                return Err(DemoError::Cohort {
                    name: cohort.name.clone(),
                    found: found.starts_on,
                    expected: cohort.starts_on,
                });
            }
            Some(found) => found.id,
            None => {
                let model = store
                    .write(CreateCohort {
                        name: cohort.name.clone(),
                        starts_on: cohort.starts_on,
                        now: morning(cohort.announced.on),
                    })
                    .await?;
                created.push(cohort.name.clone());
                model.id
            }
        };
        ids.insert(cohort.name.clone(), id);
    }
    Ok((ids, created))
}

/// One region's replay: the steps due by the as-of date that its project's history does not hold yet.
struct Replay {
    store: Store,
    workflow: Arc<Workflow>,
    officer: Actor,
    council: Actor,
    cohort_ids: Arc<BTreeMap<String, i64>>,
    region: Region,
    as_of: NaiveDate,
}

impl Replay {
    async fn run(self) -> Result<RegionOutcome, DemoError> {
        let due = self.region.due(self.as_of);
        let filter = ProjectFilter {
            region_code: Some(self.region.code.clone()),
            workflow_id: Some(WORKFLOW_ID.to_owned()),
            ..ProjectFilter::default()
        };
        let mut project_id = projects::list(self.store.db(), &filter)
            .await?
            .first()
            .map(|p| p.id);
        let history = match project_id {
            Some(id) => incubator_store::events::list(self.store.db(), id).await?,
            None => Vec::new(),
        };
        let mut outcome = RegionOutcome {
            code: self.region.code.clone(),
            project_id,
            state: None,
            applied: 0,
            already_done: history.len().min(due.len()),
            diverged: None,
        };
        // The history must be the demo's own steps, in order, for the rest to be added safely.
        if let Some((event, action)) = history
            .iter()
            .zip(&self.region.actions)
            .find(|(event, action)| !matches(event, action))
        {
            outcome.diverged = Some(format!(
                "event {} ({}) is not the demo's step of {} ({})",
                event.seq,
                event.kind,
                action.on,
                label(&action.kind)
            ));
            outcome.already_done = 0;
        } else {
            for action in due.iter().skip(history.len()) {
                let id =
                    self.apply(project_id, action)
                        .await
                        .map_err(|source| DemoError::Step {
                            region: self.region.code.clone(),
                            on: action.on,
                            action: label(&action.kind),
                            source,
                        })?;
                project_id = Some(id);
                outcome.applied += 1;
            }
        }
        if let Some(id) = project_id {
            outcome.project_id = Some(id);
            outcome.state = Some(projects::find(self.store.db(), id).await?.state);
        }
        Ok(outcome)
    }

    /// Writes one action; returns the project's id.
    async fn apply(&self, project_id: Option<i64>, action: &Action) -> Result<i64, StoreError> {
        let store = &self.store;
        let actor = match action.by {
            By::Officer => &self.officer,
            By::Council => &self.council,
        };
        let now = action.at;
        let id = match (&action.kind, project_id) {
            (ActionKind::Create, None) => {
                return store
                    .write(CreateProject {
                        registry: store.workflows().clone(),
                        region_code: self.region.code.clone(),
                        workflow_id: WORKFLOW_ID.to_owned(),
                        actor: actor.clone(),
                        now,
                    })
                    .await;
            }
            (ActionKind::Create, Some(id)) => {
                return Err(StoreError::Invalid(format!(
                    "project {id} exists already but has no history"
                )));
            }
            (_, None) => {
                return Err(StoreError::Invalid(
                    "the project was not created first".into(),
                ));
            }
            (_, Some(id)) => id,
        };
        match &action.kind {
            ActionKind::Create => {}
            ActionKind::Fire {
                transition,
                comment,
            } => {
                let expected_version = projects::find(store.db(), id).await?.version;
                store
                    .write(FireTransition {
                        registry: store.workflows().clone(),
                        project_id: id,
                        expected_version,
                        request: FireRequest {
                            transition: transition.clone(),
                            comment: comment.clone(),
                        },
                        actor: actor.clone(),
                        now,
                    })
                    .await?;
            }
            ActionKind::Upload { requirement } => {
                let bytes = self.evidence(requirement, action);
                let size = i64::try_from(bytes.len())
                    .map_err(|_| StoreError::Invalid("evidence too large".into()))?;
                let sha256 = store.blobs().put(bytes).await?;
                store
                    .write(RecordDocument {
                        registry: store.workflows().clone(),
                        project_id: id,
                        requirement: requirement.clone(),
                        filename: format!(
                            "{requirement}-{}-{}.pdf",
                            self.region.code,
                            action.on.format("%Y%m%d")
                        ),
                        media_type: "application/pdf".into(),
                        size,
                        sha256,
                        expires_on: None,
                        awaits_scan: false,
                        actor: actor.id.clone(),
                        now,
                    })
                    .await?;
            }
            ActionKind::Review {
                requirement,
                accept,
                comment,
            } => {
                let waiting = documents::list(store.db(), id)
                    .await?
                    .into_iter()
                    .rev()
                    .find(|d| &d.requirement == requirement)
                    .ok_or_else(|| {
                        StoreError::Invalid(format!("no document uploaded for `{requirement}`"))
                    })?;
                if documents::latest_review(store.db(), waiting.id)
                    .await?
                    .is_some()
                {
                    return Err(StoreError::Invalid(format!(
                        "the latest document for `{requirement}` is reviewed already"
                    )));
                }
                store
                    .write(ReviewDocument {
                        registry: store.workflows().clone(),
                        project_id: waiting.project_id,
                        document_id: waiting.id,
                        decision: if *accept {
                            ReviewDecision::Accepted
                        } else {
                            ReviewDecision::Rejected
                        },
                        comment: comment.clone(),
                        actor: actor.id.clone(),
                        now,
                    })
                    .await?;
            }
            ActionKind::SetFields(patch) => {
                store
                    .write(PatchFields {
                        registry: store.workflows().clone(),
                        project_id: id,
                        patch: patch.clone(),
                        actor: actor.id.clone(),
                        now,
                    })
                    .await?;
            }
            ActionKind::AssignCohort(name) => {
                let cohort_id = self.cohort_ids.get(name).copied().ok_or_else(|| {
                    StoreError::Invalid(format!("cohort `{name}` is not announced yet"))
                })?;
                store
                    .write(AssignCohort {
                        registry: store.workflows().clone(),
                        project_id: id,
                        cohort_id: Some(cohort_id),
                        actor: actor.id.clone(),
                        now,
                    })
                    .await?;
            }
        }
        Ok(id)
    }

    /// A small PDF naming the requirement, the region and the date; fictitious, and it says so.
    fn evidence(&self, requirement: &str, action: &Action) -> Vec<u8> {
        let region_name = incubator_store::regions::REGIONS
            .iter()
            .find(|(code, _, _)| *code == self.region.code)
            .map_or(self.region.code.as_str(), |(_, name, _)| name);
        let label = self
            .workflow
            .requirement(requirement)
            .map_or(requirement, |r| r.labels.fr.as_str());
        let mut lines = vec![
            format!("Région : {region_name} ({})", self.region.code),
            format!("Pièce : {label} ({requirement})"),
        ];
        if let Some(carrier) = &self.region.carrier_name {
            lines.push(format!("Structure porteuse : {}", carrier.value));
        }
        lines.push(format!("Déposée le {}", action.on.format("%d/%m/%Y")));
        lines.push(
            "Document fictif généré pour la démonstration : il ne reproduit aucune pièce réelle."
                .into(),
        );
        pdf::one_page(
            "Programme d'incubation de CSIRT régionaux (démonstration)",
            &lines,
        )
    }
}

/// Whether an event of the history is the one this action writes.
fn matches(event: &events::Model, action: &Action) -> bool {
    let changes = || serde_json::from_str::<Value>(&event.changes).unwrap_or(Value::Null);
    match &action.kind {
        ActionKind::Create => event.kind == "created",
        ActionKind::Fire { transition, .. } => {
            event.kind == "transition" && event.transition.as_deref() == Some(transition.as_str())
        }
        ActionKind::Upload { requirement } => {
            event.kind == "document_uploaded"
                && changes()["requirement"].as_str() == Some(requirement.as_str())
        }
        ActionKind::Review {
            requirement,
            accept,
            ..
        } => {
            let changes = changes();
            let decision = if *accept { "accepted" } else { "rejected" };
            event.kind == "document_reviewed"
                && changes["requirement"].as_str() == Some(requirement.as_str())
                && changes["decision"].as_str() == Some(decision)
        }
        ActionKind::SetFields(patch) => {
            event.kind == "fields_changed"
                && changes()
                    .as_object()
                    .is_some_and(|c| c.keys().eq(patch.keys()))
        }
        ActionKind::AssignCohort(_) => event.kind == "cohort_assigned",
    }
}

fn label(kind: &ActionKind) -> String {
    match kind {
        ActionKind::Create => "create the project".into(),
        ActionKind::Fire { transition, .. } => format!("fire {transition}"),
        ActionKind::Upload { requirement } => format!("upload {requirement}"),
        ActionKind::Review {
            requirement,
            accept: true,
            ..
        } => format!("accept {requirement}"),
        ActionKind::Review { requirement, .. } => format!("reject {requirement}"),
        ActionKind::SetFields(patch) => format!(
            "set {}",
            patch.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        ActionKind::AssignCohort(name) => format!("assign to {name}"),
    }
}
