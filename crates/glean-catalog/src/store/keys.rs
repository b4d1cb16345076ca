//! The key index: finding a stored fact by predicate and canonical key.
//!
//! Every fact has a slot in `fact_keys`, chosen from a hash of its predicate
//! and key; a different key already in that slot moves it on to `slot + 1`,
//! and so on. `probe` walks that sequence and compares the stored key text in
//! place (no copy). During a write, `FactKeys` keeps the slots of new facts in
//! memory and adds them to `fact_keys` sorted, in one go: a random insert into
//! a million-row B-tree misses the CPU cache at every level, a sorted run of
//! them does not. It never writes a fact: the caller does, and hands it the
//! slots of the new ones.

use crate::batch::{FactId, Prehashed};
use crate::schema::PredId;
use rusqlite::{Connection, OptionalExtension, Row, Statement, params_from_iter};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Statement returning the fact in slot `?1`: `id, pid, key, value`.
const LOOKUP: &str = "SELECT f.id, f.pid, f.key, f.value FROM fact_keys k JOIN facts f ON f.id = k.id WHERE k.slot = ?1";

/// Statement returning fact `?1` with the columns of `LOOKUP`.
const BY_ID: &str = "SELECT id, pid, key, value FROM facts WHERE id = ?1";

/// Slots written per INSERT statement when flushing (fewer statement runs).
const ROWS_PER_INSERT: usize = 100;

/// New slots kept in memory before they are flushed mid-batch (about 40 MB).
const MAX_PENDING: usize = 1 << 20;

/// The first slot of a fact: the first 8 bytes of BLAKE3(key), keyed by the predicate.
pub(super) fn key_slot(pred: PredId, key: &str) -> i64 {
    let mut pred_key = [0u8; blake3::KEY_LEN];
    pred_key[..4].copy_from_slice(&pred.0.to_le_bytes());
    let hash = blake3::keyed_hash(&pred_key, key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    i64::from_le_bytes(first)
}

/// What one slot holds, seen from the fact looked for.
enum Slot<T> {
    /// Nothing: the fact is not stored.
    Empty,
    /// The fact itself, read by the caller's `read`.
    Found(T),
    /// Another fact (a hash collision): look in the next slot.
    Taken,
}

/// Walks the slots from `first` (a fact's `key_slot`) until it finds the fact or a free slot.
/// `Ok(found)` when stored, `Err(slot)`: the free slot where it belongs.
fn probe<T>(first: i64, mut at: impl FnMut(i64) -> rusqlite::Result<Slot<T>>) -> rusqlite::Result<Result<T, i64>> {
    let mut slot = first;
    loop {
        match at(slot)? {
            Slot::Empty => return Ok(Err(slot)),
            Slot::Found(found) => return Ok(Ok(found)),
            Slot::Taken => slot = slot.wrapping_add(1),
        }
    }
}

/// Runs `stmt` (columns `id, pid, key, value`) and compares its row with the fact looked for.
fn compare<T>(
    stmt: &mut Statement<'_>,
    arg: i64,
    pred: PredId,
    key: &str,
    read: &impl Fn(FactId, Option<&str>) -> T,
) -> rusqlite::Result<Slot<T>> {
    let row = stmt.query_row([arg], |r| same_fact(r, pred, key, read)).optional()?;
    Ok(match row {
        None => Slot::Empty,
        Some(None) => Slot::Taken,
        Some(Some(found)) => Slot::Found(found),
    })
}

fn same_fact<T>(r: &Row<'_>, pred: PredId, key: &str, read: &impl Fn(FactId, Option<&str>) -> T) -> rusqlite::Result<Option<T>> {
    let stored_key = r.get_ref(2)?.as_str().map_err(|e| super::database::text_error(2, e))?;
    if r.get::<_, u32>(1)? != pred.0 || stored_key != key {
        return Ok(None);
    }
    let value = r.get_ref(3)?.as_str_or_null().map_err(|e| super::database::text_error(3, e))?;
    Ok(Some(read(r.get(0)?, value)))
}

/// Looks a fact up in a database that is not being written (queries).
pub(super) fn find<T>(conn: &Connection, pred: PredId, key: &str, read: impl Fn(FactId, Option<&str>) -> T) -> rusqlite::Result<Option<T>> {
    let mut lookup = conn.prepare_cached(LOOKUP)?;
    Ok(probe(key_slot(pred, key), |slot| compare(&mut lookup, slot, pred, key, &read))?.ok())
}

/// The key index during one write transaction.
pub(super) struct FactKeys<'c> {
    lookup: Statement<'c>,
    by_id: Statement<'c>,
    insert_many: Statement<'c>,
    insert_one: Statement<'c>,
    /// Slots of facts written since the last flush, not yet in `fact_keys`.
    /// They are disjoint from the table's: a slot is only taken when free in both.
    /// (Slots are hashes already, so the map does not hash them again.)
    pending: HashMap<i64, FactId, BuildHasherDefault<Prehashed>>,
    /// False while `fact_keys` is empty (a database's first write): then
    /// only `pending` can hold a fact, and the table is not asked.
    table_used: bool,
    /// The last stored fact found, and whether the ones found have been coming
    /// in id order (see `find`).
    last_found: Option<FactId>,
    in_order: bool,
}

impl<'c> FactKeys<'c> {
    pub(super) fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        let many = vec!["(?, ?)"; ROWS_PER_INSERT].join(", ");
        let table_used = conn.query_row("SELECT EXISTS (SELECT 1 FROM fact_keys)", [], |r| r.get(0))?;
        Ok(FactKeys {
            table_used,
            lookup: conn.prepare(LOOKUP)?,
            by_id: conn.prepare(BY_ID)?,
            insert_many: conn.prepare(&format!("INSERT INTO fact_keys (slot, id) VALUES {many}"))?,
            insert_one: conn.prepare("INSERT INTO fact_keys (slot, id) VALUES (?1, ?2)")?,
            pending: HashMap::default(),
            last_found: None,
            in_order: false,
        })
    }

    /// The stored fact of `pred` with this key (`read` sees its id and value),
    /// or `Err(slot)`: where a new fact with this key goes. `first` is the
    /// fact's `key_slot`.
    ///
    /// A batch sent again (a retry, a re-export: Glean makes them harmless)
    /// brings its facts back in the order they were stored. So once found
    /// facts come in id order, the fact after the last one is tried first: a
    /// read of the row next to the last, instead of a probe in a random place
    /// of the key index. It is compared like any other, so a wrong guess only
    /// costs that read, and guessing stops at the first miss.
    pub(super) fn find<T>(
        &mut self,
        first: i64,
        pred: PredId,
        key: &str,
        read: impl Fn(FactId, Option<&str>) -> T,
    ) -> rusqlite::Result<Result<T, i64>> {
        let read = |id, value: Option<&str>| (id, read(id, value));
        if let (true, Some(last)) = (self.in_order, self.last_found)
            && let Slot::Found((id, found)) = compare(&mut self.by_id, last as i64 + 1, pred, key, &read)?
        {
            self.last_found = Some(id);
            return Ok(Ok(found));
        }
        let FactKeys { lookup, by_id, pending, table_used, .. } = self;
        let found = probe(first, |slot| match pending.get(&slot) {
            Some(&id) => compare(by_id, id as i64, pred, key, &read),
            None if *table_used => compare(lookup, slot, pred, key, &read),
            None => Ok(Slot::Empty),
        })?;
        let found_id = found.as_ref().ok().map(|(id, _)| *id);
        self.in_order = found_id.is_some() && found_id == self.last_found.map(|last| last + 1);
        self.last_found = found_id;
        Ok(found.map(|(_, found)| found))
    }

    /// Records the slot of a new fact; flushes when too many are pending.
    ///
    /// A flush in the middle of a batch is undone with the batch's savepoint,
    /// which is right: it only holds slots of that batch (see `flush`).
    pub(super) fn add(&mut self, slot: i64, id: FactId) -> rusqlite::Result<()> {
        self.pending.insert(slot, id);
        if self.pending.len() >= MAX_PENDING {
            self.flush()?;
        }
        Ok(())
    }

    /// Forgets the pending slots of a batch that was rolled back.
    pub(super) fn discard(&mut self) {
        self.pending.clear();
    }

    /// Writes the pending slots into `fact_keys` in slot order.
    ///
    /// Called when a batch has been kept, so that a later batch's rollback
    /// can never take them with it.
    pub(super) fn flush(&mut self) -> rusqlite::Result<()> {
        self.table_used |= !self.pending.is_empty();
        let mut rows: Vec<(i64, FactId)> = self.pending.drain().collect();
        rows.sort_unstable();
        let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
        for chunk in &mut chunks {
            self.insert_many.execute(params_from_iter(chunk.iter().flat_map(|(slot, id)| [*slot, *id as i64])))?;
        }
        for (slot, id) in chunks.remainder() {
            self.insert_one.execute((slot, id))?;
        }
        Ok(())
    }
}
