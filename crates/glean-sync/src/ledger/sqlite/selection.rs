//! `list` and `replay` filters: the one place the SQLite ledger builds SQL at
//! run time, because a `Selection` leaves out any of its parts.
//!
//! Only fixed fragments are pushed as text; every value (states, id, time,
//! limit) is a numbered bind, so a selection can never change the statement's
//! meaning. Leaving unused filters out, rather than `(? IS NULL OR ...)`, lets
//! SQLite seek in the primary key or the `exports_state` index. A statement is
//! text plus binds: `list` runs it on a read connection, `replay` in a write.

use super::row::{millis, sql_int};
use super::sql::COLUMNS;
use crate::ledger::{ExportState, Selection};
use std::fmt::Write as _;

/// A value bound to a built statement.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bind {
    Int(i64),
    Text(&'static str),
}

impl rusqlite::ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Bind::Int(i) => i.to_sql(),
            Bind::Text(t) => t.to_sql(),
        }
    }
}

/// A statement built from a selection: its text, and the values of `?1`, `?2`, ... in order.
#[derive(Debug, Default)]
pub(super) struct Built {
    pub(super) sql: String,
    pub(super) binds: Vec<Bind>,
}

impl Built {
    fn push(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    fn push_bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        // Writing to a String cannot fail.
        let _ = write!(self.sql, "?{}", self.binds.len());
        self
    }
}

/// `SELECT <columns> FROM exports` filtered by `selection`, oldest first.
pub(super) fn list(selection: &Selection) -> Built {
    let mut query = Built::default();
    query.push(&format!("SELECT {COLUMNS} FROM exports"));
    push_filter(&mut query, selection, &selection.states);
    query
}

/// Moves the selected rows in `states` back to `pending` and returns their ids.
/// Binds `now` as the update time. `states` must not be empty.
pub(super) fn replay(selection: &Selection, states: &[ExportState], now: i64) -> Built {
    let mut query = Built::default();
    query.push("UPDATE exports SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = ").push_bind(Bind::Int(now));
    query.push(" WHERE id IN (SELECT id FROM exports");
    push_filter(&mut query, selection, states);
    query.push(") RETURNING id");
    query
}

/// ` WHERE ... ORDER BY id [LIMIT n]` for the selection, with `states` in place of its own.
fn push_filter(query: &mut Built, selection: &Selection, states: &[ExportState]) {
    query.push(" WHERE 1 = 1");
    if !states.is_empty() {
        query.push(" AND state IN (");
        for (i, state) in states.iter().enumerate() {
            if i > 0 {
                query.push(", ");
            }
            query.push_bind(Bind::Text(state.as_str()));
        }
        query.push(")");
    }
    if let Some(id) = selection.id {
        query.push(" AND id = ").push_bind(Bind::Int(id));
    }
    if let Some(since) = selection.since {
        query.push(" AND created_at >= ").push_bind(Bind::Int(millis(since)));
    }
    query.push(" ORDER BY id");
    if let Some(limit) = selection.limit {
        query.push(" LIMIT ").push_bind(Bind::Int(sql_int(limit)));
    }
}
