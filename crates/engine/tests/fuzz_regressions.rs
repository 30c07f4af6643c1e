//! Inputs the fuzz targets in `fuzz/` found breaking a guarantee, kept as plain tests so that CI catches a
//! regression without a fuzzing toolchain.

mod common;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Paris;
use common::{instance, officer, request, utc};
use incubator_engine::model::RawWorkflow;
use incubator_engine::{
    CohortInfo, Facts, FieldValue, RequirementStatus, Workflow, start_of_local_day,
};
use serde_json::json;

const EVERY_FIELD_TYPE: &str = include_str!("fixtures/every-field-type.yaml");

fn every_field_type() -> Workflow {
    Workflow::from_yaml(EVERY_FIELD_TYPE, "tests/fixtures/every-field-type.yaml").unwrap()
}

/// What the store does with facts: JSON in a column, read back without the workflow at hand.
fn through_storage(facts: &Facts) -> Facts {
    serde_json::from_str(&serde_json::to_string(facts).unwrap()).unwrap()
}

#[test]
fn errors_at_the_end_of_a_text_without_a_final_line_break_point_inside_it() {
    // serde_yaml placed "missing field `id`" on line 2 of this one-line text.
    for source in ["#", "id: x", "roles: [", "id: x\r#"] {
        let errors = Workflow::from_yaml(source, "end.yaml").unwrap_err();
        let lines: Vec<&str> = source.split(['\n', '\r']).collect();
        for error in errors.errors() {
            assert!(error.line <= lines.len(), "{source:?}: {error}");
            let width = lines[error.line - 1].chars().count();
            assert!(error.column <= width + 1, "{source:?}: {error}");
        }
    }
    let missing_id = Workflow::from_yaml("#", "end.yaml").unwrap_err();
    assert_eq!(missing_id.to_string(), "end.yaml:1:2: missing field `id`");
}

#[test]
fn control_characters_are_refused_where_they_are() {
    // yaml-rust2 accepted this label, serde_yaml refuses it: a definition must not depend on the parser.
    let source = EVERY_FIELD_TYPE.replace("fr: Nom, en: Name", "fr: No\u{1}m, en: Name");
    let errors = Workflow::from_yaml(&source, "ctl.yaml").unwrap_err();
    let line = 1 + EVERY_FIELD_TYPE
        .lines()
        .position(|l| l.contains("fr: Nom, en: Name"))
        .unwrap();
    let column = 1 + source.lines().nth(line - 1).unwrap().find('\u{1}').unwrap();
    assert_eq!(
        errors.to_string(),
        format!(
            "ctl.yaml:{line}:{column}: invalid YAML: control character U+0001 (hint: remove it, or \
             write it as an escape (`\\u0001`) in a double-quoted string)"
        )
    );
    // Written as an escape, the same character is accepted.
    let escaped = EVERY_FIELD_TYPE.replace("fr: Nom, en: Name", "fr: \"No\\u0001m\", en: Name");
    assert!(Workflow::from_yaml(&escaped, "ctl.yaml").is_ok());
}

#[test]
fn a_value_starting_with_an_indicator_is_refused_where_it_is() {
    // Found by the fuzzer: yaml-rust2 read `{fr: >Nom, …}` as the label `>Nom`, serde_yaml refuses it.
    let line = 1 + EVERY_FIELD_TYPE
        .lines()
        .position(|l| l.contains("fr: Nom, en: Name"))
        .unwrap();
    for indicator in ['>', '|', '%', '@', '`'] {
        let source = EVERY_FIELD_TYPE.replace(
            "fr: Nom, en: Name",
            &format!("fr: {indicator}Nom, en: Name"),
        );
        let errors = Workflow::from_yaml(&source, "indicator.yaml").unwrap_err();
        let error = &errors.errors()[0];
        let column = 1 + source
            .lines()
            .nth(line - 1)
            .unwrap()
            .find(indicator)
            .unwrap();
        assert_eq!(
            (error.line, error.column),
            (line, column),
            "{indicator}: {errors}"
        );
        // Quoted, the same text is a label like any other.
        let quoted = EVERY_FIELD_TYPE.replace(
            "fr: Nom, en: Name",
            &format!("fr: \"{indicator}Nom\", en: Name"),
        );
        assert!(
            Workflow::from_yaml(&quoted, "indicator.yaml").is_ok(),
            "{indicator}"
        );
    }
}

#[test]
fn a_text_written_like_a_date_reads_back_from_storage_as_written() {
    let wf = every_field_type();
    for text in ["2024-06-30", "2024-6-30", "+2024-06-30", "12024-06-30"] {
        let parsed = wf.parse_field("name", &json!(text)).unwrap().unwrap();
        assert_eq!(parsed, FieldValue::Text(text.into()));
        let facts = Facts::from([("name".to_owned(), parsed)]);
        let stored = serde_json::to_string(&facts).unwrap();
        assert_eq!(
            serde_json::to_string(&through_storage(&facts)).unwrap(),
            stored
        );
    }
    // Dates themselves still read back as dates, at either end of their range too.
    for day in [
        NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(),
        NaiveDate::MIN,
        NaiveDate::MAX,
    ] {
        let facts = Facts::from([("signed_on".to_owned(), FieldValue::Date(day))]);
        assert_eq!(through_storage(&facts), facts);
    }
}

#[test]
fn a_guard_comparing_a_text_written_like_a_date_holds_after_storage() {
    let wf = every_field_type();
    let mut draft = instance("draft");
    draft
        .requirements
        .insert("statutes".into(), RequirementStatus::Accepted);
    for (key, value) in [("name", "2024-06-30"), ("kind", "association")] {
        let parsed = wf.parse_field(key, &json!(value)).unwrap().unwrap();
        draft.facts.insert(key.into(), parsed);
    }
    draft.facts = through_storage(&draft.facts);
    let sign = wf.fire(
        &draft,
        &request("sign", None),
        &officer(),
        utc("2024-07-01T08:00:00Z"),
    );
    assert_eq!(sign.map(|d| d.to), Ok("signing".to_owned()));
}

#[test]
fn deadlines_counted_from_the_first_day_of_the_calendar_saturate() {
    // Midnight of that day in Paris (UTC+00:09:21 then) is before the first representable instant.
    assert_eq!(
        start_of_local_day(NaiveDate::MIN, Paris),
        DateTime::<Utc>::MIN_UTC
    );
    let wf = every_field_type();
    // The API reads any date chrono writes, the calendar's first day included.
    let first_day = wf.parse_field("signed_on", &json!(NaiveDate::MIN.to_string()));
    assert_eq!(first_day, Ok(Some(FieldValue::Date(NaiveDate::MIN))));
    let mut signing = instance("signing");
    signing
        .facts
        .insert("signed_on".into(), FieldValue::Date(NaiveDate::MIN));
    let due = wf.deadline_for("signing", &signing, signing.entered_at);
    assert!(due.is_some_and(|due| due > DateTime::<Utc>::MIN_UTC));
    let mut running = instance("running");
    for starts_on in [NaiveDate::MIN, NaiveDate::MAX] {
        running.cohort = Some(CohortInfo {
            id: "far".into(),
            starts_on,
        });
        let due = wf.deadline_for("running", &running, running.entered_at);
        assert!(due.is_some(), "{starts_on}");
    }
}

#[test]
fn a_definition_means_what_serde_yaml_reads_in_it() {
    // Found by the fuzzer, then by comparing the two parsers: yaml-rust2 (which only places errors now) and
    // libyaml (serde_yaml) disagree on these; what a definition means must not depend on which one read it.
    let label = |replacement: &str| EVERY_FIELD_TYPE.replace("fr: Nom, en: Name", replacement);
    let sources = [
        // A second document, and text after the end-of-document marker.
        format!("{EVERY_FIELD_TYPE}\n---\nfoo: bar\n"),
        format!("{EVERY_FIELD_TYPE}\n...\ngarbage: [\n"),
        // Plain values and keys libyaml refuses in a flow mapping.
        label("fr: ?x, en: Name"),
        label("fr\n      : Nom, en: Name"),
        // Line and paragraph separators, raw and escaped, and the next-line character.
        label("fr: No\u{2028}m, en: Name"),
        label("fr: No\u{85}m, en: Name"),
        label("fr: \"N\\Lm\\Pm\\Nm\", en: Name"),
    ];
    for source in sources {
        let loaded = Workflow::from_yaml(&source, "diff.yaml");
        match serde_yaml::from_str::<RawWorkflow>(&source) {
            Err(refusal) => {
                let errors =
                    loaded.expect_err(&format!("serde_yaml refuses it ({refusal}):\n{source}"));
                let lines = source
                    .split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
                    .count();
                assert!(errors.errors()[0].line <= lines, "{errors}");
            }
            Ok(raw) => {
                let workflow = loaded
                    .unwrap_or_else(|e| panic!("serde_yaml reads it, the engine refuses: {e}"));
                let name = workflow.fields().iter().find(|f| f.key == "name").unwrap();
                assert_eq!(name.labels, raw.fields["name"].labels, "{source}");
            }
        }
    }
}
