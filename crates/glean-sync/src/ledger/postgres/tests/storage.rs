//! A PostgreSQL ledger's start-up and storage: nodes starting at once
//! migrate once, stats are the cluster's, the hot statements read only
//! unfinished rows through indexes, payloads are compressed and properties
//! are JSONB, as the module doc of `postgres` says.

use super::{LEASE, PgBackend, keyless, versioned};
use crate::ledger::postgres::{PgLedger, connect, sql};
use crate::ledger::{Ledger, NewExport, Outcome};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_at_once_migrate_once() {
    let Some(backend) = PgBackend::from_env() else { return };
    let backend = Arc::new(backend);
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let backend = backend.clone();
        starts.spawn(async move { PgLedger::connect_with(&backend.schema.url, Some(&backend.schema.name), 1).await });
    }
    let mut nodes = Vec::new();
    while let Some(started) = starts.join_next().await {
        nodes.push(started.expect("task").expect("every node starts"));
    }
    let mut raw = backend.raw().await;
    let (applied, all_ok): (i64, bool) =
        sqlx::query_as("SELECT COUNT(*), bool_and(success) FROM _sqlx_migrations").fetch_one(&mut raw).await.expect("migrations table");
    assert_eq!((applied, all_ok), (connect::migration_count() as i64, true));
    let id = nodes[0].insert(keyless(1)).await.expect("insert");
    assert_eq!(nodes[7].get(id).await.expect("get").map(|e| e.id), Some(id), "one schema for all nodes");
    let isolation: String = sqlx::query_scalar("SHOW transaction_isolation").fetch_one(&nodes[0].pool).await.expect("show");
    assert_eq!(isolation, "read committed", "claims rely on it");
}

/// Every node counts every node's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_the_clusters() {
    let Some(backend) = PgBackend::from_env() else { return };
    let (a, b) = (backend.connect().await, backend.connect().await);
    a.insert_many(vec![keyless(1), keyless(2)]).await.expect("insert");
    b.insert(keyless(3)).await.expect("insert");
    let claimed = b.claim(&[], 1, "b", LEASE).await.expect("claim");
    b.finish(&[claimed[0].id], "b", &Outcome::Ingested).await.expect("finish");
    let (ca, cb) = (a.counts().await.expect("counts"), b.counts().await.expect("counts"));
    assert_eq!(ca, cb);
    assert_eq!((ca.pending, ca.ingested), (2, 1));
}

/// `ready` and `claim` read unfinished rows through indexes, never the table, whether
/// most of a large ledger is delivered or most of it is still to go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_statements_read_only_unfinished_rows() {
    let Some(backend) = PgBackend::from_env() else { return };
    let ledger = backend.connect().await;
    let rows: Vec<NewExport> = (0..20_000).map(|i| if i % 2 == 0 { versioned(&format!("g{}", i % 200), i) } else { keyless(i) }).collect();
    ledger.insert_many(rows).await.expect("insert_many");
    let mut raw = backend.raw().await;
    sqlx::query("ANALYZE exports").execute(&mut raw).await.expect("analyze");
    check_plans(&mut raw, "backlog").await;
    sqlx::query("UPDATE exports SET state = 'ingested' WHERE id % 100 <> 0").execute(&mut raw).await.expect("deliver most");
    sqlx::query("ANALYZE exports").execute(&mut raw).await.expect("analyze");
    check_plans(&mut raw, "delivered").await;
}

/// The plans of `ready` and both `claim`s: no table scan, graphs probed by index.
async fn check_plans(raw: &mut sqlx::PgConnection, phase: &str) {
    let explain = |statement: &'static str| sqlx::AssertSqlSafe(format!("EXPLAIN {statement}"));
    let plans = [
        sqlx::query_scalar(explain(sql::READY_ALL)).bind(100i64).fetch_all(&mut *raw).await,
        sqlx::query_scalar(explain(sql::CLAIM_ALL)).bind(100i64).bind("w").bind(1000i64).fetch_all(&mut *raw).await,
        sqlx::query_scalar(explain(sql::CLAIM_AMONG)).bind(100i64).bind("w").bind(1000i64).bind(vec![1i64, 2]).fetch_all(&mut *raw).await,
    ];
    for (i, plan) in plans.into_iter().enumerate() {
        let plan: Vec<String> = plan.expect("explain");
        let text = plan.join("\n");
        assert!(!text.contains("Seq Scan on exports"), "{phase} plan {i} scans the table:\n{text}");
        assert!(text.contains("exports_graph_unfinished"), "{phase} plan {i} does not probe graphs by index:\n{text}");
        if i > 0 {
            assert!(text.contains("Index Scan using exports_pkey on exports "), "{phase} claim {i} updates by a scan:\n{text}");
        }
        if phase == "backlog" {
            // A long backlog is walked in id order and the walk stops after `limit` rows.
            assert!(text.contains("using exports_unfinished on exports e"), "{phase} plan {i}:\n{text}");
        }
    }
}

/// Payloads are stored zstd-compressed; stored properties are JSONB and times TIMESTAMPTZ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_compressed_and_properties_are_jsonb() {
    let Some(backend) = PgBackend::from_env() else { return };
    let ledger = backend.connect().await;
    let batch: Vec<u8> = b"{\"key\":{\"id\":\"node\"}},".repeat(40_000);
    let graph = crate::graph::Graph::from_json(br#"{"nodes":[{"id":"a","props":{"x":1}}]}"#).expect("graph");
    let new = NewExport { payload: Some(batch.clone()), snapshot: Some(Arc::new(graph)), ..versioned("k", 1) };
    let id = ledger.insert(new).await.expect("insert");

    let mut raw = backend.raw().await;
    let (size, magic): (i32, Vec<u8>) =
        sqlx::query_as("SELECT octet_length(payload), substring(payload FROM 1 FOR 4) FROM exports WHERE id = $1")
            .bind(id)
            .fetch_one(&mut raw)
            .await
            .expect("payload");
    assert_eq!(magic, [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    assert!((size as usize) < batch.len() / 20, "{size} bytes stored for {}", batch.len());
    assert_eq!(ledger.payload(id).await.expect("payload"), Some(batch));

    let (kind, x, time): (String, String, String) =
        sqlx::query_as("SELECT jsonb_typeof(properties), properties->>'x', pg_typeof(updated_at)::text FROM glean_nodes")
            .fetch_one(&mut raw)
            .await
            .expect("node");
    assert_eq!((kind.as_str(), x.as_str(), time.as_str()), ("object", "1", "timestamp with time zone"));
}
