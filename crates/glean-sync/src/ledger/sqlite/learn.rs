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
//! It owns the in-memory sets, the passes, and a Bloom filter per database
//! over the facts in `known_facts` (`Written`). Lookups ask it first and the
//! table second, in that order, because a pass commits rows before it drops
//! them from memory; the table is asked only about facts the filter may
//! hold, so the new facts of a save (all of a graph's first) cost no probe:
//! they were 15% of the server's CPU under HTTP load, each probe a seek at a
//! random place in a large index (measured). It never loses a fact: a set
//! leaves the table (and memory) only after its facts are committed, `load`
//! takes back the sets a crash left, and a fact enters its filter before its
//! commit, so the filter never lacks a fact the table has. The filters are
//! read from the table in the background at open (0.7 s for 2 million facts
//! here, which `status` should not wait for); until then lookups ask the
//! table about every fact, as without them.

use super::reader::Readers;
use super::writer::{Durability, Writer};
use super::{ExportId, FactHash, LedgerError, hashes_json, ids_json, sql};
use crate::batch::sorted_unique;
use growable_bloom_filter::GrowableBloom;
use std::collections::{BTreeMap, HashMap, hash_map::Entry};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often held facts are written to `known_facts`: long enough for a batch to share pages.
const INTERVAL: Duration = Duration::from_secs(1);

/// Hashes per learning transaction: about 2 ms of the write lock here.
const CHUNK: usize = 1_000;

/// A filter's false-positive rate: a needless probe per thousand new facts (at one per
/// hundred, the probes of a 50-node graph's false positives were still 1.6% of the server's
/// CPU under HTTP load; this costs 1.8 bytes per fact instead of 1.2).
const FILTER_ERROR: f64 = 0.001;

/// Facts a database's filter is first sized for (about 180 KiB); it grows past them.
const FILTER_FACTS: usize = 100_000;

/// Rows read from `known_facts` per turn of the filters' lock while they are filled.
pub(super) const FILL_ROWS: usize = 8_192;

/// Per database, a Bloom filter over the facts in `known_facts`: a fact it lacks is not
/// there, once the table has been read into them (`filled`). Stale entries (a database
/// forgotten meanwhile) only cost a probe.
#[derive(Debug, Default)]
struct Written {
    filters: HashMap<String, GrowableBloom>,
    /// The table has been read in: until then every fact may be there.
    filled: bool,
}

impl Written {
    fn add<'a>(&mut self, db: &str, facts: impl IntoIterator<Item = &'a FactHash>) {
        let filter = match self.filters.get_mut(db) {
            Some(filter) => filter,
            None => self.filters.entry(db.to_owned()).or_insert_with(|| GrowableBloom::new(FILTER_ERROR, FILTER_FACTS)),
        };
        for fact in facts {
            filter.insert(fact);
        }
    }

    /// Whether `known_facts` may hold `fact` for `db`.
    fn may_hold(&self, db: &str, fact: &FactHash) -> bool {
        !self.filled || self.filters.get(db).is_some_and(|filter| filter.contains(fact))
    }
}

/// What a lookup learns here: which facts are known, and which only the table can tell.
pub(super) struct Sifted {
    /// Per hash asked: known from the sets held here.
    pub(super) known: Vec<bool>,
    /// The others the table may hold, sorted and unique (as `known_facts` lookups take them).
    pub(super) ask_table: Vec<FactHash>,
}

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
    /// Filters of what `known_facts` holds; a fact enters before its commit.
    written: Arc<Mutex<Written>>,
    /// Held by a pass, and by `forget`, so that a pass never writes facts of a forgotten database.
    passes: Arc<tokio::sync::Mutex<()>>,
}

impl Learner {
    /// A learner writing through `writer`; nothing held yet.
    pub(super) fn new(writer: Arc<Writer>) -> Learner {
        Learner { writer, unlearned: Arc::default(), written: Arc::default(), passes: Arc::default() }
    }

    fn unlearned(&self) -> MutexGuard<'_, Unlearned> {
        self.unlearned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn written(&self) -> MutexGuard<'_, Written> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes back the fact sets of ingested exports that no pass has written yet (after a crash).
    pub(super) async fn load(&self, readers: &Arc<Readers>) -> Result<(), LedgerError> {
        let sets = readers.run(|c| fact_sets(c, sql::UNLEARNED_FACT_SETS, [])).await?;
        self.hold(sets);
        Ok(())
    }

    /// Reads `known_facts` into the filters in the background: about 0.4 s per million facts,
    /// which no command should wait for at open. Facts committed meanwhile enter through
    /// `writing` as always; lookups ask the table about every fact until it is done.
    /// `closing` cancelled stops it between turns, leaving the filters unfilled.
    fn fill(&self, readers: &Arc<Readers>, closing: &CancellationToken) {
        let (learner, readers, closing) = (self.clone(), readers.clone(), closing.clone());
        tokio::spawn(async move {
            let (scan, started) = (learner.clone(), std::time::Instant::now());
            let read = readers
                .run(move |c| {
                    let mut statement = c.prepare(sql::ALL_KNOWN_FACTS)?;
                    scan.writing_rows(statement.query([])?, Some(&closing))
                })
                .await;
            match read {
                Ok(false) => {}
                Ok(true) => {
                    learner.written().filled = true;
                    tracing::debug!(took = ?started.elapsed(), "known-fact filters filled");
                }
                Err(e) => tracing::warn!(error = %e, "ledger could not read its known facts; every lookup asks the table"),
            }
        });
    }

    /// Whether the filters have been filled (see `fill`).
    #[cfg(test)]
    pub(super) fn filled(&self) -> bool {
        self.written().filled
    }

    /// Facts about to be committed to `known_facts` (called before their commit).
    fn writing(&self, db: &str, facts: &[FactHash]) {
        if !facts.is_empty() {
            self.written().add(db, facts);
        }
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

    /// `writing` for rows of (database, hash), as `known_facts` keeps them; lookups go on
    /// between turns of `FILL_ROWS`. Returns whether every row was read: `until` cancelled
    /// stops it between turns.
    pub(super) fn writing_rows(&self, mut rows: rusqlite::Rows<'_>, until: Option<&CancellationToken>) -> Result<bool, LedgerError> {
        let (mut db, mut turn) = (String::new(), Vec::with_capacity(FILL_ROWS));
        while let Some(row) = rows.next()? {
            let (name, hash) = (row.get_ref(0)?, row.get_ref(1)?);
            let (Ok(name), Ok(Ok(fact))) = (name.as_str(), hash.as_blob().map(FactHash::try_from)) else { continue };
            if name != db || turn.len() == FILL_ROWS {
                self.writing(&db, &turn);
                turn.clear();
                if until.is_some_and(CancellationToken::is_cancelled) {
                    return Ok(false);
                }
                if name != db {
                    name.clone_into(&mut db);
                }
            }
            turn.push(fact);
        }
        self.writing(&db, &turn);
        Ok(true)
    }

    /// Which of `hashes` the sets held here say `db` holds, and which to ask the table about.
    pub(super) fn sift(&self, db: &str, hashes: &[FactHash]) -> Sifted {
        // Held sets before filters: a pass adds to a filter before it lets go of a set.
        let known: Vec<bool> = {
            let unlearned = self.unlearned();
            hashes.iter().map(|h| unlearned.knows(db, h)).collect()
        };
        let written = self.written();
        let ask = hashes.iter().zip(&known).filter(|(h, k)| !**k && written.may_hold(db, h)).map(|(h, _)| *h).collect();
        Sifted { known, ask_table: sorted_unique(ask) }
    }

    /// Writes every held fact to `known_facts`, then lets go of the sets; returns how many exports.
    pub(super) async fn pass(&self) -> Result<usize, LedgerError> {
        let _pass = self.passes.lock().await;
        let (ids, by_db) = self.unlearned().batch();
        if ids.is_empty() {
            return Ok(0);
        }
        for (db, facts) in by_db {
            self.writing(&db, &facts);
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
        let (name, sets) = (db.to_owned(), (!held.is_empty()).then(|| ids_json(&held)));
        let forgotten = self
            .writer
            .run(Durability::Relaxed, move |tx| {
                let written = tx.prepare_cached(sql::FORGET_KNOWN_FACTS)?.execute([&name])?;
                if let Some(sets) = &sets {
                    tx.prepare_cached(sql::FORGET_FACT_SETS)?.execute([sets])?;
                }
                let forgotten = written > 0 || sets.is_some();
                if forgotten {
                    tx.prepare_cached(sql::FORGET_CONTENT)?.execute([&name])?;
                }
                Ok(forgotten)
            })
            .await?;
        // The table holds none of its facts now (no pass runs meanwhile: `passes` is held).
        self.written().filters.remove(db);
        self.let_go(&held);
        Ok(forgotten)
    }

    /// Fills the filters (`fill`) and runs a pass every `INTERVAL`, until `closing` is
    /// cancelled or the returned guard is dropped.
    pub(super) fn start(&self, readers: &Arc<Readers>, closing: &CancellationToken) -> DropGuard {
        let stop = closing.child_token();
        self.fill(readers, &stop);
        let learner = self.clone();
        let passes = super::every(INTERVAL, &stop, move || {
            let learner = learner.clone();
            async move {
                if let Err(e) = learner.pass().await {
                    tracing::warn!(error = %e, "ledger could not record known facts; they stay held and are tried again");
                }
            }
        });
        // The passes stop with `stop`; dropping their own guard must not stop them.
        passes.disarm();
        stop.drop_guard()
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
    use super::{Unlearned, Written};

    #[test]
    fn until_the_filters_are_filled_every_fact_may_be_known() {
        let mut w = Written::default();
        w.add("db", &[[1; 16]]);
        assert!(w.may_hold("db", &[2; 16]) && w.may_hold("other", &[2; 16]));
        w.filled = true;
        assert!(w.may_hold("db", &[1; 16]));
        assert!(!w.may_hold("db", &[2; 16]) && !w.may_hold("other", &[1; 16]));
    }

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
