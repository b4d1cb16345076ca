//! The exporter with real parts: the SQLite ledger and the embedded catalog as sink.

use super::*;
use crate::config::ExporterConfig;
use crate::graph::Graph;
use crate::ledger::sqlite::SqliteLedger;
use crate::sink::local::{LocalSink, LocalSinkConfig};
use crate::test_support::TEST_DB;
use glean_catalog::schema::SchemaSource;
use std::path::Path;

fn config(queue_capacity: usize) -> ExporterConfig {
    ExporterConfig {
        workers: 2,
        queue_capacity,
        max_files: 4,
        lease: Duration::from_secs(60),
        retry: RetryPolicy { base: Duration::from_millis(10), max: Duration::from_millis(50), max_attempts: 3 },
        shutdown_timeout: Duration::from_secs(5),
    }
}

/// An exporter on a fresh SQLite ledger in `dir`, delivering (when `realtime`) into the embedded catalog.
pub(crate) async fn exporter(dir: &Path, realtime: bool, queue_capacity: usize) -> Exporter {
    let ledger = SqliteLedger::open(&dir.join("state/ledger.sqlite")).await.expect("ledger");
    let sink: Option<Arc<dyn Sink>> = realtime.then(|| {
        Arc::new(
            LocalSink::new(LocalSinkConfig { db_root: dir.join("db"), db: TEST_DB.into(), schema: SchemaSource::builtin(), strict: true })
                .expect("sink"),
        ) as Arc<dyn Sink>
    });
    Exporter::start(Parts {
        ledger: Arc::new(ledger),
        sink,
        batches: BatchDir::new(&dir.join("exports"), crate::batch::Compression::None).expect("export dir"),
        predicates: Predicates::new("agenticAiETH.ETL"),
        config: config(queue_capacity),
        owner: "test".into(),
        db: TEST_DB.into(),
    })
    .await
    .expect("exporter starts")
}

fn graph(i: usize) -> Graph {
    Graph::from_json(
        format!(r#"{{"graph_id":"g{i}","nodes":[{{"id":"a{i}","type":"t"}},{{"id":"a{i}"}},{{"id":"b{i}"}}],"edges":[{{"source":"a{i}","target":"b{i}"}}]}}"#)
            .as_bytes(),
    )
    .expect("valid graph")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_beyond_the_queue_capacity_are_all_ingested_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = exporter(dir.path(), true, 2).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let r = exp.save(graph(i)).await.expect("saved");
        assert_eq!(r.state, SaveState::Queued);
        assert_eq!((r.node_count, r.duplicate_nodes, r.edge_count), (2, 1, 1));
        ids.push(r.export_id);
    }
    let done = tokio::time::timeout(Duration::from_secs(30), exp.wait_for(&ids, |_| {})).await.expect("in time").expect("ledger");
    assert!(done.iter().all(|e| e.state == ExportState::Ingested), "{done:?}");
    let stats = exp.stats().await.expect("stats");
    assert_eq!((stats.total_exports, stats.successful_exports, stats.failed_exports), (30, 30, 0));
    assert_eq!((stats.pending, stats.dead, stats.in_flight, stats.queue_depth), (0, 0, 0, 0));
    assert_eq!(stats.duplicate_nodes_dropped, 30);
    assert_eq!(stats.latency_ms.samples, 30);
    assert_eq!(stats.sink, Some(crate::sink::SinkKind::Local));
    assert_eq!(exp.shutdown().await, ShutdownReport::Drained);
}

#[tokio::test]
async fn saves_after_shutdown_are_refused_and_shutting_down_twice_is_harmless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = exporter(dir.path(), true, 10).await;
    assert_eq!(exp.shutdown().await, ShutdownReport::Drained);
    assert!(matches!(exp.save(graph(1)).await, Err(SaveError::ShuttingDown)));
    assert_eq!(exp.shutdown().await, ShutdownReport::AlreadyShutDown);
}

#[tokio::test]
async fn batch_mode_records_exports_without_delivering_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = exporter(dir.path(), false, 10).await;
    let r = exp.save(graph(1)).await.expect("saved");
    assert_eq!(r.state, SaveState::BatchMode);
    assert!(dir.path().join("exports").join(&r.batch_file).is_file());
    let stats = exp.stats().await.expect("stats");
    assert_eq!((stats.pending, stats.successful_exports, stats.mode), (1, 0, Mode::Batch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_batch_file_makes_its_export_dead_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = {
        let batch = exporter(dir.path(), false, 10).await;
        batch.save(graph(1)).await.expect("saved")
    };
    std::fs::remove_file(dir.path().join("exports").join(&r.batch_file)).expect("remove");
    let exp = exporter(dir.path(), true, 10).await;
    let done = tokio::time::timeout(Duration::from_secs(10), exp.wait_for(&[r.export_id], |_| {})).await.expect("in time").expect("ledger");
    assert_eq!(done[0].state, ExportState::Dead);
    assert!(done[0].last_error.as_deref().unwrap_or_default().contains("is missing"), "{:?}", done[0].last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_export_dir_fails_the_save_and_records_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = exporter(dir.path(), false, 10).await;
    std::fs::remove_dir_all(dir.path().join("exports")).expect("remove export dir");
    let err = exp.save(graph(1)).await.expect_err("no directory");
    assert!(matches!(err, SaveError::File(_)), "{err}");
    assert_eq!(exp.stats().await.expect("stats").pending, 0, "no ledger row without a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_created_anew_gets_every_fact_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = exporter(dir.path(), true, 10).await;
    let v = |nodes: &str| Graph::from_json(format!(r#"{{"graph_id":"g","nodes":[{nodes}]}}"#).as_bytes()).expect("graph");
    let ingest = |r: SaveReceipt| {
        let exp = exp.clone();
        async move {
            let done = tokio::time::timeout(Duration::from_secs(10), exp.wait_for(&[r.export_id], |_| {})).await.expect("in time");
            assert_eq!(done.expect("ledger")[0].state, ExportState::Ingested);
        }
    };
    ingest(exp.save(v(r#"{"id":"a"},{"id":"b"}"#)).await.expect("v1")).await;
    let catalog = glean_catalog::store::Catalog::new(dir.path().join("db"));
    catalog.delete(&TEST_DB.parse().expect("db")).expect("an operator deletes the database");

    // v2's batch was made against what the old database held: only the new node.
    let v2 = exp.save(v(r#"{"id":"a"},{"id":"b"},{"id":"c"}"#)).await.expect("v2");
    assert_eq!(v2.node_count, 1);
    ingest(v2).await;
    assert_eq!(crate::test_support::node_ids(&dir.path().join("db"), TEST_DB), ["c"]);
    // The sink created the database anew, so the same content is no longer "unchanged", and carries everything.
    let v3 = exp.save(v(r#"{"id":"a"},{"id":"b"},{"id":"c"}"#)).await.expect("v3");
    assert_eq!((v3.state, v3.graph_version, v3.node_count), (SaveState::Queued, Some(3), 2), "all but the fact the new database got");
    ingest(v3).await;
    assert_eq!(crate::test_support::node_ids(&dir.path().join("db"), TEST_DB), ["a", "b", "c"]);
    exp.shutdown().await;
}
