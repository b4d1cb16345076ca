//! `glean-sync serve` end to end: a real client on a real port, the directory watcher, SIGTERM under load.

use crate::test_support::{SyncEnv, node_batch, text};
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn graph(i: usize) -> String {
    let nodes: Vec<String> = (0..5).map(|n| format!(r#"{{"id":"g{i}-n{n}","type":"column","label":"c{n}"}}"#)).collect();
    format!(r#"{{"project_id":"p","system_id":"s{i}","nodes":[{}],"edges":[{{"source":"g{i}-n0","target":"g{i}-n1"}}]}}"#, nodes.join(","))
}

/// The value of one Prometheus sample line, e.g. `glean_sync_saves_total{outcome="queued"}`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn two_hundred_concurrent_posts_are_ingested_and_stats_metrics_agree() {
    let env = SyncEnv::new();
    let server = env.serve(&[]);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let server = server.client.clone();
            std::thread::spawn(move || (0..25).map(|i| server.post("/knowledge-graph", &graph(w * 25 + i), None)).collect::<Vec<_>>())
        })
        .collect();
    let answers: Vec<(u16, serde_json::Value)> = workers.into_iter().flat_map(|w| w.join().expect("client")).collect();
    assert!(answers.iter().all(|(status, body)| *status == 202 && body["state"] == "queued"), "{answers:?}");
    let ids: BTreeSet<i64> = answers.iter().filter_map(|(_, b)| b["export_id"].as_i64()).collect();
    assert_eq!(ids.len(), 200);

    let stats = server.wait_stats(Duration::from_secs(60), |s| s["successful_exports"] == 200);
    assert_eq!((stats["total_exports"].as_u64(), stats["successful_exports"].as_u64()), (Some(200), Some(200)), "{stats}");
    assert_eq!((stats["pending"].as_u64(), stats["dead"].as_u64()), (Some(0), Some(0)));
    assert_eq!(env.manifest_files().len(), 200, "the catalog agrees");
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&metrics, r#"glean_sync_saves_total{outcome="queued"}"#), Some(200.0), "{metrics}");
    assert_eq!(sample(&metrics, r#"glean_sync_exports_finished_total{state="ingested"}"#), Some(200.0));
    assert_eq!(sample(&metrics, "glean_sync_pending_exports"), Some(0.0));
    assert_eq!(sample(&metrics, r#"glean_sync_http_requests_total{route="/knowledge-graph",status="202"}"#), Some(200.0));
    let (status, export) = server.get(&format!("/exports/{}", ids.first().expect("an id")));
    assert!(status == 200 && export.contains(r#""state":"ingested""#), "{export}");
}

#[test]
fn the_token_and_the_body_limit_are_enforced() {
    let env = SyncEnv::new().with("GLEAN_SYNC_TOKEN", "t0ken").with("GLEAN_SYNC_MAX_BODY_BYTES", "2000");
    let server = env.serve(&[]);
    assert_eq!(server.post("/knowledge-graph", &graph(1), None).0, 401);
    assert_eq!(server.post("/knowledge-graph", &graph(1), Some("nope")).0, 401);
    assert_eq!(server.post("/knowledge-graph", &graph(1), Some("t0ken")).0, 202);
    let big = format!(r#"{{"nodes":[{}]}}"#, vec![r#"{"id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#; 100].join(","));
    let (status, body) = server.post("/knowledge-graph", &big, Some("t0ken"));
    assert_eq!(status, 413, "{body}");
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn sigterm_under_load_loses_no_accepted_graph() {
    let env = SyncEnv::new();
    let server = env.serve(&[]);
    let stopping = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (client, stopping) = (server.client.clone(), stopping.clone());
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for i in 0.. {
                    let (status, body) = client.post("/knowledge-graph", &graph(c * 100_000 + i), None);
                    match status {
                        202 => accepted.push(body["batch_file"].as_str().unwrap_or_default().to_owned()),
                        // 503 while draining, then no connection at all.
                        _ if stopping.load(Ordering::SeqCst) => return accepted,
                        other => panic!("unexpected {other}: {body}"),
                    }
                }
                accepted
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    stopping.store(true, Ordering::SeqCst);
    let status = server.stop();
    assert!(status.success(), "serve exits 0 after a graceful shutdown: {status:?}");
    let accepted: BTreeSet<String> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    assert!(accepted.len() > 20, "load was running ({} accepted)", accepted.len());
    let out = env.run(&["drain"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifests: BTreeSet<String> = env.manifest_files().into_iter().collect();
    let lost: Vec<&String> = accepted.difference(&manifests).collect();
    assert!(lost.is_empty(), "accepted graphs lost: {lost:?}");
}

/// A batch file the way another program writes it, in the watched directory.
fn foreign_batch(dir: &std::path::Path, name: &str, ids: &[&str]) -> std::path::PathBuf {
    node_batch(dir, name, ids)
}

#[test]
fn the_watcher_takes_files_from_before_start_slow_writes_and_downtime_once_each() {
    let env = SyncEnv::new();
    let watched = env.path("incoming");
    foreign_batch(&watched, "graph_20261203_0001.json", &["before-1", "before-2"]);
    std::fs::write(watched.join("broken.json"), r#"[{"predicate": "agenticAiETH.ETL.Node.1", "facts": [{"key": {"id": 7}}]}]"#)
        .expect("write");
    let watch = watched.to_string_lossy().into_owned();
    let server = env.serve(&["--watch", &watch]);

    // A slow writer: half now, the rest two seconds later, in place.
    let ids: Vec<String> = (0..3000).map(|i| format!("slow-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let full = std::fs::read(node_batch(&env.path("staging"), "big.json", &refs)).expect("staged batch");
    let slow = watched.join("graph_20261203_0002.json");
    let mut file = std::fs::File::create(&slow).expect("create");
    file.write_all(&full[..full.len() / 2]).expect("first half");
    file.flush().expect("flush");
    std::thread::sleep(Duration::from_secs(2));
    file.write_all(&full[full.len() / 2..]).expect("second half");
    drop(file);

    let stats = server.wait_stats(Duration::from_secs(30), |s| s["successful_exports"] == 2);
    assert_eq!(stats["successful_exports"], 2, "{stats}");
    assert_eq!(stats["dead"], 1, "the broken file is dead: {stats}");
    assert_eq!(env.facts("agenticAiETH.ETL.Node.1").len(), 3002, "the slow file was read whole");
    assert!(server.stop().success());

    // Written while the service is down.
    foreign_batch(&watched, "graph_20261203_0003.json", &["down-1"]);
    let server = env.serve(&["--watch", &watch]);
    let stats = server.wait_stats(Duration::from_secs(30), |s| s["successful_exports"] == 1);
    assert_eq!(stats["successful_exports"], 1, "only the new file is taken after the restart: {stats}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.stats()["total_exports"], 1, "files taken before are not taken again");
    assert_eq!(env.facts("agenticAiETH.ETL.Node.1").len(), 3003);
    let status = env.status();
    let reason = status["problems"][0]["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("broken.json") && reason.contains(".id: expected string"), "{reason}");
}

#[test]
fn ingest_takes_a_directory_once() {
    let env = SyncEnv::new();
    let dir = env.path("batches");
    for i in 0..5 {
        foreign_batch(&dir, &format!("graph_20261203_{i:04}.json"), &[&format!("n{i}")]);
    }
    let out = env.run(&["ingest", &dir.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("recorded 5 batch file(s)"), "{}", text(&out.stdout));
    assert_eq!(env.facts("agenticAiETH.ETL.Node.1").len(), 5);
    let out = env.run(&["ingest", &dir.to_string_lossy()]);
    assert!(text(&out.stdout).contains("recorded 0 batch file(s)"), "{}", text(&out.stdout));
}
