//! Where each node of a YAML document is, by key path (`transitions.retain_project.guards.0.requirements`).
//!
//! serde_yaml forgets positions once a value is deserialised, so semantic errors found later would have no
//! location. One pass of yaml-rust2's event parser records them, and every duplicate key with both places
//! (serde_yaml names only the first it meets). It runs only when there is an error to place: what a
//! definition means is serde_yaml's reading alone.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError};

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

impl Locations {
    /// Records the position of every node of `source` and every duplicate key. Only needed to report errors,
    /// hence a pass of its own rather than a cost paid by every sound definition.
    pub(crate) fn scan(source: &str) -> Result<(Locations, Vec<DuplicateKey>), (Location, String)> {
        let recorder = Recorder::run(source)?;
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
/// surrogates, U+FFFE and U+FFFF), and where it is. serde_yaml refuses them too, without saying which one or
/// how to write it where it is wanted.
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
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Debug, Default)]
struct Recorder {
    stack: Vec<Frame>,
    spots: HashMap<String, Spot>,
    duplicates: Vec<DuplicateKey>,
}

impl Recorder {
    fn run(source: &str) -> Result<Recorder, (Location, String)> {
        let mut recorder = Recorder::default();
        Parser::new_from_str(source)
            .load(&mut recorder, false)
            .map_err(|e: ScanError| (Location::from_marker(*e.marker()), e.info().to_owned()))?;
        Ok(recorder)
    }

    /// Places a node (scalar, alias or collection start) and returns its path, or `None` for a mapping key.
    fn place(&mut self, at: Location, scalar: Option<&str>) -> Option<String> {
        let (path, key_at) = match self.stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Map {
                path,
                pending_key,
                keys,
                has_child,
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
            Event::Scalar(text, ..) => {
                self.place(at, Some(&text));
            }
            Event::Alias(_) => {
                self.place(at, None);
            }
            Event::MappingStart(..) => {
                let path = self.place(at, None).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    pending_key: None,
                    keys: HashMap::new(),
                    has_child: false,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.place(at, None).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
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
    fn syntax_errors_carry_a_location() {
        let (location, message) = Locations::scan("a: [1\nb: 2\n").unwrap_err();
        assert_eq!(location.line, 2);
        assert!(message.contains("':'"), "{message}");
    }
}
