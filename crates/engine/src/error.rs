//! Errors of the engine: a definition that does not load, a field value that does not parse.

use std::fmt;

use crate::locate::Location;

/// One defect of a workflow definition, at the YAML node responsible for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl LoadError {
    pub(crate) fn new(
        file: &str,
        at: Location,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> LoadError {
        LoadError {
            file: file.to_owned(),
            line: at.line,
            column: at.column,
            message: message.into(),
            hint,
        }
    }

    pub fn location(&self) -> Location {
        Location {
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Every defect found in one definition, in source order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(Vec<LoadError>);

impl LoadErrors {
    pub(crate) fn new(mut errors: Vec<LoadError>) -> LoadErrors {
        debug_assert!(!errors.is_empty());
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        LoadErrors(errors)
    }

    pub fn errors(&self) -> &[LoadError] {
        &self.0
    }
}

impl IntoIterator for LoadErrors {
    type Item = LoadError;
    type IntoIter = std::vec::IntoIter<LoadError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// A value that cannot be stored in a project field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("unknown field `{key}`")]
    UnknownField { key: String },
    #[error("field `{key}` expects {expected}, got {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("field `{key}`: `{value}` is not a date written YYYY-MM-DD")]
    BadDate { key: String, value: String },
    #[error("field `{key}`: `{value}` is not one of {}", allowed.join(", "))]
    NotAChoice {
        key: String,
        value: String,
        allowed: Vec<String>,
    },
    #[error("field `{key}`: {value} is below the minimum {min}")]
    BelowMin { key: String, value: i64, min: i64 },
    #[error("field `{key}`: {value} is above the maximum {max}")]
    AboveMax { key: String, value: i64, max: i64 },
}
