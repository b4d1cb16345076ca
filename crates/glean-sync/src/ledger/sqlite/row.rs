//! Between stored rows and the ledger's types: times as unix milliseconds,
//! states as their stored spelling, id lists as JSON arrays.
//!
//! A stored value that does not convert back (an unknown state, a time out
//! of range) is reported as `LedgerError::Corrupt` naming the row, never
//! guessed at.

use crate::ledger::{Export, ExportId, ExportState, LedgerError};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One `exports` row as stored.
pub(super) struct ExportRow {
    id: i64,
    state: String,
    batch_file: String,
    graph_key: Option<String>,
    graph_version: Option<i64>,
    content_hash: Option<String>,
    node_count: i64,
    edge_count: i64,
    bytes: i64,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    next_attempt_at: Option<i64>,
    ingested_at: Option<i64>,
    last_error: Option<String>,
}

impl ExportRow {
    /// A row as a statement selecting `sql::COLUMNS` returns it, taken by column name.
    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExportRow> {
        Ok(ExportRow {
            id: r.get("id")?,
            state: r.get("state")?,
            batch_file: r.get("batch_file")?,
            graph_key: r.get("graph_key")?,
            graph_version: r.get("graph_version")?,
            content_hash: r.get("content_hash")?,
            node_count: r.get("node_count")?,
            edge_count: r.get("edge_count")?,
            bytes: r.get("bytes")?,
            attempts: r.get("attempts")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            next_attempt_at: r.get("next_attempt_at")?,
            ingested_at: r.get("ingested_at")?,
            last_error: r.get("last_error")?,
        })
    }

    /// The row as an `Export`, or `Corrupt` when a stored value makes no sense.
    pub(super) fn into_export(self) -> Result<Export, LedgerError> {
        let id = self.id;
        let state = ExportState::parse(&self.state).ok_or_else(|| corrupt(id, format!("unknown state {:?}", self.state)))?;
        Ok(Export {
            id,
            state,
            batch_file: self.batch_file,
            graph_key: self.graph_key,
            graph_version: self.graph_version,
            content_hash: self.content_hash,
            node_count: self.node_count,
            edge_count: self.edge_count,
            bytes: self.bytes,
            attempts: self.attempts,
            created_at: time(id, "created_at", self.created_at)?,
            updated_at: time(id, "updated_at", self.updated_at)?,
            next_attempt_at: self.next_attempt_at.map(|ms| time(id, "next_attempt_at", ms)).transpose()?,
            ingested_at: self.ingested_at.map(|ms| time(id, "ingested_at", ms)).transpose()?,
            last_error: self.last_error,
        })
    }
}

/// Converts rows, sorted by id: `RETURNING` gives no order, the ledger promises oldest first.
pub(super) fn into_exports(rows: Vec<ExportRow>) -> Result<Vec<Export>, LedgerError> {
    let mut exports = rows.into_iter().map(ExportRow::into_export).collect::<Result<Vec<_>, _>>()?;
    exports.sort_by_key(|e| e.id);
    Ok(exports)
}

/// A time as stored.
pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `now + lease` as stored; a lease too long to represent lasts forever.
pub(super) fn lease_until(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

/// A count or limit as SQLite takes it (SQLite integers are signed).
pub(super) fn sql_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Ids as the JSON array the statements read with `json_each`.
pub(super) fn ids_json(ids: &[ExportId]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", list.join(","))
}

/// A stored time read back.
pub(super) fn time(id: ExportId, column: &str, ms: i64) -> Result<DateTime<Utc>, LedgerError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(id, format!("{column} {ms} is out of range")))
}

fn corrupt(id: ExportId, message: String) -> LedgerError {
    LedgerError::Corrupt { id, message }
}
