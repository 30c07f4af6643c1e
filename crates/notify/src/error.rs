use std::fmt;
use std::path::PathBuf;

use crate::context::TemplateKind;

/// Everything that can go wrong with templates. Each message names the file and says how to fix it,
/// since most of these stop the service at start-up and are read by whoever edited the templates.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path}: `{name}` is not an email template, so there is no context to render it with; \
         rename the folder to one of {known} or remove it",
        known = known_names()
    )]
    UnknownTemplate { path: PathBuf, name: String },

    #[error(
        "{path} is missing: the templates {known} each need fr/ and en/, \
         each holding subject.hbs, text.hbs and html.hbs, and partials live in partials/*.hbs",
        known = known_names()
    )]
    Missing { path: PathBuf },

    #[error(
        "{path} is not used: a template folder holds only fr/ and en/, each with subject.hbs, text.hbs \
         and html.hbs, and partials/ only *.hbs files; move or remove it"
    )]
    Unexpected { path: PathBuf },

    #[error("{path}: invalid handlebars: {source}")]
    Syntax {
        path: PathBuf,
        #[source]
        source: handlebars::TemplateError,
    },

    #[error(
        "{at}: `{variable}` is not part of the {kind} context; correct the name, or add the field \
         to the context struct of {kind} in incubator-notify and to its samples"
    )]
    MissingVariable {
        at: Location,
        variable: String,
        kind: TemplateKind,
    },

    #[error("{at}: the subject spans several lines; keep subject.hbs on one line")]
    MultilineSubject { at: Location },

    #[error("{at}: cannot render the {kind} template: {source}")]
    Render {
        at: Location,
        kind: TemplateKind,
        #[source]
        source: handlebars::RenderError,
    },
}

/// A template file, and the line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

fn known_names() -> String {
    TemplateKind::ALL.map(TemplateKind::name).join(", ")
}
