//! The synchronizer end to end: bursts, kills, hangs, batch mode, shutdown, configuration errors.

use crate::test_support::{SyncEnv, Wrapper, graph_files, process_state, read_pids, recorded_argvs, saved_batch, sigterm, text};
use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Batch files named in push's `saved ...` lines.
fn saved_files(lines: &str) -> BTreeSet<String> {
    lines.lines().filter_map(saved_batch).map(|(_, batch)| batch).collect()
}

/// Collects lines until `enough` of them are saves (or the deadline passes).
fn wait_for_saves(rx: &mpsc::Receiver<String>, enough: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = String::new();
    while saved_files(&lines).len() < enough && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push_str(&l);
            lines.push('\n');
        }
    }
    lines
}

#[test]
fn a_burst_of_1000_saves_is_ingested_exactly_once() {
    let env = SyncEnv::new();
    let log = env.path("argv.log");
    let wrapper = Wrapper::default().log_argv(&log).write(env.dir.path(), "glean");
    let env = env.with("GLEAN_BIN", &wrapper.to_string_lossy());
    let files = graph_files(&env.path("graphs"), 1000, 5);
    let out = env.push(&files);
    assert!(out.status.success(), "push failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1000 of 1000 graph(s) ingested into etl/0"), "{}", text(&out.stdout));

    let saved = saved_files(&text(&out.stdout));
    assert_eq!(saved.len(), 1000, "every save got its own batch file");
    let manifests: BTreeSet<String> = env.manifest_files().into_iter().collect();
    assert_eq!(manifests, saved, "one manifest per saved graph in the catalog");
    assert_eq!(env.facts("agenticAiETH.ETL.Node.1").len(), 5000);

    // Exactly once: each batch file was handed to `glean write` once.
    let written: Vec<String> = recorded_argvs(&log)
        .into_iter()
        .filter(|argv| argv.first().map(String::as_str) == Some("write"))
        .flat_map(|argv| argv.into_iter().filter(|a| a.ends_with(".json")))
        .filter_map(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(written.len(), 1000, "no batch was written twice");
    assert_eq!(written.into_iter().collect::<BTreeSet<_>>(), saved);

    let status = env.status();
    assert_eq!(status["counts"]["ingested"], 1000);
    assert_eq!(status["counts"]["pending"], 0);
    assert_eq!(status["counts"]["dead"], 0);
}

#[test]
fn every_acknowledged_save_survives_kill_9() {
    let env = SyncEnv::new();
    let slow = Wrapper::default().only_for("write").delay(Duration::from_millis(300)).write(env.dir.path(), "slow-glean");
    let files = graph_files(&env.path("graphs"), 400, 3);
    let (mut child, rx) = env.clone_with("GLEAN_BIN", &slow.to_string_lossy()).spawn_push(&files);
    let mut lines = wait_for_saves(&rx, 150);
    child.kill().expect("SIGKILL push");
    child.wait().expect("reap push");
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push_str(&l);
        lines.push('\n');
    }
    let acknowledged = saved_files(&lines);
    assert!(acknowledged.len() >= 150, "the burst was killed in the middle");

    let out = env.run(&["drain"]);
    assert!(out.status.success(), "drain: {}", text(&out.stderr));
    let manifests: BTreeSet<String> = env.manifest_files().into_iter().collect();
    let lost: Vec<_> = acknowledged.difference(&manifests).collect();
    assert!(lost.is_empty(), "acknowledged saves lost after kill -9: {lost:?}");
    assert_eq!(env.status()["counts"]["pending"], 0);
}

#[test]
fn a_hanging_glean_is_killed_with_its_child_and_the_export_recorded() {
    let env = SyncEnv::new();
    let pids = env.path("pids");
    let hang = Wrapper::default().only_for("write").hang_with_child(&pids).write(env.dir.path(), "hang-glean");
    let env = env.with("GLEAN_BIN", &hang.to_string_lossy()).with("GLEAN_WRITE_TIMEOUT_SECS", "1").with("GLEAN_MAX_ATTEMPTS", "1");
    let files = graph_files(&env.path("graphs"), 1, 2);
    let started = Instant::now();
    let out = env.push(&files);
    assert!(!out.status.success(), "a killed write is a failure");
    assert!(started.elapsed() < Duration::from_secs(20), "the hang was cut short");
    let (wrapper_pid, child_pid) = read_pids(&pids);
    for pid in [wrapper_pid, child_pid] {
        assert_eq!(process_state(pid), None, "process {pid} of the killed group is still there");
    }
    let status = env.status();
    assert_eq!(status["counts"]["dead"], 1);
    let reason = status["problems"][0]["last_error"].as_str().expect("reason recorded");
    assert!(reason.contains("timed out"), "{reason}");
}

#[test]
fn batch_mode_writes_files_and_never_runs_glean() {
    let env = SyncEnv::new();
    let log = env.path("argv.log");
    let spy = Wrapper::default().log_argv(&log).write(env.dir.path(), "spy-glean");
    let batch = env.clone_with("GLEAN_BIN", &spy.to_string_lossy()).with("GLEAN_REALTIME_ENABLE", "false");
    let files = graph_files(&env.path("graphs"), 5, 2);
    let out = batch.push(&files);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("batch mode"), "{}", text(&out.stdout));
    assert!(!log.exists(), "glean must not run in batch mode");
    let batch_files = std::fs::read_dir(env.export_dir())
        .expect("export dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("graph_")));
    assert_eq!(batch_files.count(), 5);
    assert_eq!(env.status()["counts"]["pending"], 5);

    // Later, drain delivers the backlog.
    let out = env.run(&["drain"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.manifest_files().len(), 5);
}

#[test]
fn shutdown_lets_writes_in_flight_finish_and_leaves_the_rest_pending() {
    let env = SyncEnv::new();
    let slow = Wrapper::default().only_for("write").delay(Duration::from_secs(2)).write(env.dir.path(), "slow-glean");
    let slow_env = env.clone_with("GLEAN_BIN", &slow.to_string_lossy()).with("GLEAN_WRITE_MAX_FILES", "1");
    let files = graph_files(&env.path("graphs"), 20, 2);
    let (mut child, rx) = slow_env.spawn_push(&files);
    let lines = wait_for_saves(&rx, 20);
    assert_eq!(saved_files(&lines).len(), 20);
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&child);
    let status = child.wait().expect("push exits");
    assert_eq!(status.code(), Some(130), "interrupted push says so");
    let ingested = env.manifest_files().len();
    assert!(ingested >= 2, "the two writes in flight finished ({ingested} ingested)");
    assert!(ingested < 20, "shutdown did not wait for the whole backlog");
    assert_eq!(env.status()["counts"]["in_flight"], 0, "nothing is left claimed");

    let out = env.run(&["drain"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.manifest_files().len(), 20);
}

#[test]
fn configuration_errors_name_the_variable() {
    let env = SyncEnv::new();
    let cases = [
        ("GLEAN_REALTIME_WORKERS", "4x"),
        ("GLEAN_REALTIME_ENABLE", "maybe"),
        ("GLEAN_SINK", "nfs"),
        ("GLEAN_QUEUE_CAPACITY", "0"),
        ("GLEAN_WRITE_TIMEOUT_SECS", "soon"),
        ("GLEAN_DB_NAME", "etl/a.b"),
    ];
    for (var, value) in cases {
        let out = env.clone_with(var, value).run(&["status"]);
        assert!(!out.status.success(), "{var}={value} accepted");
        assert!(text(&out.stderr).contains(var), "{var}={value}: {}", text(&out.stderr));
    }
    let out = env.command(&["status"]).env_remove("GLEAN_DB_NAME").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("GLEAN_DB_NAME is required when GLEAN_REALTIME_ENABLE=true"), "{}", text(&out.stderr));
    let out = env.clone_with("GLEAN_PREDICATE_PREFIX", "acme.Lineage").run(&["status"]);
    assert!(text(&out.stderr).contains("glean-sync schema --prefix acme.Lineage"), "{}", text(&out.stderr));
}

#[test]
fn auto_sink_falls_back_to_the_embedded_catalog() {
    let env = SyncEnv::new().with("GLEAN_SINK", "auto").with("GLEAN_BIN", "/nonexistent/glean");
    let files = graph_files(&env.path("graphs"), 3, 2);
    let out = env.push(&files);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.manifest_files().len(), 3, "written through the local sink");
}
