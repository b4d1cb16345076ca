//! `list` and `replay` filters: the one place the PostgreSQL ledger builds SQL
//! at run time, because a `Selection` leaves out any of its parts.
//!
//! Only fixed fragments are pushed as text; every value (states, id, time,
//! limit) is a bind, so a selection can never change the statement's meaning.
//! `replay` repeats its state condition on the row it updates: a row a
//! claimer took meanwhile is checked again on its new version and left alone.

use super::row::sql_int;
use super::sql::{COLUMNS, NOW};
use crate::ledger::{ExportState, Selection};
use sqlx::{Postgres, QueryBuilder};

/// `SELECT <columns> FROM exports` filtered by `selection`, oldest first.
pub(super) fn list(selection: &Selection) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM exports"));
    push_filter(&mut query, selection, &selection.states);
    query
}

/// Moves the selected rows in `states` back to `pending` and returns their ids.
/// `states` must not be empty.
pub(super) fn replay(selection: &Selection, states: &[ExportState]) -> QueryBuilder<Postgres> {
    let mut query =
        QueryBuilder::new(format!("UPDATE exports SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = {NOW} WHERE"));
    push_states(&mut query, states);
    // The ids as one array: the rows are then found by primary key, never by a join over the table.
    query.push(" AND id = ANY(ARRAY(SELECT id FROM exports");
    push_filter(&mut query, selection, states);
    query.push(" FOR UPDATE)) RETURNING id");
    query
}

/// ` WHERE ... ORDER BY id [LIMIT n]` for the selection, with `states` in place of its own.
fn push_filter(query: &mut QueryBuilder<Postgres>, selection: &Selection, states: &[ExportState]) {
    query.push(" WHERE TRUE");
    if !states.is_empty() {
        query.push(" AND");
        push_states(query, states);
    }
    if let Some(id) = selection.id {
        query.push(" AND id = ").push_bind(id);
    }
    if let Some(since) = selection.since {
        query.push(" AND created_at >= ").push_bind(since);
    }
    query.push(" ORDER BY id");
    if let Some(limit) = selection.limit {
        query.push(" LIMIT ").push_bind(sql_int(limit));
    }
}

/// ` state IN (...)`, one bind per state.
fn push_states(query: &mut QueryBuilder<Postgres>, states: &[ExportState]) {
    query.push(" state IN (");
    let mut list = query.separated(", ");
    for state in states {
        list.push_bind(state.as_str());
    }
    query.push(")");
}
