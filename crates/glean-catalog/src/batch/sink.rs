//! Where checked facts go: the interface between checking and storage.
//!
//! The checker hands each fact's canonical key and value to a `FactSink`,
//! which gives it an id (de-duplicating equal facts and refusing a different
//! value for an existing key) and answers which predicate a fact id belongs to.
//! The database implements it on SQLite; `MemorySink` implements it in memory
//! for `validate`, which checks files against a schema without a database.
//!
//! Most facts of a batch are top-level and anonymous: nothing waits for their
//! id. The checker hands those to `define_later`, which a sink may queue (the
//! database stores them on another thread); `settle` then reports how they
//! went. A sink that does everything at once keeps the default methods.

use crate::schema::PredId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fact's id in a database. Like Glean, ids start at 1024.
pub type FactId = u64;

/// The first id a database hands out.
pub const FIRST_FACT_ID: FactId = 1024;

/// A storage error, carried through checking unchanged.
pub type StoreFailure = Box<dyn std::error::Error + Send + Sync>;

/// Why a fact could not be defined.
#[derive(Debug)]
pub enum DefineError {
    /// A fact with this key and a different value exists (its id).
    Redefinition(FactId),
    /// The store failed.
    Store(StoreFailure),
}

/// A fact handed to `define_later` that could not be stored.
#[derive(Debug)]
pub struct Deferred {
    /// Its predicate.
    pub pred: PredId,
    /// The tag it was handed over with (its index in its group).
    pub tag: usize,
    /// Why it was not stored.
    pub error: DefineError,
}

/// Storage for checked facts.
pub trait FactSink {
    /// Stores a fact (or finds the equal one) and returns its id. `value` is
    /// `None` for key-only predicates.
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError>;

    /// Like `define`, for a fact whose id nobody needs yet: the sink may store
    /// it later and return `None`, its id (or failure, with `tag`) coming from
    /// `settle`. Queued facts are stored in the order they were handed over,
    /// and before anything asked of the sink after them.
    fn define_later(&mut self, pred: PredId, key: &str, value: Option<&str>, tag: usize) -> Result<Option<FactId>, DefineError> {
        let _ = tag;
        self.define(pred, key, value).map(Some)
    }

    /// Waits for the facts queued by `define_later` and returns their ids in
    /// order, or the first one that failed (nothing after it is stored).
    fn settle(&mut self) -> Result<Vec<FactId>, Deferred> {
        Ok(Vec::new())
    }

    /// The predicate of an existing fact, if the id names one.
    fn predicate_of(&mut self, id: FactId) -> Result<Option<PredId>, StoreFailure>;

    /// Records that `unit` owns `facts`.
    fn own(&mut self, unit: &str, facts: &[FactId]) -> Result<(), StoreFailure>;

    /// False when `own` records nothing: then the checker does not keep the
    /// ids of every fact of a group for it.
    fn records_ownership(&self) -> bool {
        true
    }
}

/// An in-memory fact store: what `validate` checks files against.
///
/// It keeps hashes, never texts: 12 bytes of hash of each fact's predicate
/// and key, 8 of its value, 4 for its index, and its predicate (under 60
/// bytes a fact in all, where the texts took some 300). That is enough to find
/// equal facts and to see a key come back with another value; two different
/// keys sharing 96 bits of BLAKE3 is not a case to plan for.
#[derive(Default)]
pub struct MemorySink {
    /// Facts by hash of (predicate, key): index of the fact, and hash of its value.
    /// (Arrays of `u32` rather than `u128`/`u64` keep an entry at 24 bytes.)
    facts: HashMap<[u32; 3], (u32, [u32; 2]), BuildHasherDefault<Prehashed>>,
    /// Predicate of each fact, indexed by `id - FIRST_FACT_ID`.
    preds: Vec<PredId>,
}

impl MemorySink {
    /// Number of distinct facts stored.
    pub fn len(&self) -> usize {
        self.preds.len()
    }

    /// True when no fact is stored.
    pub fn is_empty(&self) -> bool {
        self.preds.is_empty()
    }
}

/// 96 bits of BLAKE3(key), keyed by the predicate.
fn key_hash(pred: PredId, key: &str) -> [u32; 3] {
    let mut pred_key = [0u8; blake3::KEY_LEN];
    pred_key[..4].copy_from_slice(&pred.0.to_le_bytes());
    words(blake3::keyed_hash(&pred_key, key.as_bytes()).as_bytes())
}

/// 64 bits of BLAKE3(value); no value is all zeros, which no text hashes to
/// (its lowest bit is set).
fn value_hash(value: Option<&str>) -> [u32; 2] {
    let Some(value) = value else { return [0; 2] };
    let [low, high] = words(blake3::hash(value.as_bytes()).as_bytes());
    [low | 1, high]
}

/// The first `N` little-endian words of a hash.
fn words<const N: usize>(hash: &[u8; 32]) -> [u32; N] {
    std::array::from_fn(|i| u32::from_le_bytes([hash[4 * i], hash[4 * i + 1], hash[4 * i + 2], hash[4 * i + 3]]))
}

#[derive(Debug, thiserror::Error)]
#[error("more than {} facts: too many to validate in memory", u32::MAX)]
struct TooManyFacts;

impl FactSink for MemorySink {
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError> {
        let value = value_hash(value);
        let next = u32::try_from(self.preds.len()).map_err(|_| DefineError::Store(Box::new(TooManyFacts)))?;
        let (index, stored_value) = *self.facts.entry(key_hash(pred, key)).or_insert((next, value));
        let id = FIRST_FACT_ID + FactId::from(index);
        if index == next {
            self.preds.push(pred);
        } else if stored_value != value {
            return Err(DefineError::Redefinition(id));
        }
        Ok(id)
    }

    fn predicate_of(&mut self, id: FactId) -> Result<Option<PredId>, StoreFailure> {
        Ok(id.checked_sub(FIRST_FACT_ID).and_then(|i| self.preds.get(i as usize).copied()))
    }

    fn own(&mut self, _unit: &str, _facts: &[FactId]) -> Result<(), StoreFailure> {
        Ok(())
    }

    fn records_ownership(&self) -> bool {
        false
    }
}

/// A `Hasher` for keys that are already uniform hashes: it uses them as they
/// are (hashing them again would cost about as much as the lookup).
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    fn write_i64(&mut self, n: i64) {
        self.0 = n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sink_dedups_and_sees_redefinitions() {
        let mut sink = MemorySink::default();
        let (a, b) = (PredId(0), PredId(1));
        assert_eq!(sink.define(a, "k", Some("1")).ok(), Some(FIRST_FACT_ID));
        assert_eq!(sink.define(a, "k", Some("1")).ok(), Some(FIRST_FACT_ID));
        assert!(matches!(sink.define(a, "k", Some("2")), Err(DefineError::Redefinition(FIRST_FACT_ID))));
        assert!(matches!(sink.define(a, "k", None), Err(DefineError::Redefinition(FIRST_FACT_ID))));
        assert_eq!(sink.define(b, "k", None).ok(), Some(FIRST_FACT_ID + 1), "same key, other predicate");
        assert_eq!(sink.len(), 2);
        assert_eq!(sink.predicate_of(FIRST_FACT_ID + 1).ok().flatten(), Some(b));
        assert_eq!(sink.predicate_of(FIRST_FACT_ID + 2).ok().flatten(), None);
    }

    #[test]
    fn memory_sink_keeps_well_under_100_bytes_a_fact() {
        let mut sink = MemorySink::default();
        // Just past a growth of the table, where it is emptiest: the worst case.
        let n = 114_689;
        for i in 0..n {
            sink.define(PredId(0), &format!("{{\"id\":\"node-{i}\",\"label\":\"a label long enough\"}}"), None).expect("new fact");
        }
        let entry = std::mem::size_of::<([u32; 3], (u32, [u32; 2]))>();
        assert_eq!(entry, 24);
        // hashbrown fills its table to 7/8 and keeps a control byte per slot.
        let table = sink.facts.capacity() * 8 / 7 * (entry + 1);
        let bytes = table + sink.preds.capacity() * std::mem::size_of::<PredId>();
        assert!(bytes / n < 70, "{} bytes a fact", bytes / n);
    }
}
