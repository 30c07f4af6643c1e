//! Where each node of a YAML document is, by key path (`transitions.retain_project.guards.0.requirements`).
//!
//! serde_yaml forgets positions once a value is deserialised, so semantic errors found later would have no
//! location. One pass of yaml-rust2's event parser records them, and also catches duplicate keys, which
//! serde_yaml silently resolves to the last one. The same pass builds the document as a `serde_yaml::Value`,
//! which saves parsing the text a second time when the definition is sound.

use std::collections::HashMap;

use serde_yaml::{Mapping, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// A 1-based line and column in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub(crate) const START: Location = Location { line: 1, column: 1 };

    /// The nearest position inside `source`. Parsers place an error about the end of the text one line past
    /// the last one when the text does not end with a line break, where no editor can jump.
    pub(crate) fn within(self, source: &str) -> Location {
        // YAML's line breaks: `\r\n`, `\n` and a lone `\r`.
        let normalized = source.replace("\r\n", "\n").replace('\r', "\n");
        let lines: Vec<&str> = normalized.split('\n').collect();
        let line = self.line.clamp(1, lines.len());
        let width = lines[line - 1].chars().count();
        let column = if line < self.line {
            width + 1
        } else {
            self.column.clamp(1, width + 1)
        };
        Location { line, column }
    }

    fn from_marker(marker: Marker) -> Location {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Location {
            line: marker.line().max(1),
            column: marker.col() + 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Spot {
    /// Where the key naming this node is, for nodes that are mapping values.
    key: Option<Location>,
    /// Where the node itself starts: a scalar, or the first entry of a collection.
    value: Location,
}

/// A key that appears twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DuplicateKey {
    pub path: String,
    pub key: String,
    pub at: Location,
    pub first: Location,
}

#[derive(Debug, Default)]
pub(crate) struct Locations {
    spots: HashMap<String, Spot>,
}

/// The document as a `serde_yaml::Value`, read in one pass without recording positions.
#[derive(Debug)]
pub(crate) struct Document {
    /// `None` when the document uses a YAML feature (tags, anchors, non-decimal numbers) left to serde_yaml.
    pub value: Option<Value>,
    /// Some mapping repeats a key: [`Locations::scan`] says which and where.
    pub has_duplicates: bool,
}

impl Document {
    /// Fails only on YAML syntax errors.
    pub(crate) fn read(source: &str) -> Result<Document, (Location, String)> {
        let recorder = Recorder::run(source, false)?;
        let value = if recorder.unsupported {
            None
        } else {
            recorder.root
        };
        Ok(Document {
            value,
            has_duplicates: recorder.has_duplicates,
        })
    }
}

impl Locations {
    /// Records the position of every node of `source` and every duplicate key. Only needed to report errors,
    /// hence a second pass rather than a cost paid by every sound definition.
    pub(crate) fn scan(source: &str) -> Result<(Locations, Vec<DuplicateKey>), (Location, String)> {
        let recorder = Recorder::run(source, true)?;
        Ok((
            Locations {
                spots: recorder.spots,
            },
            recorder.duplicates,
        ))
    }

    /// The node at `path`, or its nearest recorded ancestor (a defaulted key has no node of its own).
    pub(crate) fn value(&self, path: &str) -> Location {
        self.nearest(path).map_or(Location::START, |s| s.value)
    }

    /// The key naming the node at `path` (falls back to the node, then to its ancestors).
    pub(crate) fn key(&self, path: &str) -> Location {
        self.nearest(path)
            .map_or(Location::START, |s| s.key.unwrap_or(s.value))
    }

    fn nearest(&self, mut path: &str) -> Option<&Spot> {
        loop {
            if let Some(spot) = self.spots.get(path) {
                return Some(spot);
            }
            path = &path[..path.rfind('.')?];
        }
    }
}

/// The first character YAML does not allow in a stream (C0 and C1 controls other than tab and line breaks,
/// surrogates, U+FFFE and U+FFFF), and where it is. yaml-rust2 lets them through into labels that end up in
/// pages and emails; serde_yaml refuses them, so a definition is refused the same whichever parser reads it.
pub(crate) fn first_unprintable(source: &str) -> Option<(Location, char)> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}')
            || matches!(c, '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    };
    let (index, c) = source.char_indices().find(|&(_, c)| !printable(c))?;
    let before = &source[..index];
    let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let at = Location {
        line: 1 + before.matches('\n').count() + before.matches('\r').count()
            - before.matches("\r\n").count(),
        column: 1 + before[line_start..].chars().count(),
    };
    Some((at, c))
}

/// Joins a key path: the root is the empty path.
pub(crate) fn join(parent: &str, child: impl std::fmt::Display) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

#[derive(Debug)]
enum Frame {
    Map {
        path: String,
        pending_key: Option<String>,
        keys: HashMap<String, Location>,
        has_child: bool,
        value: Mapping,
        key_value: Option<Value>,
    },
    Seq {
        path: String,
        next: usize,
        value: Vec<Value>,
    },
}

#[derive(Debug, Default)]
struct Recorder {
    /// Whether to record positions (`spots`, `duplicates`); building the value alone is much cheaper.
    positions: bool,
    stack: Vec<Frame>,
    spots: HashMap<String, Spot>,
    duplicates: Vec<DuplicateKey>,
    root: Option<Value>,
    unsupported: bool,
    has_duplicates: bool,
}

impl Recorder {
    fn run(source: &str, positions: bool) -> Result<Recorder, (Location, String)> {
        let mut recorder = Recorder {
            positions,
            ..Recorder::default()
        };
        Parser::new_from_str(source)
            .load(&mut recorder, false)
            .map_err(|e: ScanError| (Location::from_marker(*e.marker()), e.info().to_owned()))?;
        Ok(recorder)
    }

    /// Places a node (scalar, alias or collection start) and returns its path, or `None` for a mapping key.
    fn place(&mut self, at: Location, scalar: Option<&str>) -> Option<String> {
        if !self.positions {
            return None;
        }
        let (path, key_at) = match self.stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Map {
                path,
                pending_key,
                keys,
                has_child,
                ..
            }) => match pending_key.take() {
                None => {
                    // Complex (non-scalar) keys never name a definition entry; they get a path nothing asks for.
                    let key = scalar.unwrap_or("?").to_owned();
                    let first_child = !std::mem::replace(has_child, true);
                    let parent = path.clone();
                    if let Some(&first) = keys.get(&key) {
                        self.duplicates.push(DuplicateKey {
                            path: parent.clone(),
                            key: key.clone(),
                            at,
                            first,
                        });
                    } else {
                        keys.insert(key.clone(), at);
                    }
                    *pending_key = Some(key);
                    if first_child {
                        self.set_first_child(&parent, at);
                    }
                    return None;
                }
                Some(key) => {
                    let key_at = keys.get(&key).copied();
                    (join(path, key), key_at)
                }
            },
            Some(Frame::Seq { path, next, .. }) => {
                let child = join(path, *next);
                *next += 1;
                let parent = path.clone();
                if *next == 1 {
                    self.set_first_child(&parent, at);
                }
                (child, None)
            }
        };
        // A duplicate key's value must not overwrite the first one's position: keep the first entry.
        self.spots.entry(path.clone()).or_insert(Spot {
            key: key_at,
            value: at,
        });
        Some(path)
    }

    /// Attaches a finished node to its parent collection, or makes it the document.
    fn attach(&mut self, node: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { value, .. }) => value.push(node),
            Some(Frame::Map {
                value, key_value, ..
            }) => match key_value.take() {
                Some(key) => {
                    self.has_duplicates |= value.insert(key, node).is_some();
                }
                None => *key_value = Some(node),
            },
        }
    }

    /// Block collections report their start after the first key; point at the first entry instead.
    fn set_first_child(&mut self, collection: &str, at: Location) {
        if let Some(spot) = self.spots.get_mut(collection) {
            spot.value = at;
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        let at = Location::from_marker(marker);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                // yaml-rust2 reads `{fr: >x}` as the text `>x`; YAML keeps these indicators from starting a
                // plain value, and serde_yaml refuses it: it is handed to serde_yaml, which says where.
                let reserved_start =
                    style == TScalarStyle::Plain && text.starts_with(['>', '|', '%', '@', '`']);
                self.unsupported |= anchor != 0 || tag.is_some() || reserved_start;
                self.place(at, Some(&text));
                let node = if style == TScalarStyle::Plain {
                    self.plain_scalar(text)
                } else {
                    Value::String(text)
                };
                self.attach(node);
            }
            Event::Alias(_) => {
                self.unsupported = true;
                self.place(at, None);
                self.attach(Value::Null);
            }
            Event::MappingStart(anchor, tag) => {
                self.unsupported |= anchor != 0 || tag.is_some();
                let path = self.place(at, None).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    pending_key: None,
                    keys: HashMap::new(),
                    has_child: false,
                    value: Mapping::new(),
                    key_value: None,
                });
            }
            Event::SequenceStart(anchor, tag) => {
                self.unsupported |= anchor != 0 || tag.is_some();
                let path = self.place(at, None).unwrap_or_default();
                self.stack.push(Frame::Seq {
                    path,
                    next: 0,
                    value: Vec::new(),
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Map { value, .. }) => Value::Mapping(value),
                    Some(Frame::Seq { value, .. }) => Value::Sequence(value),
                    None => return,
                };
                self.attach(node);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

impl Recorder {
    /// Resolves a plain scalar as serde_yaml does (YAML 1.2 core schema); the rare forms it handles
    /// specially (hexadecimal, octal and binary integers) are left to serde_yaml itself.
    fn plain_scalar(&mut self, text: String) -> Value {
        let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
        let leading_zero = digits.len() > 1
            && digits.starts_with('0')
            && digits[1..].bytes().all(|b| b.is_ascii_digit());
        if digits.starts_with("0x") || digits.starts_with("0o") || digits.starts_with("0b") {
            self.unsupported = true;
        }
        match text.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => Value::Null,
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ if leading_zero || text.starts_with("+-") || text.starts_with("++") => {
                Value::String(text)
            }
            _ => {
                if let Ok(n) = text.strip_prefix('+').unwrap_or(&text).parse::<u64>() {
                    Value::Number(Number::from(n))
                } else if let Ok(n) = text.parse::<i64>() {
                    Value::Number(Number::from(n))
                } else if let Some(f) = float(&text) {
                    Value::Number(Number::from(f))
                } else {
                    Value::String(text)
                }
            }
        }
    }
}

/// serde_yaml's float forms: `.inf`, `.nan` and finite decimal numbers (`inf` or `NaN` are strings).
fn float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    match (unsigned, text) {
        (".inf" | ".Inf" | ".INF", _) => Some(f64::INFINITY),
        (_, "-.inf" | "-.Inf" | "-.INF") => Some(f64::NEG_INFINITY),
        (_, ".nan" | ".NaN" | ".NAN") => Some(f64::NAN),
        _ => unsigned.parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
states:
  invited:
    kind: initial
    labels: {fr: Invitée, en: Invited}
transitions:
  go:
    from: [invited, other]
    roles:
      - officer
";

    fn at(line: usize, column: usize) -> Location {
        Location { line, column }
    }

    #[test]
    fn finds_scalars_keys_and_sequence_items() {
        let (locations, duplicates) = Locations::scan(SOURCE).unwrap();
        assert!(duplicates.is_empty());
        let expected: Value = serde_yaml::from_str(SOURCE).unwrap();
        assert_eq!(Document::read(SOURCE).unwrap().value, Some(expected));
        assert_eq!(locations.value("states.invited.kind"), at(3, 11));
        assert_eq!(locations.key("states.invited"), at(2, 3));
        assert_eq!(locations.value("states.invited"), at(3, 5));
        // Columns count characters: `é` is one.
        assert_eq!(locations.value("states.invited.labels.en"), at(4, 31));
        assert_eq!(locations.value("transitions.go.from.1"), at(7, 21));
        assert_eq!(locations.value("transitions.go.roles.0"), at(9, 9));
        // A key absent from the source falls back to its nearest ancestor.
        assert_eq!(locations.value("transitions.go.guards.0"), at(7, 5));
    }

    #[test]
    fn reports_duplicate_keys_at_the_second_occurrence() {
        let source = "states:\n  a: 1\n  b: 2\n  a: 3\n";
        assert!(Document::read(source).unwrap().has_duplicates);
        let (locations, duplicates) = Locations::scan(source).unwrap();
        assert_eq!(
            duplicates,
            vec![DuplicateKey {
                path: "states".into(),
                key: "a".into(),
                at: at(4, 3),
                first: at(2, 3)
            }]
        );
        assert_eq!(locations.value("states.a"), at(2, 6));
    }

    #[test]
    fn scalars_resolve_as_serde_yaml_resolves_them() {
        let source = "[1, -2, +3, 1.5, 1e3, .inf, 007, 'quoted 1', true, yes, ~, null, P6M, 2024-12-31, inf]";
        let expected: Value = serde_yaml::from_str(source).unwrap();
        assert_eq!(Document::read(source).unwrap().value, Some(expected));
        for unsupported in ["a: &x 1\nb: *x\n", "a: !tag 1\n", "a: 0x1F\n"] {
            assert_eq!(
                Document::read(unsupported).unwrap().value,
                None,
                "{unsupported}"
            );
        }
    }

    #[test]
    fn syntax_errors_carry_a_location() {
        let (location, message) = Locations::scan("a: [1\nb: 2\n").unwrap_err();
        assert_eq!(location.line, 2);
        assert!(message.contains("':'"), "{message}");
    }
}
