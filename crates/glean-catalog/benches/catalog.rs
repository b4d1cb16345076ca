//! Write throughput, peak memory and small-batch latency of the catalog, printed as a table.
//!
//! Not a timed test: it measures and prints, next to each number, the target
//! it is meant to meet; it asserts only that the writes did what they should.
//! Measured on a fresh temporary db root:
//! a. one file of N `Node` facts (~150 key bytes each, generated streaming to
//!    disk) written through the library: facts/s, MB/s, peak RSS;
//! b. the same file again (all duplicates): facts/s, peak RSS;
//! c. a 100-fact batch through `glean-local write`, process start to exit:
//!    median and p90 of 30 runs (measured first, on a quiet disk).
//! Write times are shown as wall and CPU time: their difference is time spent
//! waiting for the disk.
//!
//! N defaults to 1,000,000; set `CATALOG_BENCH_FACTS` to scale it.
//! Run with `cargo bench -p glean-catalog --bench catalog`.

use glean_catalog::schema::SchemaSource;
use glean_catalog::store::{BatchInput, Catalog, Database, DbRef, WriteSummary};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = "agenticAiETH.ETL.Node.1";
const SMALL_FACTS: usize = 100;
const SMALL_RUNS: usize = 30;
const TARGET_FACTS_PER_S: f64 = 200_000.0;
const TARGET_RSS_BYTES: u64 = 1 << 30;
const TARGET_SMALL_MS: f64 = 20.0;

/// Writes a batch of `n` Node facts, numbered from `first`, to `path` one fact at a time.
fn write_batch(path: &Path, first: usize, n: usize) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    write!(out, r#"[{{"predicate":"{NODE}","facts":["#)?;
    for i in first..first + n {
        if i > first {
            out.write_all(b",")?;
        }
        // About 150 bytes of canonical key per fact.
        write!(
            out,
            r#"{{"key":{{"id":"etl-node-{i:010}","kind":"warehouse.table","label":"Node {i} of the benchmark graph","properties_json":"{{\"owner\":\"team-{o}\",\"rows\":{r}}}"}}}}"#,
            o = i % 97,
            r = i.wrapping_mul(2_654_435_761) % 1_000_000,
        )?;
    }
    out.write_all(b"]}]\n")?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Resets the kernel's peak-RSS mark of this process; false when the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident set size (`VmHWM`) in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) this process has used, in seconds; `None` if /proc is unreadable.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / CLOCK_TICKS_PER_S)
}

/// `sysconf(_SC_CLK_TCK)`, 100 on every Linux this runs on.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// What one timed library write did and cost.
struct Timed {
    summary: WriteSummary,
    wall: Duration,
    cpu: Option<f64>,
    peak: Option<u64>,
}

/// Writes `file` into `d`, measuring wall and CPU time and the peak RSS meanwhile.
fn timed_write(d: &mut Database, file: &Path) -> Timed {
    let reset = reset_peak_rss();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut results = d.write(&[BatchInput::File(file)], true).expect("the store accepts the write");
    let wall = started.elapsed();
    let cpu = cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    let peak = if reset { peak_rss() } else { None };
    let summary = results.remove(0).expect("the generated batch is valid");
    Timed { summary, wall, cpu, peak }
}

fn time_cell(t: &Timed) -> String {
    match t.cpu {
        Some(cpu) => format!("{:.2} s wall, {cpu:.2} s CPU", t.wall.as_secs_f64()),
        None => format!("{:.2} s wall", t.wall.as_secs_f64()),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

fn rss_cell(peak: Option<u64>) -> (String, &'static str) {
    match peak {
        Some(b) => (format!("{:.1} MiB", mib(b)), verdict(b < TARGET_RSS_BYTES)),
        None => ("n/a (clear_refs refused)".into(), "-"),
    }
}

/// Runs `SMALL_RUNS` CLI writes of `SMALL_FACTS` new facts each into a fresh database; milliseconds, sorted.
fn small_cli_writes(catalog: &Catalog, work: &Path) -> Vec<f64> {
    let db: DbRef = "small/1".parse().expect("a valid NAME/INSTANCE");
    catalog.create(&db, &SchemaSource::builtin(), &[]).expect("create the small database");
    let db_arg = db.to_string();
    let mut ms = Vec::with_capacity(SMALL_RUNS);
    for run in 0..SMALL_RUNS {
        let file = work.join(format!("small{run}.json"));
        write_batch(&file, run * SMALL_FACTS, SMALL_FACTS).expect("cannot write a small batch");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_glean-local"));
        cmd.arg("--db-root").arg(catalog.root()).args(["write", "--db", &db_arg]).arg(&file);
        cmd.current_dir(work).env_remove("GLEAN_DB_ROOT").stdin(Stdio::null());
        let started = Instant::now();
        let out = cmd.output().expect("cannot run glean-local");
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(out.status.success(), "glean-local write failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stored: u64 = catalog.open(&db).and_then(|d| d.stats()).expect("stats").iter().map(|s| s.count).sum();
    assert_eq!(stored, (SMALL_RUNS * SMALL_FACTS) as u64, "every small write stored its facts");
    ms.sort_by(f64::total_cmp);
    ms
}

fn main() {
    let facts: usize = match std::env::var("CATALOG_BENCH_FACTS") {
        Ok(v) => v.parse().unwrap_or_else(|e| panic!("CATALOG_BENCH_FACTS={v:?} is not a count: {e}")),
        Err(_) => 1_000_000,
    };
    let tmp = tempfile::tempdir().expect("cannot create a temporary directory");
    let catalog = Catalog::new(tmp.path().join("db"));

    // First, while the disk is quiet: right after the big write the kernel is
    // still flushing it, and every fsync of a small write waits behind that.
    eprintln!("{SMALL_RUNS} small writes through glean-local ...");
    let ms = small_cli_writes(&catalog, tmp.path());
    let (median, p90) = (percentile(&ms, 50.0), percentile(&ms, 90.0));

    eprintln!("generating {facts} facts ...");
    let big = tmp.path().join("big.json");
    let size = write_batch(&big, 0, facts).expect("cannot write the batch file");
    let db: DbRef = "bench/1".parse().expect("a valid NAME/INSTANCE");
    let mut d = catalog.create(&db, &SchemaSource::builtin(), &[]).expect("create the bench database");
    eprintln!("writing {} MiB ...", mib(size) as u64);
    let first = timed_write(&mut d, &big);
    assert_eq!((first.summary.facts, first.summary.new_facts), (facts as u64, facts as u64), "every fact is new");
    let stats = d.stats().expect("stats");
    let key_bytes = stats.iter().map(|s| s.bytes).sum::<u64>() as f64 / facts.max(1) as f64;
    eprintln!("writing it again ...");
    let again = timed_write(&mut d, &big);
    assert_eq!((again.summary.new_facts, again.summary.existing_facts), (0, facts as u64), "every fact is a duplicate");
    drop(d);

    let rate1 = facts as f64 / first.wall.as_secs_f64();
    let rate2 = facts as f64 / again.wall.as_secs_f64();
    let (rss1, rss1_ok) = rss_cell(first.peak);
    let (rss2, rss2_ok) = rss_cell(again.peak);
    let rows = [
        ("batch file", format!("{facts} facts, {:.1} MiB, {key_bytes:.0} key bytes/fact", mib(size)), String::new(), "-"),
        ("a. write: time", time_cell(&first), String::new(), "-"),
        ("a. write: facts/s", format!("{rate1:.0}"), format!(">= {TARGET_FACTS_PER_S:.0}"), verdict(rate1 >= TARGET_FACTS_PER_S)),
        ("a. write: MB/s", format!("{:.1}", size as f64 / 1e6 / first.wall.as_secs_f64()), String::new(), "-"),
        ("a. write: peak RSS", rss1, "< 1 GiB".into(), rss1_ok),
        ("b. rewrite: time", time_cell(&again), String::new(), "-"),
        ("b. rewrite: facts/s", format!("{rate2:.0}"), format!(">= {TARGET_FACTS_PER_S:.0}"), verdict(rate2 >= TARGET_FACTS_PER_S)),
        ("b. rewrite: peak RSS", rss2, "< 1 GiB".into(), rss2_ok),
        (
            "c. 100-fact CLI write: median",
            format!("{median:.1} ms"),
            format!("< {TARGET_SMALL_MS:.0} ms"),
            verdict(median < TARGET_SMALL_MS),
        ),
        ("c. 100-fact CLI write: p90", format!("{p90:.1} ms"), format!("< {TARGET_SMALL_MS:.0} ms"), verdict(p90 < TARGET_SMALL_MS)),
    ];
    println!();
    println!("| {:<30} | {:<44} | {:<12} | {:<6} |", "measure", "value", "target", "");
    println!("|{:-<32}|{:-<46}|{:-<14}|{:-<8}|", "", "", "", "");
    for (name, value, target, ok) in rows {
        println!("| {name:<30} | {value:<44} | {target:<12} | {ok:<6} |");
    }
}
