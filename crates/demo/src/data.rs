//! The demo programme as data: `demo.yaml` parsed into a [`Programme`] whose steps are atomic actions, one per
//! event they will write. Parsing checks everything that needs no workflow; [`Programme::check_against`]
//! checks the ids against the deployed workflow.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use incubator_engine::Workflow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DemoError;

/// The programme file, embedded in the binary.
pub const SOURCE: &str = include_str!("../demo.yaml");

/// Where a date or a fact comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// Public, with the key of a source in [`Programme::sources`]; `month_only` when only the month is public.
    Public { source: String, month_only: bool },
    /// Chosen by us because the real one is not public.
    Illustrative,
}

impl Provenance {
    pub fn is_illustrative(&self) -> bool {
        matches!(self, Self::Illustrative)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub url: String,
    pub says: String,
}

/// A fact about a region, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<T> {
    pub value: T,
    pub provenance: Provenance,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated {
    pub on: NaiveDate,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub name: String,
    pub starts_on: NaiveDate,
    pub announced: Dated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Officer,
    Council,
}

/// What one action writes: exactly one event in the project's history.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// The project is created in `invited`: ANSSI's letter.
    Create,
    Fire {
        transition: String,
        comment: Option<String>,
    },
    Upload {
        requirement: String,
    },
    Review {
        requirement: String,
        accept: bool,
        comment: Option<String>,
    },
    SetFields(BTreeMap<String, Value>),
    AssignCohort(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub on: NaiveDate,
    /// The instant written: the day at 08:00 UTC, plus a minute per earlier action of the region that day, so
    /// that a region's history is strictly ordered.
    pub at: DateTime<Utc>,
    pub provenance: Provenance,
    pub by: By,
    pub kind: ActionKind,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub code: String,
    pub csirt: Option<Fact<String>>,
    pub carrier_name: Option<Fact<String>>,
    pub carrier_kind: Option<Fact<String>>,
    pub legal_form: Option<Fact<String>>,
    pub subsidy_eur: Option<Fact<i64>>,
    /// Starts with [`ActionKind::Create`] on the letter's date.
    pub actions: Vec<Action>,
}

impl Region {
    /// The actions done on or before `as_of`.
    pub fn due(&self, as_of: NaiveDate) -> &[Action] {
        let n = self.actions.iter().take_while(|a| a.on <= as_of).count();
        &self.actions[..n]
    }

    /// The state the data says the project is in as of a date (`None` before the letter).
    pub fn state_as_of(&self, workflow: &Workflow, as_of: NaiveDate) -> Option<String> {
        let due = self.due(as_of);
        if due.is_empty() {
            return None;
        }
        let mut state = workflow.initial_state().id.clone();
        for action in due {
            if let ActionKind::Fire { transition, .. } = &action.kind
                && let Some(t) = workflow.transition(transition)
            {
                state = t.to.clone();
            }
        }
        Some(state)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Programme {
    pub sources: BTreeMap<String, Source>,
    pub letter: Dated,
    pub cohorts: Vec<Cohort>,
    pub regions: Vec<Region>,
}

impl Programme {
    /// The embedded programme.
    pub fn embedded() -> Result<Self, DemoError> {
        Self::parse(SOURCE)
    }

    pub fn parse(source: &str) -> Result<Self, DemoError> {
        let raw: RawProgramme =
            serde_yaml::from_str(source).map_err(|e| DemoError::Data(e.to_string()))?;
        raw.build()
    }

    pub fn region(&self, code: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.code == code)
    }

    /// Checks every id the data names against the workflow the projects will run on.
    pub fn check_against(&self, workflow: &Workflow) -> Result<(), DemoError> {
        let mut problems = Vec::new();
        for region in &self.regions {
            for action in &region.actions {
                let at = || format!("region {} on {}", region.code, action.on);
                match &action.kind {
                    ActionKind::Create | ActionKind::AssignCohort(_) => {}
                    ActionKind::Fire { transition, .. } => {
                        if workflow.transition(transition).is_none() {
                            problems.push(format!("{}: no transition `{transition}`", at()));
                        }
                    }
                    ActionKind::Upload { requirement } | ActionKind::Review { requirement, .. } => {
                        if workflow.requirement(requirement).is_none() {
                            problems.push(format!("{}: no requirement `{requirement}`", at()));
                        }
                    }
                    ActionKind::SetFields(patch) => {
                        for (key, value) in patch {
                            if let Err(e) = workflow.parse_field(key, value) {
                                problems.push(format!("{}: {e}", at()));
                            }
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DemoError::Data(problems.join("; ")))
        }
    }
}

// ---- The file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProgramme {
    sources: BTreeMap<String, RawSource>,
    letter: RawDated,
    cohorts: Vec<RawCohort>,
    regions: Vec<RawRegion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    url: String,
    says: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDated {
    on: NaiveDate,
    illustrative: bool,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    precision: Option<Precision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Precision {
    Day,
    Month,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCohort {
    name: String,
    starts_on: NaiveDate,
    announced: RawDated,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFact<T> {
    value: T,
    illustrative: bool,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    code: String,
    #[serde(default)]
    csirt: Option<RawFact<String>>,
    #[serde(default)]
    carrier_name: Option<RawFact<String>>,
    #[serde(default)]
    carrier_kind: Option<RawFact<String>>,
    #[serde(default)]
    legal_form: Option<RawFact<String>>,
    #[serde(default)]
    subsidy_eur: Option<RawFact<i64>>,
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    on: NaiveDate,
    illustrative: bool,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    precision: Option<Precision>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    by: Option<RawBy>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    fire: Option<String>,
    #[serde(default)]
    upload: Option<OneOrMany>,
    #[serde(default)]
    accept: Option<OneOrMany>,
    #[serde(default)]
    reject: Option<String>,
    #[serde(default)]
    record: Option<OneOrMany>,
    #[serde(default)]
    cohort: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawBy {
    Officer,
    Council,
}

impl From<RawBy> for By {
    fn from(raw: RawBy) -> Self {
        match raw {
            RawBy::Officer => Self::Officer,
            RawBy::Council => Self::Council,
        }
    }
}

/// The 18 region codes the store seeds.
fn known_regions() -> BTreeSet<&'static str> {
    incubator_store::regions::REGIONS
        .iter()
        .map(|(code, _, _)| *code)
        .collect()
}

fn provenance(
    sources: &BTreeMap<String, Source>,
    illustrative: bool,
    source: Option<String>,
    precision: Option<Precision>,
    what: &str,
) -> Result<Provenance, DemoError> {
    match (illustrative, source) {
        (true, None) if precision.is_none() => Ok(Provenance::Illustrative),
        (true, _) => Err(DemoError::Data(format!(
            "{what}: an illustrative date or fact names no source and no precision (use a note)"
        ))),
        (false, None) => Err(DemoError::Data(format!(
            "{what}: a public date or fact needs its `source`"
        ))),
        (false, Some(source)) if !sources.contains_key(&source) => Err(DemoError::Data(format!(
            "{what}: unknown source `{source}`"
        ))),
        (false, Some(source)) => Ok(Provenance::Public {
            source,
            month_only: precision == Some(Precision::Month),
        }),
    }
}

fn fact<T>(
    sources: &BTreeMap<String, Source>,
    raw: Option<RawFact<T>>,
    what: &str,
) -> Result<Option<Fact<T>>, DemoError> {
    raw.map(|raw| {
        Ok(Fact {
            provenance: provenance(sources, raw.illustrative, raw.source, None, what)?,
            value: raw.value,
            note: raw.note,
        })
    })
    .transpose()
}

fn dated(
    sources: &BTreeMap<String, Source>,
    raw: RawDated,
    what: &str,
) -> Result<Dated, DemoError> {
    Ok(Dated {
        on: raw.on,
        provenance: provenance(sources, raw.illustrative, raw.source, raw.precision, what)?,
    })
}

impl RawProgramme {
    fn build(self) -> Result<Programme, DemoError> {
        let sources: BTreeMap<String, Source> = self
            .sources
            .into_iter()
            .map(|(key, s)| {
                (
                    key,
                    Source {
                        url: s.url,
                        says: s.says,
                    },
                )
            })
            .collect();
        let letter = dated(&sources, self.letter, "letter")?;
        let mut cohorts = Vec::new();
        for raw in self.cohorts {
            if cohorts.iter().any(|c: &Cohort| c.name == raw.name) {
                return Err(DemoError::Data(format!("cohort `{}` twice", raw.name)));
            }
            let what = format!("cohort `{}`", raw.name);
            cohorts.push(Cohort {
                announced: dated(&sources, raw.announced, &what)?,
                name: raw.name,
                starts_on: raw.starts_on,
            });
        }
        let known = known_regions();
        let mut seen = BTreeSet::new();
        let mut regions = Vec::new();
        for raw in self.regions {
            if !known.contains(raw.code.as_str()) {
                return Err(DemoError::Data(format!(
                    "`{}` is not a region code",
                    raw.code
                )));
            }
            if !seen.insert(raw.code.clone()) {
                return Err(DemoError::Data(format!("region {} twice", raw.code)));
            }
            regions.push(build_region(&sources, &letter, &cohorts, raw)?);
        }
        if seen.len() != known.len() {
            let missing: Vec<_> = known.iter().filter(|c| !seen.contains(**c)).collect();
            return Err(DemoError::Data(format!(
                "regions missing from the demo: {missing:?}"
            )));
        }
        Ok(Programme {
            sources,
            letter,
            cohorts,
            regions,
        })
    }
}

fn build_region(
    sources: &BTreeMap<String, Source>,
    letter: &Dated,
    cohorts: &[Cohort],
    raw: RawRegion,
) -> Result<Region, DemoError> {
    let code = raw.code;
    let what = |name: &str| format!("region {code}: {name}");
    let mut region = Region {
        csirt: fact(sources, raw.csirt, &what("csirt"))?,
        carrier_name: fact(sources, raw.carrier_name, &what("carrier_name"))?,
        carrier_kind: fact(sources, raw.carrier_kind, &what("carrier_kind"))?,
        legal_form: fact(sources, raw.legal_form, &what("legal_form"))?,
        subsidy_eur: fact(sources, raw.subsidy_eur, &what("subsidy_eur"))?,
        actions: Vec::new(),
        code: code.clone(),
    };
    let mut actions = vec![(
        letter.on,
        letter.provenance.clone(),
        By::Officer,
        ActionKind::Create,
        None,
    )];
    for step in raw.steps {
        let what = format!("region {code}, step on {}", step.on);
        let step_provenance = provenance(
            sources,
            step.illustrative,
            step.source,
            step.precision,
            &what,
        )?;
        let previous = actions.last().map_or(letter.on, |a| a.0);
        if step.on < previous {
            return Err(DemoError::Data(format!(
                "{what}: steps must be in date order (previous {previous})"
            )));
        }
        let mut kinds = Vec::new();
        let mut default_by = By::Officer;
        let mut count = 0;
        if let Some(transition) = step.fire {
            count += 1;
            kinds.push(ActionKind::Fire {
                transition,
                comment: step.comment.clone(),
            });
        }
        if let Some(list) = step.upload {
            count += 1;
            default_by = By::Council;
            kinds.extend(
                list.into_vec()
                    .into_iter()
                    .map(|requirement| ActionKind::Upload { requirement }),
            );
        }
        if let Some(list) = step.accept {
            count += 1;
            kinds.extend(
                list.into_vec()
                    .into_iter()
                    .map(|requirement| ActionKind::Review {
                        requirement,
                        accept: true,
                        comment: None,
                    }),
            );
        }
        if let Some(requirement) = step.reject {
            count += 1;
            if step.comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
                return Err(DemoError::Data(format!(
                    "{what}: a rejection needs a comment"
                )));
            }
            kinds.push(ActionKind::Review {
                requirement,
                accept: false,
                comment: step.comment.clone(),
            });
        }
        if let Some(list) = step.record {
            count += 1;
            kinds.push(ActionKind::SetFields(record(
                &region,
                &list.into_vec(),
                step.on,
                &what,
            )?));
        }
        if let Some(name) = step.cohort {
            count += 1;
            let Some(cohort) = cohorts.iter().find(|c| c.name == name) else {
                return Err(DemoError::Data(format!("{what}: no cohort `{name}`")));
            };
            if step.on < cohort.announced.on {
                return Err(DemoError::Data(format!(
                    "{what}: cohort `{name}` is announced only on {}",
                    cohort.announced.on
                )));
            }
            kinds.push(ActionKind::AssignCohort(name));
        }
        if count != 1 || kinds.is_empty() {
            return Err(DemoError::Data(format!(
                "{what}: a step does exactly one thing (fire, upload, accept, reject, record or cohort)"
            )));
        }
        let by = step.by.map_or(default_by, By::from);
        for kind in kinds {
            actions.push((
                step.on,
                step_provenance.clone(),
                by,
                kind,
                step.note.clone(),
            ));
        }
    }
    let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN);
    let mut same_day = 0;
    let mut last_day = None;
    for (on, provenance, by, kind, note) in actions {
        same_day = if last_day == Some(on) {
            same_day + 1
        } else {
            0
        };
        last_day = Some(on);
        region.actions.push(Action {
            at: on.and_time(eight).and_utc() + Duration::minutes(same_day),
            on,
            provenance,
            by,
            kind,
            note,
        });
    }
    Ok(region)
}

/// The fields a `record` step sets, from the region's facts.
fn record(
    region: &Region,
    facts: &[String],
    on: NaiveDate,
    what: &str,
) -> Result<BTreeMap<String, Value>, DemoError> {
    let missing = |fact: &str| DemoError::Data(format!("{what}: records `{fact}`, not given"));
    let mut patch = BTreeMap::new();
    for name in facts {
        match name.as_str() {
            "carrier" => {
                let carrier_name = region
                    .carrier_name
                    .as_ref()
                    .ok_or_else(|| missing("carrier_name"))?;
                let carrier_kind = region
                    .carrier_kind
                    .as_ref()
                    .ok_or_else(|| missing("carrier_kind"))?;
                patch.insert("carrier_name".to_owned(), json!(carrier_name.value));
                patch.insert("carrier_kind".to_owned(), json!(carrier_kind.value));
            }
            "legal_form" => {
                let legal_form = region
                    .legal_form
                    .as_ref()
                    .ok_or_else(|| missing("legal_form"))?;
                patch.insert("legal_form".to_owned(), json!(legal_form.value));
            }
            "subsidy" => {
                let subsidy = region
                    .subsidy_eur
                    .as_ref()
                    .ok_or_else(|| missing("subsidy_eur"))?;
                patch.insert("subsidy_amount_eur".to_owned(), json!(subsidy.value));
            }
            "intercert_membership" => {
                patch.insert(
                    "intercert_member_since".to_owned(),
                    json!(on.format("%Y-%m-%d").to_string()),
                );
            }
            other => {
                return Err(DemoError::Data(format!(
                    "{what}: cannot record `{other}` (carrier, legal_form, subsidy, intercert_membership)"
                )));
            }
        }
    }
    if patch.is_empty() {
        return Err(DemoError::Data(format!("{what}: records nothing")));
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A programme of 18 regions, Centre-Val de Loire with the given facts and steps, the others empty.
    fn programme(region_24: &str) -> String {
        let mut yaml = String::from(
            "sources:\n  s: {url: https://example.org, says: something}\n\
             letter: {on: 2021-03-01, illustrative: false, precision: month, source: s}\n\
             cohorts:\n  - {name: Session 1, starts_on: 2022-02-01, announced: {on: 2022-01-11, illustrative: true}}\n\
             regions:\n",
        );
        for (code, _, _) in incubator_store::regions::REGIONS {
            if code == "24" {
                yaml.push_str(&format!("  - code: \"24\"\n{region_24}"));
            } else {
                yaml.push_str(&format!("  - {{code: \"{code}\", steps: []}}\n"));
            }
        }
        yaml
    }

    fn error(region_24: &str) -> String {
        match Programme::parse(&programme(region_24)) {
            Ok(_) => panic!("accepted:\n{region_24}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_embedded_programme_parses_with_every_region() {
        let programme = Programme::embedded().expect("demo.yaml");
        assert_eq!(programme.regions.len(), 18);
        assert_eq!(programme.cohorts.len(), 2);
        for region in &programme.regions {
            assert_eq!(region.actions[0].kind, ActionKind::Create);
            assert!(region.actions.windows(2).all(|w| w[0].at < w[1].at));
        }
        // The March 2021 letter is public to the month.
        assert_eq!(
            programme.letter.provenance,
            Provenance::Public {
                source: "anssi_programme".into(),
                month_only: true
            }
        );
    }

    #[test]
    fn a_list_step_becomes_one_action_per_requirement_and_a_record_one() {
        let programme = Programme::parse(&programme(
            "    carrier_name: {value: GIP X, illustrative: true}\n    carrier_kind: {value: gip, illustrative: true}\n    steps:\n      - {on: 2021-04-01, illustrative: true, upload: [a, b]}\n      - {on: 2021-04-01, illustrative: true, record: [carrier, intercert_membership]}\n",
        ))
        .expect("valid");
        let region = programme.region("24").expect("24");
        assert_eq!(region.actions.len(), 4);
        assert_eq!(region.actions[1].by, By::Council);
        assert_eq!(region.actions[3].by, By::Officer);
        assert_eq!(
            region.actions[3].kind,
            ActionKind::SetFields(BTreeMap::from([
                ("carrier_kind".to_owned(), json!("gip")),
                ("carrier_name".to_owned(), json!("GIP X")),
                ("intercert_member_since".to_owned(), json!("2021-04-01")),
            ]))
        );
        assert_eq!(
            region
                .due(NaiveDate::from_ymd_opt(2021, 3, 31).expect("date"))
                .len(),
            1
        );
    }

    #[test]
    fn dishonest_or_inconsistent_data_is_refused() {
        let step = |s: &str| format!("    steps:\n      - {s}\n");
        assert!(
            error(&step(
                "{on: 2021-04-01, illustrative: false, fire: express_interest}"
            ))
            .contains("needs its `source`")
        );
        assert!(
            error(&step(
                "{on: 2021-04-01, illustrative: false, source: nope, fire: express_interest}"
            ))
            .contains("unknown source")
        );
        assert!(
            error(&step(
                "{on: 2021-04-01, illustrative: true, source: s, fire: express_interest}"
            ))
            .contains("illustrative")
        );
        assert!(
            error(&step(
                "{on: 2021-02-01, illustrative: true, fire: express_interest}"
            ))
            .contains("date order")
        );
        assert!(
            error(&step(
                "{on: 2021-04-01, illustrative: true, fire: express_interest, upload: [a]}"
            ))
            .contains("exactly one thing")
        );
        assert!(
            error(&step("{on: 2021-04-01, illustrative: true, reject: a}"))
                .contains("needs a comment")
        );
        assert!(
            error(&step(
                "{on: 2021-04-01, illustrative: true, record: [carrier]}"
            ))
            .contains("carrier_name")
        );
        assert!(
            error(&step(
                "{on: 2021-04-01, illustrative: true, cohort: Session 1}"
            ))
            .contains("announced only on")
        );
        assert!(
            error(&step(
                "{on: 2021-04-01, illustrative: true, cohort: Session 9}"
            ))
            .contains("no cohort")
        );
        assert!(
            error(&step("{on: 2021-04-01, illustrative: true, when: later}"))
                .contains("unknown field")
        );
        let without_24 =
            programme("    steps: []\n").replace("  - code: \"24\"\n    steps: []\n", "");
        assert!(Programme::parse(&without_24).is_err_and(|e| e.to_string().contains("missing")));
    }
}
