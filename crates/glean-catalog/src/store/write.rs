//! Writing batches: one SQLite transaction per call, one savepoint per batch.
//!
//! A batch that fails rolls back to its savepoint and writes nothing; the
//! batches before it in the same call stay written, as with `glean write`.
//! The write lock is taken up front (`BEGIN IMMEDIATE`), so concurrent writers
//! queue behind each other and fact ids are handed out without gaps or races.
//! Before it, writers take turns on a lock file (`writers.lock`, an exclusive
//! `flock` that the kernel hands to the next waiter at once): SQLite's busy
//! handler polls with sleeps of up to 100 ms, and two `glean-local write`
//! processes handing over through it waited 100-670 ms for writes of 60 ms.
//! Each batch is checked on a thread of its own while this one stores its
//! facts with a `SqlSink` (`pipeline`, `sql_sink`). A large write is
//! checkpointed in the background (`checkpoint`).

use super::StoreError;
use super::checkpoint::{AUTO_CHECKPOINT_PAGES, LARGE_WRITE_BYTES};
use super::database::{Database, DbStatus};
use super::pipeline::{self, CHUNKS_IN_FLIGHT, Remote};
use super::sql_sink::SqlSink;
use crate::batch::{self, BatchError, BatchSummary, Checker, StoreFailure};
use crate::schema::Schema;
use std::path::Path;
use std::sync::mpsc;

/// One batch to write.
#[derive(Debug, Clone, Copy)]
pub enum BatchInput<'a> {
    /// A batch file (`.zst` is decompressed).
    File(&'a Path),
    /// A batch already in memory, named for error messages.
    Bytes {
        /// Name used in error messages.
        name: &'a str,
        /// The JSON batch.
        bytes: &'a [u8],
    },
}

impl BatchInput<'_> {
    /// The name errors give the batch.
    fn name(&self) -> String {
        match self {
            BatchInput::File(path) => path.display().to_string(),
            BatchInput::Bytes { name, .. } => (*name).to_owned(),
        }
    }
}

/// What writing one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Top-level facts in the batch.
    pub facts: u64,
    /// Facts (nested ones included) that were not stored before.
    pub new_facts: u64,
    /// Facts (nested ones included) equal to stored ones.
    pub existing_facts: u64,
}

impl Database {
    /// Writes `inputs` in one transaction; each batch is all-or-nothing.
    ///
    /// The outer error means nothing was written (the database is read-only,
    /// or SQLite failed); otherwise there is one result per input.
    pub fn write(&mut self, inputs: &[BatchInput<'_>], strict: bool) -> Result<Vec<Result<WriteSummary, BatchError>>, StoreError> {
        self.write_batches(inputs, strict, Rejection::GoOn)
    }

    /// As `write`, but the first rejected batch ends the call, as `glean write` does: the
    /// batches before it stay written, those after it are not tried (and have no result).
    pub fn write_until_rejected(
        &mut self,
        inputs: &[BatchInput<'_>],
        strict: bool,
    ) -> Result<Vec<Result<WriteSummary, BatchError>>, StoreError> {
        self.write_batches(inputs, strict, Rejection::Stop)
    }

    fn write_batches(
        &mut self,
        inputs: &[BatchInput<'_>],
        strict: bool,
        rejection: Rejection,
    ) -> Result<Vec<Result<WriteSummary, BatchError>>, StoreError> {
        if self.status()? == DbStatus::Complete {
            return Err(StoreError::ReadOnly(self.db.clone()));
        }
        let _turn = self.writers_turn()?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match self.write_locked(inputs, strict, rejection) {
            Ok((results, bytes)) => {
                self.commit(bytes)?;
                Ok(results)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Waits for this writer's turn; it lasts until the returned file is dropped (closed).
    fn writers_turn(&self) -> Result<std::fs::File, StoreError> {
        let io = |source| StoreError::Io { path: self.writers_lock.clone(), source };
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.writers_lock).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }

    /// Commits; a write of `bytes` or more is checkpointed in the background (see `checkpoint`).
    fn commit(&mut self, bytes: u64) -> Result<(), StoreError> {
        if bytes < LARGE_WRITE_BYTES {
            self.conn.execute_batch("COMMIT")?;
            return Ok(());
        }
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let committed = self.conn.execute_batch("COMMIT");
        self.conn.pragma_update(None, "wal_autocheckpoint", AUTO_CHECKPOINT_PAGES)?;
        committed?;
        self.checkpointer.checkpoint();
        Ok(())
    }

    /// The batches and the bytes of new facts they stored.
    fn write_locked(
        &self,
        inputs: &[BatchInput<'_>],
        strict: bool,
        rejection: Rejection,
    ) -> Result<(Vec<Result<WriteSummary, BatchError>>, u64), StoreError> {
        // Another process may have finished the database while we waited for the lock.
        if self.status()? == DbStatus::Complete {
            return Err(StoreError::ReadOnly(self.db.clone()));
        }
        let mut sink = SqlSink::new(&self.conn, &self.checkpointer)?;
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            self.conn.execute_batch("SAVEPOINT batch")?;
            let checked = check_beside(&self.schema, *input, strict, &mut sink);
            match checked {
                Ok(summary) => {
                    self.conn.execute_batch("RELEASE batch")?;
                    results.push(Ok(sink.keep_file(summary.facts)?));
                }
                Err(BatchError::Store { source, .. }) => return Err(store_failure(source)),
                Err(e) => {
                    self.conn.execute_batch("ROLLBACK TO batch; RELEASE batch")?;
                    sink.discard_file();
                    results.push(Err(e));
                    if rejection == Rejection::Stop {
                        break;
                    }
                }
            }
        }
        let bytes = sink.save()?;
        Ok((results, bytes))
    }
}

/// What a rejected batch does to the rest of a write call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// The later batches are written.
    GoOn,
    /// The call ends there.
    Stop,
}

/// Checks `input` on a thread of its own while this one stores its facts in `sink` (see `pipeline`).
fn check_beside(schema: &Schema, input: BatchInput<'_>, strict: bool, sink: &mut SqlSink<'_>) -> Result<BatchSummary, BatchError> {
    let (to_store, requests) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (to_checker, replies) = mpsc::sync_channel(1);
    let (to_reuse, spare) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let check = move || {
        let mut remote = Remote::new(to_store, replies, spare);
        let mut checker = Checker::new(schema, &mut remote, strict);
        match input {
            BatchInput::File(path) => batch::check_file(path, &mut checker),
            BatchInput::Bytes { name, bytes } => batch::check_reader(name, bytes, &mut checker),
        }
    };
    std::thread::scope(|scope| {
        let checking = std::thread::Builder::new().name("glean-check".into()).spawn_scoped(scope, check);
        let checking = match checking {
            Ok(thread) => thread,
            Err(e) => return Err(BatchError::Store { file: input.name(), source: Box::new(e) }),
        };
        pipeline::serve(sink, requests, to_checker, to_reuse);
        checking.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Unwraps a store error that travelled through the checker.
fn store_failure(e: StoreFailure) -> StoreError {
    match e.downcast::<rusqlite::Error>() {
        Ok(sql) => StoreError::Sqlite(*sql),
        Err(other) => StoreError::Io { path: "<store>".into(), source: std::io::Error::other(other) },
    }
}
