//! Email templates of the incubator: handlebars files under `templates/email/`, one folder per
//! [`TemplateKind`] with `fr/` and `en/` each holding `subject.hbs`, `text.hbs` and `html.hbs`, and
//! shared layout pieces in `partials/`. [`Templates::load`] registers them once, in strict mode, and
//! proves every one by rendering it with sample contexts, so a broken template stops the service at
//! start-up instead of a mail in production. This crate only renders; delivery lives elsewhere.
//!
//! Escaping follows the part: HTML-escaped in `html.hbs`, verbatim in `text.hbs`, and control
//! characters (line breaks) turned into spaces in `subject.hbs`, so user text cannot add a header.

mod context;
mod error;
mod lang;
mod sample;
mod templates;
mod url;

pub use context::*;
pub use error::{Location, TemplateError};
pub use lang::Lang;
pub use sample::Sample;
pub use templates::{RenderedEmail, Templates};
pub use url::{LinkUrl, ProjectUrl, PublicUrl, PublicUrlError};
