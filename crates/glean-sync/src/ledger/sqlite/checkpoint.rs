//! Checkpoints off the commit path.
//!
//! A commit is durable once its pages are in the WAL and synced; copying them
//! into the database file (a checkpoint) can come later. SQLite does it inside
//! the commit that makes the WAL pass 1000 pages, so every hundred or so saves
//! one save paid for the others' copy, and a large graph's save wrote and
//! synced its pages twice before returning (13% of a million-node save's time,
//! measured). The ledger's writing connections therefore run with the automatic
//! checkpoint off, and this task, on a connection of its own, asks for a
//! PASSIVE checkpoint (one that never blocks readers or writers) every
//! `INTERVAL`. It never writes rows. A checkpoint that fails or never runs
//! loses nothing: the pages stay in the WAL for the next one, and the last
//! connection to close checkpoints too.

use super::{BUSY_TIMEOUT, LedgerError, location};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often the WAL is copied into the database file; it bounds how far the WAL grows.
const INTERVAL: Duration = Duration::from_millis(250);

/// Opens the checkpointing connection and checkpoints through it until `stop` is cancelled
/// (the ledger closes) or the returned guard is dropped (with the ledger's last handle).
pub(super) fn start(path: &Path, stop: &CancellationToken) -> Result<DropGuard, LedgerError> {
    let connection = Connection::open(path).map_err(|e| location(path, &e))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| location(path, &e))?;
    let connection = Arc::new(Mutex::new(connection));
    Ok(super::every(INTERVAL, stop, move || {
        let connection = connection.clone();
        async move {
            let checkpoint = tokio::task::spawn_blocking(move || {
                let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
                connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
            });
            match checkpoint.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "ledger checkpoint did not run; the WAL keeps its pages for the next one"),
                Err(e) => tracing::debug!(error = %e, "ledger checkpoint stopped; the WAL keeps its pages for the next one"),
            }
        }
    }))
}
