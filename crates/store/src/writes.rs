//! A unit's writes gathered, then sent together. On SQLite they travel as one multi-statement query: sqlx
//! runs each SQLite connection on a thread of its own and every query is a message there and an answer
//! back, so one query instead of six is most of what a transition costs the writer (BENCHMARKS.md).
//! On PostgreSQL they run one after the other on the transaction's connection.

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Values};

use crate::error::StoreResult;

/// Statements to run in order inside the caller's transaction, the first of them a guard or not (an
/// optimistic check returning one row when it holds).
///
/// On SQLite every parameter must be a plain `?`: sqlx binds them across the statements of one query in
/// order, while a numbered `?N` would name the N-th value of the whole query.
#[derive(Debug)]
pub(crate) struct Writes {
    backend: DbBackend,
    statements: Vec<Statement>,
    guarded: bool,
}

impl Writes {
    /// Starts with the guard: when it returns no row, nothing after it is needed (on SQLite the rest runs
    /// all the same and is rolled back with the unit that fails on the missing row).
    pub(crate) fn guarded_by(guard: Statement) -> Self {
        Self {
            backend: guard.db_backend,
            statements: vec![guard],
            guarded: true,
        }
    }

    pub(crate) fn unguarded(backend: DbBackend) -> Self {
        Self {
            backend,
            statements: Vec::new(),
            guarded: false,
        }
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
    }

    pub(crate) fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    /// Runs the statements; returns every row they returned, in order (none past a guard that failed).
    pub(crate) async fn run(self, txn: &impl ConnectionTrait) -> StoreResult<Vec<QueryResult>> {
        if self.backend != DbBackend::Sqlite {
            let mut rows = Vec::new();
            for (i, statement) in self.statements.into_iter().enumerate() {
                let returned = txn.query_all(statement).await?;
                if self.guarded && i == 0 && returned.is_empty() {
                    break;
                }
                rows.extend(returned);
            }
            return Ok(rows);
        }
        let mut sql = String::new();
        let mut values = Vec::new();
        for statement in self.statements {
            debug_assert!(
                !statement.sql.contains("?1"),
                "numbered parameters cannot share a query"
            );
            sql.push_str(&statement.sql);
            sql.push_str(";\n");
            values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        }
        let query = Statement::from_sql_and_values(self.backend, sql, Values(values));
        Ok(txn.query_all(query).await?)
    }
}

/// The `n`-th parameter of a statement of [`Writes`].
pub(crate) fn param(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}
