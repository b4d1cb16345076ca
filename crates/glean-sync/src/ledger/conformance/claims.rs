//! Conformance of `claim` and `ready`: which rows are ready, in what order,
//! per-graph ordering, leases, and claimers racing each other.

use super::{Backend, LEASE, claim_all, ids, insert_keyless, keyless, now_ms, row, state, versioned};
use crate::ledger::{ExportId, ExportState, NewExport, Outcome};
use chrono::Duration as TimeDelta;
use std::collections::HashSet;
use std::time::Duration;

/// Oldest first, never more than `limit`, and claimed rows are in flight with the attempt counted.
pub(crate) async fn claim_takes_oldest_first_up_to_limit(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let all = insert_keyless(&*ledger, 5).await;
    assert_eq!(ledger.ready(3).await.expect("ready"), all[..3]);
    assert!(ledger.claim(&[], 0, "w", LEASE).await.expect("claim nothing").is_empty());

    let first = ledger.claim(&[], 2, "w", LEASE).await.expect("claim");
    assert_eq!(ids(&first), all[..2]);
    for export in &first {
        assert_eq!((export.state, export.attempts), (ExportState::InFlight, 1));
        assert_eq!(export, &row(&*ledger, export.id).await, "claim returns the row as stored");
    }
    assert_eq!(ledger.ready(10).await.expect("ready"), all[2..]);
    assert_eq!(claim_all(&*ledger, "w").await, all[2..]);
    assert!(claim_all(&*ledger, "w").await.is_empty());
    assert!(ledger.ready(10).await.expect("ready").is_empty());
}

/// With candidates, only ready rows among them are claimed, oldest first.
pub(crate) async fn claim_only_among_candidates(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let all = insert_keyless(&*ledger, 5).await;
    let unknown = all[4] + 1000;
    let got = ledger.claim(&[all[3], all[1], unknown], 10, "w", LEASE).await.expect("claim");
    assert_eq!(ids(&got), vec![all[1], all[3]]);
    // Already in flight: not ready, even when named.
    let again = ledger.claim(&[all[1], all[4], all[2]], 1, "w", LEASE).await.expect("claim");
    assert_eq!(ids(&again), vec![all[2]]);
    assert_eq!(state(&*ledger, all[0]).await, ExportState::Pending);
}

/// Claimers on two handles, racing, never get the same row and together get every row.
pub(crate) async fn concurrent_claimers_never_share_a_row(backend: &dyn Backend) {
    let handles = [backend.open().await, backend.open().await];
    let batch: Vec<NewExport> = (0..120).map(keyless).collect();
    let inserted = handles[0].insert_many(batch.clone()).await.expect("insert_many");
    let rounds = batch.len();

    let mut claimers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let ledger = handles[worker % 2].clone();
        claimers.spawn(async move {
            let owner = format!("worker-{worker}");
            let mut mine = Vec::new();
            // Bounded, so a ledger that hands out rows forever fails instead of hanging.
            for _ in 0..rounds {
                let got = ledger.claim(&[], 3, &owner, LEASE).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(ids(&got));
            }
            panic!("{owner} never ran out of rows to claim");
        });
    }
    let mut seen = HashSet::new();
    while let Some(claimed) = claimers.join_next().await {
        for id in claimed.expect("claimer finished") {
            assert!(seen.insert(id), "row {id} was claimed twice");
        }
    }
    assert_eq!(seen, inserted.into_iter().collect::<HashSet<_>>());
}

/// A graph's next version waits while an earlier one is pending, in flight or failed.
pub(crate) async fn graph_versions_are_claimed_in_order(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let v1 = ledger.insert(versioned("g", 1)).await.expect("insert");
    let v2 = ledger.insert(versioned("g", 2)).await.expect("insert");
    assert_eq!(ledger.ready(10).await.expect("ready"), vec![v1], "v2 waits behind pending v1");
    assert!(ledger.claim(&[v2], 10, "w", LEASE).await.expect("claim").is_empty());

    assert_eq!(claim_all(&*ledger, "w").await, vec![v1]);
    assert!(claim_all(&*ledger, "w").await.is_empty(), "v2 waits behind v1 in flight");

    let later = now_ms() + TimeDelta::hours(1);
    ledger.finish(&[v1], "w", &Outcome::Retry { error: "down".into(), retry_at: later }).await.expect("finish");
    assert!(claim_all(&*ledger, "w").await.is_empty(), "v2 waits behind failed v1");
    assert!(ledger.ready(10).await.expect("ready").is_empty());

    ledger.replay(&crate::ledger::Selection { id: Some(v1), ..Default::default() }).await.expect("replay");
    assert_eq!(claim_all(&*ledger, "w").await, vec![v1]);
    ledger.finish(&[v1], "w", &Outcome::Ingested).await.expect("finish");
    assert_eq!(claim_all(&*ledger, "w").await, vec![v2], "v2 goes once v1 is ingested");
}

/// A dead export no longer holds back the versions after it.
pub(crate) async fn dead_export_unblocks_its_graph(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let v1 = ledger.insert(versioned("g", 1)).await.expect("insert");
    let v2 = ledger.insert(versioned("g", 2)).await.expect("insert");
    assert_eq!(claim_all(&*ledger, "w").await, vec![v1]);
    ledger.finish(&[v1], "w", &Outcome::Dead { error: "rejected".into() }).await.expect("finish");
    assert_eq!(ledger.ready(10).await.expect("ready"), vec![v2]);
    assert_eq!(claim_all(&*ledger, "w").await, vec![v2]);
}

/// One export per graph in a claim; exports without a graph key order against nothing.
pub(crate) async fn one_export_per_graph_and_keyless_rows_are_independent(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let a1 = ledger.insert(versioned("a", 1)).await.expect("insert");
    let free1 = ledger.insert(keyless(1)).await.expect("insert");
    let a2 = ledger.insert(versioned("a", 2)).await.expect("insert");
    let b1 = ledger.insert(versioned("b", 1)).await.expect("insert");
    let free2 = ledger.insert(keyless(2)).await.expect("insert");
    assert_eq!(claim_all(&*ledger, "w").await, vec![a1, free1, b1, free2]);
    ledger.finish(&[a1], "w", &Outcome::Ingested).await.expect("finish");
    assert_eq!(claim_all(&*ledger, "w").await, vec![a2]);
}

/// A failed row is ready only once its `next_attempt_at` has passed.
pub(crate) async fn failed_rows_wait_for_next_attempt(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let [later, due]: [ExportId; 2] = insert_keyless(&*ledger, 2).await.try_into().expect("two ids");
    assert_eq!(claim_all(&*ledger, "w").await, vec![later, due]);
    let retry = |minutes| Outcome::Retry { error: "busy".into(), retry_at: now_ms() + TimeDelta::minutes(minutes) };
    ledger.finish(&[later], "w", &retry(60)).await.expect("finish");
    ledger.finish(&[due], "w", &retry(-1)).await.expect("finish");

    assert_eq!(ledger.ready(10).await.expect("ready"), vec![due]);
    let got = ledger.claim(&[], 10, "w", LEASE).await.expect("claim");
    assert_eq!(ids(&got), vec![due]);
    assert_eq!(got[0].attempts, 2);
    assert_eq!(state(&*ledger, later).await, ExportState::Failed);
}

/// An in-flight row whose lease lapsed can be claimed by another owner; the first loses its hold.
pub(crate) async fn expired_lease_lets_another_owner_claim(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let [short, long]: [ExportId; 2] = insert_keyless(&*ledger, 2).await.try_into().expect("two ids");
    let lapsing = ledger.claim(&[short], 1, "a", Duration::from_millis(1)).await.expect("claim");
    assert_eq!(ids(&lapsing), vec![short]);
    assert_eq!(ids(&ledger.claim(&[long], 1, "a", LEASE).await.expect("claim")), vec![long]);
    tokio::time::sleep(Duration::from_millis(20)).await;

    assert_eq!(ledger.ready(10).await.expect("ready"), vec![short], "a live lease is not ready");
    let taken = ledger.claim(&[], 10, "b", LEASE).await.expect("claim");
    assert_eq!(ids(&taken), vec![short]);
    assert_eq!(taken[0].attempts, 2);

    ledger.finish(&[short], "a", &Outcome::Ingested).await.expect("finish");
    assert_eq!(state(&*ledger, short).await, ExportState::InFlight, "a no longer holds it");
    ledger.finish(&[short], "b", &Outcome::Ingested).await.expect("finish");
    assert_eq!(state(&*ledger, short).await, ExportState::Ingested);
}

/// A renewed hold outlives its first lease; renewing rows one does not hold changes nothing.
pub(crate) async fn renew_keeps_a_hold_past_its_first_lease(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let [kept, lapsed]: [ExportId; 2] = insert_keyless(&*ledger, 2).await.try_into().expect("two ids");
    let short = Duration::from_millis(300);
    assert_eq!(ids(&ledger.claim(&[], 10, "a", short).await.expect("claim")), vec![kept, lapsed]);
    ledger.renew(&[kept], "a", LEASE).await.expect("renew");
    ledger.renew(&[lapsed], "b", LEASE).await.expect("renewing another owner's row is a no-op");
    tokio::time::sleep(short + Duration::from_millis(50)).await;

    assert_eq!(ledger.ready(10).await.expect("ready"), vec![lapsed], "only the row not renewed by its owner lapsed");
    assert_eq!(ids(&ledger.claim(&[], 10, "b", LEASE).await.expect("claim")), vec![lapsed]);
    ledger.finish(&[kept], "a", &Outcome::Ingested).await.expect("finish");
    assert_eq!(state(&*ledger, kept).await, ExportState::Ingested, "a still held it");
}

/// Ten thousand rows, most already delivered, some graphs long: claims still work through them.
pub(crate) async fn large_ledger_still_claims(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let rows: Vec<NewExport> = (0..10_000).map(|i| if i % 2 == 0 { versioned(&format!("g{}", i % 50), i) } else { keyless(i) }).collect();
    let inserted = ledger.insert_many(rows.clone()).await.expect("insert_many");
    assert_eq!(inserted.len(), rows.len());

    let mut delivered = 0;
    for _ in 0..20 {
        let got = ledger.claim(&[], 100, "w", LEASE).await.expect("claim");
        assert!(!got.is_empty());
        let keys: Vec<_> = got.iter().filter_map(|e| e.graph_key.as_ref()).collect();
        assert_eq!(keys.len(), keys.iter().collect::<HashSet<_>>().len(), "one per graph");
        ledger.finish(&ids(&got), "w", &Outcome::Ingested).await.expect("finish");
        delivered += got.len() as u64;
    }
    assert_eq!(ledger.ready(100).await.expect("ready").len(), 100);
    let tail = *inserted.last().expect("rows");
    assert_eq!(ids(&ledger.claim(&[tail], 1, "w", LEASE).await.expect("claim")), vec![tail]);
    let counts = ledger.counts().await.expect("counts");
    assert_eq!((counts.ingested, counts.in_flight), (delivered, 1));
    assert_eq!(counts.pending, 10_000 - delivered - 1);
}
