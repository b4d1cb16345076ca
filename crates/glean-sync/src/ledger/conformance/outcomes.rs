//! Conformance of how attempts end: `finish` with each outcome, `recover`
//! after a restart, and `replay` by an operator.

use super::{Backend, LEASE, claim_all, ids, insert_keyless, now_ms, row, state};
use crate::ledger::{ExportId, ExportState, Outcome, Selection};
use chrono::Duration as TimeDelta;
use std::time::Duration;

/// `finish` touches only rows the owner holds in flight.
pub(crate) async fn finish_ignores_rows_not_held(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let [pending, theirs, done]: [ExportId; 3] = insert_keyless(&*ledger, 3).await.try_into().expect("three ids");
    assert_eq!(ids(&ledger.claim(&[theirs], 1, "other", LEASE).await.expect("claim")), vec![theirs]);
    assert_eq!(ids(&ledger.claim(&[done], 1, "me", LEASE).await.expect("claim")), vec![done]);
    ledger.finish(&[done], "me", &Outcome::Ingested).await.expect("finish");

    let dead = Outcome::Dead { error: "no".into() };
    ledger.finish(&[pending, theirs, done], "me", &dead).await.expect("finish");
    ledger.finish(&[], "me", &dead).await.expect("finish nothing");
    assert_eq!(state(&*ledger, pending).await, ExportState::Pending);
    assert_eq!(state(&*ledger, theirs).await, ExportState::InFlight);
    assert_eq!(state(&*ledger, done).await, ExportState::Ingested);
    assert_eq!(row(&*ledger, done).await.last_error, None);
}

/// Each outcome sets its state and fields; `last_error` stays as history on success.
pub(crate) async fn finish_records_each_outcome(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let [retried, dead]: [ExportId; 2] = insert_keyless(&*ledger, 2).await.try_into().expect("two ids");
    let created = row(&*ledger, retried).await.updated_at;
    claim_all(&*ledger, "w").await;
    tokio::time::sleep(Duration::from_millis(2)).await;

    let retry_at = now_ms() - TimeDelta::seconds(1);
    ledger.finish(&[retried], "w", &Outcome::Retry { error: "timeout".into(), retry_at }).await.expect("finish");
    ledger.finish(&[dead], "w", &Outcome::Dead { error: "rejected".into() }).await.expect("finish");
    let failed = row(&*ledger, retried).await;
    assert_eq!(failed.state, ExportState::Failed);
    assert_eq!((failed.next_attempt_at, failed.last_error.as_deref()), (Some(retry_at), Some("timeout")));
    assert!(failed.updated_at > created, "updated_at moves with the state");
    let gone = row(&*ledger, dead).await;
    assert_eq!((gone.state, gone.last_error.as_deref(), gone.next_attempt_at), (ExportState::Dead, Some("rejected"), None));

    assert_eq!(claim_all(&*ledger, "w").await, vec![retried]);
    let before = now_ms();
    ledger.finish(&[retried], "w", &Outcome::Ingested).await.expect("finish");
    let ingested = row(&*ledger, retried).await;
    assert_eq!((ingested.state, ingested.attempts), (ExportState::Ingested, 2));
    assert!(ingested.ingested_at.is_some_and(|at| at >= before), "ingested_at is set");
    assert_eq!((ingested.next_attempt_at, ingested.last_error.as_deref()), (None, Some("timeout")));
}

/// `Released` returns the row to pending and does not count the attempt.
pub(crate) async fn released_attempt_is_not_counted(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let id = ledger.insert(super::keyless(1)).await.expect("insert");
    assert_eq!(claim_all(&*ledger, "w").await, vec![id]);
    ledger.finish(&[id], "w", &Outcome::Released).await.expect("finish");
    let released = row(&*ledger, id).await;
    assert_eq!((released.state, released.attempts), (ExportState::Pending, 0));

    let retry_at = now_ms() - TimeDelta::seconds(1);
    assert_eq!(claim_all(&*ledger, "w").await, vec![id]);
    ledger.finish(&[id], "w", &Outcome::Retry { error: "e".into(), retry_at }).await.expect("finish");
    assert_eq!(claim_all(&*ledger, "w").await, vec![id]);
    ledger.finish(&[id], "w", &Outcome::Released).await.expect("finish");
    let again = row(&*ledger, id).await;
    assert_eq!((again.state, again.attempts), (ExportState::Pending, 1));
    assert_eq!(claim_all(&*ledger, "other").await, vec![id], "released rows are claimable at once");
}

/// `Postponed` (sink down) returns the row to pending, keeps the reason, and does not count the attempt.
pub(crate) async fn postponed_attempt_is_not_counted_but_explained(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let id = ledger.insert(super::keyless(1)).await.expect("insert");
    assert_eq!(claim_all(&*ledger, "w").await, vec![id]);
    let outcome = Outcome::Postponed { error: "glean server unreachable".into() };
    ledger.finish(&[id], "w", &outcome).await.expect("finish");
    let row = row(&*ledger, id).await;
    assert_eq!((row.state, row.attempts), (ExportState::Pending, 0));
    assert_eq!(row.last_error.as_deref(), Some("glean server unreachable"));
    assert_eq!(claim_all(&*ledger, "w").await, vec![id], "claimable again at once");
}

/// `recover` puts one owner's in-flight rows back to pending, attempts kept.
pub(crate) async fn recover_returns_an_owners_rows(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let all = insert_keyless(&*ledger, 4).await;
    assert_eq!(ids(&ledger.claim(&all[..3], 3, "crashed", LEASE).await.expect("claim")), all[..3]);
    assert_eq!(ids(&ledger.claim(&all[3..], 1, "alive", LEASE).await.expect("claim")), all[3..]);
    ledger.finish(&all[2..3], "crashed", &Outcome::Ingested).await.expect("finish");

    assert_eq!(ledger.recover("crashed").await.expect("recover"), 2);
    for &id in &all[..2] {
        let back = row(&*ledger, id).await;
        assert_eq!((back.state, back.attempts), (ExportState::Pending, 1));
    }
    assert_eq!(state(&*ledger, all[2]).await, ExportState::Ingested);
    assert_eq!(state(&*ledger, all[3]).await, ExportState::InFlight);
    assert_eq!(ledger.recover("nobody").await.expect("recover"), 0);
    assert_eq!(claim_all(&*ledger, "restarted").await, all[..2], "alive still holds its row");
}

/// `replay` requeues failed and dead rows chosen by state, id, time and limit, and nothing else.
pub(crate) async fn replay_requeues_failed_and_dead(backend: &dyn Backend) {
    let ledger = backend.open().await;
    let all = insert_keyless(&*ledger, 6).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let since = now_ms();
    let late = ledger.insert(super::keyless(9)).await.expect("insert");
    claim_all(&*ledger, "w").await;
    let later = now_ms() + TimeDelta::hours(1);
    let retry = Outcome::Retry { error: "busy".into(), retry_at: later };
    let dead = Outcome::Dead { error: "rejected".into() };
    ledger.finish(&all[0..2], "w", &retry).await.expect("finish");
    ledger.finish(&all[2..4], "w", &dead).await.expect("finish");
    ledger.finish(&all[4..5], "w", &Outcome::Ingested).await.expect("finish");
    ledger.finish(&all[5..6], "w", &Outcome::Released).await.expect("finish");
    ledger.finish(&[late], "w", &dead).await.expect("finish");

    let select = |s: Selection| {
        let ledger = ledger.clone();
        async move { ledger.replay(&s).await.expect("replay") }
    };
    assert_eq!(select(Selection { id: Some(all[4]), ..Default::default() }).await, Vec::<ExportId>::new());
    assert_eq!(select(Selection { states: vec![ExportState::Pending], ..Default::default() }).await, Vec::<ExportId>::new());
    assert_eq!(select(Selection { since: Some(since), ..Default::default() }).await, vec![late]);
    assert_eq!(select(Selection { id: Some(all[3]), ..Default::default() }).await, vec![all[3]]);
    let dead_only = Selection { states: vec![ExportState::Dead], limit: Some(5), ..Default::default() };
    assert_eq!(select(dead_only).await, vec![all[2]]);
    assert_eq!(select(Selection { limit: Some(1), ..Default::default() }).await, vec![all[0]]);
    assert_eq!(select(Selection::default()).await, vec![all[1]]);

    for &id in all[0..4].iter().chain([&late]) {
        let back = row(&*ledger, id).await;
        assert_eq!((back.state, back.attempts, back.next_attempt_at), (ExportState::Pending, 0, None));
        assert!(back.last_error.is_some(), "replay keeps the last error");
    }
    assert_eq!(state(&*ledger, all[4]).await, ExportState::Ingested);
    assert_eq!(ledger.ready(10).await.expect("ready"), [&all[0..4], &all[5..6], &[late]].concat());
}
