//! Disk work of large writes, on a thread of their own.
//!
//! A commit is durable once its pages are in the WAL and synced; copying them
//! into the database file (a checkpoint) can come later. SQLite does it inside
//! the commit that makes the WAL pass 1000 pages, which for a large batch
//! doubles the commit: every page is written and synced a second time. So a
//! large write commits with that automatic checkpoint turned off and asks this
//! thread, which has its own connection, for a PASSIVE checkpoint (one that
//! never blocks readers or writers) instead. Small writes keep SQLite's
//! automatic checkpoint.
//!
//! While a large write runs, SQLite already writes most of its pages to the
//! WAL (the page cache is smaller than the batch), but the kernel keeps them
//! in memory until the commit's sync, which then waits for all of them. The
//! thread syncs the WAL along the way (`sync_wal`), so the disk works while
//! the batch is checked and the commit only waits for the last pages. Syncing
//! more often than SQLite does changes nothing it relies on.
//!
//! Dropping the checkpointer waits for the thread, so a process never exits
//! half-way through its work; a checkpoint that fails or never runs loses
//! nothing, as the pages stay in the WAL for the next one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes of new facts from which a write is checkpointed in the background
/// (about SQLite's own threshold of 1000 pages).
pub(super) const LARGE_WRITE_BYTES: u64 = 4 << 20;

/// Bytes of new facts between two syncs of the WAL during a write.
pub(super) const WAL_SYNC_BYTES: u64 = 32 << 20;

/// SQLite's default `wal_autocheckpoint`, restored after a large commit.
pub(super) const AUTO_CHECKPOINT_PAGES: u32 = 1000;

/// The background thread of one database, started on first use.
pub(super) struct Checkpointer {
    path: PathBuf,
    /// `None` inside when the thread could not be started.
    worker: OnceLock<Option<Worker>>,
}

struct Worker {
    jobs: Arc<Jobs>,
    /// Wakes the thread; dropping it makes the thread finish.
    wake: SyncSender<()>,
    thread: JoinHandle<()>,
}

/// What the thread is asked to do next; requests made before it gets to them merge.
#[derive(Default)]
struct Jobs {
    checkpoint: AtomicBool,
    sync_wal: AtomicBool,
}

impl Checkpointer {
    /// A checkpointer for the database file at `path` (no thread yet).
    pub(super) fn new(path: &Path) -> Self {
        Checkpointer { path: path.to_owned(), worker: OnceLock::new() }
    }

    /// Asks for a checkpoint soon.
    pub(super) fn checkpoint(&self) {
        self.ask(|jobs| &jobs.checkpoint);
    }

    /// Asks for the WAL written so far to be synced to disk soon.
    pub(super) fn sync_wal(&self) {
        self.ask(|jobs| &jobs.sync_wal);
    }

    fn ask(&self, job: impl Fn(&Jobs) -> &AtomicBool) {
        let Some(worker) = self.worker.get_or_init(|| Worker::start(&self.path)) else { return };
        job(&worker.jobs).store(true, Ordering::Release);
        // Full means the thread is already due to wake up, and will see this job.
        let _ = worker.wake.try_send(());
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(Some(worker)) = self.worker.take() {
            drop(worker.wake);
            let _ = worker.thread.join();
        }
    }
}

impl Worker {
    /// Starts the thread; `None` if it cannot be (then SQLite's own checkpoints do the work).
    fn start(path: &Path) -> Option<Worker> {
        let jobs = Arc::new(Jobs::default());
        let (wake, woken) = mpsc::sync_channel(1);
        let (db, shared) = (path.to_owned(), Arc::clone(&jobs));
        let thread = std::thread::Builder::new().name("glean-checkpoint".into()).spawn(move || run(&db, &shared, woken)).ok()?;
        Some(Worker { jobs, wake, thread })
    }
}

/// The thread: does the jobs asked for at each wake-up, until the channel closes.
fn run(path: &Path, jobs: &Jobs, woken: Receiver<()>) {
    let Ok(conn) = rusqlite::Connection::open(path) else { return };
    if conn.busy_timeout(Duration::from_secs(60)).is_err() {
        return;
    }
    let mut wal_path = path.as_os_str().to_owned();
    wal_path.push("-wal");
    while woken.recv().is_ok() {
        if jobs.sync_wal.swap(false, Ordering::Acquire) {
            // Only flushes what is already written; a missing WAL has nothing to flush.
            if let Ok(wal) = File::open(&wal_path) {
                let _ = wal.sync_data();
            }
        }
        if jobs.checkpoint.swap(false, Ordering::Acquire) {
            // A busy or failed checkpoint leaves the pages in the WAL for the next one.
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }
}
