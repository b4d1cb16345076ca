//! `list` and `replay` filters: the one place the SQLite ledger builds SQL at
//! run time, because a `Selection` leaves out any of its parts.
//!
//! Only fixed fragments are pushed as text; every value (states, id, time,
//! limit) is a bind, so a selection can never change the statement's meaning.
//! Leaving unused filters out, rather than `(? IS NULL OR ...)`, lets SQLite
//! seek in the primary key or the `exports_state` index.

use super::row::{millis, sql_int};
use super::sql::COLUMNS;
use crate::ledger::{ExportState, Selection};
use sqlx::{QueryBuilder, Sqlite};

/// `SELECT <columns> FROM exports` filtered by `selection`, oldest first.
pub(super) fn list(selection: &Selection) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM exports"));
    push_filter(&mut query, selection, &selection.states);
    query
}

/// Moves the selected rows in `states` back to `pending` and returns their ids.
/// Binds `now` as the update time. `states` must not be empty.
pub(super) fn replay(selection: &Selection, states: &[ExportState], now: i64) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::new("UPDATE exports SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = ");
    query.push_bind(now);
    query.push(" WHERE id IN (SELECT id FROM exports");
    push_filter(&mut query, selection, states);
    query.push(") RETURNING id");
    query
}

/// ` WHERE ... ORDER BY id [LIMIT n]` for the selection, with `states` in place of its own.
fn push_filter(query: &mut QueryBuilder<Sqlite>, selection: &Selection, states: &[ExportState]) {
    query.push(" WHERE 1 = 1");
    if !states.is_empty() {
        query.push(" AND state IN (");
        let mut list = query.separated(", ");
        for state in states {
            list.push_bind(state.as_str());
        }
        query.push(")");
    }
    if let Some(id) = selection.id {
        query.push(" AND id = ").push_bind(id);
    }
    if let Some(since) = selection.since {
        query.push(" AND created_at >= ").push_bind(millis(since));
    }
    query.push(" ORDER BY id");
    if let Some(limit) = selection.limit {
        query.push(" LIMIT ").push_bind(sql_int(limit));
    }
}
