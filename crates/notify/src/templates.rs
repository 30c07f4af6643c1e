use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext,
    RenderError, RenderErrorReason, Renderable, handlebars_helper,
};
use serde::Serialize;

use crate::context::{EmailContext, TemplateKind};
use crate::error::{Location, TemplateError};
use crate::lang::Lang;

const PARTIALS: &str = "partials";

/// A rendered mail, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, safe to put in a header.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Every email template, registered and proven once at start-up.
#[derive(Debug)]
pub struct Templates {
    dir: PathBuf,
    /// One registry per part, indexed by [`Part`], because handlebars escapes per registry.
    registries: [Handlebars<'static>; 3],
}

/// The three files of a template, each with its own escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Part; 3] = [Part::Subject, Part::Text, Part::Html];

    fn file_name(self) -> &'static str {
        match self {
            Part::Subject => "subject.hbs",
            Part::Text => "text.hbs",
            Part::Html => "html.hbs",
        }
    }

    fn new_registry(self) -> Handlebars<'static> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_helper("if", Box::new(StrictIf { truthy: true }));
        registry.register_helper("unless", Box::new(StrictIf { truthy: false }));
        registry.register_helper("plural", Box::new(plural));
        match self {
            // User text goes into a mail header: a line break in it would start a new header.
            Part::Subject => registry.register_escape_fn(one_line),
            Part::Text => registry.register_escape_fn(handlebars::no_escape),
            Part::Html => registry.register_escape_fn(handlebars::html_escape),
        }
        registry
    }
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

// `{{plural days_left "jour" "jours"}}`. Only 1 is singular, which French and English agree on once
// templates word 0 themselves ("aujourd'hui", "today").
handlebars_helper!(plural: |count: u64, one: str, many: str| if count == 1 { one } else { many });

/// `if` and `unless` that fail on a variable the context does not have. Handlebars' own treat it as
/// false even in strict mode, so a misspelt `{{#if comment}}` would silently drop the comment forever.
#[derive(Debug, Clone, Copy)]
struct StrictIf {
    truthy: bool,
}

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        context: &'rc Context,
        render_context: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let condition = helper
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("if", 0))?;
        if condition.is_value_missing() {
            return Err(RenderError::strict_error(condition.relative_path()));
        }
        let branch = if condition.value().is_truthy(false) == self.truthy {
            helper.template()
        } else {
            helper.inverse()
        };
        match branch {
            Some(template) => template.render(registry, context, render_context, out),
            None => Ok(()),
        }
    }
}

/// What templates see: the context's fields, and `lang` for the partials shared by both languages.
#[derive(Serialize)]
struct RenderData<'a> {
    lang: Lang,
    #[serde(flatten)]
    context: &'a EmailContext,
}

impl Templates {
    /// Reads `dir` (one folder per [`TemplateKind`], plus `partials/`), registers every template, then
    /// renders each in both languages with its kind's [`samples`](TemplateKind::samples): a template
    /// that names a variable its context lacks, a folder of no known kind, or a missing file fails here.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let mut templates = Templates {
            dir: dir.to_owned(),
            registries: Part::ALL.map(Part::new_registry),
        };
        let mut found = BTreeSet::new();
        for entry in read_dir(dir)? {
            let path = entry.path();
            if !path.is_dir() {
                // Room for a README beside the folders.
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == PARTIALS {
                templates.register_partials(&path)?;
                continue;
            }
            let kind =
                TemplateKind::from_name(&name).ok_or_else(|| TemplateError::UnknownTemplate {
                    path: path.clone(),
                    name,
                })?;
            templates.register_kind(kind)?;
            found.insert(kind);
        }
        if let Some(missing) = TemplateKind::ALL
            .into_iter()
            .find(|kind| !found.contains(kind))
        {
            return Err(TemplateError::Missing {
                path: dir.join(missing.name()),
            });
        }
        for kind in TemplateKind::ALL {
            for lang in Lang::ALL {
                for sample in kind.samples(lang) {
                    templates.render(lang, &sample)?;
                }
            }
        }
        Ok(templates)
    }

    /// The template names workflows may refer to: every [`TemplateKind`], as loading requires them all.
    pub fn names(&self) -> BTreeSet<String> {
        TemplateKind::ALL
            .iter()
            .map(|kind| kind.name().to_owned())
            .collect()
    }

    pub fn render(
        &self,
        lang: Lang,
        context: &EmailContext,
    ) -> Result<RenderedEmail, TemplateError> {
        let kind = context.kind();
        let data = RenderData { lang, context };
        let [subject, text, html] = Part::ALL.map(|part| self.render_part(kind, lang, part, &data));
        let subject = subject?.trim().to_owned();
        if subject.contains(['\r', '\n']) {
            return Err(TemplateError::MultilineSubject {
                at: Location {
                    path: self.template_path(kind, lang, Part::Subject),
                    line: None,
                },
            });
        }
        Ok(RenderedEmail {
            subject,
            text: text?,
            html: html?,
        })
    }

    fn render_part(
        &self,
        kind: TemplateKind,
        lang: Lang,
        part: Part,
        data: &RenderData<'_>,
    ) -> Result<String, TemplateError> {
        self.registries[part as usize]
            .render(&template_name(kind, lang, part), data)
            .map_err(|error| self.render_error(kind, error))
    }

    fn register_kind(&mut self, kind: TemplateKind) -> Result<(), TemplateError> {
        let folder = self.dir.join(kind.name());
        expect_only(&folder, &Lang::ALL.map(Lang::as_str))?;
        for lang in Lang::ALL {
            expect_only(&folder.join(lang.as_str()), &Part::ALL.map(Part::file_name))?;
            for part in Part::ALL {
                let path = self.template_path(kind, lang, part);
                let source = read(&path)?;
                self.registries[part as usize]
                    .register_template_string(&template_name(kind, lang, part), source)
                    .map_err(|source| TemplateError::Syntax { path, source })?;
            }
        }
        Ok(())
    }

    /// Every partial goes into every registry, so it is escaped as the template including it is.
    fn register_partials(&mut self, folder: &Path) -> Result<(), TemplateError> {
        for entry in read_dir(folder)? {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".hbs"))
                .filter(|_| path.is_file())
            else {
                return Err(TemplateError::Unexpected { path });
            };
            let source = read(&path)?;
            for registry in &mut self.registries {
                registry.register_partial(name, &source).map_err(|source| {
                    TemplateError::Syntax {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }

    fn template_path(&self, kind: TemplateKind, lang: Lang, part: Part) -> PathBuf {
        self.dir
            .join(kind.name())
            .join(lang.as_str())
            .join(part.file_name())
    }

    /// Handlebars names the template or partial the error happened in; turn that back into its file.
    fn render_error(&self, kind: TemplateKind, error: RenderError) -> TemplateError {
        let path = match error.template_name.as_deref() {
            Some(name) if name.contains('/') => self.dir.join(format!("{name}.hbs")),
            Some(partial) => self.dir.join(PARTIALS).join(format!("{partial}.hbs")),
            None => self.dir.join(kind.name()),
        };
        let at = Location {
            path,
            line: error.line_no,
        };
        match error.reason() {
            RenderErrorReason::MissingVariable(Some(variable)) => TemplateError::MissingVariable {
                at,
                variable: variable.clone(),
                kind,
            },
            _ => TemplateError::Render {
                at,
                kind,
                source: error,
            },
        }
    }
}

/// The registered name, which is also the file's path under the template directory minus `.hbs`.
fn template_name(kind: TemplateKind, lang: Lang, part: Part) -> String {
    let stem = part.file_name().trim_end_matches(".hbs");
    format!("{kind}/{lang}/{stem}")
}

fn read(path: &Path) -> Result<String, TemplateError> {
    fs::read_to_string(path).map_err(|source| io_error(path, source))
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, TemplateError> {
    let mut entries = fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(|source| io_error(dir, source))?;
    // Hidden files are editors' and version control's, not ours.
    entries.retain(|entry| !entry.file_name().to_string_lossy().starts_with('.'));
    // Sorted, so the first error reported does not depend on the file system.
    entries.sort_by_key(fs::DirEntry::file_name);
    Ok(entries)
}

fn io_error(path: &Path, source: io::Error) -> TemplateError {
    let path = path.to_owned();
    match source.kind() {
        io::ErrorKind::NotFound => TemplateError::Missing { path },
        _ => TemplateError::Read { path, source },
    }
}

/// A stray file would look like a template someone edited in vain.
fn expect_only(folder: &Path, names: &[&str]) -> Result<(), TemplateError> {
    for entry in read_dir(folder)? {
        if !names.iter().any(|name| entry.file_name() == **name) {
            return Err(TemplateError::Unexpected { path: entry.path() });
        }
    }
    Ok(())
}
