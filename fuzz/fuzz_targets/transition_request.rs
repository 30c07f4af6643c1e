//! The body of `POST /api/v1/projects/{id}/transitions` (transition id and comment) fired by any actor on a
//! project in any state with any facts, evidence statuses and cohort the store can hold.
#![no_main]

use chrono::{Datelike, NaiveDate, TimeDelta};
use incubator_engine::{
    Actor, CohortInfo, Facts, FireRequest, Instance, RequirementStatus, Workflow,
};
use incubator_fuzz::{check_fire, epoch, workflows};
use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const STATUSES: [RequirementStatus; 6] = [
    RequirementStatus::Missing,
    RequirementStatus::Pending,
    RequirementStatus::Accepted,
    RequirementStatus::Rejected,
    RequirementStatus::CorrectionRequested,
    RequirementStatus::Expired,
];

fuzz_target!(|data: &[u8]| {
    let _ = fire(&mut Unstructured::new(data));
});

fn fire(u: &mut Unstructured<'_>) -> Result<()> {
    let workflow = u.choose(workflows())?;
    // Mostly known ids, sometimes anything: the API passes the body's transition id as it came.
    let state = if u.ratio(1, 16)? {
        String::arbitrary(u)?
    } else {
        u.choose(workflow.states())?.id.clone()
    };
    let transition = if u.ratio(1, 16)? {
        String::arbitrary(u)?
    } else {
        u.choose(workflow.transitions())?.id.clone()
    };
    let mut roles = Vec::new();
    for role in workflow.roles().keys() {
        if bool::arbitrary(u)? {
            roles.push(role.clone());
        }
    }
    let mut requirements = std::collections::BTreeMap::new();
    for requirement in workflow.requirements() {
        requirements.insert(requirement.key.clone(), *u.choose(&STATUSES)?);
    }
    let cohort = if bool::arbitrary(u)? {
        Some(CohortInfo {
            id: "fuzz".into(),
            starts_on: date(u)?,
        })
    } else {
        None
    };
    let entered_at = epoch() + TimeDelta::seconds(u.int_in_range(-(1 << 30)..=1 << 30)?);
    let now = entered_at + TimeDelta::seconds(u.int_in_range(0..=1 << 30)?);
    let instance = Instance {
        state,
        entered_at,
        facts: facts(u, workflow)?,
        requirements,
        cohort,
        child_completed: bool::arbitrary(u)?,
    };
    let actor = Actor {
        id: "user:1".into(),
        roles,
    };
    let request = FireRequest {
        transition,
        comment: Option::<String>::arbitrary(u)?,
    };
    check_fire(workflow, &instance, &actor, &request, now);
    Ok(())
}

/// Facts as the store holds them: values the API accepted for the workflow's fields.
fn facts(u: &mut Unstructured<'_>, workflow: &Workflow) -> Result<Facts> {
    let mut facts = Facts::new();
    for field in workflow.fields() {
        let value = match u.int_in_range(0..=5)? {
            0 => continue,
            1 => Value::Bool(bool::arbitrary(u)?),
            2 => Value::from(i64::arbitrary(u)?),
            3 => Value::String(date(u)?.format("%Y-%m-%d").to_string()),
            4 if !field.choices.is_empty() => Value::String(
                u.choose(&field.choices.keys().collect::<Vec<_>>())?
                    .to_string(),
            ),
            _ => Value::String(String::arbitrary(u)?),
        };
        if let Ok(Some(parsed)) = workflow.parse_field(&field.key, &value) {
            facts.insert(field.key.clone(), parsed);
        }
    }
    Ok(facts)
}

/// Any day chrono can represent: the API reads dates with chrono, so all of them can arrive.
fn date(u: &mut Unstructured<'_>) -> Result<NaiveDate> {
    let (min, max) = (
        NaiveDate::MIN.num_days_from_ce(),
        NaiveDate::MAX.num_days_from_ce(),
    );
    Ok(NaiveDate::from_num_days_from_ce_opt(u.int_in_range(min..=max)?).unwrap_or_default())
}
