//! Incremental tracking: versions, unchanged re-saves, deltas, per-graph order when coalescing.

use crate::test_support::{SyncEnv, Wrapper, recorded_argvs, saved_batch, text, write_file};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A version of graph `key`: nodes `(id, label)`, edges `(source, target)`.
fn version(dir: &Path, name: &str, key: &str, nodes: &[(&str, &str)], edges: &[(&str, &str)]) -> PathBuf {
    let ns: Vec<String> = nodes.iter().map(|(id, label)| format!(r#"{{"id":"{id}","type":"table","label":"{label}"}}"#)).collect();
    let es: Vec<String> = edges.iter().map(|(s, t)| format!(r#"{{"source":"{s}","target":"{t}","label":"FLOWS"}}"#)).collect();
    write_file(dir, name, &format!(r#"{{"graph_id":"{key}","nodes":[{}],"edges":[{}]}}"#, ns.join(","), es.join(",")))
}

fn writes(log: &Path) -> Vec<Vec<String>> {
    recorded_argvs(log)
        .into_iter()
        .filter(|a| a.first().map(String::as_str) == Some("write"))
        .map(|a| a.into_iter().filter_map(|f| f.rsplit('/').next().filter(|n| n.starts_with("graph_")).map(str::to_owned)).collect())
        .collect()
}

#[test]
fn an_unchanged_resave_writes_nothing_and_calls_glean_never() {
    let env = SyncEnv::new();
    let log = env.path("argv.log");
    let glean = Wrapper::default().log_argv(&log).write(env.dir.path(), "glean");
    let env = env.with("GLEAN_BIN", &glean.to_string_lossy());
    let v1 = version(&env.path("g"), "v1.json", "orders", &[("a", "A"), ("b", "B")], &[("a", "b")]);
    let out = env.push(std::slice::from_ref(&v1));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls = writes(&log).len();
    // The same content, in another order and spelling, is the same graph.
    let again = write_file(
        &env.path("g"),
        "again.json",
        r#"{"graph_id":"orders","edges":[{"source_id":"a","target_id":"b","type":"FLOWS"}],
        "nodes":[{"id":"b","kind":"table","label":"B"},{"id":"a","kind":"table","label":"A"}]}"#,
    );
    let out = env.push(&[again]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("unchanged") && text(&out.stdout).contains("version 1"), "{}", text(&out.stdout));
    assert_eq!(writes(&log).len(), calls, "no glean call for an unchanged graph");
    let files = std::fs::read_dir(env.export_dir())
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("graph_"))
        .count();
    assert_eq!(files, 1, "no batch file for an unchanged graph");
}

#[test]
fn a_changed_graph_sends_exactly_the_changed_facts() {
    let env = SyncEnv::new();
    let dir = env.path("g");
    let v1 = version(&dir, "v1.json", "orders", &[("a", "A"), ("b", "B"), ("c", "C")], &[("a", "b"), ("b", "c")]);
    assert!(env.push(&[v1]).status.success());
    // b relabelled, c removed, d added; edge b->c removed, c->d... a->d added.
    let v2 = version(&dir, "v2.json", "orders", &[("a", "A"), ("b", "B2"), ("d", "D")], &[("a", "b"), ("a", "d")]);
    let out = env.push(&[v2]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let (_, batch) = line.lines().find_map(saved_batch).expect("saved line");
    assert!(line.contains("version 2, 3 of 5 facts new"), "{line}");
    let body = std::fs::read_to_string(env.export_dir().join(&batch)).expect("batch file");
    let facts: Vec<&str> = body.lines().filter(|l| l.starts_with("{\"key\"")).collect();
    assert_eq!(
        facts[..3],
        [
            r#"{"key":{"id":"b","kind":"table","label":"B2"}},"#,
            r#"{"key":{"id":"d","kind":"table","label":"D"}}]},"#,
            r#"{"key":{"source":"a","target":"d","label":"FLOWS"}}]},"#,
        ]
    );
    let manifest: serde_json::Value = serde_json::from_str(facts[3].trim_end_matches("]}]").trim_end_matches(',')).expect("manifest fact");
    let key = &manifest["key"];
    assert_eq!((key["node_count"].as_u64(), key["edge_count"].as_u64()), (Some(2), Some(1)), "delta counts");
    assert_eq!((key["full_node_count"].as_u64(), key["full_edge_count"].as_u64()), (Some(3), Some(2)), "full counts");
    assert_eq!((key["graph_key"].as_str(), key["graph_version"].as_u64()), (Some("orders"), Some(2)));
    assert_eq!(key["export_file"].as_str(), Some(batch.as_str()));
}

#[test]
fn after_many_versions_the_catalog_holds_their_union_and_a_manifest_each() {
    let env = SyncEnv::new();
    let dir = env.path("g");
    let mut expected = BTreeSet::new();
    for v in 1..=5 {
        let nodes: Vec<(String, String)> = (0..4).map(|n| (format!("n{n}"), format!("L{}", if n < v { v } else { 0 }))).collect();
        expected.extend(nodes.iter().map(|(id, label)| (id.clone(), label.clone())));
        let refs: Vec<(&str, &str)> = nodes.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let file = version(&dir, &format!("v{v}.json"), "lineage", &refs, &[("n0", "n1")]);
        let out = env.push(&[file]);
        assert!(out.status.success(), "v{v}: {}", text(&out.stderr));
    }
    let stored: BTreeSet<(String, String)> = env
        .facts("agenticAiETH.ETL.Node.1")
        .iter()
        .map(|f| (f["key"]["id"].as_str().unwrap_or_default().to_owned(), f["key"]["label"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(stored, expected, "Glean keeps every version's facts");
    let versions: Vec<u64> =
        env.facts("agenticAiETH.ETL.ExportManifest.1").iter().filter_map(|f| f["key"]["graph_version"].as_u64()).collect();
    assert_eq!(versions.iter().copied().collect::<BTreeSet<_>>(), (1..=5).collect(), "one manifest per version");
    assert_eq!(versions.len(), 5);
}

#[test]
fn coalesced_writes_keep_each_graphs_versions_in_order() {
    let env = SyncEnv::new();
    let log = env.path("argv.log");
    // A glean slow enough that saves pile up while writes are in flight, so writes coalesce.
    let glean = Wrapper::default().log_argv(&log).only_for("write").delay(Duration::from_millis(250)).write(env.dir.path(), "glean");
    let env = env.with("GLEAN_BIN", &glean.to_string_lossy()).with("GLEAN_REALTIME_WORKERS", "4").with("GLEAN_WRITE_MAX_FILES", "16");
    let dir = env.path("g");
    let mut files = Vec::new();
    for v in 1..=8 {
        for g in 0..10 {
            let label = format!("v{v}");
            files.push(version(&dir, &format!("g{g}-v{v}.json"), &format!("graph{g}"), &[("x", &label)], &[]));
        }
    }
    let out = env.push(&files);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let of_batch: BTreeMap<String, (String, u32)> = text(&out.stdout)
        .lines()
        .filter_map(saved_batch)
        .map(|(graph, batch)| {
            let name = graph.rsplit('/').next().unwrap_or_default().trim_end_matches(".json").to_owned();
            let (g, v) = name.split_once("-v").expect("gN-vM");
            (batch, (g.to_owned(), v.parse().expect("version")))
        })
        .collect();
    assert_eq!(of_batch.len(), 80);
    let mut last: BTreeMap<String, u32> = BTreeMap::new();
    let calls = writes(&log);
    assert!(calls.iter().any(|c| c.len() > 1), "writes were coalesced");
    for call in &calls {
        let graphs: Vec<&String> = call.iter().map(|b| &of_batch[b].0).collect();
        assert_eq!(graphs.iter().collect::<BTreeSet<_>>().len(), graphs.len(), "two versions of one graph in one call: {call:?}");
        for batch in call {
            let (g, v) = &of_batch[batch];
            let previous = last.insert(g.clone(), *v).unwrap_or(0);
            assert!(*v > previous, "{g}: version {v} written after version {previous}");
        }
    }
    assert_eq!(env.manifest_files().len(), 80);
}

#[test]
fn a_new_database_instance_gets_full_batches() {
    let env = SyncEnv::new();
    let v1 = version(&env.path("g"), "v1.json", "orders", &[("a", "A"), ("b", "B")], &[("a", "b")]);
    assert!(env.push(std::slice::from_ref(&v1)).status.success());
    let other = env.clone_with("GLEAN_DB_NAME", "etl/1");
    let out = other.push(&[v1]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.starts_with("saved ") && line.contains("version 1") && !line.contains("facts new"), "a full batch: {line}");
}
