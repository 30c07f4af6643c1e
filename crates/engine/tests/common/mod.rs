//! Helpers shared by the integration tests of the engine.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use incubator_engine::{Actor, FireRequest, Instance, RequirementStatus, Workflow};

pub const ANSSI_SOURCE: &str = include_str!("../../../../workflows/csirt-incubation.yaml");
pub const INTERCERT_SOURCE: &str = include_str!("../../../../workflows/intercert-membership.yaml");

pub const ELIGIBILITY: [&str; 7] = [
    "council_backed",
    "regional_perimeter",
    "minimum_services",
    "legal_status",
    "own_staff",
    "autonomous_accounting",
    "intercert_commitment",
];

pub fn anssi() -> Workflow {
    Workflow::from_yaml(ANSSI_SOURCE, "workflows/csirt-incubation.yaml").unwrap()
}

pub fn intercert() -> Workflow {
    Workflow::from_yaml(INTERCERT_SOURCE, "workflows/intercert-membership.yaml").unwrap()
}

pub fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

pub fn instance(state: &str) -> Instance {
    Instance {
        state: state.into(),
        entered_at: utc("2022-03-01T10:00:00Z"),
        facts: BTreeMap::new(),
        requirements: BTreeMap::new(),
        cohort: None,
        child_completed: false,
    }
}

pub fn accept_all(instance: &mut Instance, keys: &[&str]) {
    for key in keys {
        instance
            .requirements
            .insert((*key).into(), RequirementStatus::Accepted);
    }
}

pub fn officer() -> Actor {
    Actor {
        id: "user:1".into(),
        roles: vec!["officer".into()],
    }
}

pub fn council() -> Actor {
    Actor {
        id: "user:2".into(),
        roles: vec!["council".into()],
    }
}

pub fn request(transition: &str, comment: Option<&str>) -> FireRequest {
    FireRequest {
        transition: transition.into(),
        comment: comment.map(str::to_owned),
    }
}
