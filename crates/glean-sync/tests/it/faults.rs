//! Delivery under faults: random failures and hangs, poison batches, outages,
//! a full disk, kills at random, shutdown during hangs and backoff.

use crate::test_support::{SyncEnv, Wrapper, graph_files, recorded_argvs, saved_batch, sigterm, text, write_file, written_counts};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the process if it is still running after `limit` (dropping the guard disarms it).
fn kill_after(child: &Child, limit: Duration) -> mpsc::Sender<()> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (disarm, armed) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if armed.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    disarm
}

/// The resident set of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Our batch files in the export directory.
fn batch_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("graph_")).collect())
        .unwrap_or_default()
}

fn half_written(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(".tmp-")).collect())
        .unwrap_or_default()
}

#[test]
fn random_failures_and_hangs_end_with_every_save_ingested_once() {
    let env = SyncEnv::new();
    let written = env.path("written.log");
    let glean = Wrapper::default().only_for("write").random_faults(30, 5).log_written(&written).write(env.dir.path(), "flaky-glean");
    let env = env
        .with("GLEAN_BIN", &glean.to_string_lossy())
        .with("GLEAN_WRITE_TIMEOUT_SECS", "1")
        .with("GLEAN_RETRY_BASE_MS", "20")
        .with("GLEAN_RETRY_MAX_MS", "300")
        .with("GLEAN_MAX_ATTEMPTS", "60")
        .with("GLEAN_REALTIME_WORKERS", "4");
    let files = graph_files(&env.path("graphs"), 2000, 2);
    let out = env.push(&files);
    assert!(out.status.success(), "push: {}", text(&out.stderr));
    let manifests = env.manifest_files();
    assert_eq!(manifests.len(), 2000);
    assert_eq!(manifests.iter().collect::<BTreeSet<_>>().len(), 2000, "each export once in the catalog");
    assert_eq!(env.facts("agenticAiETH.ETL.Node.1").len(), 4000);
    // Exactly once: every batch file was in one successful glean write, no more.
    let writes = written_counts(&written);
    assert_eq!(writes.keys().cloned().collect::<BTreeSet<_>>(), manifests.iter().cloned().collect::<BTreeSet<_>>());
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "batch files written more than once: {twice:?}");
    let status = env.status();
    assert_eq!((status["counts"]["ingested"].as_u64(), status["counts"]["dead"].as_u64()), (Some(2000), Some(0)));
    assert_eq!(status["counts"]["pending"], 0);
    let failed_attempts: u64 = ledger_rows(&env).iter().map(|e| (e.attempts - 1) as u64).sum();
    // The run's stats agree with the ledger: every export ingested, each failed attempt retried.
    let stats = push_stats(&out.stdout);
    assert_eq!((stats["total_exports"].as_u64(), stats["successful_exports"].as_u64()), (Some(2000), Some(2000)), "{stats}");
    assert_eq!(stats["retries"].as_u64(), Some(failed_attempts), "one retry per failed attempt in the ledger: {stats}");
    assert_eq!(stats["failed_exports"].as_u64(), Some(failed_attempts), "{stats}");
    assert_eq!((stats["pending"].as_u64(), stats["dead"].as_u64(), stats["ingested_total"].as_u64()), (Some(0), Some(0), Some(2000)));
    eprintln!("faults: 2000 graphs, {failed_attempts} failed or timed-out attempts retried, 0 lost, 0 duplicated");
}

/// The `stats {...}` line `push` prints at the end.
fn push_stats(stdout: &[u8]) -> serde_json::Value {
    let out = text(stdout);
    let line = out.lines().find_map(|l| l.strip_prefix("stats ")).expect("push prints its stats");
    serde_json::from_str(line).expect("stats are JSON")
}

#[test]
fn a_batch_that_crashes_glean_dies_alone_and_the_others_keep_their_attempts() {
    let env = SyncEnv::new();
    let glean = Wrapper::default().only_for("write").crash_on("poison-marker").write(env.dir.path(), "crashing-glean");
    let env = env
        .with("GLEAN_BIN", &glean.to_string_lossy())
        .with("GLEAN_WRITE_MAX_FILES", "16")
        .with("GLEAN_MAX_ATTEMPTS", "3")
        .with("GLEAN_RETRY_BASE_MS", "10")
        .with("GLEAN_RETRY_MAX_MS", "50");
    let mut files = graph_files(&env.path("graphs"), 30, 2);
    let poison = write_file(&env.path("graphs"), "poison.json", r#"{"graph_id":"p","nodes":[{"id":"poison-marker","type":"column"}]}"#);
    files.insert(9, poison);
    let out = env.clone_with("GLEAN_REALTIME_ENABLE", "false").push(&files);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = env.run(&["drain"]);
    assert_eq!(out.status.code(), Some(1), "drain names the dead export: {}", text(&out.stderr));
    assert_eq!(env.manifest_files().len(), 30, "every good batch is ingested");
    let rows = ledger_rows(&env);
    let (dead, good): (Vec<_>, Vec<_>) = rows.iter().partition(|e| e.graph_key.as_deref() == Some("p"));
    assert_eq!((dead[0].state.as_str(), dead[0].attempts), ("dead", 3), "the crashing batch used its own attempts");
    assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("signal 11"), "{:?}", dead[0].last_error);
    assert!(good.iter().all(|e| e.attempts == 1), "the good batches spent no attempt on the bad one: {good:?}");
}

/// Makes a batch file schema-invalid without changing its size: a `kind` string becomes a number.
fn poison(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read batch");
    let poisoned = text.replacen(r#""kind":"column""#, r#""kind":12345678"#, 1);
    assert_ne!(text, poisoned, "the batch has a column node");
    std::fs::write(path, poisoned).expect("write poisoned batch");
}

#[test]
fn a_poisoned_batch_among_50_good_ones_dies_alone_and_can_be_replayed() {
    for sink in ["cli", "local"] {
        let env = SyncEnv::new().with("GLEAN_SINK", sink).with("GLEAN_WRITE_MAX_FILES", "64");
        let files = graph_files(&env.path("graphs"), 51, 2);
        let out = env.clone_with("GLEAN_REALTIME_ENABLE", "false").push(&files);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let batches: Vec<String> = text(&out.stdout).lines().filter_map(saved_batch).map(|(_, b)| b).collect();
        let victim = env.export_dir().join(&batches[25]);
        let original = std::fs::read(&victim).expect("read");
        poison(&victim);

        let out = env.run(&["drain"]);
        assert_eq!(out.status.code(), Some(1), "{sink}: drain names the dead export: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(&batches[25]), "{sink}: {}", text(&out.stderr));
        assert_eq!(env.manifest_files().len(), 50, "{sink}: the 50 good batches are ingested");
        let status = env.status();
        assert_eq!(status["counts"]["dead"], 1);
        let reason = status["problems"][0]["last_error"].as_str().expect("reason");
        assert!(reason.contains("expected string, got number"), "{sink}: the schema error is the reason: {reason}");

        // The dead letter survives restarts and is replayed once its file is repaired.
        std::fs::write(&victim, original).expect("repair");
        let out = env.run(&["replay", "--dead"]);
        assert!(text(&out.stdout).contains("requeued 1 export(s)"), "{}", text(&out.stdout));
        let out = env.run(&["drain"]);
        assert!(out.status.success(), "{sink}: {}", text(&out.stderr));
        assert_eq!(env.manifest_files().len(), 51);
    }
}

#[test]
fn an_outage_keeps_memory_flat_and_the_backlog_drains_oldest_first() {
    let env = SyncEnv::new();
    let down = env.path("glean-is-down");
    std::fs::write(&down, "").expect("flag");
    let glean = Wrapper::default().only_for("write").down_while(&down).write(env.dir.path(), "outage-glean");
    let env = env.with("GLEAN_BIN", &glean.to_string_lossy()).with("GLEAN_RETRY_BASE_MS", "100").with("GLEAN_RETRY_MAX_MS", "400");
    let files = graph_files(&env.path("graphs"), 1500, 20);
    let (mut child, rx) = env.spawn_push(&files);
    let pid = child.id();
    let mut saved = 0;
    let mut idle = None;
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while saved < files.len() && Instant::now() < deadline {
        if rx.recv_timeout(Duration::from_millis(20)).is_ok_and(|l| l.starts_with("saved ")) {
            saved += 1;
        }
        let rss = rss_kib(pid).unwrap_or(0);
        if saved >= 300 {
            idle.get_or_insert(rss);
            peak = peak.max(rss);
        }
    }
    assert_eq!(saved, files.len(), "every save was taken during the outage");
    let status = env.status();
    assert!(status["counts"]["pending"].as_u64() >= Some(1000), "the backlog is in the ledger: {status}");
    assert_eq!(status["counts"]["dead"], 0, "an outage kills nothing");
    let idle = idle.expect("measured");
    assert!(peak as f64 <= idle as f64 * 1.2, "RSS grew from {idle} KiB to {peak} KiB during the outage");
    eprintln!("outage: RSS {idle} KiB after 300 saves, peak {peak} KiB over {saved} saves with the sink down");

    std::fs::remove_file(&down).expect("the sink returns");
    let exit = child.wait().expect("push ends");
    assert!(exit.success(), "every save ingested once the sink returned");
    let mut exports = ledger_rows(&env);
    assert_eq!(exports.len(), 1500);
    let ingested_at = |e: &glean_sync::ledger::Export| e.ingested_at.expect("ingested");
    let oldest_done = exports[..200].iter().map(ingested_at).max().expect("oldest");
    exports.drain(..exports.len() - 200);
    let newest_done = exports.iter().map(ingested_at).min().expect("newest");
    assert!(oldest_done <= newest_done, "the backlog drained oldest first");
}

/// Every row of the deployment's ledger, oldest first, read through the library.
fn ledger_rows(env: &SyncEnv) -> Vec<glean_sync::ledger::Export> {
    use glean_sync::ledger::{Ledger, Selection, sqlite::SqliteLedger};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let ledger = SqliteLedger::open(&env.path("exports/.glean-sync/ledger.sqlite")).await.expect("ledger");
        ledger.list(&Selection::default()).await.expect("rows")
    })
}

/// A 16 MiB tmpfs mounted on `dir` (root only); `None` when mounting is not allowed here.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"]).arg(dir).status().ok()?.success();
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_saves_cleanly_and_they_work_again_when_space_returns() {
    let env = SyncEnv::new();
    let graphs = graph_files(&env.path("graphs"), 80, 60);
    let Some(_fs) = Tmpfs::mount(&env.export_dir()) else {
        eprintln!("mount is not allowed here: checking an unwritable export directory instead");
        return unwritable_export_dir(&env, &graphs);
    };
    // Fill the small disk but for room for the ledger and a few batch files.
    let out = env.run(&["status"]);
    assert!(out.status.success(), "the ledger opens on the small disk: {}", text(&out.stderr));
    let filler = env.export_dir().join("filler");
    let free = nix::sys::statvfs::statvfs(&env.export_dir()).map(|s| s.blocks_available() * s.fragment_size()).expect("statvfs");
    std::fs::write(&filler, vec![0u8; (free as usize).saturating_sub(160 * 1024)]).expect("filler");

    // One running push: saves fail while the disk is full; space returns at the first failure.
    let mut child = env.command(&["push"]).args(&graphs).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("push");
    let watchdog = kill_after(&child, Duration::from_secs(120));
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let mut failures = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        if line.starts_with("not saved") {
            if failures.is_empty() {
                std::fs::remove_file(&filler).expect("space returns");
            }
            failures.push(line);
        }
    }
    let exit = child.wait().expect("push ends");
    drop(watchdog);
    let saved: Vec<(String, String)> = reader.join().expect("stdout").lines().filter_map(saved_batch).collect();
    assert_eq!(exit.code(), Some(1), "push reports the failed saves (not killed by the watchdog)");
    assert!(!failures.is_empty(), "the disk did fill up");
    assert!(failures.iter().all(|l| l.contains("No space left on device") || l.contains("disk is full")), "a clear error: {failures:?}");
    assert!(saved.last().is_some_and(|(g, _)| *g == graphs[79].to_string_lossy()), "saves work again once space returns");
    assert_eq!(saved.len() + failures.len(), 80, "every graph was saved or refused");

    assert!(half_written(&env.export_dir()).is_empty(), "nothing half-written is left");
    let on_disk = batch_files(&env.export_dir());
    let acknowledged: BTreeSet<String> = saved.into_iter().map(|(_, b)| b).collect();
    assert_eq!(on_disk, acknowledged, "a batch file for each save that succeeded, and no other");
    let status = env.status();
    assert_eq!(status["counts"]["ingested"].as_u64(), Some(on_disk.len() as u64), "one ledger row per batch file, all ingested");
}

/// Without mount: the export directory disappears (replaced by a file), then comes back.
fn unwritable_export_dir(env: &SyncEnv, graphs: &[PathBuf]) {
    let dir = env.export_dir();
    let out = env.push(&graphs[..1]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kept = env.path("exports-kept");
    std::fs::rename(&dir, &kept).expect("move the export dir away");
    std::fs::write(&dir, "not a directory").expect("a file in its place");
    let out = env.push(&graphs[1..3]);
    assert!(!out.status.success(), "saves fail");
    assert!(
        text(&out.stderr).contains("GLEAN_EXPORT_DIR") || text(&out.stderr).contains("cannot write batch file"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&dir).expect("remove the file");
    std::fs::rename(&kept, &dir).expect("the directory returns");
    let out = env.push(&graphs[3..5]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Kills and restarts: every acknowledged save is in the catalog once, and no batch file is unaccounted for.
#[test]
fn chaos_kill_9_at_random_loses_nothing() {
    let saves: usize = std::env::var("GLEAN_SYNC_CHAOS_SAVES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let kills: usize = std::env::var("GLEAN_SYNC_CHAOS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let env = SyncEnv::new();
    let log = env.path("argv.log");
    let glean = Wrapper::default().log_argv(&log).only_for("write").delay(Duration::from_millis(20)).write(env.dir.path(), "glean");
    let env = env.with("GLEAN_BIN", &glean.to_string_lossy());
    let files = graph_files(&env.path("graphs"), saves, 2);
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut acked_graphs: BTreeSet<String> = BTreeSet::new();
    let started = Instant::now();
    for round in 0..kills {
        let remaining: Vec<PathBuf> = files.iter().filter(|f| !acked_graphs.contains(&*f.to_string_lossy())).cloned().collect();
        let (mut child, rx) = env.spawn_push(&remaining);
        // Let it run for a random share of the remaining saves, then kill it.
        let target = acked.len() + (remaining.len() / (kills - round + 1)).max(1) * (50 + rand::random_range(0..50)) / 100;
        while acked.len() < target {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some((graph, batch)) = saved_batch(&line) {
                        acked.insert(batch);
                        acked_graphs.insert(env.path(&graph).to_string_lossy().into_owned());
                    }
                }
                Err(_) => break,
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        for line in rx.try_iter() {
            if let Some((graph, batch)) = saved_batch(&line) {
                acked.insert(batch);
                acked_graphs.insert(env.path(&graph).to_string_lossy().into_owned());
            }
        }
    }
    let remaining: Vec<PathBuf> = files.iter().filter(|f| !acked_graphs.contains(&*f.to_string_lossy())).cloned().collect();
    if !remaining.is_empty() {
        let out = env.push(&remaining);
        assert!(out.status.success(), "{}", text(&out.stderr));
        acked.extend(text(&out.stdout).lines().filter_map(saved_batch).map(|(_, b)| b));
    }
    let out = env.run(&["drain"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let manifests = env.manifest_files();
    let in_catalog: BTreeSet<String> = manifests.iter().cloned().collect();
    assert_eq!(in_catalog.len(), manifests.len(), "no export is in the catalog twice");
    let lost: Vec<&String> = acked.difference(&in_catalog).collect();
    assert!(lost.is_empty(), "acknowledged saves missing from the catalog: {lost:?}");
    let on_disk = batch_files(&env.export_dir());
    assert_eq!(on_disk, in_catalog, "every batch file in the export dir was ingested, and nothing else");
    assert!(half_written(&env.export_dir()).is_empty(), "no half-written file is left");
    let status = env.status();
    assert_eq!(status["counts"]["ingested"].as_u64(), Some(on_disk.len() as u64), "stats equal the ledger and the catalog");
    let writes = recorded_argvs(&log).iter().filter(|a| a.first().map(String::as_str) == Some("write")).count();
    eprintln!(
        "chaos: {saves} graphs, {kills} kills, {} acknowledged saves, {} batch files, {writes} glean writes, {:.1} s",
        acked.len(),
        on_disk.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn shutdown_during_a_hung_write_ends_within_the_timeout_and_keeps_the_export() {
    let env = SyncEnv::new();
    let pids = env.path("pids");
    let hang = Wrapper::default().only_for("write").hang_with_child(&pids).write(env.dir.path(), "hang-glean");
    let env =
        env.with("GLEAN_BIN", &hang.to_string_lossy()).with("GLEAN_WRITE_TIMEOUT_SECS", "600").with("GLEAN_SHUTDOWN_TIMEOUT_SECS", "2");
    let files = graph_files(&env.path("graphs"), 1, 2);
    let (mut child, _rx) = env.spawn_push(&files);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pids.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pids.exists(), "the write started");
    let asked = Instant::now();
    sigterm(&child);
    child.wait().expect("push exits");
    let took = asked.elapsed();
    // Within the timeout, give or take the process's own exit.
    assert!(took < Duration::from_millis(2500), "shutdown took {took:?} with a 2 s timeout");
    let (wrapper, sleeper) = crate::test_support::read_pids(&pids);
    for pid in [wrapper, sleeper] {
        assert_eq!(crate::test_support::process_state(pid), None, "the hung write {pid} was killed");
    }
    let status = env.status();
    assert_eq!((status["counts"]["pending"].as_u64(), status["counts"]["in_flight"].as_u64()), (Some(1), Some(0)), "{status}");
}

#[test]
fn shutdown_during_backoff_is_immediate() {
    let env = SyncEnv::new();
    let failing = Wrapper::default().only_for("write").stderr("injected failure").exit(1).write(env.dir.path(), "failing-glean");
    let env = env.with("GLEAN_BIN", &failing.to_string_lossy()).with("GLEAN_RETRY_BASE_MS", "60000").with("GLEAN_RETRY_MAX_MS", "60000");
    let files = graph_files(&env.path("graphs"), 1, 2);
    let (mut child, _rx) = env.spawn_push(&files);
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.status()["counts"]["failed"] != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.status()["counts"]["failed"], 1, "the export waits for its retry");
    let asked = Instant::now();
    sigterm(&child);
    child.wait().expect("push exits");
    assert!(asked.elapsed() < Duration::from_secs(3), "shutdown waited for a backoff: {:?}", asked.elapsed());
    let status = env.status();
    assert_eq!(status["counts"]["failed"], 1, "the retry is still scheduled for the next start");
    assert!(status["problems"][0]["last_error"].as_str().unwrap_or_default().contains("injected failure"));
}
