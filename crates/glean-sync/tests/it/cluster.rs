//! Scale-out: several `glean-sync serve` nodes sharing one PostgreSQL ledger
//! (`GLEAN_SYNC_TEST_DATABASE_URL`; these tests say so and return when it is unset).

use crate::test_support::{PgSchema, SyncEnv, Wrapper, sigterm};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// `n` node deployments on one fresh ledger schema, writing into one shared Glean database root.
fn cluster(n: usize) -> Option<(PgSchema, Vec<SyncEnv>)> {
    let schema = PgSchema::from_env("scale-out tests")?;
    let first = SyncEnv::new();
    let db_root = first.db_root().to_string_lossy().into_owned();
    let nodes = std::iter::once(first)
        .chain((1..n).map(|_| SyncEnv::new()))
        .map(|env| {
            env.with("GLEAN_SYNC_DATABASE_URL", &schema.url)
                .with("GLEAN_SYNC_DATABASE_SCHEMA", &schema.name)
                .with("GLEAN_DB_ROOT", &db_root)
                .with("GLEAN_REALTIME_WORKERS", "2")
        })
        .collect();
    Some((schema, nodes))
}

fn graph(key: &str, label: &str) -> String {
    format!(
        r#"{{"graph_id":"{key}","nodes":[{{"id":"{key}-a","type":"table","label":"{label}"}},{{"id":"{key}-b"}}],"edges":[{{"source":"{key}-a","target":"{key}-b"}}]}}"#
    )
}

#[test]
fn three_nodes_share_3000_saves_each_ingested_once() {
    let Some((_schema, nodes)) = cluster(3) else { return };
    let servers: Vec<_> = nodes.iter().map(|env| env.serve(&[])).collect();
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let targets: Vec<_> = servers.iter().map(|s| s.client.clone()).collect();
            std::thread::spawn(move || {
                (0..500)
                    .map(|i| {
                        let (status, body) = targets[i % targets.len()].post("/knowledge-graph", &graph(&format!("g{c}-{i}"), "x"), None);
                        assert_eq!(status, 202, "{body}");
                        body["batch_file"].as_str().unwrap_or_default().to_owned()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let accepted: BTreeSet<String> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    assert_eq!(accepted.len(), 3000);
    let stats = servers[0].wait_stats(Duration::from_secs(120), |s| s["ingested_total"] == 3000 && s["pending"] == 0);
    assert_eq!(stats["ingested_total"], 3000, "cluster-wide stats from any node: {stats}");
    assert_eq!(stats["ledger_scope"], "cluster");
    let per_node: Vec<u64> = servers.iter().map(|s| s.stats()["successful_exports"].as_u64().unwrap_or(0)).collect();
    assert_eq!(per_node.iter().sum::<u64>(), 3000, "each export was ingested by exactly one node: {per_node:?}");
    assert!(per_node.iter().all(|n| *n > 0), "every node took a share: {per_node:?}");
    let manifests = nodes[0].manifest_files();
    assert_eq!(manifests.len(), 3000);
    assert_eq!(manifests.into_iter().collect::<BTreeSet<_>>(), accepted, "exactly the accepted exports, once each");
}

#[test]
fn a_killed_nodes_leased_exports_are_finished_by_the_others() {
    let Some((_schema, nodes)) = cluster(3) else { return };
    // Node 0's glean is slow, so it dies with exports in flight; its lease is 2 x 5 s + 1 s.
    let slow = Wrapper::default().only_for("write").delay(Duration::from_secs(3)).write(nodes[0].dir.path(), "slow-glean");
    let doomed =
        nodes[0].clone_with("GLEAN_BIN", &slow.to_string_lossy()).with("GLEAN_WRITE_TIMEOUT_SECS", "5").with("GLEAN_LEASE_SECS", "1");
    let mut server = doomed.serve(&[]);
    for i in 0..40 {
        assert_eq!(server.post("/knowledge-graph", &graph(&format!("k{i}"), "x"), None).0, 202);
    }
    let stats = server.wait_stats(Duration::from_secs(20), |s| s["in_flight"].as_u64() > Some(0));
    assert!(stats["in_flight"].as_u64() > Some(0), "node 0 is writing: {stats}");
    server.child.kill().expect("SIGKILL node 0");
    server.child.wait().expect("reap");
    let killed = Instant::now();

    let others: Vec<_> = nodes[1..].iter().map(|env| env.serve(&[])).collect();
    let stats = others[0].wait_stats(Duration::from_secs(60), |s| s["ingested_total"] == 40);
    assert_eq!(stats["ingested_total"], 40, "the others finished everything: {stats}");
    assert!(killed.elapsed() >= Duration::from_secs(8), "taken over only after the lease ran out ({:?})", killed.elapsed());
    let node_stats: Vec<serde_json::Value> = others.iter().map(|s| s.stats()).collect();
    let took_over: u64 = node_stats.iter().map(|s| s["successful_exports"].as_u64().unwrap_or(0)).sum();
    assert_eq!(took_over, 40, "{node_stats:#?}");
    assert_eq!(nodes[0].manifest_files().len(), 40, "in the shared Glean database");
}

#[test]
fn nodes_starting_together_share_one_ledger() {
    let Some((_schema, nodes)) = cluster(2) else { return };
    // Start both before either is ready: both migrate the fresh schema at once.
    let mut children: Vec<_> = nodes
        .iter()
        .map(|env| {
            env.command(&["serve"]).env("GLEAN_SYNC_LISTEN", "127.0.0.1:0").stdout(std::process::Stdio::piped()).spawn().expect("serve")
        })
        .collect();
    for child in &mut children {
        let stdout = child.stdout.take().expect("stdout");
        let line = std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok).next().unwrap_or_default();
        assert!(line.starts_with("listening on "), "both nodes start: {line:?}");
    }
    for child in &mut children {
        sigterm(child);
        assert!(child.wait().expect("exit").success());
    }
}

#[test]
fn a_graph_saved_through_two_nodes_ends_with_the_later_version() {
    let Some((_schema, nodes)) = cluster(2) else { return };
    let (a, b) = (nodes[0].serve(&[]), nodes[1].serve(&[]));
    assert_eq!(a.post("/knowledge-graph", &graph("shared", "first"), None).0, 202);
    let (status, body) = b.post("/knowledge-graph", &graph("shared", "second"), None);
    assert_eq!((status, body["graph_version"].as_i64()), (202, Some(2)), "{body}");
    let (status, stored) = a.get("/graphs/shared");
    assert_eq!(status, 200, "{stored}");
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored["version"], 2);
    assert_eq!(stored["nodes"][0]["label"], "second");
    a.wait_stats(Duration::from_secs(30), |s| s["ingested_total"] == 2);
    let versions: BTreeSet<u64> =
        nodes[0].facts("agenticAiETH.ETL.ExportManifest.1").iter().filter_map(|f| f["key"]["graph_version"].as_u64()).collect();
    assert_eq!(versions, BTreeSet::from([1, 2]));
}
