//! Lists of row ids as one JSON parameter. Every connection keeps a prepared statement per SQL text it ran
//! (sqlx's statement cache), so `IN (?, ?, …)` would leave one per list length in each connection's cache
//! (the soak run saw the server's memory climb 8 MiB higher with the officers' list batched that way);
//! a JSON list keeps one text for any number of ids.

use sea_orm::sea_query::{BinOper, Expr, SimpleExpr};
use sea_orm::{ColumnTrait, DbBackend, Value};
use serde_json::Value as Json;

/// `IN (…)` over the integers of parameter `n`, a JSON list ([`id_list`]), for statements written by hand.
pub(crate) fn in_id_list(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => {
            format!("IN (SELECT value::bigint FROM json_array_elements_text(${n}::json))")
        }
        _ => format!("IN (SELECT value FROM json_each(?{n}))"),
    }
}

/// The ids as the JSON list parameter [`in_id_list`] and [`in_ids`] read.
pub(crate) fn id_list(ids: &[i64]) -> Value {
    Json::from(ids).to_string().into()
}

/// `column IN ids` for sea-query's builders.
pub(crate) fn in_ids(backend: DbBackend, column: impl ColumnTrait, ids: &[i64]) -> SimpleExpr {
    in_json_list(backend, column, "::bigint", id_list(ids))
}

/// `column IN texts` for sea-query's builders, the texts as one JSON list.
pub(crate) fn in_texts(
    backend: DbBackend,
    column: impl ColumnTrait,
    texts: &[String],
) -> SimpleExpr {
    in_json_list(backend, column, "", Json::from(texts).to_string().into())
}

/// `column IN` the elements of `list`, a JSON list, cast on PostgreSQL (which reads them as text).
fn in_json_list(
    backend: DbBackend,
    column: impl ColumnTrait,
    pg_cast: &str,
    list: Value,
) -> SimpleExpr {
    // Numbered within the expression: sea-query renumbers PostgreSQL's placeholders in the statement.
    let elements = match backend {
        DbBackend::Postgres => {
            format!("(SELECT value{pg_cast} FROM json_array_elements_text($1::json))")
        }
        _ => "(SELECT value FROM json_each(?))".to_owned(),
    };
    Expr::col(column.as_column_ref()).binary(BinOper::In, Expr::cust_with_values(elements, [list]))
}
