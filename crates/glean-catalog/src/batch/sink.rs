//! Where checked facts go: the interface between checking and storage.
//!
//! The checker hands each fact's canonical key and value to a `FactSink`,
//! which gives it an id (de-duplicating equal facts and refusing a different
//! value for an existing key) and answers which predicate a fact id belongs to.
//! The database implements it on SQLite; `MemorySink` implements it in memory
//! for `validate`, which checks files against a schema without a database.

use crate::schema::PredId;
use std::collections::HashMap;

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

/// Storage for checked facts.
pub trait FactSink {
    /// Stores a fact (or finds the equal one) and returns its id. `value` is
    /// `None` for key-only predicates.
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError>;

    /// The predicate of an existing fact, if the id names one.
    fn predicate_of(&mut self, id: FactId) -> Result<Option<PredId>, StoreFailure>;

    /// Records that `unit` owns `facts`.
    fn own(&mut self, unit: &str, facts: &[FactId]) -> Result<(), StoreFailure>;
}

/// An in-memory fact store: what `validate` checks files against.
#[derive(Default)]
pub struct MemorySink {
    /// Facts by (predicate, key): id and value.
    facts: HashMap<(PredId, blake3::Hash), (FactId, Option<blake3::Hash>)>,
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

impl FactSink for MemorySink {
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError> {
        let value_hash = value.map(|v| blake3::hash(v.as_bytes()));
        let next = FIRST_FACT_ID + self.preds.len() as FactId;
        let (id, existing_value) = *self.facts.entry((pred, blake3::hash(key.as_bytes()))).or_insert((next, value_hash));
        if id == next {
            self.preds.push(pred);
        } else if existing_value != value_hash {
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
}
