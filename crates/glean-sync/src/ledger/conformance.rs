//! The conformance suite: what every `Ledger` must do, checked the same way
//! for each implementation.
//!
//! Each check is an async function taking a [`Backend`], a place a ledger
//! lives (a SQLite file, a PostgreSQL database) that can open any number of
//! handles on the same data: most checks use one handle, the concurrency check
//! two, the durability check reopens. An implementation runs the whole suite
//! with one line in its tests, `ledger_conformance!(<expression giving a fresh
//! Backend>)`, which makes one `#[tokio::test]` per check; a new check is
//! added to the list in that macro and so runs on every implementation. A
//! backend that needs a server (PostgreSQL) uses `ledger_conformance!(optional:
//! <expression giving Option<Backend>>)` and says why when it gives `None`.
//!
//! Checks use only the `Ledger` trait, never SQL, and never sleep for more
//! than a few milliseconds: times that must be past or future are chosen so.

mod claims;
mod contents;
mod outcomes;
mod records;

pub(crate) use claims::*;
pub(crate) use contents::*;
pub(crate) use outcomes::*;
pub(crate) use records::*;

use super::{Export, ExportId, ExportState, Ledger, NewExport};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Where a ledger under test lives; every `open` is a new handle on the same data.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Opens a handle (panics if it cannot: this is a test).
    async fn open(&self) -> Arc<dyn Ledger>;

    /// Whether the ledger carries payloads (a shared ledger does; SQLite leaves them in files).
    fn stores_payloads(&self) -> bool {
        false
    }
}

/// Runs every conformance check as its own `#[tokio::test]`; `$backend` makes a fresh backend.
/// With `optional:`, `$backend` gives an `Option` of one, and each test returns at once on
/// `None` (the backend says why it is not available).
macro_rules! ledger_conformance {
    (optional: $backend:expr) => {
        $crate::ledger::conformance::ledger_conformance!(@list $backend);
    };
    (@list $backend:expr) => {
        $crate::ledger::conformance::ledger_conformance!(@each $backend;
            insert_then_get_returns_every_field,
            ids_grow,
            claim_takes_oldest_first_up_to_limit,
            claim_only_among_candidates,
            concurrent_claimers_never_share_a_row,
            graph_versions_are_claimed_in_order,
            dead_export_unblocks_its_graph,
            one_export_per_graph_and_keyless_rows_are_independent,
            failed_rows_wait_for_next_attempt,
            expired_lease_lets_another_owner_claim,
            renew_keeps_a_hold_past_its_first_lease,
            finish_ignores_rows_not_held,
            finish_records_each_outcome,
            released_attempt_is_not_counted,
            postponed_attempt_is_not_counted_but_explained,
            recover_returns_an_owners_rows,
            replay_requeues_failed_and_dead,
            list_selects_by_state_id_since_and_limit,
            counts_per_state_and_oldest_unfinished,
            rows_survive_reopening,
            rows_by_file_and_newest,
            versions_count_up_and_unchanged_content_is_recognised,
            a_save_begins_with_its_version_and_known_facts,
            racing_saves_of_a_graph_get_distinct_versions,
            facts_become_known_when_ingested,
            forgetting_a_database_forgets_its_facts_and_content,
            an_export_can_be_recorded_dead,
            graphs_are_stored_by_key_and_only_newer_versions_replace_them,
            stored_properties_read_back_canonical,
            payloads_round_trip_where_carried,
            large_ledger_still_claims,
        );
    };
    (@each $backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(backend) = $backend else { return };
                $crate::ledger::conformance::$check(&backend).await;
            }
        )*
    };
    ($backend:expr) => {
        $crate::ledger::conformance::ledger_conformance!(@list Some($backend));
    };
}
pub(crate) use ledger_conformance;

/// A lease long enough never to lapse during a test.
const LEASE: Duration = Duration::from_secs(600);

/// An export without a graph key, told apart by `n`.
pub(crate) fn keyless(n: i64) -> NewExport {
    NewExport { batch_file: format!("batch-{n}.json"), node_count: n, edge_count: 2 * n, bytes: 100 * n, ..NewExport::default() }
}

/// Version `version` of graph `key`.
pub(crate) fn versioned(key: &str, version: i64) -> NewExport {
    NewExport {
        batch_file: format!("{key}-v{version}.json"),
        graph_key: Some(key.to_owned()),
        graph_version: Some(version),
        content_hash: Some(format!("hash-{key}-{version}")),
        ..keyless(version)
    }
}

/// Inserts `n` keyless exports one by one and returns their ids.
async fn insert_keyless(ledger: &dyn Ledger, n: i64) -> Vec<ExportId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(ledger.insert(keyless(i)).await.expect("insert"));
    }
    ids
}

/// The row, which must exist.
async fn row(ledger: &dyn Ledger, id: ExportId) -> Export {
    ledger.get(id).await.expect("get").expect("the row exists")
}

/// The row's state.
async fn state(ledger: &dyn Ledger, id: ExportId) -> ExportState {
    row(ledger, id).await.state
}

/// Claims everything ready (up to 100) for `owner`.
async fn claim_all(ledger: &dyn Ledger, owner: &str) -> Vec<ExportId> {
    ids(&ledger.claim(&[], 100, owner, LEASE).await.expect("claim"))
}

/// The ids of exports, in order.
fn ids(exports: &[Export]) -> Vec<ExportId> {
    exports.iter().map(|e| e.id).collect()
}

/// Now, at the millisecond precision every ledger keeps.
fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now is representable")
}
