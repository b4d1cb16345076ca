//! glean-sync: every saved knowledge graph reaches Glean, and the producer never waits.
//!
//! Data flow, one module per stage: `graph` (decode and validate a graph) ->
//! `batch` (encode it as a Glean JSON batch file, written durably) -> `ledger`
//! (the durable record of every export) -> `exporter` (queue, workers,
//! retries, shutdown) -> `sink` (the glean CLI, or the embedded catalog) ->
//! Glean. `config` turns flags and environment variables into the settings
//! each stage takes. See ARCHITECTURE.md for the map.

pub mod app;
pub mod batch;
pub mod config;
pub mod exporter;
pub mod graph;
pub mod ledger;
pub mod metrics;
pub mod server;
pub mod sink;
pub mod watch;

#[cfg(test)]
pub(crate) mod test_support;
