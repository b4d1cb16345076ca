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

use sqlx::SqlitePool;
use std::time::Duration;
use tokio_util::sync::DropGuard;

/// How often the WAL is copied into the database file; it bounds how far the WAL grows.
const INTERVAL: Duration = Duration::from_millis(250);

/// Checkpoints through `pool` until the pool is closed or the returned guard is dropped
/// (the ledger's last handle with it).
pub(super) fn start(pool: SqlitePool) -> DropGuard {
    super::every(INTERVAL, pool.clone(), move || {
        let pool = pool.clone();
        async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                tracing::debug!(error = %e, "ledger checkpoint did not run; the WAL keeps its pages for the next one");
            }
        }
    })
}
