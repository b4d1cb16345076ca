//! Writing batches: one SQLite transaction per call, one savepoint per batch.
//!
//! A batch that fails rolls back to its savepoint and writes nothing; the
//! batches before it in the same call stay written, as with `glean write`.
//! The write lock is taken up front (`BEGIN IMMEDIATE`), so concurrent writers
//! queue behind each other and fact ids are handed out without gaps or races.

use super::database::{Database, DbStatus};
use super::StoreError;
use crate::batch::{self, BatchError, Checker, DefineError, FactId, FactSink, StoreFailure, FIRST_FACT_ID};
use crate::schema::PredId;
use rusqlite::{params, Connection, OptionalExtension, Statement};
use std::collections::HashMap;
use std::path::Path;

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

/// The first 8 bytes of BLAKE3(key), the index key of a fact.
pub(super) fn key_hash(key: &str) -> i64 {
    let h = blake3::hash(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(first)
}

impl Database {
    /// Writes `inputs` in one transaction; each batch is all-or-nothing.
    ///
    /// The outer error means nothing was written (the database is read-only,
    /// or SQLite failed); otherwise there is one result per input.
    pub fn write(&mut self, inputs: &[BatchInput<'_>], strict: bool) -> Result<Vec<Result<WriteSummary, BatchError>>, StoreError> {
        if self.status()? == DbStatus::Complete {
            return Err(StoreError::ReadOnly(self.db.clone()));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match self.write_locked(inputs, strict) {
            Ok(results) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(results)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn write_locked(&self, inputs: &[BatchInput<'_>], strict: bool) -> Result<Vec<Result<WriteSummary, BatchError>>, StoreError> {
        // Another process may have finished the database while we waited for the lock.
        if self.status()? == DbStatus::Complete {
            return Err(StoreError::ReadOnly(self.db.clone()));
        }
        let mut sink = SqlSink::new(&self.conn)?;
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            self.conn.execute_batch("SAVEPOINT batch")?;
            let checked = {
                let mut checker = Checker::new(&self.schema, &mut sink, strict);
                match *input {
                    BatchInput::File(path) => batch::check_file(path, &mut checker),
                    BatchInput::Bytes { name, bytes } => batch::check_reader(name, bytes, &mut checker),
                }
            };
            match checked {
                Ok(summary) => {
                    self.conn.execute_batch("RELEASE batch")?;
                    results.push(Ok(sink.keep_file(summary.facts)));
                }
                Err(BatchError::Store { source, .. }) => return Err(store_failure(source)),
                Err(e) => {
                    self.conn.execute_batch("ROLLBACK TO batch; RELEASE batch")?;
                    sink.discard_file();
                    results.push(Err(e));
                }
            }
        }
        sink.save_counts()?;
        Ok(results)
    }
}

/// Unwraps a store error that travelled through the checker.
fn store_failure(e: StoreFailure) -> StoreError {
    match e.downcast::<rusqlite::Error>() {
        Ok(sql) => StoreError::Sqlite(*sql),
        Err(other) => StoreError::Io { path: "<store>".into(), source: std::io::Error::other(other) },
    }
}

/// Facts and bytes added per predicate.
type Counts = HashMap<PredId, (u64, u64)>;

/// The SQLite side of fact checking, for one write transaction.
struct SqlSink<'c> {
    insert: Statement<'c>,
    by_hash: Statement<'c>,
    pred_of: Statement<'c>,
    own: Statement<'c>,
    update_counts: Statement<'c>,
    next_id: FactId,
    /// `next_id` when the current batch started, to undo its ids.
    file_start: FactId,
    file: WriteSummary,
    file_counts: Counts,
    kept_counts: Counts,
}

impl<'c> SqlSink<'c> {
    fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        let max: Option<FactId> = conn.query_row("SELECT max(id) FROM facts", [], |r| r.get(0)).optional()?.flatten();
        let next_id = max.map_or(FIRST_FACT_ID, |m| m + 1);
        Ok(SqlSink {
            insert: conn.prepare(
                "INSERT INTO facts (id, pid, key_hash, key, value) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (pid, key_hash) DO NOTHING",
            )?,
            by_hash: conn.prepare("SELECT id, key, value FROM facts WHERE pid = ?1 AND key_hash = ?2")?,
            pred_of: conn.prepare("SELECT pid FROM facts WHERE id = ?1")?,
            own: conn.prepare("INSERT OR IGNORE INTO ownership (unit, fact_id) VALUES (?1, ?2)")?,
            update_counts: conn.prepare("UPDATE predicates SET facts = facts + ?2, bytes = bytes + ?3 WHERE pid = ?1")?,
            next_id,
            file_start: next_id,
            file: WriteSummary::default(),
            file_counts: Counts::new(),
            kept_counts: Counts::new(),
        })
    }

    /// The current batch succeeded: keep its ids and counts.
    fn keep_file(&mut self, facts: u64) -> WriteSummary {
        for (pred, (n, bytes)) in self.file_counts.drain() {
            let c = self.kept_counts.entry(pred).or_default();
            c.0 += n;
            c.1 += bytes;
        }
        self.file_start = self.next_id;
        WriteSummary { facts, ..std::mem::take(&mut self.file) }
    }

    /// The current batch was rolled back: forget its ids and counts.
    fn discard_file(&mut self) {
        self.file_counts.clear();
        self.file = WriteSummary::default();
        self.next_id = self.file_start;
    }

    fn save_counts(&mut self) -> Result<(), StoreError> {
        for (pred, (n, bytes)) in &self.kept_counts {
            self.update_counts.execute(params![pred.0, n, bytes])?;
        }
        Ok(())
    }

    fn try_define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<Result<FactId, FactId>, rusqlite::Error> {
        let mut hash = key_hash(key);
        loop {
            if self.insert.execute(params![self.next_id, pred.0, hash, key, value])? == 1 {
                let id = self.next_id;
                self.next_id += 1;
                self.file.new_facts += 1;
                let c = self.file_counts.entry(pred).or_default();
                c.0 += 1;
                c.1 += (key.len() + value.map_or(0, str::len)) as u64;
                return Ok(Ok(id));
            }
            let (id, stored_key, stored_value): (FactId, String, Option<String>) =
                self.by_hash.query_row(params![pred.0, hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            if stored_key == key {
                if stored_value.as_deref() == value {
                    self.file.existing_facts += 1;
                    return Ok(Ok(id));
                }
                return Ok(Err(id));
            }
            // A different key with the same hash: probe the next slot.
            hash = hash.wrapping_add(1);
        }
    }
}

impl FactSink for SqlSink<'_> {
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError> {
        match self.try_define(pred, key, value) {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(existing)) => Err(DefineError::Redefinition(existing)),
            Err(e) => Err(DefineError::Store(Box::new(e))),
        }
    }

    fn predicate_of(&mut self, id: FactId) -> Result<Option<PredId>, StoreFailure> {
        Ok(self.pred_of.query_row([id], |r| r.get(0)).optional()?.map(PredId))
    }

    fn own(&mut self, unit: &str, facts: &[FactId]) -> Result<(), StoreFailure> {
        for id in facts {
            self.own.execute(params![unit, id])?;
        }
        Ok(())
    }
}
