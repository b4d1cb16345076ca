//! The PostgreSQL ledger: one [`Ledger`] shared by several glean-sync nodes.
//!
//! It owns the ledger's tables in one database schema and is the only code
//! that reads or writes them. Any node saves into it (`insert`), any node
//! claims ready exports from it (`claim`) and ends them (`finish`); every
//! method has committed when it returns. Each export's batch bytes travel in
//! the row (`payload`, zstd-compressed), so the node that writes an export
//! need not be the one that saved it. Like the SQLite ledger it never decides
//! about retries or talks to Glean: it records what the exporters decided.
//! Its behaviour is the trait's, checked by the same conformance suite.
//!
//! # Table layout
//!
//! Stored in the database: change it only by adding a migration under
//! `migrations/postgres/`, never by editing a shipped one. Times are
//! TIMESTAMPTZ stamped by the database server's clock (see Leases), truncated
//! to milliseconds like SQLite's; `retry_at` and `since` are stored and
//! compared as the caller gives them.
//! ```text
//! exports
//!   id               BIGINT IDENTITY (CACHE 1)  never reused; ids grow in the order they are drawn
//!   state            TEXT  pending | in_flight | ingested | failed | dead  (ExportState::as_str)
//!   db, batch_file, graph_key, graph_version, content_hash, node_count, edge_count, bytes
//!                          as in NewExport (graph_key NULL: the export orders against nothing)
//!   attempts         BIGINT  claims so far (minus released ones; replay resets it)
//!   owner            TEXT    the node (worker) holding the row; set only while in_flight
//!   lease_until      TIMESTAMPTZ  when that hold lapses; set only while in_flight
//!   created_at, updated_at, next_attempt_at, ingested_at   TIMESTAMPTZ
//!   last_error       TEXT    the latest failure; kept as history after success
//!   payload          BYTEA   the batch bytes, zstd-compressed (STORAGE EXTERNAL: TOAST does
//!                            not compress twice); never read with the row, only by `payload`
//!
//! exports_unfinished        (id)             WHERE state IN (pending, in_flight, failed)
//! exports_graph_unfinished  (graph_key, id)  same states, graph_key NOT NULL
//! exports_state             (state, created_at)
//! exports_file              (batch_file)
//! exports_owner             (owner)          WHERE state = in_flight   (recover)
//!
//! graphs        (db, graph_key) -> version, content_hash, export_id   latest version per database
//! export_facts  (export_id, hash BYTEA)   facts a pending export carries
//! known_facts   (db, hash BYTEA)          facts each database holds
//! glean_graphs  (graph_key) -> version, export_id, updated_at TIMESTAMPTZ
//! glean_nodes   (graph_key, id) -> kind, label, properties JSONB, updated_at TIMESTAMPTZ
//! glean_edges   (graph_key, source, target, label) -> properties JSONB, updated_at TIMESTAMPTZ
//! ```
//! `ready` and `claim` walk `exports_unfinished` in id order and stop after
//! `limit` hits; "has this graph an earlier unfinished export?" is one probe
//! of `exports_graph_unfinished`. Ingested and dead rows, the bulk of an old
//! ledger, are in neither index, so the hot path never reads them.
//!
//! # Claims under concurrency
//!
//! Every connection runs at READ COMMITTED (set at connect, whatever the
//! database's default): each statement reads a fresh snapshot, and a row
//! locked after a concurrent update is checked again on its new version.
//! `claim` is one statement in its own transaction:
//! ```text
//! WITH picked AS MATERIALIZED (
//!     SELECT id FROM exports e WHERE <e is ready> AND <no earlier unfinished row of e's graph>
//!     ORDER BY id LIMIT n FOR UPDATE OF e SKIP LOCKED)
//! UPDATE exports SET state = 'in_flight', owner, lease_until, attempts + 1
//! WHERE id = ANY(ARRAY(SELECT id FROM picked))        -- by primary key, never a join over the table
//! RETURNING <the rows>
//! ```
//! No row is ever claimed twice. A row is taken only by the transaction that
//! locks it; a claimer meeting a row another one has locked skips it instead
//! of waiting (`SKIP LOCKED`). A claimer whose snapshot predates another's
//! committed claim of the row locks the row's new version, and PostgreSQL
//! checks the condition again on it (READ COMMITTED re-check): the row is now
//! `in_flight` under a live lease, so it is not ready, and dropped.
//!
//! Per graph, exports are claimed in id order and never two at a time, across
//! all nodes. Only the oldest unfinished export of a graph is ever ready: the
//! "no earlier unfinished row" test reads the statement's snapshot, and a
//! row leaves the unfinished states (`pending`, `in_flight`, `failed`) only
//! when it is finished as ingested or dead. So v2 is ready only in a snapshot
//! where v1 is already ingested or dead; while v1 is pending or in flight, no
//! claimer, whatever it locks or skips, can pick v2. Skipping a locked v1
//! never exposes v2, because v2's test does not look at locks, only at v1's
//! committed state. One claim also never returns two rows of a graph: in one
//! snapshot only one of them is the oldest.
//!
//! That test would be fooled by a row of the graph committing after a later
//! one (v2 with id 11 visible while v1 with id 10 is not yet): sequences hand
//! out ids at insert, not at commit. Inserts therefore take a transaction-scoped
//! advisory lock per graph key (`pg_advisory_xact_lock(class, hash(schema, key))`,
//! keys sorted, so two inserts never wait on each other in a cycle) before
//! they draw ids: inserts of one graph take turns, each drawing its ids after
//! the previous one committed, so within a graph id order is commit order and
//! a claimer never sees a later version without every earlier one. The
//! identity keeps the default `CACHE 1` so sessions never draw ids from
//! private ranges. `begin_version` takes the same lock, which makes its
//! read-compare-reserve atomic across nodes. Only an operator's `replay` of an
//! older failed or dead export can put it back behind a newer one in flight,
//! exactly as on SQLite.
//!
//! # Leases and takeover
//!
//! A claim holds a row until `lease_until` (now + lease, on the database's
//! clock: one clock for every node, so a node with a skewed clock neither
//! steals a live lease nor keeps an expired one). A node that dies mid-write
//! stops finishing its rows; once their lease lapses they are ready again and
//! another node claims them (attempts counted again). Should the first node
//! come back and `finish` them, nothing happens: `finish` touches only rows
//! the caller still owns, and the new claim changed the owner. Per-graph
//! order is kept through a takeover: the taken-over row is still the oldest
//! unfinished one, so the versions behind it wait.
//!
//! # Migrations at start
//!
//! `connect` migrates before it returns, on a connection of its own: the
//! schema is created under a transaction-scoped advisory lock (concurrent
//! `CREATE SCHEMA IF NOT EXISTS` can fail), then sqlx's migrator takes its
//! session advisory lock, reads `_sqlx_migrations` and applies what is
//! missing, each file in its own transaction. Nodes starting at once queue on
//! that lock, and the ones after the first find nothing to apply. The
//! connection is closed afterwards, so even a failed migration leaves no lock
//! behind.
//!
//! # Delivery guarantee and recovery
//!
//! At least once, as the trait says: a row is `ingested` only after the sink
//! confirmed the write; a node dying between the write and `finish` means the
//! batch is written again by whoever takes the row over, which Glean absorbs.
//! Everything is in the database: a node keeps no state that another node
//! needs, and `recover(owner)` at a node's restart returns its rows at once
//! instead of after the lease. `counts` reads the shared table, so the
//! numbers are the cluster's.

mod connect;
mod graphs;
mod row;
mod save;
mod selection;
mod sql;
#[cfg(test)]
mod tests;

use super::{
    Export, ExportId, ExportState, FactHash, Ledger, LedgerError, NewExport, Outcome, Selection, StateCounts, StoredGraph, VersionSlot,
};
use connect::Target;
use row::{ExportRow, add_count, into_exports, lease_millis, parse_state, sql_int};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::HashSet;
use std::time::Duration;

/// Connections per node by default: the workers' claims and finishes, saves, and stats side by side.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// Hashes per `known_facts` query: bounded statements, whatever the graph's size.
const KNOWN_FACTS_CHUNK: usize = 10_000;

/// A ledger in a PostgreSQL schema, shared by every node that connects to it.
#[derive(Debug, Clone)]
pub struct PgLedger {
    /// The node's connections (every statement is short; claims never wait on locks).
    /// Closed by `close`.
    pool: PgPool,
    /// The schema the tables are in; it also keeps the graph locks of two ledgers
    /// sharing one database apart.
    schema: String,
    /// Where the ledger is, without the password: for messages.
    location: String,
}

impl PgLedger {
    /// Connects to `url` and migrates, before returning, the ledger in `schema` (created if
    /// missing) or, without one, in the connection's default `search_path` (usually `public`).
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, LedgerError> {
        Self::connect_with(url, schema, DEFAULT_POOL_SIZE).await
    }

    /// As `connect`, with at most `max_connections` connections.
    pub async fn connect_with(url: &str, schema: Option<&str>, max_connections: u32) -> Result<Self, LedgerError> {
        let target = Target::new(url, schema)?;
        target.migrate().await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(target.options.clone())
            .await
            .map_err(|e| target.error(&e))?;
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()").fetch_one(&pool).await?;
        let schema = schema.ok_or_else(|| target.error(&"no schema on the search_path exists"))?;
        tracing::debug!(location = %target.location, "ledger connected");
        Ok(PgLedger { pool, schema, location: target.location })
    }

    /// Where the ledger is (a URL without its password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes every connection, waiting for the ones in use (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait::async_trait]
impl Ledger for PgLedger {
    fn shared(&self) -> bool {
        true
    }

    async fn insert(&self, export: NewExport) -> Result<ExportId, LedgerError> {
        let ids = self.insert_many(vec![export]).await?;
        ids.first().copied().ok_or_else(|| LedgerError::Corrupt { id: 0, message: "an insert returned no id".into() })
    }

    async fn insert_many(&self, exports: Vec<NewExport>) -> Result<Vec<ExportId>, LedgerError> {
        save::insert_many(&self.pool, &self.schema, &exports).await
    }

    async fn begin_version(&self, db: &str, graph_key: &str, content_hash: &str) -> Result<VersionSlot, LedgerError> {
        save::begin_version(&self.pool, &self.schema, db, graph_key, content_hash).await
    }

    async fn known_facts(&self, db: &str, hashes: &[FactHash]) -> Result<Vec<bool>, LedgerError> {
        let mut known = HashSet::new();
        for chunk in hashes.chunks(KNOWN_FACTS_CHUNK) {
            let chunk: Vec<&[u8]> = chunk.iter().map(|h| h.as_slice()).collect();
            let rows: Vec<Vec<u8>> = sqlx::query_scalar(sql::KNOWN_FACTS).bind(db).bind(chunk).fetch_all(&self.pool).await?;
            known.extend(rows);
        }
        Ok(hashes.iter().map(|h| known.contains(h.as_slice())).collect())
    }

    async fn claim(&self, candidates: &[ExportId], limit: usize, owner: &str, lease: Duration) -> Result<Vec<Export>, LedgerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let statement = if candidates.is_empty() { sql::CLAIM_ALL } else { sql::CLAIM_AMONG };
        let mut query = sqlx::query_as::<_, ExportRow>(statement).bind(sql_int(limit)).bind(owner).bind(lease_millis(lease));
        if !candidates.is_empty() {
            query = query.bind(candidates);
        }
        // An explicit transaction, so that a failing commit is an error, never rows
        // handed out that the ledger does not hold as claimed.
        let mut tx = self.pool.begin().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        into_exports(rows)
    }

    async fn ready(&self, limit: usize) -> Result<Vec<ExportId>, LedgerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar(sql::READY_ALL).bind(sql_int(limit)).fetch_all(&self.pool).await?)
    }

    async fn finish(&self, ids: &[ExportId], owner: &str, outcome: &Outcome) -> Result<(), LedgerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let held = |statement: &'static str| sqlx::query(statement).bind(ids).bind(owner);
        let query = match outcome {
            Outcome::Ingested => held(sql::FINISH_INGESTED),
            Outcome::Retry { error, retry_at } => held(sql::FINISH_RETRY).bind(*retry_at).bind(error.as_str()),
            Outcome::Dead { error } => held(sql::FINISH_DEAD).bind(error.as_str()),
            Outcome::Released => held(sql::FINISH_RELEASED),
            Outcome::Postponed { error } => held(sql::FINISH_POSTPONED).bind(error.as_str()),
        };
        let mut tx = self.pool.begin().await?;
        query.execute(&mut *tx).await?;
        if *outcome == Outcome::Ingested {
            // What Glean now holds is known for the database, so later deltas leave it out.
            sqlx::query(sql::LEARN_FACTS).bind(ids).execute(&mut *tx).await?;
            sqlx::query(sql::FORGET_EXPORT_FACTS).bind(ids).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn renew(&self, ids: &[ExportId], owner: &str, lease: Duration) -> Result<(), LedgerError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(sql::RENEW).bind(ids).bind(owner).bind(lease_millis(lease)).execute(&self.pool).await?;
        Ok(())
    }

    async fn forget_database(&self, db: &str) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        let forgotten = sqlx::query(sql::FORGET_KNOWN_FACTS).bind(db).execute(&mut *tx).await?;
        if forgotten.rows_affected() > 0 {
            sqlx::query(sql::FORGET_CONTENT).bind(db).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn recover(&self, owner: &str) -> Result<u64, LedgerError> {
        let done = sqlx::query(sql::RECOVER).bind(owner).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn get(&self, id: ExportId) -> Result<Option<Export>, LedgerError> {
        let row = sqlx::query_as::<_, ExportRow>(sql::GET).bind(id).fetch_optional(&self.pool).await?;
        row.map(ExportRow::into_export).transpose()
    }

    async fn payload(&self, id: ExportId) -> Result<Option<Vec<u8>>, LedgerError> {
        let stored: Option<Option<Vec<u8>>> = sqlx::query_scalar(sql::PAYLOAD).bind(id).fetch_optional(&self.pool).await?;
        match stored.flatten() {
            Some(bytes) => Ok(Some(row::decompress(id, bytes).await?)),
            None => Ok(None),
        }
    }

    async fn graph(&self, graph_key: &str) -> Result<Option<StoredGraph>, LedgerError> {
        graphs::load(&self.pool, graph_key).await
    }

    async fn by_file(&self, batch_file: &str) -> Result<Option<Export>, LedgerError> {
        let row = sqlx::query_as::<_, ExportRow>(sql::BY_FILE).bind(batch_file).fetch_optional(&self.pool).await?;
        row.map(ExportRow::into_export).transpose()
    }

    async fn newest(&self) -> Result<Option<Export>, LedgerError> {
        let row = sqlx::query_as::<_, ExportRow>(sql::NEWEST).fetch_optional(&self.pool).await?;
        row.map(ExportRow::into_export).transpose()
    }

    async fn list(&self, selection: &Selection) -> Result<Vec<Export>, LedgerError> {
        let mut query = selection::list(selection);
        let rows = query.build_query_as::<ExportRow>().fetch_all(&self.pool).await?;
        into_exports(rows)
    }

    async fn replay(&self, selection: &Selection) -> Result<Vec<ExportId>, LedgerError> {
        let states = replayable(&selection.states);
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = selection::replay(selection, &states);
        let mut ids: Vec<ExportId> = query.build_query_scalar().fetch_all(&self.pool).await?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn counts(&self) -> Result<StateCounts, LedgerError> {
        let rows: Vec<(String, i64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(sql::COUNTS).fetch_all(&self.pool).await?;
        let mut counts = StateCounts::default();
        for (state, count, oldest) in rows {
            add_count(&mut counts, parse_state(0, &state)?, count, oldest);
        }
        Ok(counts)
    }
}

/// The states `replay` acts on among those selected (all of them when none are).
fn replayable(selected: &[ExportState]) -> Vec<ExportState> {
    [ExportState::Failed, ExportState::Dead].into_iter().filter(|s| selected.is_empty() || selected.contains(s)).collect()
}
