//! The SQLite ledger: the default, embedded implementation of [`Ledger`].
//!
//! It owns one database file (created with its directory on first open) and
//! is the only code that reads or writes it. Exports come in through
//! `insert`, workers take them with `claim` and end them with `finish`; every
//! method has committed, durably, when it returns. It never decides about
//! retries or talks to Glean: it records what the exporter decided. It
//! carries no payloads (`NewExport::payload` is ignored): the batch file in
//! the local export directory is the only copy a single node needs.
//!
//! # Table layout
//!
//! Stored on disk: change it only by adding a migration under
//! `migrations/sqlite/`, never by editing a shipped one.
//! ```text
//! exports
//!   id               INTEGER PRIMARY KEY AUTOINCREMENT  never reused, so ids grow with time
//!   state            TEXT  pending | in_flight | ingested | failed | dead  (ExportState::as_str)
//!   batch_file       TEXT  the batch file's name in the export directory
//!   graph_key        TEXT  NULL: the export orders against nothing
//!   graph_version, content_hash, node_count, edge_count, bytes   as in NewExport
//!   attempts         INTEGER  claims so far (minus released ones; replay resets it)
//!   owner            TEXT     who holds the row; set only while in_flight
//!   lease_until      INTEGER  when that hold lapses; set only while in_flight
//!   created_at, updated_at, next_attempt_at, ingested_at   INTEGER unix ms, UTC
//!   last_error       TEXT     the latest failure; kept as history after success
//!
//! exports_unfinished        (id)               WHERE state IN (pending, in_flight, failed)
//! exports_graph_unfinished  (graph_key, id)    same states, graph_key NOT NULL
//! exports_state             (state, created_at)
//! exports_file              (batch_file)       the row of a file (startup reconciliation)
//!
//! graphs             (db, graph_key) -> version, content_hash, export_id: the latest version
//! glean_graphs       graph_key -> version, export_id, updated_at: the stored graph (persistence)
//! glean_graph_parts  (graph_key, part) -> nodes, edges: JSON arrays of `PART_ELEMENTS` at most
//! glean_nodes, glean_edges   views over the parts, one row per stored node or edge
//! export_fact_sets   export_id -> hashes: the facts an export carries, one blob; kept after
//!                    its ingest until a learning pass (`learn`) has put them in known_facts
//! known_facts        (db, hash): facts each database is known to hold
//! ```
//!
//! A stored graph is a few JSON parts rather than a row per node and edge: a
//! save replaces all of it, and a B-tree insert (and delete) per element made
//! graph persistence more than half of a save's SQLite work.
//!
//! # Cost of `ready` and `claim`
//!
//! Both walk `exports_unfinished` in id order and stop after `limit` hits;
//! for each row, "has its graph an earlier unfinished export?" is one probe
//! of `exports_graph_unfinished`. Ingested and dead rows, the bulk of an old
//! ledger, are in neither index, so the cost is O(log n) per row looked at
//! and only unfinished rows are ever looked at. With candidates the rows are
//! found by primary key instead. The statements force these indexes with
//! `INDEXED BY` (see `sql`), so a plan regression is an error, not a scan.
//! `counts` reads `exports_state` alone; `list`/`replay` seek by id or state.
//!
//! # Concurrency
//!
//! In this process writes go through two rusqlite connections behind one
//! in-process lock (`writer`), taken before SQLite's: SQLite's busy handler
//! waits by sleeping 1 to 100 ms between tries, so two connections of one
//! process racing for the write lock made saves wait tens of milliseconds
//! (save p50 18 ms, p99 39 ms with 8 producers, measured). Each write is one
//! synchronous closure per transaction on a thread that may block, so its
//! statements run back to back. The two connections: one for what must be
//! durable on return (saves, replays; `synchronous=FULL`), one for what may
//! be lost in a power cut without harm (claims, outcomes;
//! `synchronous=NORMAL`: at worst an export is written again, and the next
//! durable commit syncs them too). Saves that arrive together share one
//! durable commit on a thread of their own (`group`). A third connection only
//! copies the WAL into the database file, off the commits (`checkpoint`). An
//! ingest's facts are learned later, in batches, on the relaxed connection
//! (`learn`), so an ingest holds the write lock for a few rows, not a B-tree
//! insert per fact. Reads run on read-only connections of their own
//! (`reader`) and, under WAL, neither wait for the writers nor block them.
//! Migrations run at open on a (sqlx) connection of their own. A graph's next
//! version is reserved in memory (`Reserved`), not by a write: the file belongs to
//! one process, and its `graphs` row is written in the save's own commit.
//! `claim` is one `UPDATE ... WHERE id IN (<ready rows>) RETURNING` inside a
//! `BEGIN IMMEDIATE` transaction: the write lock is taken before the ready
//! rows are chosen, so two claimers, even in two processes sharing the file,
//! are serialized and can never choose the same row. Another process waits
//! for the lock up to `BUSY_TIMEOUT`.
//!
//! # Durability and crash recovery
//!
//! WAL with `synchronous=FULL` for saves: an insert returns only after the
//! log is synced, so a save that has returned survives a power cut (WAL's
//! default, `NORMAL`, may lose the latest commits, which is acceptable only
//! for the relaxed writes above). After a crash, rows are exactly as
//! last committed: an `in_flight` row whose owner died becomes claimable when
//! its lease lapses, or at once when that owner restarts and calls `recover`.

mod checkpoint;
mod group;
mod learn;
mod reader;
mod row;
mod selection;
mod sql;
#[cfg(test)]
mod tests;
mod writer;

use super::{
    Export, ExportId, ExportState, FactHash, Ledger, LedgerError, NewExport, Outcome, Selection, StateCounts, StoredGraph, VersionSlot,
};
use crate::batch::sorted_unique;
use crate::graph::{Edge, Graph, Node, Text};
use reader::Readers;
use row::{ExportRow, ids_json, into_exports, lease_until, millis, sql_int, time};
use rusqlite::Connection;
use rusqlite::blob::ZeroBlob;
use rusqlite::{DatabaseName, OptionalExtension, ToSql, Transaction, params, params_from_iter};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};
use writer::{Durability, Writer};

/// How long a write waits for another process's lock before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema, embedded at build time (see build.rs for why new files are picked up).
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// A ledger in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteLedger {
    /// Every write of this process, in turn (see `writer`). Closed by `close`.
    writer: Arc<Writer>,
    /// Saves waiting for a group commit (see `group`).
    inserts: Option<tokio::sync::mpsc::Sender<group::Job>>,
    /// Connections that only read, so reads never wait on writes (see `reader`).
    readers: Arc<Readers>,
    /// Cancelled by `close`: stops the background upkeep (checkpoints, learning).
    closing: CancellationToken,
    /// Stops the checkpoint task when the last handle of this ledger is dropped.
    _checkpoints: Arc<DropGuard>,
    /// Holds ingested exports' facts and writes them to `known_facts` in batches (see `learn`).
    learner: learn::Learner,
    /// Stops the learning tasks (filling, passes) when the last handle of this ledger is dropped.
    _learning: Arc<DropGuard>,
    /// Versions reserved by saves under way, by database and graph key (see `Reserved`).
    reserved: Arc<Mutex<Reserved>>,
    /// The database file, for messages.
    path: PathBuf,
}

impl SqliteLedger {
    /// Inserts rows in one durable transaction, all or none. Blocks: the group-commit thread runs it.
    fn insert_rows(&self, exports: &[&NewExport]) -> Result<Vec<ExportId>, LedgerError> {
        let now = now();
        let content = self.reserved_content(exports);
        let ids = self.writer.write(Durability::Durable, |tx| {
            exports.iter().zip(&content).map(|(export, content)| insert_row(tx, export, content, now)).collect()
        })?;
        self.release_reservations(exports);
        Ok(ids)
    }

    /// The content each export's version was reserved for (its own hash if none is held).
    fn reserved_content(&self, exports: &[&NewExport]) -> Vec<String> {
        let reserved = self.reserved();
        exports
            .iter()
            .map(|e| {
                let held = e.graph_key.as_ref().and_then(|k| reserved.get(&(e.db.clone(), k.clone())));
                match held {
                    Some((version, content)) if Some(*version) == e.graph_version => content.clone(),
                    _ => e.content_hash.clone().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Forgets the reservations these committed exports fulfilled: their graphs rows now say it.
    fn release_reservations(&self, exports: &[&NewExport]) {
        let mut reserved = self.reserved();
        for e in exports {
            let Some(key) = &e.graph_key else { continue };
            let slot = (e.db.clone(), key.clone());
            if reserved.get(&slot).map(|(v, _)| Some(*v)) == Some(e.graph_version) {
                reserved.remove(&slot);
            }
        }
    }

    fn reserved(&self) -> MutexGuard<'_, Reserved> {
        self.reserved.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `begin_version`, on a thread that may block.
    fn begin_version_now(&self, db: &str, graph_key: &str, content_hash: &str) -> Result<VersionSlot, LedgerError> {
        // Held across the read: a reservation fulfilled meanwhile is then already visible in its row.
        let mut reserved = self.reserved();
        let latest: Option<(i64, String, Option<i64>, Option<String>)> = self.readers.read(|c| {
            let mut statement = c.prepare_cached(sql::GRAPH_LATEST)?;
            Ok(statement.query_row(params![db, graph_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional()?)
        })?;
        let slot = (db.to_owned(), graph_key.to_owned());
        let under_way = reserved.get(&slot).map(|(v, _)| *v);
        Ok(match latest {
            Some((version, hash, Some(export_id), Some(state)))
                if under_way.is_none() && hash == content_hash && state != ExportState::Dead.as_str() =>
            {
                VersionSlot::Unchanged { export_id, version }
            }
            latest => {
                let version = latest.map_or(0, |(v, ..)| v).max(under_way.unwrap_or(0)) + 1;
                reserved.insert(slot, (version, content_hash.to_owned()));
                VersionSlot::New { version }
            }
        })
    }

    /// `known_facts`, on a thread that may block.
    fn known_facts_now(&self, db: &str, hashes: &[FactHash]) -> Result<Vec<bool>, LedgerError> {
        let learn::Sifted { mut known, ask_table } = self.learner.sift(db, hashes);
        if ask_table.is_empty() {
            return Ok(known);
        }
        let in_table = self.readers.read(|c| known_in_table(c, db, &ask_table))?;
        for (k, h) in known.iter_mut().zip(hashes) {
            *k = *k || in_table.contains(h);
        }
        Ok(known)
    }

    /// The export `statement` selects with `binds`, if any.
    async fn export_where<P: rusqlite::Params + Send + 'static>(
        &self,
        statement: &'static str,
        binds: P,
    ) -> Result<Option<Export>, LedgerError> {
        let row = self.readers.run(move |c| Ok(c.prepare_cached(statement)?.query_row(binds, ExportRow::read).optional()?)).await?;
        row.map(ExportRow::into_export).transpose()
    }

    /// Runs `work` with this ledger on tokio's blocking pool.
    async fn blocking<T, W>(&self, work: W) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        W: FnOnce(&SqliteLedger) -> Result<T, LedgerError> + Send + 'static,
    {
        let ledger = self.clone();
        tokio::task::spawn_blocking(move || work(&ledger)).await.map_err(|e| LedgerError::Stopped(e.to_string()))?
    }

    /// Opens (creating it and its directory if needed) and migrates the ledger at `path`.
    pub async fn open(path: &Path) -> Result<Self, LedgerError> {
        create_parent(path).await?;
        migrate(path).await?;
        let (writer, readers) = connect(path.to_owned()).await?;
        let closing = CancellationToken::new();
        let checkpoints = Arc::new(checkpoint::start(path, &closing)?);
        let learner = learn::Learner::new(writer.clone());
        learner.load(&readers).await?;
        let learning = Arc::new(learner.start(&readers, &closing));
        tracing::debug!(path = %path.display(), "ledger opened");
        let mut ledger = SqliteLedger {
            writer,
            inserts: None,
            readers,
            closing,
            _checkpoints: checkpoints,
            learner,
            _learning: learning,
            reserved: Arc::default(),
            path: path.to_path_buf(),
        };
        ledger.inserts = Some(group::start(ledger.clone())?);
        Ok(ledger)
    }

    /// Where the ledger lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection, waiting for the ones in use (graceful shutdown).
    pub async fn close(&self) {
        // Saves queued before the close are committed and answered, not failed.
        if let Some(queue) = &self.inserts {
            group::flush(queue).await;
        }
        // Held facts would be taken back at the next open; writing them now spares it.
        if let Err(e) = self.learner.pass().await {
            tracing::debug!(error = %e, "known facts left held at close; the next open takes them back");
        }
        self.closing.cancel();
        self.readers.close();
        self.writer.close().await;
    }
}

/// Opens the writing and the reading connections, on the blocking pool.
async fn connect(path: PathBuf) -> Result<(Arc<Writer>, Arc<Readers>), LedgerError> {
    let opened = tokio::task::spawn_blocking(move || Ok((Arc::new(Writer::open(&path)?), Arc::new(Readers::open(&path)?))));
    opened.await.map_err(|e| LedgerError::Stopped(e.to_string()))?
}

/// Creates the file if needed, switches it to WAL and runs the migrations, on a connection
/// used for nothing else.
async fn migrate(path: &Path) -> Result<(), LedgerError> {
    // journal_mode is stored in the file, so only this connection sets it. Switching a new
    // file to WAL may be refused with "database is locked" at once, busy timeout or not,
    // while another connection does the same (seen in 1 of 6 runs of the concurrent-open
    // test): the switch and the migrations happen under the open lock.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let lock = open_lock(path).await?;
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(|e| location(path, &e))?;
    let migrated = MIGRATOR.run(&pool).await;
    pool.close().await;
    drop(lock);
    Ok(migrated?)
}

/// Takes the file lock under which a ledger is created and migrated: two processes
/// opening a new ledger at once (a server and `status`, say) would otherwise both switch
/// it to WAL and both run the first migration.
async fn open_lock(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, LedgerError> {
    let lock_path = path.with_extension("sqlite-migrate-lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))
    })
    .await
    .map_err(|e| location(path, &e))?
    .map_err(|e| location(path, &e))
}

/// Creates the directory the ledger file goes in.
async fn create_parent(path: &Path) -> Result<(), LedgerError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => tokio::fs::create_dir_all(dir).await.map_err(|e| location(path, &e)),
        _ => Ok(()),
    }
}

fn location(path: &Path, error: &dyn std::fmt::Display) -> LedgerError {
    LedgerError::Location { path: path.display().to_string(), message: error.to_string() }
}

/// Runs `work` every `interval` on a task of its own until `closing` is cancelled or the
/// returned guard is dropped (with the ledger's last handle): the ledger's background upkeep.
fn every<F, W>(interval: Duration, closing: &CancellationToken, mut work: F) -> DropGuard
where
    F: FnMut() -> W + Send + 'static,
    W: std::future::Future<Output = ()> + Send,
{
    let stop = closing.child_token();
    let guard = stop.clone().drop_guard();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            work().await;
        }
    });
    guard
}

fn now() -> i64 {
    millis(chrono::Utc::now())
}

#[async_trait::async_trait]
impl Ledger for SqliteLedger {
    async fn insert(&self, export: NewExport) -> Result<ExportId, LedgerError> {
        let ids = self.insert_many(vec![export]).await?;
        ids.first().copied().ok_or_else(|| LedgerError::Corrupt { id: 0, message: "an insert returned no id".into() })
    }

    async fn insert_many(&self, exports: Vec<NewExport>) -> Result<Vec<ExportId>, LedgerError> {
        group::insert(self.inserts.as_ref().ok_or(LedgerError::Closed)?, exports).await
    }

    async fn begin_version(&self, db: &str, graph_key: &str, content_hash: &str) -> Result<VersionSlot, LedgerError> {
        let (db, graph_key, content_hash) = (db.to_owned(), graph_key.to_owned(), content_hash.to_owned());
        self.blocking(move |ledger| ledger.begin_version_now(&db, &graph_key, &content_hash)).await
    }

    async fn known_facts(&self, db: &str, hashes: &[FactHash]) -> Result<Vec<bool>, LedgerError> {
        let (db, hashes) = (db.to_owned(), hashes.to_vec());
        self.blocking(move |ledger| ledger.known_facts_now(&db, &hashes)).await
    }

    /// Both answers in one trip to the blocking pool: under load a save waited there more
    /// than it worked.
    async fn begin_save(
        &self,
        db: &str,
        graph_key: &str,
        content_hash: &str,
        hashes: &[FactHash],
    ) -> Result<(VersionSlot, Vec<bool>), LedgerError> {
        let (db, graph_key, content_hash, hashes) = (db.to_owned(), graph_key.to_owned(), content_hash.to_owned(), hashes.to_vec());
        self.blocking(move |ledger| {
            let slot = ledger.begin_version_now(&db, &graph_key, &content_hash)?;
            let known = if slot.writes_batch() { ledger.known_facts_now(&db, &hashes)? } else { Vec::new() };
            Ok((slot, known))
        })
        .await
    }

    async fn claim(&self, candidates: &[ExportId], limit: usize, owner: &str, lease: Duration) -> Result<Vec<Export>, LedgerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now();
        let (limit, owner, until) = (sql_int(limit), owner.to_owned(), lease_until(now, lease));
        let candidates = (!candidates.is_empty()).then(|| ids_json(candidates));
        // The write lock is held from before the ready rows are chosen until commit (`writer`).
        let rows = self
            .writer
            .run(Durability::Relaxed, move |tx| {
                let mut binds: Vec<&dyn ToSql> = vec![&now, &limit, &owner, &until];
                binds.extend(candidates.as_ref().map(|ids| ids as &dyn ToSql));
                let mut statement = tx.prepare_cached(if candidates.is_some() { sql::CLAIM_AMONG } else { sql::CLAIM_ALL })?;
                let rows = statement.query_map(params_from_iter(binds), ExportRow::read)?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        into_exports(rows)
    }

    async fn ready(&self, limit: usize) -> Result<Vec<ExportId>, LedgerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (now, limit) = (now(), sql_int(limit));
        self.readers
            .run(move |c| {
                let ids = c.prepare_cached(sql::READY_ALL)?.query_map(params![now, limit], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(ids)
            })
            .await
    }

    async fn finish(&self, ids: &[ExportId], owner: &str, outcome: &Outcome) -> Result<(), LedgerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (ids, owner, outcome) = (ids_json(ids), owner.to_owned(), outcome.clone());
        let learner = self.learner.clone();
        let ingested = self
            .writer
            .run(Durability::Relaxed, move |tx| {
                let now = now();
                let (statement, retry_at, error) = finish_statement(&outcome);
                let mut binds: Vec<&dyn ToSql> = vec![&ids, &owner, &now];
                binds.extend(retry_at.as_ref().map(|t| t as &dyn ToSql));
                binds.extend(error.as_ref().map(|e| e as &dyn ToSql));
                tx.prepare_cached(statement)?.execute(params_from_iter(binds))?;
                if outcome != Outcome::Ingested {
                    return Ok(Vec::new());
                }
                // What Glean now holds becomes known for the database (see `learn`), so later
                // deltas leave it out; facts kept a row each by earlier versions are learned here.
                let sets = learn::fact_sets(tx, sql::INGESTED_FACT_SETS, [&ids])?;
                learn_legacy_facts(tx, &learner, &ids)?;
                tx.prepare_cached(sql::FORGET_EXPORT_FACTS)?.execute([&ids])?;
                Ok(sets)
            })
            .await?;
        self.learner.hold(ingested);
        Ok(())
    }

    async fn renew(&self, ids: &[ExportId], owner: &str, lease: Duration) -> Result<(), LedgerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now();
        let (ids, owner, until) = (ids_json(ids), owner.to_owned(), lease_until(now, lease));
        self.writer
            .run(Durability::Relaxed, move |tx| Ok(tx.prepare_cached(sql::RENEW)?.execute(params![ids, owner, now, until])?))
            .await?;
        Ok(())
    }

    async fn forget_database(&self, db: &str) -> Result<(), LedgerError> {
        self.learner.forget(db).await?;
        Ok(())
    }

    async fn recover(&self, owner: &str) -> Result<u64, LedgerError> {
        let owner = owner.to_owned();
        let done =
            self.writer.run(Durability::Relaxed, move |tx| Ok(tx.prepare_cached(sql::RECOVER)?.execute(params![owner, now()])?)).await?;
        Ok(u64::try_from(done).unwrap_or(u64::MAX))
    }

    async fn get(&self, id: ExportId) -> Result<Option<Export>, LedgerError> {
        self.export_where(sql::GET, (id,)).await
    }

    async fn payload(&self, _id: ExportId) -> Result<Option<Vec<u8>>, LedgerError> {
        // The batch file in the local export directory is the payload; nothing is stored here.
        Ok(None)
    }

    async fn graph(&self, graph_key: &str) -> Result<Option<StoredGraph>, LedgerError> {
        let key = graph_key.to_owned();
        let stored = self
            .readers
            .run(move |c| {
                // One read transaction, so the parts are those of the row read.
                let c = c.unchecked_transaction()?;
                let Some(row): Option<(Option<i64>, i64, i64)> =
                    c.prepare_cached(sql::STORED_GRAPH)?.query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?
                else {
                    return Ok(None);
                };
                let mut parts = c.prepare_cached(sql::STORED_PARTS)?;
                let parts = parts.query_map([&key], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<(String, String)>, _>>()?;
                Ok(Some((row, parts)))
            })
            .await?;
        let Some(((version, export_id, updated), parts)) = stored else {
            return Ok(None);
        };
        let (mut nodes, mut edges) = (Vec::<Node>::new(), Vec::<Edge>::new());
        for (part_nodes, part_edges) in parts {
            let part_nodes = stored_elements(&part_nodes, export_id)?.into_iter();
            nodes.extend(part_nodes.map(|(id, kind, label, properties_json)| Node { id, kind, label, properties_json }));
            let part_edges = stored_elements(&part_edges, export_id)?.into_iter();
            edges.extend(part_edges.map(|(source, target, label, properties_json)| Edge { source, target, label, properties_json }));
        }
        nodes.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        edges.sort_unstable_by(|a, b| (&a.source, &a.target, &a.label).cmp(&(&b.source, &b.target, &b.label)));
        Ok(Some(StoredGraph {
            graph_key: graph_key.to_owned(),
            version,
            export_id,
            updated_at: time(export_id, "updated_at", updated)?,
            nodes,
            edges,
        }))
    }

    async fn by_file(&self, batch_file: &str) -> Result<Option<Export>, LedgerError> {
        self.export_where(sql::BY_FILE, (batch_file.to_owned(),)).await
    }

    async fn newest(&self) -> Result<Option<Export>, LedgerError> {
        self.export_where(sql::NEWEST, ()).await
    }

    async fn list(&self, selection: &Selection) -> Result<Vec<Export>, LedgerError> {
        let query = selection::list(selection);
        let rows = self
            .readers
            .run(move |c| {
                let mut statement = c.prepare(&query.sql)?;
                let rows = statement.query_map(params_from_iter(&query.binds), ExportRow::read)?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        into_exports(rows)
    }

    async fn replay(&self, selection: &Selection) -> Result<Vec<ExportId>, LedgerError> {
        let states = replayable(&selection.states);
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let query = selection::replay(selection, &states, now());
        let mut ids = self
            .writer
            .run(Durability::Durable, move |tx| {
                let mut statement = tx.prepare(&query.sql)?;
                let ids = statement.query_map(params_from_iter(&query.binds), |r| r.get::<_, ExportId>(0))?;
                Ok(ids.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn counts(&self) -> Result<StateCounts, LedgerError> {
        let rows: Vec<(String, i64, i64)> = self
            .readers
            .run(|c| {
                let mut counts = c.prepare_cached(sql::COUNTS)?;
                let rows = counts.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut counts = StateCounts::default();
        for (state, count, oldest) in rows {
            let state = ExportState::parse(&state)
                .ok_or_else(|| LedgerError::Corrupt { id: 0, message: format!("rows with unknown state {state:?}") })?;
            add_count(&mut counts, state, count, oldest)?;
        }
        Ok(counts)
    }
}

/// The `finish` statement for an outcome, with its retry time and error (binds 4 and 5 or 4).
fn finish_statement(outcome: &Outcome) -> (&'static str, Option<i64>, Option<&str>) {
    match outcome {
        Outcome::Ingested => (sql::FINISH_INGESTED, None, None),
        Outcome::Retry { error, retry_at } => (sql::FINISH_RETRY, Some(millis(*retry_at)), Some(error)),
        Outcome::Dead { error } => (sql::FINISH_DEAD, None, Some(error)),
        Outcome::Released => (sql::FINISH_RELEASED, None, None),
        Outcome::Postponed { error } => (sql::FINISH_POSTPONED, None, Some(error)),
    }
}

/// Records one new export (its row, facts, graph link and snapshot) created at `now`,
/// `content` being what its version was reserved for; returns its id.
fn insert_row(tx: &Transaction<'_>, export: &NewExport, content: &str, now: i64) -> Result<ExportId, LedgerError> {
    let e = export;
    let row = params![e.batch_file, e.graph_key, e.graph_version, e.content_hash, e.node_count, e.edge_count, e.bytes, now, e.db, e.dead];
    let id: ExportId = tx.prepare_cached(sql::INSERT)?.query_row(row, |r| r.get(0))?;
    if !e.facts.is_empty() {
        insert_fact_set(tx, id, &e.facts)?;
    }
    if let (Some(key), Some(version)) = (&e.graph_key, e.graph_version) {
        tx.prepare_cached(sql::LINK_GRAPH)?.execute(params![e.db, key, version, content, id])?;
    }
    if let (Some(key), Some(graph)) = (&e.graph_key, &e.snapshot) {
        store_graph(tx, key, e.graph_version, id, graph, now)?;
    }
    Ok(id)
}

/// Fact sets larger than this are written in place after their row, a piece this size at a time.
const FACT_SET_PIECE: usize = 1 << 20;

/// Records the facts an export carries. A large set goes in as a zero blob of its size,
/// then is written in place piece by piece: bound whole, SQLite would copy it twice (the
/// bound value and the record built from it), 64 MiB more for a million-node graph.
fn insert_fact_set(tx: &Transaction<'_>, id: ExportId, facts: &[FactHash]) -> Result<(), LedgerError> {
    let set = fact_set(facts);
    if set.len() <= FACT_SET_PIECE {
        tx.prepare_cached(sql::INSERT_FACT_SET)?.execute(params![id, &*set])?;
        return Ok(());
    }
    let size =
        i32::try_from(set.len()).map_err(|_| LedgerError::Payload(format!("{} facts are more than one export can carry", facts.len())))?;
    tx.prepare_cached(sql::INSERT_FACT_SET)?.execute(params![id, ZeroBlob(size)])?;
    let mut blob = tx.blob_open(DatabaseName::Main, "export_fact_sets", "hashes", id, false)?;
    for (i, piece) in set.chunks(FACT_SET_PIECE).enumerate() {
        blob.write_at(piece, i * FACT_SET_PIECE)?;
    }
    Ok(())
}

/// Replaces the stored nodes and edges of `key`, unless a newer version is stored already.
fn store_graph(
    tx: &Transaction<'_>,
    key: &str,
    version: Option<i64>,
    export_id: ExportId,
    graph: &Graph,
    now: i64,
) -> Result<(), LedgerError> {
    let stored: Option<Option<i64>> = tx.prepare_cached(sql::STORED_VERSION)?.query_row([key], |r| r.get(0)).optional()?;
    if let (Some(Some(stored)), Some(version)) = (stored, version)
        && stored > version
    {
        return Ok(());
    }
    // In the graph's own order: `graph` sorts when it reads, which is rarer than a save.
    let (nodes, edges) = (&graph.nodes, &graph.edges);
    if stored.is_some() {
        tx.prepare_cached(sql::DELETE_PARTS)?.execute([key])?;
    }
    // One part at a time: a large graph is never one JSON text in memory.
    let parts = nodes.len().max(edges.len()).div_ceil(PART_ELEMENTS).max(1);
    for part in 0..parts {
        let nodes = snapshot_json(part_of(nodes, part).iter().map(|n| (&n.id, &n.kind, &n.label, &n.properties_json)), export_id)?;
        let edges = snapshot_json(part_of(edges, part).iter().map(|e| (&e.source, &e.target, &e.label, &e.properties_json)), export_id)?;
        tx.prepare_cached(sql::INSERT_PART)?.execute(params![key, sql_int(part), nodes, edges])?;
    }
    tx.prepare_cached(sql::UPSERT_GRAPH)?.execute(params![key, version, export_id, now])?;
    Ok(())
}

/// Elements of a stored graph per `glean_graph_parts` row: small graphs take one row, and a
/// large one is written and read a bounded piece at a time.
const PART_ELEMENTS: usize = 10_000;

/// The elements of `items` that go into part `part`.
fn part_of<T>(items: &[T], part: usize) -> &[T] {
    let start = part.saturating_mul(PART_ELEMENTS).min(items.len());
    &items[start..start.saturating_add(PART_ELEMENTS).min(items.len())]
}

/// A stored node (`[id, kind, label, properties]`) or edge (`[source, target, label,
/// properties]`): arrays, not objects, as the keys would be a third of the bytes.
type StoredElement = (Text, Text, Text, Option<Text>);

/// Nodes or edges as the JSON array a part stores.
fn snapshot_json<T: serde::Serialize>(elements: impl Iterator<Item = T>, export_id: ExportId) -> Result<String, LedgerError> {
    serde_json::to_string(&elements.collect::<Vec<T>>())
        .map_err(|e| LedgerError::Corrupt { id: export_id, message: format!("graph snapshot: {e}") })
}

/// The nodes or edges of one stored part.
fn stored_elements(json: &str, export_id: ExportId) -> Result<Vec<StoredElement>, LedgerError> {
    serde_json::from_str(json).map_err(|e| LedgerError::Corrupt { id: export_id, message: format!("stored graph: {e}") })
}

/// Versions handed out by `begin_version` whose exports are not committed yet, by database and
/// graph key: the version and the content hash it was reserved for. An embedded ledger belongs
/// to one process (the state-directory lock), so reserving needs no write transaction; the
/// graph's row is written with the export, in the save's own commit. A save that fails leaves
/// its reservation, so the next one takes the version after it, as a reserved row would.
type Reserved = std::collections::HashMap<(String, String), (i64, String)>;

/// Learns the facts of exports `ids` (JSON) that earlier versions kept a row each for,
/// telling `learner` before they are committed.
fn learn_legacy_facts(tx: &Connection, learner: &learn::Learner, ids: &str) -> Result<(), LedgerError> {
    let mut statement = tx.prepare_cached(sql::LEARN_FACTS)?;
    learner.writing_rows(statement.query([ids])?, None).map(drop)
}

/// Hashes per `known_facts` query: bounded statements, whatever the graph's size.
const KNOWN_FACTS_CHUNK: usize = 10_000;

/// Which of `sorted` (as `sorted_unique` gives them) the `known_facts` table holds for `db`.
fn known_in_table(c: &Connection, db: &str, sorted: &[FactHash]) -> Result<std::collections::HashSet<FactHash>, LedgerError> {
    let mut known = std::collections::HashSet::new();
    // A large lookup first asks whether the table knows anything: a graph's first export
    // to a database then skips a probe per fact.
    if sorted.len() > KNOWN_FACTS_CHUNK && c.prepare_cached(sql::ANY_KNOWN_FACT)?.query_row([db], |_| Ok(())).optional()?.is_none() {
        return Ok(known);
    }
    // Sorted as a whole, so the probes walk the index once, in order.
    let mut statement = c.prepare_cached(sql::KNOWN_FACTS)?;
    for chunk in sorted.chunks(KNOWN_FACTS_CHUNK) {
        for hash in statement.query_map(params![db, hashes_json(chunk)], |r| r.get::<_, Vec<u8>>(0))? {
            known.extend(FactHash::try_from(hash?.as_slice()).ok());
        }
    }
    Ok(known)
}

/// Each connection's page cache, as SQLite's `cache_size` takes it (negative: KiB): large
/// enough for a big graph's fact hashes and snapshot, where SQLite's default (2 MiB) spills
/// to the WAL mid-transaction and reads pages again.
const PAGE_CACHE_KIB: &str = "-65536";

/// Appends `h` in lower-case hex (no allocation per byte: this runs for every fact of a save).
fn push_hex(out: &mut String, h: &FactHash) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in h {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Hashes as one blob, sorted and without repeats (`export_fact_sets`); borrowed when
/// they are so already, as the save path gives them.
fn fact_set(hashes: &[FactHash]) -> std::borrow::Cow<'_, [u8]> {
    if hashes.is_sorted_by(|a, b| a < b) {
        std::borrow::Cow::Borrowed(hashes.as_flattened())
    } else {
        std::borrow::Cow::Owned(sorted_unique(hashes.to_vec()).concat())
    }
}

/// Hashes, as `sorted_unique` gives them, as a JSON array of hex strings (read back with
/// `unhex`): the B-trees they are inserted into or looked up in are then walked in order,
/// not at random (ten times faster for a large graph's hashes).
fn hashes_json(sorted: &[FactHash]) -> String {
    debug_assert!(sorted.is_sorted(), "hashes_json takes sorted hashes");
    let mut out = String::with_capacity(sorted.len() * 35 + 2);
    out.push('[');
    for (i, h) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        push_hex(&mut out, h);
        out.push('"');
    }
    out.push(']');
    out
}

/// The states `replay` acts on among those selected (all of them when none are).
fn replayable(selected: &[ExportState]) -> Vec<ExportState> {
    [ExportState::Failed, ExportState::Dead].into_iter().filter(|s| selected.is_empty() || selected.contains(s)).collect()
}

/// Adds one state's `COUNT` and `MIN(created_at)` to the totals.
fn add_count(counts: &mut StateCounts, state: ExportState, count: i64, oldest: i64) -> Result<(), LedgerError> {
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
        // No row id at hand here: 0 stands for "the oldest unfinished row".
        let oldest = time(0, "oldest unfinished created_at", oldest)?;
        counts.oldest_unfinished = Some(counts.oldest_unfinished.map_or(oldest, |o| o.min(oldest)));
    }
    Ok(())
}
