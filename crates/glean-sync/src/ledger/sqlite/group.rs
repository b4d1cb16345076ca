//! Group commit: saves that arrive together share one durable commit.
//!
//! A durable commit costs a disk sync (about a millisecond here), and SQLite
//! has one writer, so committing each save alone caps saves at the disk's
//! sync rate. Inserts are handed to one thread of their own that takes every
//! insert waiting (up to `MAX_GROUP` exports), commits them in one
//! transaction, and answers each caller; a caller still returns only after
//! its rows are durably committed. An insert's exports (one for `insert`, all
//! of `insert_many`) are never split across commits. If a group's commit
//! fails, its inserts are tried one by one, so each caller gets its own
//! answer; one that panics fails its own callers and the thread goes on. A
//! close first flushes the queue, so a save queued before it is committed. It
//! never reorders or drops an insert.

use super::{SqliteLedger, location};
use crate::ledger::{ExportId, LedgerError, NewExport};
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};

/// The most exports one commit carries (an insert larger than this is committed alone).
const MAX_GROUP: usize = 256;

/// What the committing thread is asked to do, in the order asked.
pub(super) enum Job {
    /// Commit these exports.
    Insert(Insert),
    /// Answer once every insert queued before this one has been answered (close).
    Flush(oneshot::Sender<()>),
}

/// Exports waiting for their commit, all or none.
pub(super) struct Insert {
    exports: Vec<NewExport>,
    reply: oneshot::Sender<Result<Vec<ExportId>, LedgerError>>,
}

/// Starts the committing thread for `ledger`; it ends when every sender is dropped.
pub(super) fn start(ledger: SqliteLedger) -> Result<mpsc::Sender<Job>, LedgerError> {
    let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
    let path = ledger.path.clone();
    std::thread::Builder::new()
        .name("ledger-commit".into())
        .spawn(move || run(&ledger, rx))
        .map_err(|e| location(&path, &format!("cannot start the commit thread: {e}")))?;
    Ok(tx)
}

/// Queues `exports` and waits until they are committed; their ids, in order.
pub(super) async fn insert(queue: &mpsc::Sender<Job>, exports: Vec<NewExport>) -> Result<Vec<ExportId>, LedgerError> {
    let (reply, answer) = oneshot::channel();
    queue.send(Job::Insert(Insert { exports, reply })).await.map_err(|_| LedgerError::Closed)?;
    answer.await.map_err(|_| LedgerError::Stopped("the commit of this save panicked".into()))?
}

/// Waits until every insert queued before the call has been committed and answered.
pub(super) async fn flush(queue: &mpsc::Sender<Job>) {
    let (done, flushed) = oneshot::channel();
    if queue.send(Job::Flush(done)).await.is_ok() {
        // An error here means the thread is gone, and with it anything left to wait for.
        let _ = flushed.await;
    }
}

fn run(ledger: &SqliteLedger, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let (mut group, mut size) = (Vec::new(), 0);
        let mut job = Some(first);
        // The inserts waiting, up to a group's size; a flush ends the group.
        let flushed = loop {
            match job {
                Some(Job::Insert(insert)) => {
                    size += insert.exports.len();
                    group.push(insert);
                }
                Some(Job::Flush(done)) => break Some(done),
                None => break None,
            }
            job = if size < MAX_GROUP { jobs.try_recv().ok() } else { None };
        };
        if !group.is_empty() {
            // A panic fails this group's saves (their replies are dropped), not every later one.
            if std::panic::catch_unwind(AssertUnwindSafe(|| commit(ledger, group))).is_err() {
                tracing::error!("a ledger commit panicked; the saves it carried failed, later saves go on");
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

/// Commits a group and answers each of its inserts.
fn commit(ledger: &SqliteLedger, group: Vec<Insert>) {
    let exports: Vec<&NewExport> = group.iter().flat_map(|i| &i.exports).collect();
    match ledger.insert_rows(&exports) {
        Ok(ids) => {
            let mut ids = ids.into_iter();
            for insert in group {
                let _ = insert.reply.send(Ok(ids.by_ref().take(insert.exports.len()).collect()));
            }
        }
        Err(_) if group.len() > 1 => {
            // Alone, each insert gets its own error (or succeeds).
            for insert in group {
                commit(ledger, vec![insert]);
            }
        }
        Err(e) => {
            if let Some(insert) = group.into_iter().next() {
                let _ = insert.reply.send(Err(e));
            }
        }
    }
}
