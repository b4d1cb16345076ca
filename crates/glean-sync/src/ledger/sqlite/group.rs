//! Group commit: saves that arrive together share one durable commit.
//!
//! A durable commit costs a disk sync (about a millisecond here), and SQLite
//! has one writer, so committing each save alone caps saves at the disk's
//! sync rate. Inserts are handed to one task that takes every insert waiting
//! (up to `MAX_GROUP`), commits them in one transaction, and answers each
//! caller; a caller still returns only after its row is durably committed.
//! If a group's commit fails, its inserts are tried one by one, so each
//! caller gets its own answer. It never reorders or drops an insert.

use super::SqliteLedger;
use crate::ledger::{ExportId, LedgerError, NewExport};
use tokio::sync::{mpsc, oneshot};

/// The most inserts one commit carries.
const MAX_GROUP: usize = 256;

/// Exports carrying more facts than this are committed alone, without the queue.
pub(super) const LARGE_FACTS: usize = 10_000;

/// An insert waiting for its commit.
pub(super) struct Insert {
    export: NewExport,
    reply: oneshot::Sender<Result<ExportId, LedgerError>>,
}

/// Starts the committing task for `ledger`; it ends when every sender is dropped.
pub(super) fn start(ledger: SqliteLedger) -> mpsc::Sender<Insert> {
    let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
    tokio::spawn(run(ledger, rx));
    tx
}

/// Queues `export` and waits until it is committed.
pub(super) async fn insert(queue: &mpsc::Sender<Insert>, export: NewExport) -> Result<ExportId, LedgerError> {
    let (reply, answer) = oneshot::channel();
    let stopped = || LedgerError::Location { path: String::new(), message: "the ledger is closed".into() };
    queue.send(Insert { export, reply }).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

async fn run(ledger: SqliteLedger, mut inserts: mpsc::Receiver<Insert>) {
    while let Some(first) = inserts.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match inserts.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let exports: Vec<&NewExport> = group.iter().map(|i| &i.export).collect();
        match ledger.insert_rows(&exports).await {
            Ok(ids) => {
                for (insert, id) in group.into_iter().zip(ids) {
                    let _ = insert.reply.send(Ok(id));
                }
            }
            Err(_) => {
                // Alone, each insert gets its own error (or succeeds).
                for insert in group {
                    let result = ledger.insert_rows(&[&insert.export]).await.and_then(|ids| {
                        ids.first().copied().ok_or_else(|| LedgerError::Corrupt { id: 0, message: "an insert returned no id".into() })
                    });
                    let _ = insert.reply.send(result);
                }
            }
        }
    }
}
