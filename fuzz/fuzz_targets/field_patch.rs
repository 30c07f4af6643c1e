//! The body of `PATCH /api/v1/projects/{id}/fields`: a JSON object of field values, typed by the project's
//! workflow, then the guards evaluated on the facts it leaves. The first byte picks one of `WORKFLOWS`.
#![no_main]

use std::collections::BTreeMap;

use incubator_engine::{Actor, FireRequest, Instance, RequirementStatus};
use incubator_fuzz::{check_fire, check_patch, epoch, workflows};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let all = workflows();
    let workflow = &all[usize::from(pick) % all.len()];
    let Ok(patch) = serde_json::from_slice::<Map<String, Value>>(body) else {
        return;
    };
    let (typed, stored) = check_patch(workflow, &patch);
    // Every requirement accepted, so that field guards decide; then every transition from every state.
    let requirements: BTreeMap<String, RequirementStatus> = workflow
        .requirements()
        .iter()
        .map(|r| (r.key.clone(), RequirementStatus::Accepted))
        .collect();
    let everyone = Actor {
        id: "fuzz".into(),
        roles: workflow.roles().keys().cloned().collect(),
    };
    for state in workflow.states() {
        let instance = Instance {
            state: state.id.clone(),
            entered_at: epoch(),
            facts: stored.clone(),
            requirements: requirements.clone(),
            cohort: None,
            child_completed: pick & 0x80 != 0,
        };
        let just_typed = Instance {
            facts: typed.clone(),
            ..instance.clone()
        };
        // Guards decide the same on the facts just typed and on the same facts read back from storage.
        assert_eq!(
            workflow.evaluate(&instance, &everyone),
            workflow.evaluate(&just_typed, &everyone),
        );
        for transition in workflow.transitions_from(&state.id) {
            let request = FireRequest {
                transition: transition.id.clone(),
                comment: Some("motif".into()),
            };
            check_fire(workflow, &instance, &everyone, &request, epoch());
        }
    }
});
