//! The SQLite ledger's reads: a few rusqlite connections that only read.
//!
//! Under WAL a reader sees the last commit and neither waits for the writers
//! nor blocks them, so reads never take the write turn (`writer`). A read is
//! one synchronous closure on a connection of its own, run on a thread that
//! may block: tokio's blocking pool, or the caller's when it is already on
//! one. Before, reads went through sqlx, which hands every statement to the
//! connection's own thread and back: a save's two lookups cost four thread
//! hand-offs on a 2-core machine that was already saturated.
//!
//! It owns the read connections: `query_only`, so a read can never write,
//! and memory-mapped, because every commit empties the page cache of every
//! other connection and a read would otherwise start by copying its pages in
//! again. It never writes and never holds a connection across an await.

use super::{BUSY_TIMEOUT, LedgerError, PAGE_CACHE_KIB, location};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Read connections: enough for `ready`, `get`, stats and saves' lookups to run beside each other.
const CONNECTIONS: usize = 4;

/// Prepared statements kept per connection: every static read of the ledger fits.
const STATEMENT_CACHE: usize = 32;

/// How much of the file a read connection maps (see the module comment).
const MMAP_BYTES: u64 = 1 << 30;

/// The read connections not in use; `None` once the ledger is closed.
#[derive(Debug)]
pub(super) struct Readers {
    idle: Mutex<Option<Vec<Connection>>>,
    /// Signalled when a connection is handed back or the readers close.
    returned: Condvar,
}

impl Readers {
    /// Opens the read connections to the (already migrated, WAL-mode) ledger at `path`.
    pub(super) fn open(path: &Path) -> Result<Readers, LedgerError> {
        let connections = (0..CONNECTIONS).map(|_| connect(path)).collect::<Result<Vec<_>, _>>()?;
        Ok(Readers { idle: Mutex::new(Some(connections)), returned: Condvar::new() })
    }

    /// Runs `work` on a read connection, waiting for one if all are in use. Blocks the thread.
    pub(super) fn read<T>(&self, work: impl FnOnce(&Connection) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        let connection = self.take()?;
        let value = work(&connection);
        self.give_back(connection);
        value
    }

    /// `read` from async code, on tokio's blocking pool.
    pub(super) async fn run<T, W>(self: &Arc<Self>, work: W) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        W: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || readers.read(work)).await.map_err(|e| LedgerError::Stopped(e.to_string()))?
    }

    /// Closes the idle connections now and the others as they are handed back; later reads fail.
    pub(super) fn close(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.returned.notify_all();
    }

    fn take(&self) -> Result<Connection, LedgerError> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match idle.as_mut() {
                None => return Err(LedgerError::Closed),
                Some(connections) => {
                    if let Some(connection) = connections.pop() {
                        return Ok(connection);
                    }
                }
            }
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        match idle.as_mut() {
            Some(connections) => connections.push(connection),
            // Closed meanwhile: this connection closes here, outside the lock.
            None => {
                drop(idle);
                drop(connection);
                return;
            }
        }
        drop(idle);
        self.returned.notify_one();
    }
}

/// One read connection with the ledger's settings.
fn connect(path: &Path) -> Result<Connection, LedgerError> {
    let located = |e: rusqlite::Error| location(path, &e);
    let connection = Connection::open(path).map_err(located)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(located)?;
    let pragmas = format!("PRAGMA query_only = ON; PRAGMA cache_size = {PAGE_CACHE_KIB}; PRAGMA mmap_size = {MMAP_BYTES};");
    connection.execute_batch(&pragmas).map_err(located)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::{CONNECTIONS, Readers};
    use crate::ledger::LedgerError;
    use std::sync::{Arc, Barrier};

    fn readers() -> (tempfile::TempDir, Readers) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.sqlite");
        rusqlite::Connection::open(&path).and_then(|c| c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x)")).expect("db");
        let readers = Readers::open(&path).expect("open");
        (dir, readers)
    }

    #[test]
    fn more_reads_than_connections_wait_for_one_instead_of_failing() {
        let (_dir, readers) = readers();
        let readers = Arc::new(readers);
        // Every connection held at once, then twice as many reads as connections.
        let all_held = Arc::new(Barrier::new(CONNECTIONS));
        let threads: Vec<_> = (0..2 * CONNECTIONS)
            .map(|i| {
                let (readers, all_held) = (readers.clone(), all_held.clone());
                std::thread::spawn(move || {
                    readers.read(|c| {
                        if i < CONNECTIONS {
                            all_held.wait();
                        }
                        Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
                    })
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().expect("reader").expect("read"), 0);
        }
    }

    #[test]
    fn reads_never_write_and_fail_once_closed() {
        let (_dir, readers) = readers();
        let write = readers.read(|c| Ok(c.execute("INSERT INTO t VALUES (1)", [])?));
        assert!(matches!(write, Err(LedgerError::Store(_))), "{write:?}");
        readers.close();
        assert!(matches!(readers.read(|_| Ok(())), Err(LedgerError::Closed)));
    }
}
