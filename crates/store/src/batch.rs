//! Statements gathered, then sent together: one query instead of one per statement (a unit's writes, the
//! reads of one answer). sqlx runs each SQLite connection on a thread of its own and every query is a
//! message there and an answer back; on PostgreSQL every query is a round trip to the server. Either way
//! the hops, not the statements' own work, were most of what a transition cost the writer (BENCHMARKS.md).
//!
//! - SQLite: the statements travel as one multi-statement query and run in order, each seeing the last.
//! - PostgreSQL: the writes travel as one statement of data-modifying CTEs (`WITH w0 AS (…), w1 AS (…)`),
//!   which all run on the snapshot the statement started from: a write that needs what an earlier one wrote
//!   reads that one's returned rows ([`Batch::rows_of_last`]), and no two may change the same row. The
//!   reads, which must see the writes, follow as queries of their own: on PostgreSQL a batch of reads only
//!   saves nothing.

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Values};

use crate::error::StoreResult;

/// Statements to run in order inside the caller's transaction: writes, the first of them a guard or not (an
/// optimistic check returning one row when it holds), then reads that see the writes.
///
/// On SQLite every parameter must be a plain `?`: sqlx binds them across the statements of one query in
/// order, while a numbered `?N` would name the N-th value of the whole query. On SQLite only the guard and
/// the reads may return rows.
#[derive(Debug)]
pub(crate) struct Batch {
    backend: DbBackend,
    writes: Vec<Statement>,
    reads: Vec<Statement>,
    guarded: bool,
}

impl Batch {
    /// Starts with the guard, whose returned rows come first in [`Batch::run`]'s answer. When it returns
    /// none the other writes are not needed; they may run all the same, and are rolled back with the unit
    /// that fails on the missing row.
    pub(crate) fn guarded_by(guard: Statement) -> Self {
        Self {
            backend: guard.db_backend,
            writes: vec![guard],
            reads: Vec::new(),
            guarded: true,
        }
    }

    pub(crate) fn unguarded(backend: DbBackend) -> Self {
        Self {
            backend,
            writes: Vec::new(),
            reads: Vec::new(),
            guarded: false,
        }
    }

    /// Whether reads added after the writes travel with them: on SQLite they do; on PostgreSQL each is a
    /// query of its own.
    pub(crate) fn reads_ride_along(backend: DbBackend) -> bool {
        backend != DbBackend::Postgres
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
    }

    pub(crate) fn push(&mut self, write: Statement) {
        self.writes.push(write);
    }

    /// A one-row `INSERT … VALUES (…)`, right after the guard, that must not run when the guard fails: the
    /// row it was decided on may have moved since (another request's transition decided outside the writer,
    /// another replica on PostgreSQL), and this insert could then collide with that writer's (a unique key).
    /// It becomes `INSERT … SELECT … WHERE` the guard's row was written, so the unit ends on the guard's
    /// answer: on SQLite `changes()`, which counts the rows of the statement just before; on PostgreSQL,
    /// the guard's returned rows.
    pub(crate) fn push_if_guard_holds(&mut self, insert: Statement) {
        debug_assert!(
            self.guarded && self.writes.len() == 1,
            "not right after a guard"
        );
        let guard_held = match self.backend {
            DbBackend::Postgres => format!("EXISTS (SELECT 1 FROM {})", cte_name(0)),
            _ => "changes() = 1".to_owned(),
        };
        let gated = insert
            .sql
            .split_once(" VALUES (")
            .filter(|(_, row)| row.ends_with(')'))
            .map(|(head, row)| {
                format!("{head} SELECT {} WHERE {guard_held}", &row[..row.len() - 1])
            });
        debug_assert!(
            gated.is_some(),
            "not a one-row INSERT … VALUES: {}",
            insert.sql
        );
        match gated {
            Some(sql) => self.push(Statement { sql, ..insert }),
            // Unconditional, it is still refused with its unit, only with a less precise error.
            None => self.push(insert),
        }
    }

    /// A read that sees every write; its rows follow the guard's in [`Batch::run`]'s answer.
    pub(crate) fn read_after(&mut self, read: Statement) {
        self.reads.push(read);
    }

    /// Where the next write finds the rows of `table` the last write wrote: the table itself on SQLite,
    /// the last write's returned rows on PostgreSQL (it must return them).
    pub(crate) fn rows_of_last(&self, table: &str) -> String {
        match (self.backend, self.writes.len().checked_sub(1)) {
            (DbBackend::Postgres, Some(last)) => cte_name(last),
            _ => table.to_owned(),
        }
    }

    /// Runs the statements; returns the rows the guard returned (none when it failed), then the reads' rows.
    /// The batch stays whole: a unit may run again (see the committer).
    pub(crate) async fn run(&self, txn: &impl ConnectionTrait) -> StoreResult<Vec<QueryResult>> {
        if self.backend != DbBackend::Postgres {
            return Ok(txn.query_all(self.one_query()).await?);
        }
        let mut rows = match combined_writes(&self.writes, self.guarded) {
            Some(writes) => txn.query_all(writes).await?,
            None => Vec::new(),
        };
        if self.guarded && rows.is_empty() {
            return Ok(rows);
        }
        for read in &self.reads {
            rows.extend(txn.query_all(read.clone()).await?);
        }
        Ok(rows)
    }

    /// SQLite: every statement, writes then reads, as one multi-statement query.
    fn one_query(&self) -> Statement {
        let mut sql = String::new();
        let mut values = Vec::new();
        for statement in self.writes.iter().chain(&self.reads) {
            debug_assert!(
                !statement
                    .sql
                    .as_bytes()
                    .windows(2)
                    .any(|w| w[0] == b'?' && w[1].is_ascii_digit()),
                "numbered parameters cannot share a query: {}",
                statement.sql
            );
            sql.push_str(&statement.sql);
            sql.push_str(";\n");
            if let Some(Values(these)) = &statement.values {
                values.extend(these.iter().cloned());
            }
        }
        Statement::from_sql_and_values(self.backend, sql, Values(values))
    }
}

fn cte_name(index: usize) -> String {
    format!("w{index}")
}

/// PostgreSQL: the writes as one statement, each a CTE `wN` with its parameters renumbered after those of
/// the CTEs before it; the statement returns the guard's rows, or none when unguarded.
fn combined_writes(writes: &[Statement], guarded: bool) -> Option<Statement> {
    let backend = writes.first()?.db_backend;
    let mut sql = String::from("WITH ");
    let mut values = Vec::new();
    for (index, write) in writes.iter().enumerate() {
        if index > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&cte_name(index));
        sql.push_str(" AS (");
        sql.push_str(&shift_parameters(&write.sql, values.len()));
        sql.push(')');
        if let Some(Values(these)) = &write.values {
            values.extend(these.iter().cloned());
        }
    }
    sql.push_str(if guarded {
        " SELECT * FROM w0"
    } else {
        " SELECT 1 LIMIT 0"
    });
    Some(Statement::from_sql_and_values(backend, sql, Values(values)))
}

/// `$n` becomes `$(n + by)` wherever it is a parameter: not inside a quoted string or identifier.
fn shift_parameters(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                out.push('$');
                out.push_str(&(n + by).to_string());
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// The `n`-th parameter of a statement of [`Batch`].
pub(crate) fn param(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_shift_outside_quotes_only() {
        assert_eq!(
            shift_parameters(r#"SELECT $1, '$2', "$3", $10 || '''$4'"#, 5),
            r#"SELECT $6, '$2', "$3", $15 || '''$4'"#
        );
    }

    #[test]
    fn postgres_writes_become_ctes_returning_the_guard() {
        let guard = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE t SET a = $1 WHERE id = $2 RETURNING *",
            [1i64.into(), 2i64.into()],
        );
        let mut writes = Batch::guarded_by(guard);
        writes.push_if_guard_holds(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"INSERT INTO "e" ("a", "b") VALUES ($1, $2)"#,
            [3i64.into(), 4i64.into()],
        ));
        writes.push(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO u (b) VALUES ($1) RETURNING *",
            [5i64.into()],
        ));
        assert_eq!(writes.rows_of_last("u"), "w2");
        let combined = combined_writes(&writes.writes, true).unwrap();
        assert_eq!(
            combined.sql,
            "WITH w0 AS (UPDATE t SET a = $1 WHERE id = $2 RETURNING *), \
             w1 AS (INSERT INTO \"e\" (\"a\", \"b\") SELECT $3, $4 WHERE EXISTS (SELECT 1 FROM w0)), \
             w2 AS (INSERT INTO u (b) VALUES ($5) RETURNING *) \
             SELECT * FROM w0"
        );
        assert_eq!(combined.values.unwrap().0.len(), 5);
    }
}
