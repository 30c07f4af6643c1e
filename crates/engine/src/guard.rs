//! Guards compiled to indices, and their evaluation into every unmet condition with a sentence in French
//! and English.

use std::cmp::Ordering;

use crate::definition::{Field, Workflow};
use crate::model::FieldType;
use crate::runtime::{FieldValue, Instance, RequirementStatus, Unmet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CompareOp {
    pub(crate) const ALL: [(CompareOp, &'static str); 5] = [
        (CompareOp::Eq, "eq"),
        (CompareOp::Gt, "gt"),
        (CompareOp::Gte, "gte"),
        (CompareOp::Lt, "lt"),
        (CompareOp::Lte, "lte"),
    ];

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering.is_eq(),
            CompareOp::Gt => ordering.is_gt(),
            CompareOp::Gte => ordering.is_ge(),
            CompareOp::Lt => ordering.is_lt(),
            CompareOp::Lte => ordering.is_le(),
        }
    }

    fn words(self) -> (&'static str, &'static str) {
        match self {
            CompareOp::Eq => ("égal à", "equal to"),
            CompareOp::Gt => ("supérieur à", "greater than"),
            CompareOp::Gte => ("supérieur ou égal à", "at least"),
            CompareOp::Lt => ("inférieur à", "less than"),
            CompareOp::Lte => ("inférieur ou égal à", "at most"),
        }
    }
}

/// A guard whose references were resolved at load time (indices into the workflow's tables).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Guard {
    Requirements(Vec<usize>),
    FieldSet(usize),
    Compare {
        field: usize,
        tests: Vec<(CompareOp, FieldValue)>,
    },
    CohortAssigned,
    CommentRequired,
    ChildCompleted,
    All(Vec<Guard>),
    Any(Vec<Guard>),
}

/// Whether the firing comment is known yet: a page listing transitions cannot know what will be typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comment {
    Given(bool),
    NotYetTyped,
}

pub(crate) struct Context<'a> {
    pub workflow: &'a Workflow,
    pub instance: &'a Instance,
    pub comment: Comment,
}

impl Guard {
    /// Appends every unmet condition of `self` to `out` (nothing when the guard holds).
    pub(crate) fn unmet(&self, cx: &Context<'_>, out: &mut Vec<Unmet>) {
        match self {
            Guard::Requirements(keys) => {
                for &r in keys {
                    let requirement = &cx.workflow.requirements[r];
                    let status = cx.instance.requirements.get(&requirement.key).copied();
                    let status = status.unwrap_or(RequirementStatus::Missing);
                    if status != RequirementStatus::Accepted {
                        let (fr_status, en_status) = status_words(status);
                        out.push(Unmet {
                            code: "requirement_not_accepted".into(),
                            subject: Some(requirement.key.clone()),
                            fr: format!(
                                "Justificatif non accepté : {} ({fr_status})",
                                requirement.labels.fr
                            ),
                            en: format!(
                                "Evidence not accepted: {} ({en_status})",
                                requirement.labels.en
                            ),
                        });
                    }
                }
            }
            Guard::FieldSet(f) => {
                let field = &cx.workflow.fields[*f];
                if !cx.instance.facts.contains_key(&field.key) {
                    out.push(field_missing(field));
                }
            }
            Guard::Compare { field: f, tests } => {
                let field = &cx.workflow.fields[*f];
                let Some(value) = cx.instance.facts.get(&field.key) else {
                    out.push(field_missing(field));
                    return;
                };
                let value = &typed(field, value);
                for (op, constant) in tests {
                    if !op.holds(value.cmp(constant)) {
                        let (fr_op, en_op) = op.words();
                        let (fr_const, en_const) = (
                            shown(field, constant, Lang::Fr),
                            shown(field, constant, Lang::En),
                        );
                        let (fr_value, en_value) =
                            (shown(field, value, Lang::Fr), shown(field, value, Lang::En));
                        out.push(Unmet {
                            code: "field_compare".into(),
                            subject: Some(field.key.clone()),
                            fr: format!(
                                "{} doit être {fr_op} {fr_const} (valeur actuelle : {fr_value})",
                                field.labels.fr
                            ),
                            en: format!(
                                "{} must be {en_op} {en_const} (currently {en_value})",
                                field.labels.en
                            ),
                        });
                    }
                }
            }
            Guard::CohortAssigned => {
                if cx.instance.cohort.is_none() {
                    out.push(Unmet {
                        code: "cohort_missing".into(),
                        subject: None,
                        fr: "Aucune session d'incubation attribuée".into(),
                        en: "No incubation cohort assigned".into(),
                    });
                }
            }
            Guard::CommentRequired => {
                if cx.comment == Comment::Given(false) {
                    out.push(Unmet {
                        code: "comment_missing".into(),
                        subject: None,
                        fr: "Un commentaire indiquant le motif est requis".into(),
                        en: "A comment giving the reason is required".into(),
                    });
                }
            }
            Guard::ChildCompleted => {
                if !cx.instance.child_completed {
                    let child = cx
                        .workflow
                        .state(&cx.instance.state)
                        .and_then(|s| s.child.clone());
                    out.push(Unmet {
                        code: "child_not_completed".into(),
                        subject: child,
                        fr: "Le sous-processus de cette étape n'est pas terminé".into(),
                        en: "The sub-workflow of this stage has not completed".into(),
                    });
                }
            }
            Guard::All(guards) => guards.iter().for_each(|g| g.unmet(cx, out)),
            Guard::Any(guards) => {
                let mut reasons = Vec::new();
                for guard in guards {
                    let before = reasons.len();
                    guard.unmet(cx, &mut reasons);
                    if reasons.len() == before {
                        return;
                    }
                }
                let fr: Vec<&str> = reasons.iter().map(|u| u.fr.as_str()).collect();
                let en: Vec<&str> = reasons.iter().map(|u| u.en.as_str()).collect();
                out.push(Unmet {
                    code: "any_unmet".into(),
                    subject: None,
                    fr: format!(
                        "Aucune des conditions possibles n'est remplie : {}",
                        fr.join(" ; ou ")
                    ),
                    en: format!(
                        "None of the possible conditions holds: {}",
                        en.join("; or ")
                    ),
                });
            }
        }
    }

    /// Whether a comment must be typed for this guard to hold in any case.
    pub(crate) fn requires_comment(&self) -> bool {
        match self {
            Guard::CommentRequired => true,
            Guard::All(guards) => guards.iter().any(Guard::requires_comment),
            Guard::Any(guards) => !guards.is_empty() && guards.iter().all(Guard::requires_comment),
            _ => false,
        }
    }
}

fn field_missing(field: &Field) -> Unmet {
    Unmet {
        code: "field_missing".into(),
        subject: Some(field.key.clone()),
        fr: format!("Champ non renseigné : {}", field.labels.fr),
        en: format!("Field not filled in: {}", field.labels.en),
    }
}

fn status_words(status: RequirementStatus) -> (&'static str, &'static str) {
    match status {
        RequirementStatus::Missing => ("aucun document déposé", "no document uploaded"),
        RequirementStatus::Pending => ("en attente de relecture", "awaiting review"),
        RequirementStatus::Accepted => ("accepté", "accepted"),
        RequirementStatus::Rejected => ("document refusé", "document rejected"),
        RequirementStatus::CorrectionRequested => ("correction demandée", "correction requested"),
        RequirementStatus::Expired => ("justificatif expiré", "evidence expired"),
    }
}

#[derive(Clone, Copy)]
enum Lang {
    Fr,
    En,
}

/// A value as a sentence shows it: choices by their label, booleans as words.
/// A stored value as its field's type: facts are stored untyped, so a text written like a date reads back as
/// a date, and must be compared as the text it is.
fn typed(field: &Field, value: &FieldValue) -> FieldValue {
    match value {
        FieldValue::Date(date) if matches!(field.kind, FieldType::Text | FieldType::Choice) => {
            FieldValue::Text(date.to_string())
        }
        other => other.clone(),
    }
}

fn shown(field: &Field, value: &FieldValue, lang: Lang) -> String {
    match (value, lang) {
        (FieldValue::Text(key), _) if field.kind == FieldType::Choice => {
            field.choices.get(key).map_or_else(
                || key.clone(),
                |l| match lang {
                    Lang::Fr => l.fr.clone(),
                    Lang::En => l.en.clone(),
                },
            )
        }
        (FieldValue::Boolean(b), Lang::Fr) => if *b { "oui" } else { "non" }.into(),
        (FieldValue::Boolean(b), Lang::En) => if *b { "yes" } else { "no" }.into(),
        (FieldValue::Integer(i), _) => i.to_string(),
        (FieldValue::Date(d), _) => d.format("%Y-%m-%d").to_string(),
        (FieldValue::Text(t), Lang::Fr) => format!("« {t} »"),
        (FieldValue::Text(t), Lang::En) => format!("\"{t}\""),
    }
}
