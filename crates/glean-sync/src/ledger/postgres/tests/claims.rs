//! Several nodes claiming from one PostgreSQL ledger, each on its own
//! connections: they never share a row, keep every graph's order whatever
//! order saves commit in, and exactly one of them takes over a dead node's
//! lease. Nodes here are `PgLedger` handles with pools of their own.

use super::{LEASE, PgBackend, keyless, versioned};
use crate::ledger::postgres::{PgLedger, save};
use crate::ledger::{ExportId, ExportState, Ledger, NewExport, Outcome};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the claimers saw, checked as they go.
#[derive(Default)]
struct Watch {
    /// Graph -> the version some node holds in flight.
    in_flight: HashMap<String, i64>,
    /// Graph -> its last ingested version.
    ingested: HashMap<String, i64>,
    /// Rows held in flight.
    held: HashSet<ExportId>,
    /// Every claim.
    claims: usize,
}

/// A small deterministic generator: each node varies its outcomes and pauses.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// One node: claims, holds for a moment, ends each row with a random outcome, until nothing is left.
async fn run_node(node: usize, ledger: PgLedger, watch: Arc<Mutex<Watch>>) {
    let owner = format!("node-{node}");
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ (node as u64 + 1));
    loop {
        let claimed = ledger.claim(&[], 8, &owner, LEASE).await.expect("claim");
        if claimed.is_empty() {
            let c = ledger.counts().await.expect("counts");
            if c.pending + c.in_flight + c.failed == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        check_claim(&watch, &claimed);
        tokio::time::sleep(Duration::from_millis(dice.roll(3))).await;
        for export in claimed {
            let outcome = match dice.roll(10) {
                0 => Outcome::Retry { error: "busy".into(), retry_at: chrono::Utc::now() - chrono::Duration::seconds(1) },
                1 => Outcome::Postponed { error: "down".into() },
                2 => Outcome::Released,
                _ => Outcome::Ingested,
            };
            // The watch forgets the hold before the ledger does: a claim it then sees is real.
            release(&watch, &export, outcome == Outcome::Ingested);
            ledger.finish(&[export.id], &owner, &outcome).await.expect("finish");
        }
    }
}

/// A claim never takes a held row, a second version of a graph in flight, or a version out of order.
fn check_claim(watch: &Mutex<Watch>, claimed: &[crate::ledger::Export]) {
    let mut w = watch.lock().expect("watch");
    for e in claimed {
        assert!(w.held.insert(e.id), "row {} claimed while another node holds it", e.id);
        let (key, version) = (e.graph_key.clone().expect("keyed"), e.graph_version.expect("versioned"));
        assert_eq!(w.in_flight.insert(key.clone(), version), None, "{key} v{version} claimed while another version is in flight");
        let last = w.ingested.get(&key).copied().unwrap_or(0);
        assert_eq!(version, last + 1, "{key}: v{version} claimed after v{last} was ingested");
        w.claims += 1;
    }
}

fn release(watch: &Mutex<Watch>, export: &crate::ledger::Export, ingested: bool) {
    let mut w = watch.lock().expect("watch");
    let key = export.graph_key.clone().expect("keyed");
    w.held.remove(&export.id);
    w.in_flight.remove(&key);
    if ingested {
        w.ingested.insert(key, export.graph_version.expect("versioned"));
    }
}

/// 50 graphs x 5 versions, four nodes on their own connections claiming at once with
/// retries, postponements and releases mixed in: no row is shared, no graph has two
/// versions in flight, every version goes in order, and everything is ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_claiming_at_once_keep_every_graphs_order() {
    let Some(backend) = PgBackend::from_env() else { return };
    let rows: Vec<NewExport> = (1..=5).flat_map(|v| (0..50).map(move |g| versioned(&format!("g{g}"), v))).collect();
    let first = backend.connect().await;
    let inserted = first.insert_many(rows.clone()).await.expect("insert_many");
    let watch = Arc::new(Mutex::new(Watch::default()));
    let mut nodes = tokio::task::JoinSet::new();
    for node in 0..4 {
        let ledger = backend.connect().await;
        nodes.spawn(run_node(node, ledger, watch.clone()));
    }
    let all = async {
        while let Some(done) = nodes.join_next().await {
            done.expect("a node failed");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all).await.expect("the nodes finish within two minutes");

    {
        let w = watch.lock().expect("watch");
        assert!(w.claims >= rows.len(), "{} claims for {} rows", w.claims, rows.len());
        assert!(w.ingested.len() == 50 && w.ingested.values().all(|&v| v == 5), "every graph reached v5");
    }
    let counts = first.counts().await.expect("counts");
    assert_eq!((counts.ingested, counts.pending + counts.in_flight + counts.failed + counts.dead), (250, 0));
    for id in inserted {
        assert_eq!(first.get(id).await.expect("get").map(|e| e.state), Some(ExportState::Ingested));
    }
}

/// Per graph: the highest id claimed so far and the id held in flight, checked as claims come.
#[derive(Default)]
struct IdOrder {
    highest: HashMap<String, ExportId>,
    in_flight: HashMap<String, ExportId>,
}

/// Saves of the same graphs from four nodes race with three claiming nodes: whatever
/// order the saves commit in, each graph's exports are claimed in id order, one at a time.
/// The rows carry facts but no snapshot, as a watched file's do. (The window this guards,
/// between a save drawing its id and committing, is too short to hit reliably here:
/// `a_save_in_progress_holds_back_later_saves_of_its_graph` holds it open.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saves_racing_claims_keep_each_graphs_id_order() {
    let Some(backend) = PgBackend::from_env() else { return };
    let saving = Arc::new(std::sync::atomic::AtomicUsize::new(4));
    let order = Arc::new(Mutex::new(IdOrder::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for node in 0..4i64 {
        let (ledger, saving) = (backend.connect().await, saving.clone());
        tasks.spawn(async move {
            for n in 0..60 {
                let facts = vec![[node as u8, n as u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]];
                let new = NewExport { facts, ..versioned(&format!("g{}", n % 10), node * 100 + n) };
                ledger.insert(new).await.expect("insert");
            }
            saving.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    for node in 0..3 {
        let (ledger, saving, order) = (backend.connect().await, saving.clone(), order.clone());
        tasks.spawn(async move {
            let owner = format!("claimer-{node}");
            loop {
                let claimed = ledger.claim(&[], 4, &owner, LEASE).await.expect("claim");
                if claimed.is_empty() {
                    let c = ledger.counts().await.expect("counts");
                    if saving.load(std::sync::atomic::Ordering::SeqCst) == 0 && c.pending + c.in_flight + c.failed == 0 {
                        return;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for e in &claimed {
                    let key = e.graph_key.clone().expect("keyed");
                    let mut o = order.lock().expect("order");
                    assert_eq!(o.in_flight.insert(key.clone(), e.id), None, "{key}: row {} went in flight beside another", e.id);
                    let highest = o.highest.entry(key.clone()).or_default();
                    assert!(e.id > *highest, "{key}: row {} claimed after row {}", e.id, highest);
                    *highest = e.id;
                }
                for e in claimed {
                    order.lock().expect("order").in_flight.remove(e.graph_key.as_deref().expect("keyed"));
                    ledger.finish(&[e.id], &owner, &Outcome::Ingested).await.expect("finish");
                }
            }
        });
    }
    let all = async {
        while let Some(done) = tasks.join_next().await {
            done.expect("a node failed");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all).await.expect("done within two minutes");
    let counts = backend.connect().await.counts().await.expect("counts");
    assert_eq!((counts.ingested, counts.pending + counts.in_flight + counts.failed), (240, 0));
}

/// A save of v1 on one node has drawn its id but not committed when another node saves
/// v2: v2's save waits for v1's, so no claimer can ever see v2 without v1 and send both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_save_in_progress_holds_back_later_saves_of_its_graph() {
    let Some(backend) = PgBackend::from_env() else { return };
    let (slow, fast, claimer) = (backend.connect().await, backend.connect().await, backend.connect().await);
    let mut open = slow.pool.begin().await.expect("begin");
    let v1 = save::record(&mut open, &slow.schema, &[versioned("g", 1)], &[None]).await.expect("record v1")[0];

    let saving_v2 = tokio::spawn(async move { fast.insert(versioned("g", 2)).await.expect("insert v2") });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!saving_v2.is_finished(), "v2's save waits for v1's");
    assert!(claimer.claim(&[], 10, "c", LEASE).await.expect("claim").is_empty(), "nothing of g is visible yet");

    open.commit().await.expect("commit v1");
    let v2 = saving_v2.await.expect("save task");
    assert!(v2 > v1);
    let first = claimer.claim(&[], 10, "c", LEASE).await.expect("claim");
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), vec![v1], "v1 alone");
    claimer.finish(&[v1], "c", &Outcome::Ingested).await.expect("finish");
    let second = claimer.claim(&[], 10, "c", LEASE).await.expect("claim");
    assert_eq!(second.iter().map(|e| e.id).collect::<Vec<_>>(), vec![v2], "then v2");
}

/// A node dies holding v1 of a graph: nothing moves while its lease lives, then exactly
/// one of three racing nodes takes v1 over (not v2), and the dead node's late `finish`
/// changes nothing. The lease is made to lapse by moving `lease_until` into the past, so
/// the test never depends on how long connecting takes (the conformance suite checks a
/// lease lapsing in real time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_nodes_lease_is_taken_over_by_one_node() {
    let Some(backend) = PgBackend::from_env() else { return };
    let dying = backend.connect().await;
    let others = [backend.connect().await, backend.connect().await, backend.connect().await];
    let ids = dying.insert_many(vec![versioned("g", 1), versioned("g", 2), keyless(1)]).await.expect("insert");
    let held = dying.claim(&[], 10, "dying", LEASE).await.expect("claim");
    assert_eq!(held.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[0], ids[2]]);
    dying.close().await;

    assert!(others[0].claim(&[], 10, "early", LEASE).await.expect("claim").is_empty(), "live lease, v2 waits");
    let mut raw = backend.raw().await;
    sqlx::query("UPDATE exports SET lease_until = now() - interval '1 second' WHERE owner = 'dying'")
        .execute(&mut raw)
        .await
        .expect("let the lease lapse");
    let race = |i: usize| {
        let node = &others[i];
        async move { (format!("node-{i}"), node.claim(&[], 10, &format!("node-{i}"), LEASE).await.expect("claim")) }
    };
    let (r0, r1, r2) = tokio::join!(race(0), race(1), race(2));
    let results = [r0, r1, r2];
    let mut taken: Vec<(String, ExportId, i64)> =
        results.into_iter().flat_map(|(owner, got)| got.into_iter().map(move |e| (owner.clone(), e.id, e.attempts))).collect();
    taken.sort_by_key(|t| t.1);
    assert_eq!(taken.iter().map(|t| t.1).collect::<Vec<_>>(), vec![ids[0], ids[2]], "each taken once, v2 still waits");
    assert!(taken.iter().all(|t| t.2 == 2), "the lost attempt counts");

    let (winner, v1) = (taken[0].0.clone(), taken[0].1);
    let revived = backend.connect().await;
    revived.finish(&[v1], "dying", &Outcome::Ingested).await.expect("finish");
    assert_eq!(revived.get(v1).await.expect("get").map(|e| e.state), Some(ExportState::InFlight), "not the dead node's any more");
    others[0].finish(&[v1], &winner, &Outcome::Ingested).await.expect("finish");
    let next = others[1].claim(&[], 10, "node-1", LEASE).await.expect("claim");
    assert_eq!(next.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[1]], "v2 once v1 is ingested");
}
