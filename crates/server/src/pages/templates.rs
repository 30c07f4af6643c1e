//! The page templates: embedded in the binary, registered once at start-up in strict mode, one registry per
//! language. Every word a page shows comes from a template or from a message catalog
//! (`templates/pages/i18n/*.yaml`), which must hold the same keys in both languages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson, handlebars_helper,
};
use serde::Serialize;
use serde_json::Value;

use super::Lang;

/// Every page, by name, and the partials they share (registered under `partials/<name>`).
const PAGES: &[(&str, &str)] = &[
    (
        "login",
        include_str!("../../../../templates/pages/login.hbs"),
    ),
    (
        "error",
        include_str!("../../../../templates/pages/error.hbs"),
    ),
    ("link", include_str!("../../../../templates/pages/link.hbs")),
    (
        "dashboard",
        include_str!("../../../../templates/pages/dashboard.hbs"),
    ),
    (
        "region",
        include_str!("../../../../templates/pages/region.hbs"),
    ),
    (
        "cohorts",
        include_str!("../../../../templates/pages/cohorts.hbs"),
    ),
    (
        "accounts",
        include_str!("../../../../templates/pages/accounts.hbs"),
    ),
    (
        "outbox",
        include_str!("../../../../templates/pages/outbox.hbs"),
    ),
    (
        "workflows",
        include_str!("../../../../templates/pages/workflows.hbs"),
    ),
];

const PARTIALS: &[(&str, &str)] = &[
    (
        "layout",
        include_str!("../../../../templates/pages/partials/layout.hbs"),
    ),
    (
        "notices",
        include_str!("../../../../templates/pages/partials/notices.hbs"),
    ),
    (
        "map",
        include_str!("../../../../templates/pages/partials/map.hbs"),
    ),
    (
        "funnel",
        include_str!("../../../../templates/pages/partials/funnel.hbs"),
    ),
    (
        "timeline",
        include_str!("../../../../templates/pages/partials/timeline.hbs"),
    ),
    (
        "calendar",
        include_str!("../../../../templates/pages/partials/calendar.hbs"),
    ),
    (
        "csrf",
        include_str!("../../../../templates/pages/partials/csrf.hbs"),
    ),
    (
        "requirement",
        include_str!("../../../../templates/pages/partials/requirement.hbs"),
    ),
];

const CATALOGS: [(Lang, &str); 2] = [
    (
        Lang::Fr,
        include_str!("../../../../templates/pages/i18n/fr.yaml"),
    ),
    (
        Lang::En,
        include_str!("../../../../templates/pages/i18n/en.yaml"),
    ),
];

/// The names of every page template, for the tests that render each.
pub fn page_names() -> impl Iterator<Item = &'static str> {
    PAGES.iter().map(|(name, _)| *name)
}

#[derive(Debug, thiserror::Error)]
pub enum PageTemplateError {
    #[error("the {lang} message catalog does not parse: {source}")]
    Catalog {
        lang: &'static str,
        source: serde_yaml::Error,
    },
    #[error("the message catalogs differ: keys only in one language: {0}")]
    CatalogKeys(String),
    #[error("the page template `{name}` does not parse: {source}")]
    Template {
        name: String,
        source: Box<handlebars::TemplateError>,
    },
    #[error("the page `{name}` cannot be rendered: {source}")]
    Render {
        name: String,
        source: Box<RenderError>,
    },
}

/// A message catalog: key → text of one language.
type Catalog = Arc<BTreeMap<String, String>>;

/// The registered templates, one registry per language.
pub struct Pages {
    registries: [Handlebars<'static>; 2],
    catalogs: [Catalog; 2],
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("pages", &page_names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Pages {
    /// Parses every catalog and template; fails on a syntax error or on catalogs whose keys differ.
    pub fn load() -> Result<Self, PageTemplateError> {
        let catalogs = CATALOGS.map(|(lang, source)| {
            serde_yaml::from_str::<BTreeMap<String, String>>(source)
                .map(Arc::new)
                .map_err(|source| PageTemplateError::Catalog {
                    lang: lang.code(),
                    source,
                })
        });
        let [fr, en] = catalogs;
        let (fr, en) = (fr?, en?);
        let fr_keys: BTreeSet<&String> = fr.keys().collect();
        let en_keys: BTreeSet<&String> = en.keys().collect();
        let differ: Vec<&str> = fr_keys
            .symmetric_difference(&en_keys)
            .map(|k| k.as_str())
            .collect();
        if !differ.is_empty() {
            return Err(PageTemplateError::CatalogKeys(differ.join(", ")));
        }
        let registries = [registry(fr.clone())?, registry(en.clone())?];
        Ok(Self {
            registries,
            catalogs: [fr, en],
        })
    }

    pub fn render(
        &self,
        lang: Lang,
        name: &str,
        data: &impl Serialize,
    ) -> Result<String, PageTemplateError> {
        self.registries[lang.index()]
            .render(name, data)
            .map_err(|source| PageTemplateError::Render {
                name: name.to_owned(),
                source: Box::new(source),
            })
    }

    /// One message of the catalog (for what is not HTML: CSV headers, calendar entries); the key itself
    /// when missing, which the catalog tests rule out.
    pub fn message(&self, lang: Lang, key: &str) -> String {
        self.catalogs[lang.index()]
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }
}

fn registry(catalog: Catalog) -> Result<Handlebars<'static>, PageTemplateError> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.set_dev_mode(false);
    registry.register_escape_fn(handlebars::html_escape);
    registry.register_helper("if", Box::new(StrictIf { truthy: true }));
    registry.register_helper("unless", Box::new(StrictIf { truthy: false }));
    registry.register_helper("eq", Box::new(eq));
    registry.register_helper(
        "t",
        Box::new(Translate {
            catalog: catalog.clone(),
        }),
    );
    registry.register_helper("date", Box::new(FormatDate { catalog }));
    for (name, source) in PARTIALS {
        registry
            .register_partial(&format!("partials/{name}"), *source)
            .map_err(|source| PageTemplateError::Template {
                name: format!("partials/{name}"),
                source: Box::new(source),
            })?;
    }
    for (name, source) in PAGES {
        registry
            .register_template_string(name, *source)
            .map_err(|source| PageTemplateError::Template {
                name: (*name).to_owned(),
                source: Box::new(source),
            })?;
    }
    Ok(registry)
}

handlebars_helper!(eq: |a: Value, b: Value| a == b);

/// `{{t "key"}}`: the text of `key` in the registry's language; `{{t "status" status}}` joins its parameters
/// with dots (`status.accepted`). An unknown key fails the render.
struct Translate {
    catalog: Catalog,
}

impl HelperDef for Translate {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        if helper.params().is_empty() {
            return Err(RenderErrorReason::ParamNotFoundForIndex("t", 0).into());
        }
        let mut parts = Vec::new();
        for param in helper.params() {
            if param.is_value_missing() {
                return Err(RenderError::strict_error(param.relative_path()));
            }
            match param.value() {
                Value::String(s) => parts.push(s.clone()),
                other => parts.push(other.to_string()),
            }
        }
        let key = parts.join(".");
        let text = self.catalog.get(&key).ok_or_else(|| {
            RenderErrorReason::Other(format!("no message `{key}` in the catalog"))
        })?;
        Ok(ScopedJson::Derived(Value::String(text.clone())))
    }
}

/// `{{date "2024-03-12"}}` → « 12 mars 2024 »; `{{date "2024-03"}}` → « mars 2024 ». Month names come from
/// the catalog (`month.1` … `month.12`).
struct FormatDate {
    catalog: Catalog,
}

impl HelperDef for FormatDate {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let param = helper
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("date", 0))?;
        if param.is_value_missing() {
            return Err(RenderError::strict_error(param.relative_path()));
        }
        let text = param.value().as_str().unwrap_or_default();
        let month_name = |month: u32| {
            self.catalog
                .get(&format!("month.{month}"))
                .cloned()
                .ok_or_else(|| RenderErrorReason::Other(format!("no message `month.{month}`")))
        };
        let formatted = if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            format!(
                "{} {} {}",
                date.day(),
                month_name(date.month())?,
                date.year()
            )
        } else if let Ok(date) = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
            format!("{} {}", month_name(date.month())?, date.year())
        } else {
            return Err(RenderErrorReason::Other(format!("`{text}` is not a date")).into());
        };
        Ok(ScopedJson::Derived(Value::String(formatted)))
    }
}

/// `if` and `unless` that fail on a variable the context does not have: handlebars' own treat it as false
/// even in strict mode, so a misspelt `{{#if can_review}}` would silently hide a button forever.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_the_catalogs_agree() {
        let pages = Pages::load().expect("templates load");
        assert_eq!(pages.message(Lang::Fr, "month.3"), "mars");
        assert_eq!(pages.message(Lang::En, "month.3"), "March");
    }

    #[test]
    fn helpers_translate_format_dates_and_refuse_unknown_names() {
        let catalog: Catalog = Arc::new(BTreeMap::from([
            ("hello".to_owned(), "Bonjour « toi »".to_owned()),
            ("month.3".to_owned(), "mars".to_owned()),
        ]));
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_helper(
            "t",
            Box::new(Translate {
                catalog: catalog.clone(),
            }),
        );
        registry.register_helper("date", Box::new(FormatDate { catalog }));
        registry.register_helper("if", Box::new(StrictIf { truthy: true }));
        let render = |source: &str, data: Value| registry.render_template(source, &data);
        assert_eq!(
            render(r#"{{t "hello"}}"#, Value::Null).unwrap(),
            "Bonjour « toi »"
        );
        assert_eq!(
            render(r#"{{date d}}"#, serde_json::json!({"d": "2024-03-05"})).unwrap(),
            "5 mars 2024"
        );
        assert_eq!(
            render(r#"{{date d}}"#, serde_json::json!({"d": "2024-03"})).unwrap(),
            "mars 2024"
        );
        assert_eq!(
            render(r#"{{t "month" m}}"#, serde_json::json!({"m": 3})).unwrap(),
            "mars"
        );
        assert!(render(r#"{{t "nope"}}"#, Value::Null).is_err());
        assert!(render(r#"{{t "month" m}}"#, serde_json::json!({})).is_err());
        assert!(render(r#"{{#if missing}}x{{/if}}"#, serde_json::json!({})).is_err());
        assert!(render(r#"{{date d}}"#, serde_json::json!({})).is_err());
    }
}
