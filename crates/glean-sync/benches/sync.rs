//! glean-sync benchmark: prints a table of numbers (it asserts no speed).
//!
//! `cargo build --release --workspace && cargo bench -p glean-sync --bench sync`
//! Sections (select with `SYNC_BENCH=save,big,e2e`):
//! - save: save latency p50/p99, 8 concurrent producers, graphs of 50 nodes (2,000 saves, long
//!   enough for the workers' delivery to run beside them; back to back, then paced at 400
//!   saves/s, under half of what the machine takes) and of 10,000 nodes;
//! - big: decode + encode + durable write of a 1,000,000-node, 1,000,000-edge graph: time, MB/s, peak RSS;
//! - e2e: graphs/s end to end, 2 workers, a glean costing 50 ms per call, coalescing on and off
//!   (8 producers saving concurrently; coalescing on also with 1 producer, bound by save latency);
//! - delta: re-save of a 100,000-node graph with 1% of nodes changed, delta vs full;
//! - visible: save-to-visible latency at 10 graphs/s with a 50 ms glean;
//! - http: `POST /knowledge-graph` requests/s and latency, 16 concurrent clients, server peak RSS
//!   and CPU per request (`SYNC_BENCH_HTTP_SECS` long, 10 by default; `SYNC_BENCH_SERVER`
//!   names another `glean-sync` binary to measure);
//! - cluster: graphs/s of 1, 2 and 3 `glean-sync drain` nodes on one PostgreSQL ledger, and
//!   claim latency under contention (needs `GLEAN_SYNC_TEST_DATABASE_URL`; not run by default).
//!
//! Deleting thousands of files makes ext4 (without a journal, as here) slow to create files
//! for the next few minutes: measured, 20 us per create before, 400-500 us from 30 s to 1 min
//! after, 100 us at 2 min, normal at 4 min. So runs compared back to back should not follow
//! a deletion: `SYNC_BENCH_KEEP=1` keeps each run's data (the directory is printed).

#[path = "../src/test_support.rs"]
mod test_support;

use glean_sync::batch::{BatchDir, Compression, Predicates};
use glean_sync::config::ExporterConfig;
use glean_sync::exporter::{Exporter, Parts, RetryPolicy};
use glean_sync::graph::Graph;
use glean_sync::ledger::postgres::PgLedger;
use glean_sync::ledger::sqlite::SqliteLedger;
use glean_sync::ledger::{Ledger, NewExport, Outcome};
use glean_sync::sink::Sink;
use glean_sync::sink::cli::{CliSink, CliSinkConfig, Target};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::{PgSchema, SyncEnv, TEST_DB, Wrapper, graph_files, schema_dir};

fn exporter_config(workers: usize, max_files: usize) -> ExporterConfig {
    ExporterConfig {
        workers,
        queue_capacity: 100,
        max_files,
        lease: Duration::from_secs(300),
        retry: RetryPolicy::default(),
        shutdown_timeout: Duration::from_secs(30),
    }
}

/// A glean that costs 50 ms per call, as its caller sees it: glean-local's own work, then a
/// sleep for the rest, less the wrapper's own overhead (measured once).
fn slow_glean(dir: &Path) -> std::path::PathBuf {
    Wrapper::default().costing(Duration::from_millis(50).saturating_sub(wrapper_overhead())).write(dir, "glean-50ms")
}

/// A directory for a run's data: removed after it unless `SYNC_BENCH_KEEP` is set.
fn data_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("SYNC_BENCH_KEEP").is_some();
    let dir = tempfile::Builder::new().prefix("sync-bench-").disable_cleanup(keep).tempdir().expect("tempdir");
    if keep {
        eprintln!("run data kept in {}", dir.path().display());
    }
    dir
}

/// What a costing wrapper adds to the cost it is given, as its caller sees it (the median of
/// 21 calls): its shell's start and exit and the `sleep` it runs, which it cannot time itself.
fn wrapper_overhead() -> Duration {
    const ASKED: Duration = Duration::from_millis(20);
    static OVERHEAD: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        let dir = data_dir();
        let wrapper = Wrapper::default().costing(ASKED).write(dir.path(), "calibrate");
        let mut runs: Vec<Duration> = (0..21)
            .map(|_| {
                let t = Instant::now();
                std::process::Command::new(&wrapper).arg("--help").output().expect("run the wrapper");
                t.elapsed()
            })
            .collect();
        runs.sort();
        runs[runs.len() / 2].saturating_sub(ASKED)
    })
}

async fn start(dir: &Path, realtime: bool, workers: usize, max_files: usize) -> Exporter {
    let ledger = SqliteLedger::open(&dir.join("state/ledger.sqlite")).await.expect("ledger");
    let sink: Option<Arc<dyn Sink>> = realtime.then(|| {
        Arc::new(
            CliSink::new(CliSinkConfig {
                program: slow_glean(dir),
                db: TEST_DB.into(),
                target: Target::DbRoot(dir.join("db")),
                schema_dir: schema_dir(dir),
                timeout: Duration::from_secs(60),
            })
            .expect("sink"),
        ) as Arc<dyn Sink>
    });
    Exporter::start(Parts {
        ledger: Arc::new(ledger),
        sink,
        batches: BatchDir::new(&dir.join("exports"), Compression::None).expect("export dir"),
        predicates: Predicates::new("agenticAiETH.ETL"),
        config: exporter_config(workers, max_files),
        owner: "bench".into(),
        db: TEST_DB.into(),
    })
    .await
    .expect("exporter")
}

fn graph_json(id: &str, nodes: usize) -> String {
    let mut s = format!(r#"{{"graph_id":"{id}","project_id":"bench","system_id":"s","nodes":["#);
    for n in 0..nodes {
        if n > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":"{id}-n{n}","type":"column","label":"col_{n}","props":{{"table":"t{}","type":"bigint","n":{n}}}}}"#,
            n / 20
        ));
    }
    s.push_str(r#"],"edges":["#);
    for n in 1..nodes {
        if n > 1 {
            s.push(',');
        }
        s.push_str(&format!(r#"{{"source":"{id}-n{}","target":"{id}-n{n}","label":"NEXT"}}"#, n - 1));
    }
    s.push_str("]}");
    s
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn row(measure: &str, value: &str, target: &str) {
    println!("| {measure:<48} | {value:<28} | {target:<22} |");
}

/// Save latency as producers see it: 8 tasks saving concurrently while the workers deliver,
/// back to back (`pace` None: as many as the machine takes) or `pace` saves a second between
/// them. A paced save that starts late, because the producer's last save overran, is timed
/// from when it was due, so the wait counts.
async fn save_latency(nodes: usize, per_producer: usize, pace: Option<f64>) {
    const PRODUCERS: usize = 8;
    let dir = data_dir();
    let exp = start(dir.path(), true, 2, 16).await;
    let graphs: Vec<Vec<Graph>> = (0..PRODUCERS)
        .map(|p| (0..per_producer).map(|i| Graph::from_json(graph_json(&format!("p{p}g{i}"), nodes).as_bytes()).expect("graph")).collect())
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (p, batch) in graphs.into_iter().enumerate() {
        let exp = exp.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for (i, g) in batch.into_iter().enumerate() {
                let due = match pace {
                    None => Instant::now(),
                    Some(rate) => {
                        let due = started + Duration::from_secs_f64((i * PRODUCERS + p) as f64 / rate);
                        // Late because the last save overran: its wait counts. On time: from
                        // the wake-up, as the timer wakes up to a millisecond after `due`.
                        let overran = Instant::now() >= due;
                        tokio::time::sleep_until(due.into()).await;
                        if overran { due } else { Instant::now() }
                    }
                };
                exp.save(g).await.expect("save");
                lat.push(due.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("producer"));
    }
    let wall = started.elapsed();
    all.sort();
    let stats = exp.stats().await.expect("stats");
    let how = pace.map_or_else(|| "8 producers".to_owned(), |rate| format!("8 paced, {rate:.0}/s"));
    row(&format!("save latency, {nodes}-node graphs, {how}: p50"), &ms(percentile(&all, 0.5)), "");
    row(
        &format!("save latency, {nodes}-node graphs, {how}: p99"),
        &ms(percentile(&all, 0.99)),
        if nodes == 50 { "p99 < 5 ms" } else { "" },
    );
    row(
        &format!("  saves ({nodes}-node graphs) and saves/s"),
        &format!("{} in {:.2} s = {:.0}/s", all.len(), wall.as_secs_f64(), all.len() as f64 / wall.as_secs_f64()),
        "",
    );
    row(&format!("  dropped ({nodes}-node graphs)"), &format!("{}", all.len() as u64 - stats.total_exports), "0");
    exp.shutdown().await;
}

/// User plus system CPU time a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64
}

fn peak_rss_reset() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// The million-node graph: decode, encode and write durably.
async fn big_graph() {
    let dir = data_dir();
    let n: usize = std::env::var("SYNC_BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let path = dir.path().join("big.json");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        write!(f, r#"{{"graph_id":"big","nodes":["#).expect("write");
        for i in 0..n {
            let sep = if i > 0 { "," } else { "" };
            write!(f, r#"{sep}{{"id":"n{i}","type":"column","label":"column_{i}","props":{{"table":"t{}","type":"varchar"}}}}"#, i / 50)
                .expect("write");
        }
        write!(f, r#"],"edges":["#).expect("write");
        for i in 0..n {
            let sep = if i > 0 { "," } else { "" };
            write!(f, r#"{sep}{{"source_id":"n{i}","target_id":"n{}","type":"REFERENCES"}}"#, (i * 7 + 1) % n).expect("write");
        }
        write!(f, "]}}").expect("write");
    }
    let json_mib = std::fs::metadata(&path).expect("size").len() as f64 / 1048576.0;
    let exp = start(dir.path(), false, 1, 1).await;
    peak_rss_reset();
    let t = Instant::now();
    let graph = Graph::from_reader(std::fs::File::open(&path).expect("open")).expect("decode");
    let decoded = t.elapsed();
    let receipt = exp.save(graph).await.expect("save");
    let total = t.elapsed();
    let rss = peak_rss_mib();
    let out_mib = std::fs::metadata(dir.path().join("exports").join(&receipt.batch_file)).expect("batch").len() as f64 / 1048576.0;
    row(&format!("{n} nodes + {n} edges: graph JSON"), &format!("{json_mib:.0} MiB"), "");
    row("  decode + validate", &format!("{:.2} s", decoded.as_secs_f64()), "");
    row(
        "  encode + durable write (save)",
        &format!("{:.2} s, {:.0} MiB/s out", (total - decoded).as_secs_f64(), out_mib / (total - decoded).as_secs_f64()),
        "",
    );
    row("  total, and input MiB/s", &format!("{:.2} s, {:.0} MiB/s", total.as_secs_f64(), json_mib / total.as_secs_f64()), "< 5 s");
    row("  batch file", &format!("{out_mib:.0} MiB"), "");
    row("  peak RSS (and x JSON size)", &format!("{rss:.0} MiB ({:.2}x)", rss / json_mib), "< 3x JSON size");
    exp.shutdown().await;
}

/// Graphs per second end to end with a 50 ms glean, `producers` tasks saving concurrently.
async fn end_to_end(max_files: usize, graphs: usize, producers: usize) -> f64 {
    let dir = data_dir();
    let exp = start(dir.path(), true, 2, max_files).await;
    let mut parsed: Vec<Vec<Graph>> = (0..producers).map(|_| Vec::new()).collect();
    for i in 0..graphs {
        parsed[i % producers].push(Graph::from_json(graph_json(&format!("g{i}"), 50).as_bytes()).expect("graph"));
    }
    let started = Instant::now();
    let tasks: Vec<_> = parsed
        .into_iter()
        .map(|share| {
            let exp = exp.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for g in share {
                    ids.push(exp.save(g).await.expect("save").export_id);
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.expect("producer"));
    }
    let done = exp.wait_for(&ids, |_| {}).await.expect("wait");
    let wall = started.elapsed();
    assert!(done.iter().all(|e| e.state == glean_sync::ledger::ExportState::Ingested));
    exp.shutdown().await;
    graphs as f64 / wall.as_secs_f64()
}

/// What one call of the 50 ms glean really costs (spawn, sleep, glean-local).
async fn glean_call_cost() -> Duration {
    let dir = data_dir();
    let glean = slow_glean(dir.path());
    let mut samples = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let _ = tokio::process::Command::new(&glean).arg("--help").output().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    percentile(&samples, 0.5)
}

/// `glean-sync serve` (release build) under 16 concurrent clients posting 50-node graphs.
fn http_load() {
    let dir = data_dir();
    // Another build of the server can be measured against this one (A/B on a noisy machine).
    let server = std::env::var_os("SYNC_BENCH_SERVER").unwrap_or_else(|| env!("CARGO_BIN_EXE_glean-sync").into());
    let mut child = std::process::Command::new(server)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs([
            ("GLEAN_REALTIME_ENABLE", "true"),
            ("GLEAN_DB_NAME", "etl/0"),
            ("GLEAN_SINK", "local"),
            ("GLEAN_SYNC_LISTEN", "127.0.0.1:0"),
            ("RUST_LOG", "warn"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let addr = lines.by_ref().map_while(Result::ok).find_map(|l| l.strip_prefix("listening on ").map(str::to_owned)).expect("address");
    std::thread::spawn(move || lines.for_each(drop));
    let url = format!("http://{addr}/knowledge-graph");
    let secs: u64 = std::env::var("SYNC_BENCH_HTTP_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let pid = child.id();
    let cpu_before = cpu_seconds(pid);
    let sampler = std::thread::spawn(move || {
        let mut peak = 0u64;
        while Instant::now() < deadline {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss =
                status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(rss.unwrap_or(0));
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    });
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut lat = Vec::new();
                let mut errors = 0;
                for i in 0.. {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let body = graph_json(&format!("c{c}-{i}"), 50);
                    let t = Instant::now();
                    match agent.post(&url).header("content-type", "application/json").send(&body) {
                        Ok(r) if r.status() == 202 => lat.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for c in clients {
        let (lat, e) = c.join().expect("client");
        all.extend(lat);
        errors += e;
    }
    let peak_kib = sampler.join().expect("sampler");
    let cpu = cpu_seconds(pid) - cpu_before;
    all.sort();
    row(
        "POST /knowledge-graph, 16 clients: requests/s",
        &format!("{:.0} ({} in {secs} s, {errors} errors)", all.len() as f64 / secs as f64, all.len()),
        ">= 2000",
    );
    row("  latency p50", &ms(percentile(&all, 0.5)), "");
    row("  latency p99", &ms(percentile(&all, 0.99)), "< 20 ms");
    row("  server peak RSS", &format!("{:.0} MiB", peak_kib as f64 / 1024.0), "");
    // Steadier than requests/s on a shared machine: what one request costs the server.
    row("  server CPU per request (incl. delivery)", &format!("{:.3} ms", cpu * 1000.0 / all.len().max(1) as f64), "");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
}

/// Re-save of a 100,000-node graph with 1% of its nodes changed: delta against full.
async fn delta_resave() {
    let n: usize = std::env::var("SYNC_BENCH_DELTA_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let nodes = |changed: usize| -> String {
        let mut s = String::from(r#"{"graph_id":"big-delta","nodes":["#);
        for i in 0..n {
            let label = if i < changed { format!("v2_{i}") } else { format!("column_{i}") };
            s.push_str(&format!(
                r#"{}{{"id":"n{i}","type":"column","label":"{label}","props":{{"table":"t{}"}}}}"#,
                if i > 0 { "," } else { "" },
                i / 100
            ));
        }
        s.push_str("]}");
        s
    };
    let dir = data_dir();
    let exp = start(dir.path(), true, 2, 16).await;
    let v1 = Graph::from_json(nodes(0).as_bytes()).expect("graph");
    let t = Instant::now();
    let r1 = exp.save(v1).await.expect("save v1");
    let full_time = t.elapsed();
    exp.wait_for(&[r1.export_id], |_| {}).await.expect("v1 ingested");
    let v2 = Graph::from_json(nodes(n / 100).as_bytes()).expect("graph");
    let t = Instant::now();
    let r2 = exp.save(v2).await.expect("save v2");
    let delta_time = t.elapsed();
    let size = |name: &str| std::fs::metadata(dir.path().join("exports").join(name)).map(|m| m.len()).unwrap_or(0);
    let (full, delta) = (size(&r1.batch_file), size(&r2.batch_file));
    row(&format!("re-save, {n} nodes, 1% changed: full batch"), &format!("{full} bytes, saved in {}", ms(full_time)), "");
    row("  delta batch", &format!("{delta} bytes ({} nodes), saved in {}", r2.node_count, ms(delta_time)), "");
    row("  delta / full bytes", &format!("{:.2}%", delta as f64 * 100.0 / full as f64), "< 2%");
    exp.shutdown().await;
}

/// Save-to-visible latency (until the manifest can be queried) at 10 graphs/s with a 50 ms glean.
async fn visible_latency() {
    let dir = data_dir();
    let exp = start(dir.path(), true, 2, 16).await;
    let mut lat = Vec::new();
    let mut events = exp.subscribe();
    for i in 0..100 {
        let tick = Instant::now();
        let r = exp.save(Graph::from_json(graph_json(&format!("v{i}"), 50).as_bytes()).expect("graph")).await.expect("save");
        loop {
            match events.recv().await {
                Ok(c) if c.id == r.export_id => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        lat.push(tick.elapsed());
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed())).await;
    }
    lat.sort();
    row("save to visible, 10 graphs/s, 50 ms glean: p50", &ms(percentile(&lat, 0.5)), "< 60 ms");
    row("  p99", &ms(percentile(&lat, 0.99)), "");
    exp.shutdown().await;
}

/// Seconds for `nodes` `glean-sync drain` processes sharing one PostgreSQL ledger to deliver
/// a backlog of `graphs` 50-node graphs saved beforehand in batch mode (2 workers each, 50 ms glean).
fn cluster_drain(nodes: usize, graphs: usize, max_files: usize) -> Option<f64> {
    let schema = PgSchema::from_env("cluster benchmark")?;
    let first = SyncEnv::new();
    let glean = slow_glean(first.dir.path());
    let db_root = first.db_root().to_string_lossy().into_owned();
    let envs: Vec<SyncEnv> = std::iter::once(first)
        .chain((1..nodes).map(|_| SyncEnv::new()))
        .map(|env| {
            env.with("GLEAN_SYNC_DATABASE_URL", &schema.url)
                .with("GLEAN_SYNC_DATABASE_SCHEMA", &schema.name)
                .with("GLEAN_DB_ROOT", &db_root)
                .with("GLEAN_BIN", &glean.to_string_lossy())
                .with("GLEAN_REALTIME_WORKERS", "2")
                .with("GLEAN_WRITE_MAX_FILES", &max_files.to_string())
        })
        .collect();
    let files = graph_files(&envs[0].path("graphs"), graphs, 50);
    let saved = envs[0].clone_with("GLEAN_REALTIME_ENABLE", "false").push(&files);
    assert!(saved.status.success(), "batch-mode push: {}", test_support::text(&saved.stderr));
    let started = Instant::now();
    let drains: Vec<_> =
        envs.iter().map(|env| env.command(&["drain"]).stdout(std::process::Stdio::null()).spawn().expect("drain")).collect();
    for mut drain in drains {
        assert!(drain.wait().expect("drain ends").success(), "drain delivered everything");
    }
    let took = started.elapsed();
    assert_eq!(envs[0].status()["counts"]["ingested"].as_u64(), Some(graphs as u64), "each graph ingested once");
    Some(graphs as f64 / took.as_secs_f64())
}

/// The cluster table: graphs/s of 1, 2 and 3 nodes and the ratio to one node.
fn cluster() {
    let graphs: usize = std::env::var("SYNC_BENCH_CLUSTER_GRAPHS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    for (max_files, graphs) in [(16, graphs), (1, graphs / 5)] {
        let mut one = None;
        for nodes in 1..=3 {
            let Some(rate) = cluster_drain(nodes, graphs, max_files) else { return };
            let base = *one.get_or_insert(rate);
            row(
                &format!("cluster, {nodes} node(s), {max_files} file(s) per call"),
                &format!("{rate:.0} graphs/s ({:.2}x)", rate / base),
                if nodes == 3 { ">= 2.5x one node" } else { "" },
            );
        }
    }
}

/// Claim latency under contention: 6 claimers taking 16 rows at a time from one PostgreSQL ledger.
async fn claim_latency() {
    let Some(schema) = PgSchema::from_env("cluster benchmark") else { return };
    let ledger = Arc::new(PgLedger::connect(&schema.url, Some(&schema.name)).await.expect("ledger"));
    let rows: usize = 6000;
    let exports: Vec<NewExport> = (0..rows)
        .map(|i| NewExport {
            db: TEST_DB.into(),
            batch_file: format!("claim-{i:05}.json"),
            payload: Some(b"{}".to_vec()),
            ..NewExport::default()
        })
        .collect();
    for chunk in exports.chunks(1000) {
        ledger.insert_many(chunk.to_vec()).await.expect("insert");
    }
    let started = Instant::now();
    let claimers: Vec<_> = (0..6)
        .map(|c| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let owner = format!("claimer-{c}");
                let mut lat = Vec::new();
                loop {
                    let t = Instant::now();
                    let claimed = ledger.claim(&[], 16, &owner, Duration::from_secs(120)).await.expect("claim");
                    lat.push(t.elapsed());
                    if claimed.is_empty() {
                        return lat;
                    }
                    let ids: Vec<_> = claimed.iter().map(|e| e.id).collect();
                    ledger.finish(&ids, &owner, &Outcome::Ingested).await.expect("finish");
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.expect("claimer"));
    }
    let wall = started.elapsed();
    all.sort();
    row("PostgreSQL claim of 16, 6 claimers: p50", &ms(percentile(&all, 0.5)), "");
    row("  p99", &ms(percentile(&all, 0.99)), "");
    row("  rows claimed and finished per second", &format!("{:.0}", rows as f64 / wall.as_secs_f64()), "");
    ledger.close().await;
}

fn main() {
    let sections = std::env::var("SYNC_BENCH").unwrap_or_else(|_| "save,big,e2e,delta,visible,http".into());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("| {:<48} | {:<28} | {:<22} |", "measure", "value", "target");
    println!("|{:-<50}|{:-<30}|{:-<24}|", "", "", "");
    rt.block_on(async {
        if sections.contains("save") {
            save_latency(50, 250, None).await;
            save_latency(50, 250, Some(400.0)).await;
            save_latency(10_000, 3, None).await;
        }
        if sections.contains("big") {
            big_graph().await;
        }
        if sections.contains("e2e") {
            let cost = glean_call_cost().await;
            row("one call of the 50 ms glean (median)", &ms(cost), "");
            let on_one = end_to_end(16, 1000, 1).await;
            let on = end_to_end(16, 1000, 8).await;
            let off = end_to_end(1, 200, 8).await;
            row("end to end, coalescing on, 1 producer", &format!("{on_one:.0} graphs/s"), "");
            row("end to end, 2 workers, coalescing on (16 files)", &format!("{on:.0} graphs/s"), "8 producers");
            row("end to end, 2 workers, coalescing off (1 file)", &format!("{off:.1} graphs/s"), "8 producers");
            row("  coalescing ratio (8 producers)", &format!("{:.1}x", on / off), ">= 10x");
        }
        if sections.contains("delta") {
            delta_resave().await;
        }
        if sections.contains("visible") {
            visible_latency().await;
        }
        if sections.contains("cluster") {
            claim_latency().await;
        }
    });
    if sections.contains("cluster") {
        cluster();
    }
    if sections.contains("http") {
        http_load();
    }
}
