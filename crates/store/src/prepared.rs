//! SQL text written once per backend. sea-query writes a statement's text anew on every build, and for the
//! reads every transition request makes that writing cost about as much CPU as running them on SQLite
//! (BENCHMARKS.md, session 7). Those statements keep their text and take only fresh values.

use std::sync::OnceLock;

use sea_orm::{DbBackend, Statement, Value, Values};

/// The text of one statement whose shape never depends on its values, written on first use per backend.
pub(crate) struct Prepared {
    sqlite: OnceLock<String>,
    postgres: OnceLock<String>,
}

impl Prepared {
    pub(crate) const fn new() -> Self {
        Self {
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    /// The statement `build` makes for `backend`, its text written once: `values` are the values `build`
    /// binds, in their order (debug builds, and so the tests, check both against a fresh build).
    pub(crate) fn statement(
        &self,
        backend: DbBackend,
        values: Vec<Value>,
        build: impl Fn(DbBackend) -> Statement,
    ) -> Statement {
        let cell = match backend {
            DbBackend::Sqlite => &self.sqlite,
            DbBackend::Postgres => &self.postgres,
            // Not a backend the service runs on: nothing kept.
            DbBackend::MySql => return build(backend),
        };
        let sql = cell.get_or_init(|| build(backend).sql);
        if cfg!(debug_assertions) {
            let fresh = build(backend);
            assert_eq!(
                &fresh.sql, sql,
                "the statement's text depends on its values"
            );
            assert_eq!(
                fresh.values,
                Some(Values(values.clone())),
                "values given out of order: {sql}"
            );
        }
        Statement::from_sql_and_values(backend, sql.clone(), values)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Expr, Query, SqliteQueryBuilder};

    use super::*;

    fn by_id(backend: DbBackend, id: i64, name: &str) -> Statement {
        let query = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("t"))
            .and_where(Expr::col(Alias::new("id")).eq(id))
            .and_where(Expr::col(Alias::new("name")).eq(name))
            .to_owned();
        backend.build(&query)
    }

    #[test]
    fn the_text_is_kept_and_the_values_are_fresh() {
        static QUERY: Prepared = Prepared::new();
        for (id, name) in [(1, "a"), (2, "b")] {
            let statement =
                QUERY.statement(DbBackend::Sqlite, vec![id.into(), name.into()], |backend| {
                    by_id(backend, id, name)
                });
            assert_eq!(
                statement.sql,
                Query::select()
                    .column(Alias::new("id"))
                    .from(Alias::new("t"))
                    .and_where(Expr::col(Alias::new("id")).eq(0))
                    .and_where(Expr::col(Alias::new("name")).eq(""))
                    .to_owned()
                    .build(SqliteQueryBuilder)
                    .0
            );
            assert_eq!(statement.values, Some(Values(vec![id.into(), name.into()])));
        }
        let postgres = QUERY.statement(
            DbBackend::Postgres,
            vec![3_i64.into(), "c".into()],
            |backend| by_id(backend, 3, "c"),
        );
        assert!(postgres.sql.contains("$2"), "{}", postgres.sql);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "values given out of order")]
    fn values_out_of_order_are_caught() {
        static QUERY: Prepared = Prepared::new();
        QUERY.statement(DbBackend::Sqlite, vec!["a".into(), 1.into()], |backend| {
            by_id(backend, 1, "a")
        });
    }
}
