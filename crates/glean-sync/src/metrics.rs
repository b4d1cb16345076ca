//! Metrics: every name glean-sync exports, and the one place each is recorded.
//!
//! Names follow `glean_sync_<name>[_<unit>][_total]`; labels have a handful
//! of values each (outcomes, states, causes, routes, status codes), never ids
//! or paths. Counters and histograms are recorded as events happen (through
//! the functions below, through the `metrics` facade); gauges are set from a
//! stats snapshot when `/metrics` is scraped. Nothing else names a metric.

use crate::exporter::StatsSnapshot;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Saves, by outcome (`queued`, `unchanged`, `batch_mode`, `rejected`, `failed`).
pub const SAVES: &str = "glean_sync_saves_total";
/// Exports that reached a final state, by state (`ingested`, `dead`).
pub const EXPORTS_FINISHED: &str = "glean_sync_exports_finished_total";
/// Failed write attempts, by cause (`timeout`, `crash`, `unreachable`, `rejected`, ...).
pub const WRITE_FAILURES: &str = "glean_sync_write_failures_total";
/// Retries scheduled.
pub const RETRIES: &str = "glean_sync_retries_total";
/// Sink writes, by result (`ok`, `error`), and how long they took.
pub const WRITE_DURATION: &str = "glean_sync_write_duration_seconds";
/// Time from save to confirmed ingestion.
pub const SAVE_TO_INGESTED: &str = "glean_sync_save_to_ingested_seconds";
/// Size of the batch files written.
pub const BATCH_BYTES: &str = "glean_sync_batch_bytes";
/// HTTP requests, by route and status code.
pub const HTTP_REQUESTS: &str = "glean_sync_http_requests_total";
/// Export ids in the in-memory queue.
pub const QUEUE_DEPTH: &str = "glean_sync_queue_depth";
/// Exports this process is writing now.
pub const IN_FLIGHT: &str = "glean_sync_in_flight_exports";
/// Exports waiting to be written (ledger).
pub const PENDING: &str = "glean_sync_pending_exports";
/// Exports waiting for a retry (ledger).
pub const RETRYING: &str = "glean_sync_retrying_exports";
/// Exports given up on (ledger).
pub const DEAD: &str = "glean_sync_dead_exports";
/// Age of the oldest export not yet ingested or dead.
pub const OLDEST_PENDING_AGE: &str = "glean_sync_oldest_pending_age_seconds";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process; `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(SAVES, "Graph saves, by outcome");
    metrics::describe_counter!(EXPORTS_FINISHED, "Exports that reached a final state, by state");
    metrics::describe_counter!(WRITE_FAILURES, "Failed sink writes per export, by cause");
    metrics::describe_counter!(RETRIES, "Retries scheduled");
    metrics::describe_histogram!(WRITE_DURATION, metrics::Unit::Seconds, "Duration of sink writes");
    metrics::describe_histogram!(SAVE_TO_INGESTED, metrics::Unit::Seconds, "Time from save to confirmed ingestion");
    metrics::describe_histogram!(BATCH_BYTES, metrics::Unit::Bytes, "Size of batch files written");
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests, by route and status");
    metrics::describe_gauge!(QUEUE_DEPTH, "Export ids in the in-memory queue");
    metrics::describe_gauge!(IN_FLIGHT, "Exports this process is writing");
    metrics::describe_gauge!(PENDING, "Exports waiting to be written");
    metrics::describe_gauge!(RETRYING, "Exports waiting for a retry");
    metrics::describe_gauge!(DEAD, "Exports given up on");
    metrics::describe_gauge!(OLDEST_PENDING_AGE, metrics::Unit::Seconds, "Age of the oldest export not yet ingested or dead");
}

/// A save ended with `outcome`.
pub fn save(outcome: &'static str) {
    metrics::counter!(SAVES, "outcome" => outcome).increment(1);
}

/// A batch file of `bytes` was written.
pub fn batch_written(bytes: u64) {
    metrics::histogram!(BATCH_BYTES).record(bytes as f64);
}

/// A sink write of `exports` exports took `took`.
pub fn write(ok: bool, took: Duration) {
    metrics::histogram!(WRITE_DURATION, "result" => if ok { "ok" } else { "error" }).record(took.as_secs_f64());
}

/// `exports` exports failed a write for `cause`.
pub fn write_failed(cause: &'static str, exports: u64) {
    metrics::counter!(WRITE_FAILURES, "cause" => cause).increment(exports);
}

/// A retry was scheduled.
pub fn retry() {
    metrics::counter!(RETRIES).increment(1);
}

/// An export was ingested, `latency` after it was saved.
pub fn ingested(latency: Duration) {
    metrics::counter!(EXPORTS_FINISHED, "state" => "ingested").increment(1);
    metrics::histogram!(SAVE_TO_INGESTED).record(latency.as_secs_f64());
}

/// An export is dead.
pub fn dead() {
    metrics::counter!(EXPORTS_FINISHED, "state" => "dead").increment(1);
}

/// An HTTP request on `route` was answered with `status`.
pub fn http_request(route: &'static str, status: u16) {
    metrics::counter!(HTTP_REQUESTS, "route" => route, "status" => status.to_string()).increment(1);
}

/// Sets the gauges from a stats snapshot (at scrape time).
pub fn set_gauges(s: &StatsSnapshot) {
    metrics::gauge!(QUEUE_DEPTH).set(s.queue_depth as f64);
    metrics::gauge!(IN_FLIGHT).set(s.in_flight as f64);
    metrics::gauge!(PENDING).set(s.pending as f64);
    metrics::gauge!(RETRYING).set(s.retrying as f64);
    metrics::gauge!(DEAD).set(s.dead as f64);
    metrics::gauge!(OLDEST_PENDING_AGE).set(s.oldest_pending_age_secs.unwrap_or(0.0));
}
