//! The storing side of a write: checked facts into the SQLite tables.
//!
//! `SqlSink` is the `FactSink` of one write transaction. It appends each new
//! fact to `facts` (ids follow the largest stored one, without gaps), finds
//! equal facts through the key index (`keys`), and keeps per batch what is
//! written only once the batch is kept: key slots, predicate runs
//! (`pred_ranges`) and counts. A rolled-back batch only has to forget them.
//! It also asks for the WAL to be synced as a large write goes on
//! (`checkpoint`). It never commits: `write` owns the transaction.

use super::StoreError;
use super::checkpoint::{Checkpointer, WAL_SYNC_BYTES};
use super::keys::{FactKeys, key_slot};
use super::write::WriteSummary;
use crate::batch::{DefineError, FIRST_FACT_ID, FactId, FactSink, StoreFailure};
use crate::schema::PredId;
use rusqlite::{Connection, OptionalExtension, Statement, ffi, params};

/// Facts and bytes added per predicate.
/// (A vector indexed by `PredId`: counting is done for every new fact.)
#[derive(Default)]
struct Counts(Vec<(u64, u64)>);

impl Counts {
    fn add(&mut self, pred: PredId, bytes: u64) {
        let i = pred.0 as usize;
        if i >= self.0.len() {
            self.0.resize(i + 1, (0, 0));
        }
        self.0[i].0 += 1;
        self.0[i].1 += bytes;
    }

    /// Adds these counts to `total` and clears them.
    fn move_into(&mut self, total: &mut Counts) {
        if total.0.len() < self.0.len() {
            total.0.resize(self.0.len(), (0, 0));
        }
        for (t, c) in total.0.iter_mut().zip(self.0.drain(..)) {
            t.0 += c.0;
            t.1 += c.1;
        }
    }

    /// `(predicate, facts, bytes)` of the predicates that have facts.
    fn iter(&self) -> impl Iterator<Item = (PredId, u64, u64)> + '_ {
        self.0.iter().enumerate().filter(|(_, c)| c.0 > 0).map(|(i, c)| (PredId(i as u32), c.0, c.1))
    }
}

/// Runs of consecutive fact ids of one predicate: the rows of `pred_ranges`,
/// through which a query reads one predicate's facts in id order.
#[derive(Default)]
struct Runs(Vec<(PredId, FactId, FactId)>);

impl Runs {
    fn push(&mut self, pred: PredId, first: FactId, last: FactId) {
        match self.0.last_mut() {
            Some((p, _, end)) if *p == pred && *end + 1 == first => *end = last,
            _ => self.0.push((pred, first, last)),
        }
    }

    fn append(&mut self, other: &mut Runs) {
        for (pred, first, last) in other.0.drain(..) {
            self.push(pred, first, last);
        }
    }
}

/// The SQLite side of fact checking, for one write transaction.
pub(super) struct SqlSink<'c> {
    keys: FactKeys<'c>,
    insert_first: Statement<'c>,
    append_fact: Statement<'c>,
    pred_of: Statement<'c>,
    own: Statement<'c>,
    update_counts: Statement<'c>,
    insert_run: Statement<'c>,
    next_id: FactId,
    /// `next_id` when the current batch started, to undo its ids.
    file_start: FactId,
    file: WriteSummary,
    file_counts: Counts,
    kept_counts: Counts,
    file_runs: Runs,
    kept_runs: Runs,
    /// Syncs the WAL while a large write goes on (see `checkpoint`).
    checkpointer: &'c Checkpointer,
    /// Bytes of new facts since the last such sync.
    unsynced: u64,
}

impl<'c> SqlSink<'c> {
    pub(super) fn new(conn: &'c Connection, checkpointer: &'c Checkpointer) -> Result<Self, StoreError> {
        let max: Option<FactId> = conn.query_row("SELECT max(id) FROM facts", [], |r| r.get(0)).optional()?.flatten();
        let next_id = max.map_or(FIRST_FACT_ID, |m| m + 1);
        Ok(SqlSink {
            keys: FactKeys::new(conn)?,
            insert_first: conn.prepare("INSERT INTO facts (id, pid, key, value) VALUES (?1, ?2, ?3, ?4)")?,
            append_fact: conn.prepare("INSERT INTO facts (pid, key, value) VALUES (?1, ?2, ?3)")?,
            pred_of: conn.prepare("SELECT pid FROM facts WHERE id = ?1")?,
            own: conn.prepare("INSERT OR IGNORE INTO ownership (unit, fact_id) VALUES (?1, ?2)")?,
            update_counts: conn.prepare("UPDATE predicates SET facts = facts + ?2, bytes = bytes + ?3 WHERE pid = ?1")?,
            insert_run: conn.prepare("INSERT INTO pred_ranges (pid, first_id, last_id) VALUES (?1, ?2, ?3)")?,
            next_id,
            file_start: next_id,
            file: WriteSummary::default(),
            file_counts: Counts::default(),
            kept_counts: Counts::default(),
            file_runs: Runs::default(),
            kept_runs: Runs::default(),
            checkpointer,
            unsynced: 0,
        })
    }

    /// The current batch succeeded (its savepoint is released): keep its ids, slots and counts.
    pub(super) fn keep_file(&mut self, facts: u64) -> Result<WriteSummary, StoreError> {
        self.keys.flush()?;
        self.file_counts.move_into(&mut self.kept_counts);
        self.kept_runs.append(&mut self.file_runs);
        self.file_start = self.next_id;
        Ok(WriteSummary { facts, ..std::mem::take(&mut self.file) })
    }

    /// The current batch was rolled back: forget its ids, slots and counts.
    pub(super) fn discard_file(&mut self) {
        self.keys.discard();
        self.file_counts.0.clear();
        self.file_runs.0.clear();
        self.file = WriteSummary::default();
        self.next_id = self.file_start;
    }

    /// Writes the counts and predicate runs of the kept batches; returns the bytes of their new facts.
    pub(super) fn save(&mut self) -> Result<u64, StoreError> {
        for (pred, n, bytes) in self.kept_counts.iter() {
            self.update_counts.execute(params![pred.0, n, bytes])?;
        }
        for (pred, first, last) in &self.kept_runs.0 {
            self.insert_run.execute(params![pred.0, first, last])?;
        }
        Ok(self.kept_counts.iter().map(|(_, _, bytes)| bytes).sum())
    }

    /// `FactSink::define` for a fact whose `key_slot` is known (the checking thread computes it).
    pub(super) fn define_at(&mut self, slot: i64, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError> {
        match self.try_define(slot, pred, key, value) {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(existing)) => Err(DefineError::Redefinition(existing)),
            Err(e) => Err(DefineError::Store(Box::new(e))),
        }
    }

    /// `Ok(id)` of the stored or new fact, `Err(id)` of a stored fact with this key and another value.
    fn try_define(&mut self, slot: i64, pred: PredId, key: &str, value: Option<&str>) -> Result<Result<FactId, FactId>, rusqlite::Error> {
        match self.keys.find(slot, pred, key, |id, stored| (id, stored == value))? {
            Ok((id, true)) => {
                self.file.existing_facts += 1;
                Ok(Ok(id))
            }
            Ok((id, false)) => Ok(Err(id)),
            Err(slot) => self.insert(slot, pred, key, value).map(Ok),
        }
    }

    /// Adds fact `id` at the end of `facts`. Ids follow the largest stored one,
    /// so SQLite is left to pick it: appending at the end of the table is then
    /// a walk down its right edge instead of a search for the id.
    fn append(&mut self, id: FactId, pred: PredId, key: &str, value: Option<&str>) -> Result<(), rusqlite::Error> {
        if id == FIRST_FACT_ID {
            self.insert_first.execute(params![id, pred.0, key, value])?;
            return Ok(());
        }
        let given = self.append_fact.insert(params![pred.0, key, value])?;
        if given != id as i64 {
            // Only possible if `facts` changed behind this transaction's back.
            let message = format!("fact {id} was stored as {given}");
            return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_CORRUPT), Some(message)));
        }
        Ok(())
    }

    fn insert(&mut self, slot: i64, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, rusqlite::Error> {
        let id = self.next_id;
        self.append(id, pred, key, value)?;
        self.keys.add(slot, id)?;
        self.next_id += 1;
        self.file.new_facts += 1;
        self.file_runs.push(pred, id, id);
        let bytes = (key.len() + value.map_or(0, str::len)) as u64;
        self.file_counts.add(pred, bytes);
        self.unsynced += bytes;
        if self.unsynced >= WAL_SYNC_BYTES {
            self.unsynced = 0;
            self.checkpointer.sync_wal();
        }
        Ok(id)
    }
}

impl FactSink for SqlSink<'_> {
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError> {
        self.define_at(key_slot(pred, key), pred, key, value)
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
