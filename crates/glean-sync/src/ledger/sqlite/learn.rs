//! Known facts, learned in batches off the ingest's commit.
//!
//! When an export is ingested, the facts it carried become known for its
//! database, so later deltas leave them out. Inserting them into
//! `known_facts` at each ingest cost a B-tree insert per fact at a random
//! place, a dirty page each: 12.7 ms of the single writer per 16 ingested
//! 50-node exports, during which no save could commit (measured). So `finish`
//! only marks the export ingested and hands its fact set (still in
//! `export_fact_sets`) to this module, which holds it in memory
//! (`Unlearned`) until a pass, every `INTERVAL`, inserts every held fact,
//! sorted, `CHUNK` per transaction: a batch writes each page it touches once,
//! and a chunk holds the write lock for a couple of milliseconds.
//!
//! It owns the in-memory sets and the passes. Lookups ask it first and the
//! table second, in that order, because a pass commits rows before it drops
//! them from memory. It never loses a fact: a set leaves the table (and
//! memory) only after its facts are committed, and `load` takes back the sets
//! a crash left.

use super::reader::Readers;
use super::writer::{Durability, Writer};
use super::{ExportId, FactHash, LedgerError, hashes_json, ids_json, sql};
use crate::batch::sorted_unique;
use std::collections::{BTreeMap, HashMap, hash_map::Entry};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often held facts are written to `known_facts`: long enough for a batch to share pages.
const INTERVAL: Duration = Duration::from_secs(1);

/// Hashes per learning transaction: about 2 ms of the write lock here.
const CHUNK: usize = 1_000;

/// Fact sets of ingested exports not yet in `known_facts`.
#[derive(Debug, Default)]
pub(super) struct Unlearned {
    /// Per export: its database and its facts.
    sets: BTreeMap<ExportId, (String, Vec<FactHash>)>,
    /// Per database: in how many of those sets each fact is.
    held: HashMap<String, HashMap<FactHash, u32>>,
}

impl Unlearned {
    /// Holds an ingested export's facts (once, however often it is handed over).
    fn add(&mut self, id: ExportId, db: String, facts: Vec<FactHash>) {
        if self.sets.contains_key(&id) {
            return;
        }
        let held = self.held.entry(db.clone()).or_default();
        for fact in &facts {
            *held.entry(*fact).or_default() += 1;
        }
        self.sets.insert(id, (db, facts));
    }

    /// Lets go of an export's facts.
    fn remove(&mut self, id: ExportId) {
        let Some((db, facts)) = self.sets.remove(&id) else { return };
        let Some(held) = self.held.get_mut(&db) else { return };
        for fact in &facts {
            if let Entry::Occupied(mut count) = held.entry(*fact) {
                *count.get_mut() -= 1;
                if *count.get() == 0 {
                    count.remove();
                }
            }
        }
        if held.is_empty() {
            self.held.remove(&db);
        }
    }

    /// Whether `db` holds `fact` according to the sets held here.
    fn knows(&self, db: &str, fact: &FactHash) -> bool {
        self.held.get(db).is_some_and(|held| held.contains_key(fact))
    }

    /// The exports held, and their facts by database, each database's sorted and unique.
    fn batch(&self) -> (Vec<ExportId>, BTreeMap<String, Vec<FactHash>>) {
        let mut by_db: BTreeMap<String, Vec<FactHash>> = BTreeMap::new();
        for (db, facts) in self.sets.values() {
            by_db.entry(db.clone()).or_default().extend_from_slice(facts);
        }
        (self.sets.keys().copied().collect(), by_db.into_iter().map(|(db, facts)| (db, sorted_unique(facts))).collect())
    }
}

/// Holds ingested facts and writes them to `known_facts` in batches.
#[derive(Debug, Clone)]
pub(super) struct Learner {
    /// The ledger's writer; learning goes through its relaxed connection (what it writes may
    /// be lost in a power cut, the sets stay).
    writer: Arc<Writer>,
    unlearned: Arc<Mutex<Unlearned>>,
    /// Held by a pass, and by `forget`, so that a pass never writes facts of a forgotten database.
    passes: Arc<tokio::sync::Mutex<()>>,
}

impl Learner {
    /// A learner writing through `writer`; nothing held yet.
    pub(super) fn new(writer: Arc<Writer>) -> Learner {
        Learner { writer, unlearned: Arc::default(), passes: Arc::default() }
    }

    fn unlearned(&self) -> MutexGuard<'_, Unlearned> {
        self.unlearned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes back the fact sets of ingested exports that no pass has written yet (after a crash).
    pub(super) async fn load(&self, readers: &Arc<Readers>) -> Result<(), LedgerError> {
        let sets = readers.run(|c| fact_sets(c, sql::UNLEARNED_FACT_SETS, [])).await?;
        self.hold(sets);
        Ok(())
    }

    /// Holds the fact sets (export id, database, blob) of exports just ingested.
    pub(super) fn hold(&self, sets: Vec<(ExportId, String, Vec<u8>)>) {
        let mut unlearned = self.unlearned();
        for (id, db, blob) in sets {
            unlearned.add(id, db, blob.chunks_exact(16).filter_map(|h| FactHash::try_from(h).ok()).collect());
        }
    }

    /// Stops holding these exports' sets: their rows in `export_fact_sets` are gone.
    fn let_go(&self, ids: &[ExportId]) {
        let mut unlearned = self.unlearned();
        for id in ids {
            unlearned.remove(*id);
        }
    }

    /// Per hash: whether the sets held here say `db` holds it. Ask this before the table.
    pub(super) fn knows(&self, db: &str, hashes: &[FactHash]) -> Vec<bool> {
        let unlearned = self.unlearned();
        hashes.iter().map(|h| unlearned.knows(db, h)).collect()
    }

    /// Writes every held fact to `known_facts`, then lets go of the sets; returns how many exports.
    pub(super) async fn pass(&self) -> Result<usize, LedgerError> {
        let _pass = self.passes.lock().await;
        let (ids, by_db) = self.unlearned().batch();
        if ids.is_empty() {
            return Ok(0);
        }
        for (db, facts) in by_db {
            for chunk in facts.chunks(CHUNK) {
                let (db, hashes) = (db.clone(), hashes_json(chunk));
                self.writer.run(Durability::Relaxed, move |tx| Ok(tx.prepare_cached(sql::LEARN_HASHES)?.execute((db, hashes))?)).await?;
            }
        }
        let sets = ids_json(&ids);
        self.writer.run(Durability::Relaxed, move |tx| Ok(tx.prepare_cached(sql::FORGET_FACT_SETS)?.execute([sets])?)).await?;
        self.let_go(&ids);
        Ok(ids.len())
    }

    /// `db` was created anew: drops its known facts, held and written. Returns whether any were.
    pub(super) async fn forget(&self, db: &str) -> Result<bool, LedgerError> {
        let _pass = self.passes.lock().await;
        let held: Vec<ExportId> = self.unlearned().sets.iter().filter(|(_, (d, _))| d == db).map(|(id, _)| *id).collect();
        let (db, sets) = (db.to_owned(), (!held.is_empty()).then(|| ids_json(&held)));
        let forgotten = self
            .writer
            .run(Durability::Relaxed, move |tx| {
                let written = tx.prepare_cached(sql::FORGET_KNOWN_FACTS)?.execute([&db])?;
                if let Some(sets) = &sets {
                    tx.prepare_cached(sql::FORGET_FACT_SETS)?.execute([sets])?;
                }
                let forgotten = written > 0 || sets.is_some();
                if forgotten {
                    tx.prepare_cached(sql::FORGET_CONTENT)?.execute([&db])?;
                }
                Ok(forgotten)
            })
            .await?;
        self.let_go(&held);
        Ok(forgotten)
    }

    /// Runs a pass every `INTERVAL` until `closing` is cancelled or the returned guard is dropped.
    pub(super) fn start(&self, closing: &CancellationToken) -> DropGuard {
        let learner = self.clone();
        super::every(INTERVAL, closing, move || {
            let learner = learner.clone();
            async move {
                if let Err(e) = learner.pass().await {
                    tracing::warn!(error = %e, "ledger could not record known facts; they stay held and are tried again");
                }
            }
        })
    }
}

/// Fact sets (export id, database, blob) as `statement` selects them.
pub(super) fn fact_sets(
    connection: &rusqlite::Connection,
    statement: &str,
    binds: impl rusqlite::Params,
) -> Result<Vec<(ExportId, String, Vec<u8>)>, LedgerError> {
    let mut statement = connection.prepare_cached(statement)?;
    let sets = statement.query_map(binds, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(sets.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::Unlearned;

    #[test]
    fn a_fact_stays_known_while_any_set_holding_it_is_held() {
        let mut u = Unlearned::default();
        u.add(1, "db".into(), vec![[1; 16], [2; 16]]);
        u.add(2, "db".into(), vec![[2; 16]]);
        u.add(2, "db".into(), vec![[2; 16]]);
        u.remove(1);
        assert!(!u.knows("db", &[1; 16]));
        assert!(u.knows("db", &[2; 16]), "export 2 still holds it (added once, however often handed over)");
        assert!(!u.knows("other", &[2; 16]), "per database");
        u.remove(2);
        assert!(!u.knows("db", &[2; 16]));
        assert!(u.held.is_empty() && u.sets.is_empty());
    }

    #[test]
    fn a_batch_is_sorted_and_unique_per_database() {
        let mut u = Unlearned::default();
        u.add(7, "b".into(), vec![[3; 16], [1; 16]]);
        u.add(5, "b".into(), vec![[1; 16]]);
        u.add(6, "a".into(), vec![[9; 16]]);
        let (ids, by_db) = u.batch();
        assert_eq!(ids, [5, 6, 7]);
        assert_eq!(by_db["b"], [[1; 16], [3; 16]]);
        assert_eq!(by_db["a"], [[9; 16]]);
    }
}
