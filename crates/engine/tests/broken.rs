//! Each definition in `fixtures/broken/` has one defect, announced on its first line as
//! `# expect: LINE:COLUMN: part of the message`. Loading it must report exactly that error, there.

use std::path::PathBuf;

use incubator_engine::Workflow;

#[test]
fn each_broken_fixture_reports_its_defect_at_its_node() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    let mut checked = 0;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let expect = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!("{name}: first line must be `# expect: LINE:COLUMN: message`")
            });
        let mut parts = expect.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().unwrap();
        let column: usize = parts.next().unwrap().parse().unwrap();
        let message = parts.next().unwrap().trim();
        let errors = match Workflow::from_yaml(&source, &name) {
            Ok(_) => panic!("{name}: loaded although it is broken"),
            Err(errors) => errors,
        };
        let errors = errors.errors();
        assert_eq!(
            errors.len(),
            1,
            "{name}: expected one error, got:\n{}",
            render(errors)
        );
        let error = &errors[0];
        assert_eq!(
            (error.line, error.column),
            (line, column),
            "{name}: {error}"
        );
        assert!(
            error.message.contains(message),
            "{name}: `{}` lacks `{message}`",
            error.message
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("{name}:{line}:{column}: ")),
            "{error}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixtures");
}

fn render(errors: &[incubator_engine::LoadError]) -> String {
    errors.iter().map(|e| format!("  {e}\n")).collect()
}

#[test]
fn every_defect_is_reported_at_once_in_source_order() {
    let source = "\
id: tiny
version: 1
labels: {fr: Petit, en: Tiny}
roles:
  officer: {fr: Chargé, en: Officer}
states:
  open:
    kind: initial
    labels: {fr: Ouvert, en: Open}
    deadline: {after: P1X}
  done:
    kind: terminal
    outcome: success
    labels: {fr: Fait, en: Done}
transitions:
  finish:
    from: open
    to: done
    roles: [officer, council]
    labels: {fr: Finir, en: Finish}
    emails: [Not-A-Template]
";
    let errors = Workflow::from_yaml(source, "tiny.yaml").unwrap_err();
    let rendered: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "tiny.yaml:10:23: bad duration: `P1X` is not an ISO-8601 duration such as P6M, P30D, P2W or PT12H \
             (hint: e.g. P6M, P30D, P2W, PT12H)",
            "tiny.yaml:19:22: unknown role `council` (hint: roles are: officer)",
            "tiny.yaml:21:14: invalid template name `Not-A-Template` (hint: template names are folder names like \
             `stage_entered`)",
        ]
    );
}

#[test]
fn yaml_syntax_errors_have_a_location() {
    let errors = Workflow::from_yaml("id: tiny\nlabels: {fr: Petit\nroles: []\n", "syntax.yaml")
        .unwrap_err();
    let error = &errors.errors()[0];
    assert!(error.message.starts_with("invalid YAML"), "{error}");
    assert!(error.line >= 2, "{error}");
}
