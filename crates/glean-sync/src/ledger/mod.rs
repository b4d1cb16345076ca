//! The ledger: the durable record of every export and where it stands.
//!
//! One row per export (one saved graph, or one batch file found by the
//! watcher). A save returns only after its batch file is durable and its row
//! is committed here; from then on the ledger, not memory, is the truth: the
//! in-memory queue only holds ids as hints, and everything can be rebuilt from
//! the ledger after a crash.
//!
//! State machine (the only transitions there are):
//! ```text
//!                    claim (attempts += 1)              ingest ok
//!   pending ─────────────────────────────► in_flight ─────────────► ingested
//!     ▲  ▲                                  │   │ │
//!     │  │ release (shutdown, no attempt)   │   │ └── retriable error, attempts < max ──► failed
//!     │  └──────────────────────────────────┘   │                       (next_attempt_at)
//!     │  postpone (sink down, no attempt)  ◄────┤
//!     │       lease expired / found at start    └── fatal error, or attempts = max ──► dead
//!     │                                                                  │
//!     └───────────── replay (attempts reset) ◄── failed, dead ───────────┘
//!   failed rows are claimable again once next_attempt_at has passed.
//! ```
//!
//! Delivery guarantee: at least once. An export is only `ingested` after the
//! sink confirmed the write; a crash between the write and the update means
//! the batch is written again, which Glean absorbs (equal facts are
//! de-duplicated). Per graph (same `graph_key`), exports are claimed in id
//! order and never two at a time, so versions of one graph reach Glean in
//! the order they were saved.
//!
//! Implementations: `sqlite` (embedded, the default) and, for several nodes
//! sharing work, `postgres`. Both pass the same conformance suite. Nothing
//! outside this module writes SQL against the ledger.
//!
//! Payloads: on SQLite the batch file in the local export directory is the
//! only copy of an export's facts, so the ledger records its name and nothing
//! more. A shared ledger (PostgreSQL) also carries each batch's bytes
//! (`NewExport::payload`, read back with [`Ledger::payload`]), so that any
//! node can write any export, whichever node took the save.

pub mod postgres;
pub mod sqlite;

#[cfg(test)]
mod conformance;

pub use crate::batch::FactHash;
use crate::graph::{Edge, Graph, Node};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Identifies an export; ids grow with time.
pub type ExportId = i64;

/// Where an export stands (stored as its `as_str` text; renaming one is a migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    /// Waiting to be written.
    Pending,
    /// Claimed by a worker, being written.
    InFlight,
    /// Written into Glean.
    Ingested,
    /// The last write failed; it will be retried at `next_attempt_at`.
    Failed,
    /// Given up on: needs `replay` after the cause is fixed.
    Dead,
}

impl ExportState {
    /// Every state, in the order of the state machine.
    pub const ALL: [ExportState; 5] =
        [ExportState::Pending, ExportState::InFlight, ExportState::Ingested, ExportState::Failed, ExportState::Dead];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Pending => "pending",
            ExportState::InFlight => "in_flight",
            ExportState::Ingested => "ingested",
            ExportState::Failed => "failed",
            ExportState::Dead => "dead",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<ExportState> {
        ExportState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for ExportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a new export row records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewExport {
    /// The Glean database (`NAME/INSTANCE`) the export is for; empty when none is configured.
    pub db: String,
    /// The batch file's name inside the export directory.
    pub batch_file: String,
    /// The graph's identity (`graph_id`, else `project_id/system_id`), if it has one.
    pub graph_key: Option<String>,
    /// Version of the graph under its key.
    pub graph_version: Option<i64>,
    /// Hash of the graph's content.
    pub content_hash: Option<String>,
    /// Node facts in the batch.
    pub node_count: i64,
    /// Edge facts in the batch.
    pub edge_count: i64,
    /// Size of the batch file in bytes.
    pub bytes: i64,
    /// Hashes of the Node and Edge facts in the batch that `db` is not known to
    /// hold; they become known when the export is ingested (deltas). The save path
    /// gives them sorted and unique, which spares a large graph's ledger a copy.
    pub facts: Vec<FactHash>,
    /// Recorded `dead` at once, with this reason (a watched file that fails validation).
    pub dead: Option<String>,
    /// The graph itself, stored under `graph_key` in the same transaction (graph
    /// persistence), unless a newer version of it is stored already.
    pub snapshot: Option<Arc<Graph>>,
    /// The batch file's bytes, for a ledger that carries payloads (a shared one):
    /// any node can then write the export. Ledgers that do not carry them ignore it.
    pub payload: Option<Vec<u8>>,
}

/// A graph as last saved under its key (`GET /graphs/{key}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredGraph {
    /// The graph's key.
    pub graph_key: String,
    /// Its version (for the database it was exported to).
    pub version: Option<i64>,
    /// The export that carried it.
    pub export_id: ExportId,
    /// When it was stored.
    pub updated_at: DateTime<Utc>,
    /// Its nodes.
    pub nodes: Vec<Node>,
    /// Its edges.
    pub edges: Vec<Edge>,
}

/// What `begin_version` found for a graph about to be saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSlot {
    /// Same content as the graph's last export (not dead): nothing to write.
    Unchanged {
        /// That export.
        export_id: ExportId,
        /// Its version.
        version: i64,
    },
    /// New content: this version is reserved for the save.
    New {
        /// The version to write (the previous one plus one; 1 for a new graph).
        version: i64,
    },
}

impl VersionSlot {
    /// Whether the save goes on to write a batch, and so asks which of its facts are known
    /// (`Ledger::begin_save`, whose every implementation follows this).
    pub fn writes_batch(&self) -> bool {
        matches!(self, VersionSlot::New { .. })
    }
}

/// One export row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Export {
    /// Row id.
    pub id: ExportId,
    /// Current state.
    pub state: ExportState,
    /// The batch file's name inside the export directory.
    pub batch_file: String,
    /// The graph's identity, if any.
    pub graph_key: Option<String>,
    /// Version of the graph under its key.
    pub graph_version: Option<i64>,
    /// Hash of the graph's content.
    pub content_hash: Option<String>,
    /// Node facts in the batch.
    pub node_count: i64,
    /// Edge facts in the batch.
    pub edge_count: i64,
    /// Size of the batch file in bytes.
    pub bytes: i64,
    /// Write attempts so far.
    pub attempts: i64,
    /// When the export was saved.
    pub created_at: DateTime<Utc>,
    /// Last state change.
    pub updated_at: DateTime<Utc>,
    /// When a failed export becomes claimable again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was ingested.
    pub ingested_at: Option<DateTime<Utc>>,
    /// The last error (sink message, stderr tail), if any.
    pub last_error: Option<String>,
}

/// Counts per state, for stats (cluster-wide on a shared ledger).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Rows waiting to be written.
    pub pending: u64,
    /// Rows being written.
    pub in_flight: u64,
    /// Rows written.
    pub ingested: u64,
    /// Rows waiting for a retry.
    pub failed: u64,
    /// Rows given up on.
    pub dead: u64,
    /// Creation time of the oldest row not yet ingested or dead.
    pub oldest_unfinished: Option<DateTime<Utc>>,
}

/// Which rows `replay` and `list` select.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Only rows in these states (all states when empty).
    pub states: Vec<ExportState>,
    /// Only this row.
    pub id: Option<ExportId>,
    /// Only rows created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many rows (oldest first).
    pub limit: Option<u64>,
}

/// How a finished write attempt ended, as the exporter decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The sink wrote the batch.
    Ingested,
    /// Failed; claimable again at `retry_at`.
    Retry {
        /// The error to record.
        error: String,
        /// When to try again.
        retry_at: DateTime<Utc>,
    },
    /// Failed for good.
    Dead {
        /// The reason to record.
        error: String,
    },
    /// Not attempted after all (shutdown): back to pending, the attempt not counted.
    Released,
    /// The sink is down (not this batch's fault): back to pending, the attempt
    /// not counted, the reason kept. Deliveries pause until the sink answers again.
    Postponed {
        /// The sink's error, to record.
        error: String,
    },
}

/// Errors of the ledger's backing database.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database failed (disk full, connection lost, ...).
    #[error("ledger database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded database failed on a write (disk full, locked by another process, ...).
    #[error("ledger database error: {0}")]
    Store(#[from] rusqlite::Error),
    /// Migrating the schema failed.
    #[error("ledger migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row cannot be read back.
    #[error("ledger row {id} is unreadable: {message}")]
    Corrupt {
        /// The row.
        id: ExportId,
        /// What is wrong.
        message: String,
    },
    /// An export cannot be prepared for storage (its payload does not compress, its fact
    /// set is too large).
    #[error("ledger payload cannot be stored: {0}")]
    Payload(String),
    /// The ledger was closed (graceful shutdown) and takes no more writes.
    #[error("the ledger is closed")]
    Closed,
    /// A write stopped before it answered (it panicked; the log says where).
    #[error("a ledger write stopped before it answered: {0}")]
    Stopped(String),
    /// The ledger's file, directory, database or schema cannot be used.
    #[error("ledger at {path}: {message}")]
    Location {
        /// Where the ledger lives (a path, or a database URL without its password).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The durable record of exports. Every method commits before it returns.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Records a new `pending` export (`dead` when `export.dead` says why) and returns its id; it also becomes its
    /// graph's latest export if it carries that graph's latest reserved version. Takes the
    /// export: a ledger may hand it to another thread, and a large graph's facts are not copied.
    async fn insert(&self, export: NewExport) -> Result<ExportId, LedgerError>;

    /// Compares a graph's content with its latest version for `db`, and unless
    /// it is unchanged (and that export not dead), reserves the next version.
    /// A reserved version whose save fails is simply skipped.
    async fn begin_version(&self, db: &str, graph_key: &str, content_hash: &str) -> Result<VersionSlot, LedgerError>;

    /// For each hash, whether `db` is known to hold that fact (an export carrying it was ingested).
    async fn known_facts(&self, db: &str, hashes: &[FactHash]) -> Result<Vec<bool>, LedgerError>;

    /// What a save of a graph with a key asks before writing its batch: `begin_version`,
    /// then, for a new version, `known_facts` of `hashes` (empty when unchanged). One call,
    /// so that a ledger can answer both in one trip.
    async fn begin_save(
        &self,
        db: &str,
        graph_key: &str,
        content_hash: &str,
        hashes: &[FactHash],
    ) -> Result<(VersionSlot, Vec<bool>), LedgerError> {
        let slot = self.begin_version(db, graph_key, content_hash).await?;
        let known = if slot.writes_batch() { self.known_facts(db, hashes).await? } else { Vec::new() };
        Ok((slot, known))
    }

    /// Records several new `pending` exports in one commit, all or none, and
    /// returns their ids in the order given (growing). A directory scan
    /// registers many files at once, and one commit per file would cost one
    /// disk sync each.
    async fn insert_many(&self, exports: Vec<NewExport>) -> Result<Vec<ExportId>, LedgerError>;

    /// Claims up to `limit` of `candidates` (or, when `candidates` is empty, of
    /// all rows) that are ready: `pending`, or `failed` with `next_attempt_at`
    /// passed, or `in_flight` with an expired lease; and whose graph has no
    /// earlier unfinished export. At most one export per graph key. Claimed
    /// rows become `in_flight`, owned by `owner` until `lease` has passed,
    /// with `attempts` increased. Returned oldest first.
    async fn claim(&self, candidates: &[ExportId], limit: usize, owner: &str, lease: Duration) -> Result<Vec<Export>, LedgerError>;

    /// Ids of up to `limit` ready rows (as `claim` defines ready), oldest first.
    async fn ready(&self, limit: usize) -> Result<Vec<ExportId>, LedgerError>;

    /// Ends an attempt on `ids` (rows `owner` holds in flight); other rows are left alone.
    /// On `Ingested`, the rows' facts become known for their database.
    /// `Ingested` sets `ingested_at`; `Retry` makes the row `failed` until `retry_at` and
    /// `Dead` makes it `dead`, both recording the error; `Released` puts it back to
    /// `pending` and takes back the attempt `claim` counted. The owner's hold ends in
    /// every case; `last_error` stays as history when the row is ingested or released.
    async fn finish(&self, ids: &[ExportId], owner: &str, outcome: &Outcome) -> Result<(), LedgerError>;

    /// Extends `owner`'s hold on its in-flight `ids` to `lease` from now (a long write, such as
    /// poison isolation, must not lose its rows to another claimer); other rows are left alone.
    async fn renew(&self, ids: &[ExportId], owner: &str, lease: Duration) -> Result<(), LedgerError>;

    /// Forgets what `db` was known to hold: its known facts, and its graphs' latest content
    /// (versions keep counting). For a database that was created anew (deleted since), so
    /// that later saves carry every fact instead of a delta against facts that are gone.
    /// When no fact was known (the first creation), nothing was sent as a delta and the
    /// graphs' content stays known, so the first re-save can still be found unchanged.
    async fn forget_database(&self, db: &str) -> Result<(), LedgerError>;

    /// Puts every `in_flight` row of `owner` back to `pending` (a restart of that owner)
    /// and returns how many. Attempts stay counted: the interrupted write may have happened.
    async fn recover(&self, owner: &str) -> Result<u64, LedgerError>;

    /// One row.
    async fn get(&self, id: ExportId) -> Result<Option<Export>, LedgerError>;

    /// Whether several nodes share this ledger: then saves carry their batch bytes
    /// (`NewExport::payload`) so that any node can write any export.
    fn shared(&self) -> bool {
        false
    }

    /// The batch bytes recorded with an export (`NewExport::payload`), exactly as given;
    /// `None` when the export has none, is unknown, or this ledger does not carry payloads.
    async fn payload(&self, id: ExportId) -> Result<Option<Vec<u8>>, LedgerError>;

    /// The graph last saved under `graph_key`, if any.
    async fn graph(&self, graph_key: &str) -> Result<Option<StoredGraph>, LedgerError>;

    /// The row of a batch file, if any (batch file names are unique).
    async fn by_file(&self, batch_file: &str) -> Result<Option<Export>, LedgerError>;

    /// The most recent row (highest id), if any.
    async fn newest(&self) -> Result<Option<Export>, LedgerError>;

    /// Rows matching `selection`, oldest first.
    async fn list(&self, selection: &Selection) -> Result<Vec<Export>, LedgerError>;

    /// Moves matching `failed`/`dead` rows back to `pending` with attempts reset and no
    /// retry time, keeping `last_error`; returns their ids, oldest first. Matching rows in
    /// other states are left alone.
    async fn replay(&self, selection: &Selection) -> Result<Vec<ExportId>, LedgerError>;

    /// Counts per state, and the creation time of the oldest `pending`, `in_flight` or `failed` row.
    async fn counts(&self) -> Result<StateCounts, LedgerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_their_stored_spelling() {
        for s in ExportState::ALL {
            assert_eq!(ExportState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ExportState::parse("bogus"), None);
    }
}
