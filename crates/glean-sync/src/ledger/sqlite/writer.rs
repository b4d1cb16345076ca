//! The SQLite ledger's writes: two rusqlite connections behind one lock.
//!
//! Every write of this process runs here as one closure per transaction, on a
//! thread that may block: the group-commit thread (`group`) or tokio's
//! blocking pool. The lock over both connections is the process's write turn,
//! so in-process writers wait on it (not necessarily in arrival order) instead
//! of sleeping in SQLite's busy handler, and a transaction runs its statements
//! back to back. Before, the writes went through sqlx, which runs each
//! statement on the connection's own thread: about 25 hand-offs for a group of
//! 3.5 saves, each waiting for one of two busy cores, with the turn held across
//! all of them (saves of 50-node graphs: 782 a second before, 1,199 after
//! moving the group commit alone).
//!
//! It owns the connections: `durable` (`synchronous=FULL`) for what must
//! survive a power cut when the call returns (saves, replays), `relaxed`
//! (`synchronous=NORMAL`) for what may be lost without harm (claims,
//! outcomes, learned facts; the next durable commit syncs them too). It
//! never decides what to write, and never holds its lock across an await:
//! closures are synchronous. Reads for callers use the read pool instead.

use super::{BUSY_TIMEOUT, LedgerError, PAGE_CACHE_KIB, location};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// Prepared statements kept per connection: every static statement of the ledger fits.
const STATEMENT_CACHE: usize = 64;

/// Which connection a transaction runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// Synced to disk before the commit returns.
    Durable,
    /// Not synced by its own commit: may be lost in a power cut, never corrupted.
    Relaxed,
}

/// The writing connections; `None` once the ledger is closed.
#[derive(Debug)]
pub(super) struct Writer {
    connections: Mutex<Option<Connections>>,
}

#[derive(Debug)]
struct Connections {
    durable: Connection,
    relaxed: Connection,
}

impl Writer {
    /// Opens both connections to the (already migrated, WAL-mode) ledger at `path`.
    pub(super) fn open(path: &Path) -> Result<Writer, LedgerError> {
        let connections = Connections { durable: connect(path, "FULL")?, relaxed: connect(path, "NORMAL")? };
        Ok(Writer { connections: Mutex::new(Some(connections)) })
    }

    /// Runs `work` in one `IMMEDIATE` transaction on the connection of that `durability`, after this
    /// process's earlier writes, and commits it if `work` succeeds. Blocks the thread.
    pub(super) fn write<T>(
        &self,
        durability: Durability,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = connections.as_mut().ok_or(LedgerError::Closed)?;
        let connection = match durability {
            Durability::Durable => &mut connections.durable,
            Durability::Relaxed => &mut connections.relaxed,
        };
        // IMMEDIATE: the write lock is taken before anything is read, so what a
        // transaction chooses (a claim's ready rows) cannot change under it.
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = work(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// `write` from async code, on tokio's blocking pool.
    pub(super) async fn run<T, W>(self: &Arc<Self>, durability: Durability, work: W) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        W: FnOnce(&Transaction<'_>) -> Result<T, LedgerError> + Send + 'static,
    {
        let writer = Arc::clone(self);
        tokio::task::spawn_blocking(move || writer.write(durability, work)).await.map_err(|e| LedgerError::Stopped(e.to_string()))?
    }

    /// Closes both connections once the write under way is done; later writes fail.
    pub(super) async fn close(self: &Arc<Self>) {
        let writer = Arc::clone(self);
        let closing = tokio::task::spawn_blocking(move || writer.connections.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Err(e) = closing.await {
            tracing::debug!(error = %e, "ledger writer did not close; its connections close when dropped");
        }
    }
}

/// One writing connection with the ledger's settings and `synchronous` as given.
fn connect(path: &Path, synchronous: &str) -> Result<Connection, LedgerError> {
    let located = |e: rusqlite::Error| location(path, &e);
    let connection = Connection::open(path).map_err(located)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(located)?;
    // Checkpoints are left to `checkpoint`, off the commits; the page cache is the ledger's.
    let pragmas = format!("PRAGMA cache_size = {PAGE_CACHE_KIB}; PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = {synchronous};");
    connection.execute_batch(&pragmas).map_err(located)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}
