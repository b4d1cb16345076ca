//! Export statistics: the original `GetStats` fields and what operators need beyond them.
//!
//! Counters here are this process's (since it started); ledger-derived
//! numbers (pending, retrying, dead, oldest pending age) are read from the
//! ledger when a snapshot is taken, so they survive restarts and, on a shared
//! ledger, cover the whole cluster. `successful_exports` counts exports
//! confirmed ingested, never tasks run (original defect 7).

use crate::config::Mode;
use crate::ledger::StateCounts;
use crate::sink::SinkKind;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many recent save-to-ingested latencies the percentiles are taken over.
const LATENCY_WINDOW: usize = 4096;

/// Live counters, updated by saves and workers.
#[derive(Default)]
pub(crate) struct Stats {
    pub total_exports: AtomicU64,
    pub successful_exports: AtomicU64,
    pub failed_exports: AtomicU64,
    pub retries: AtomicU64,
    pub skipped: AtomicU64,
    pub duplicate_nodes: AtomicU64,
    pub duplicate_edges: AtomicU64,
    pub in_flight: AtomicU64,
    last: Mutex<LastEvents>,
}

#[derive(Default)]
struct LastEvents {
    last_success_time: Option<DateTime<Utc>>,
    last_error_time: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_by_cause: BTreeMap<&'static str, String>,
    latencies_ms: VecDeque<u64>,
}

impl Stats {
    fn last(&self) -> std::sync::MutexGuard<'_, LastEvents> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records exports confirmed ingested, with their save-to-ingested latencies.
    pub fn ingested(&self, latencies: impl IntoIterator<Item = Duration>) {
        let mut last = self.last();
        let mut n = 0;
        for l in latencies {
            n += 1;
            crate::metrics::ingested(l);
            if last.latencies_ms.len() == LATENCY_WINDOW {
                last.latencies_ms.pop_front();
            }
            last.latencies_ms.push_back(u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
        }
        last.last_success_time = Some(Utc::now());
        drop(last);
        Stats::add(&self.successful_exports, n);
    }

    /// Records a failed write attempt of `exports` exports.
    pub fn failed(&self, exports: u64, cause: &'static str, message: &str) {
        Stats::add(&self.failed_exports, exports);
        crate::metrics::write_failed(cause, exports);
        let mut last = self.last();
        last.last_error_time = Some(Utc::now());
        last.last_error = Some(message.to_owned());
        last.last_error_by_cause.insert(cause, message.to_owned());
    }

    /// A snapshot combining these counters with the ledger's counts.
    pub fn snapshot(&self, ctx: SnapshotContext) -> StatsSnapshot {
        let last = self.last();
        let mut sorted: Vec<u64> = last.latencies_ms.iter().copied().collect();
        sorted.sort_unstable();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            total_exports: get(&self.total_exports),
            successful_exports: get(&self.successful_exports),
            failed_exports: get(&self.failed_exports),
            last_success_time: last.last_success_time,
            last_error_time: last.last_error_time,
            last_error: last.last_error.clone(),
            last_error_by_cause: last.last_error_by_cause.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            retries: get(&self.retries),
            skipped: get(&self.skipped),
            duplicate_nodes_dropped: get(&self.duplicate_nodes),
            duplicate_edges_dropped: get(&self.duplicate_edges),
            in_flight: get(&self.in_flight),
            queue_depth: ctx.queue_depth,
            queue_capacity: ctx.queue_capacity,
            pending: ctx.ledger.pending,
            retrying: ctx.ledger.failed,
            dead: ctx.ledger.dead,
            ingested_total: ctx.ledger.ingested,
            oldest_pending_age_secs: ctx.ledger.oldest_unfinished.map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0),
            latency_ms: Percentiles { p50: percentile(&sorted, 0.50), p99: percentile(&sorted, 0.99), samples: sorted.len() },
            mode: ctx.mode,
            sink: ctx.sink,
            sink_description: ctx.sink_description,
            node: ctx.node,
            ledger_scope: if ctx.shared_ledger { "cluster" } else { "node" },
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted.get(rank.saturating_sub(1).min(sorted.len() - 1)).copied()
}

/// What a snapshot needs from outside the counters.
pub(crate) struct SnapshotContext {
    pub ledger: StateCounts,
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub mode: Mode,
    pub sink: Option<SinkKind>,
    pub sink_description: Option<String>,
    pub node: String,
    pub shared_ledger: bool,
}

/// Save-to-ingested latency percentiles over recent exports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median, in ms.
    pub p50: Option<u64>,
    /// 99th percentile, in ms.
    pub p99: Option<u64>,
    /// How many exports they are taken over.
    pub samples: usize,
}

/// Statistics at one moment (`GetStats`, `glean-sync status`, `GET /stats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// Saves accepted by this process.
    pub total_exports: u64,
    /// Exports this process wrote into Glean.
    pub successful_exports: u64,
    /// Failed write attempts (each export of a failed write counts once).
    pub failed_exports: u64,
    /// When an export was last ingested.
    pub last_success_time: Option<DateTime<Utc>>,
    /// When a write last failed.
    pub last_error_time: Option<DateTime<Utc>>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The last failure's message per cause (timeout, crash, rejected, ...).
    pub last_error_by_cause: BTreeMap<String, String>,
    /// Attempts scheduled for retry.
    pub retries: u64,
    /// Saves skipped because the graph had not changed.
    pub skipped: u64,
    /// Duplicate nodes dropped from saved graphs.
    pub duplicate_nodes_dropped: u64,
    /// Duplicate edges dropped from saved graphs.
    pub duplicate_edges_dropped: u64,
    /// Exports this process is writing now.
    pub in_flight: u64,
    /// Export ids in the in-memory queue.
    pub queue_depth: usize,
    /// Slots of the in-memory queue.
    pub queue_capacity: usize,
    /// Exports waiting to be written (ledger).
    pub pending: u64,
    /// Exports waiting for a retry (ledger).
    pub retrying: u64,
    /// Exports given up on (ledger).
    pub dead: u64,
    /// Exports ever ingested (ledger).
    pub ingested_total: u64,
    /// Age of the oldest export not yet ingested or dead, in seconds.
    pub oldest_pending_age_secs: Option<f64>,
    /// Save-to-ingested latency.
    pub latency_ms: Percentiles,
    /// Real-time or batch.
    pub mode: Mode,
    /// The sink in use.
    pub sink: Option<SinkKind>,
    /// The sink in one line.
    pub sink_description: Option<String>,
    /// This node (its owner name in the ledger).
    pub node: String,
    /// Which numbers cover what: `pending`, `retrying`, `dead`, `ingested_total` and
    /// `oldest_pending_age_secs` come from the ledger (`cluster` when it is shared by
    /// several nodes, else `node`); every other number is this node's, since it started.
    pub ledger_scope: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn latency_window_is_bounded() {
        let s = Stats::default();
        s.ingested((0..(LATENCY_WINDOW as u64 + 10)).map(Duration::from_millis));
        assert_eq!(s.last().latencies_ms.len(), LATENCY_WINDOW);
        assert_eq!(s.successful_exports.load(Ordering::Relaxed), LATENCY_WINDOW as u64 + 10);
    }
}
