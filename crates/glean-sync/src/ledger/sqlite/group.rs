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
//! answer. It never reorders or drops an insert.

use super::SqliteLedger;
use crate::ledger::{ExportId, LedgerError, NewExport};
use tokio::sync::{mpsc, oneshot};

/// The most exports one commit carries (an insert larger than this is committed alone).
const MAX_GROUP: usize = 256;

/// Exports waiting for their commit, all or none.
pub(super) struct Insert {
    exports: Vec<NewExport>,
    reply: oneshot::Sender<Result<Vec<ExportId>, LedgerError>>,
}

/// Starts the committing thread for `ledger`; it ends when every sender is dropped.
pub(super) fn start(ledger: SqliteLedger) -> Result<mpsc::Sender<Insert>, LedgerError> {
    let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
    std::thread::Builder::new()
        .name("ledger-commit".into())
        .spawn(move || run(&ledger, rx))
        .map_err(|e| LedgerError::Location { path: String::new(), message: format!("cannot start the commit thread: {e}") })?;
    Ok(tx)
}

/// Queues `exports` and waits until they are committed; their ids, in order.
pub(super) async fn insert(queue: &mpsc::Sender<Insert>, exports: Vec<NewExport>) -> Result<Vec<ExportId>, LedgerError> {
    let (reply, answer) = oneshot::channel();
    queue.send(Insert { exports, reply }).await.map_err(|_| super::writer::closed())?;
    answer.await.map_err(|_| super::writer::closed())?
}

fn run(ledger: &SqliteLedger, mut inserts: mpsc::Receiver<Insert>) {
    while let Some(first) = inserts.blocking_recv() {
        let mut size = first.exports.len();
        let mut group = vec![first];
        while size < MAX_GROUP {
            match inserts.try_recv() {
                Ok(next) => {
                    size += next.exports.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        commit(ledger, group);
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
