//! Between stored rows and the ledger's types: states as their stored
//! spelling, counts and limits as PostgreSQL's signed integers, leases as
//! milliseconds, payloads zstd-compressed.
//!
//! A stored value that does not convert back (an unknown state, a payload
//! that does not decompress) is reported as `LedgerError::Corrupt` naming the
//! row, never guessed at. Times need no conversion: TIMESTAMPTZ columns
//! decode straight into `DateTime<Utc>`.

use crate::ledger::{Export, ExportId, ExportState, LedgerError, StateCounts};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The longest lease stored: a longer one (a century) is, for every purpose, forever,
/// and `now + lease` must stay inside PostgreSQL's timestamp range.
const LONGEST_LEASE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// zstd level for payloads: the library default, fast to write and still several times smaller.
const PAYLOAD_LEVEL: i32 = zstd::DEFAULT_COMPRESSION_LEVEL;

/// One `exports` row as stored, in the column order of `sql::columns!`.
#[derive(sqlx::FromRow)]
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
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    ingested_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl ExportRow {
    /// The row as an `Export`, or `Corrupt` when its state is unknown.
    pub(super) fn into_export(self) -> Result<Export, LedgerError> {
        let state = parse_state(self.id, &self.state)?;
        Ok(Export {
            id: self.id,
            state,
            batch_file: self.batch_file,
            graph_key: self.graph_key,
            graph_version: self.graph_version,
            content_hash: self.content_hash,
            node_count: self.node_count,
            edge_count: self.edge_count,
            bytes: self.bytes,
            attempts: self.attempts,
            created_at: self.created_at,
            updated_at: self.updated_at,
            next_attempt_at: self.next_attempt_at,
            ingested_at: self.ingested_at,
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

/// A stored state read back (`id` 0 when no single row is at hand).
pub(super) fn parse_state(id: ExportId, state: &str) -> Result<ExportState, LedgerError> {
    ExportState::parse(state).ok_or_else(|| corrupt(id, format!("unknown state {state:?}")))
}

/// A lease as the milliseconds the claim statement adds to the server's clock.
pub(super) fn lease_millis(lease: Duration) -> i64 {
    sql_int(lease.min(LONGEST_LEASE).as_millis())
}

/// A count or limit as PostgreSQL takes it (its integers are signed).
pub(super) fn sql_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Adds one state's `COUNT` and `MIN(created_at)` to the totals.
pub(super) fn add_count(counts: &mut StateCounts, state: ExportState, count: i64, oldest: DateTime<Utc>) {
    let count = u64::try_from(count).unwrap_or(0);
    let slot = match state {
        ExportState::Pending => &mut counts.pending,
        ExportState::InFlight => &mut counts.in_flight,
        ExportState::Ingested => &mut counts.ingested,
        ExportState::Failed => &mut counts.failed,
        ExportState::Dead => &mut counts.dead,
    };
    *slot = count;
    if matches!(state, ExportState::Pending | ExportState::InFlight | ExportState::Failed) {
        counts.oldest_unfinished = Some(counts.oldest_unfinished.map_or(oldest, |o| o.min(oldest)));
    }
}

/// Compresses payloads for storage, off the async threads (a batch can be megabytes).
pub(super) async fn compress(payloads: Vec<Option<Vec<u8>>>) -> Result<Vec<Option<Vec<u8>>>, LedgerError> {
    if payloads.iter().all(Option::is_none) {
        return Ok(payloads);
    }
    let work = move || {
        payloads
            .into_iter()
            .map(|p| p.map(|bytes| zstd::encode_all(bytes.as_slice(), PAYLOAD_LEVEL)).transpose())
            .collect::<Result<Vec<_>, _>>()
    };
    let compressed = tokio::task::spawn_blocking(work).await.map_err(|e| LedgerError::Payload(e.to_string()))?;
    compressed.map_err(|e| LedgerError::Payload(e.to_string()))
}

/// A stored payload decompressed, off the async threads.
pub(super) async fn decompress(id: ExportId, stored: Vec<u8>) -> Result<Vec<u8>, LedgerError> {
    let bytes =
        tokio::task::spawn_blocking(move || zstd::decode_all(stored.as_slice())).await.map_err(|e| corrupt(id, format!("payload: {e}")))?;
    bytes.map_err(|e| corrupt(id, format!("payload does not decompress: {e}")))
}

fn corrupt(id: ExportId, message: String) -> LedgerError {
    LedgerError::Corrupt { id, message }
}
