//! Helpers shared by every test of glean-sync: the real binaries, batch and graph files, fault injection.
//!
//! Tests drive the real `glean-local` binary (built by `cargo build
//! --workspace`), wrap it in bash scripts that inject faults (delay, failure,
//! hang with a child process, given stderr), run the real `glean-sync`
//! binary in a scratch environment, and look at results through the
//! `glean_catalog` library. This one file serves the unit tests (as
//! `crate::test_support`) and the integration tests (included by path), so
//! each uses only part of it. Only test code uses it; it must never be
//! compiled into the library.
#![allow(dead_code)]

use glean_catalog::query::QueryOptions;
use glean_catalog::schema::BUILTIN_FILES;
use glean_catalog::store::{Catalog, DbRef};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The predicate the test batches use.
pub(crate) const NODE: &str = "agenticAiETH.ETL.Node.1";

/// A workspace binary next to the test executable (`target/<profile>/NAME`).
fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/TEST-HASH -> target/<profile>/NAME
    let profile_dir = exe.parent().and_then(Path::parent).expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace` first (or `cargo test --workspace`, \
         with the same CARGO_TARGET_DIR as the tests)",
        bin.display()
    );
    bin
}

/// The `glean-local` binary.
pub(crate) fn glean_local() -> PathBuf {
    workspace_binary("glean-local")
}

/// The `glean-sync` binary.
pub(crate) fn glean_sync() -> PathBuf {
    workspace_binary("glean-sync")
}

/// A batch of `Node` facts with the given ids, written to `dir/name`.
pub(crate) fn node_batch(dir: &Path, name: &str, ids: &[&str]) -> PathBuf {
    let facts: Vec<String> = ids.iter().map(|id| format!(r#"{{"key":{{"id":"{id}","kind":"table","label":"t"}}}}"#)).collect();
    write_file(dir, name, &format!(r#"[{{"predicate":"{NODE}","facts":[{}]}}]"#, facts.join(",")))
}

/// A batch the schema rejects: `kind` must be a string.
pub(crate) fn bad_batch(dir: &Path, name: &str) -> PathBuf {
    write_file(dir, name, &format!(r#"[{{"predicate":"{NODE}","facts":[{{"key":{{"id":"bad","kind":5,"label":"t"}}}}]}}]"#))
}

/// Writes `text` to `dir/name` (creating `dir`) and returns the path.
pub(crate) fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create test directory");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// The built-in schema written out as a directory, for `--schema dir:DIR`.
pub(crate) fn schema_dir(dir: &Path) -> PathBuf {
    let schema = dir.join("schema");
    for (name, text) in BUILTIN_FILES {
        write_file(&schema, name, text);
    }
    schema
}

/// Ids of the `Node` facts stored in `db`, sorted, read through the catalog library.
pub(crate) fn node_ids(db_root: &Path, db: &str) -> Vec<String> {
    let db: DbRef = db.parse().expect("test database name is NAME/INSTANCE");
    let database = Catalog::new(db_root).open(&db).expect("test database exists");
    let out = database.query(NODE, &QueryOptions { limit: None, expand: false }).expect("query Node facts");
    let mut ids: Vec<String> = out
        .results
        .iter()
        .map(|line| {
            let fact: serde_json::Value = serde_json::from_str(line).expect("query prints JSON");
            fact["key"]["id"].as_str().expect("Node key has an id").to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// A bash script standing in for glean: faults first, then `glean-local` (or nothing) with the same argv.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wrapper {
    /// Inject the faults only when the first argument is this verb (`write`, `create`).
    only_for: Option<&'static str>,
    delay: Option<Duration>,
    stderr: Option<String>,
    exit: Option<i32>,
    /// Spawn `sleep 1000`, write `WRAPPER_PID CHILD_PID` to this file, and wait for it.
    hang_pid_file: Option<PathBuf>,
    /// Append the argv (one argument per line, a blank line after) to this file.
    argv_log: Option<PathBuf>,
    /// Leave a `sleep 1000` running in the background, its pid in this file, then go on.
    background_pid_file: Option<PathBuf>,
    /// Fail (exit 1) this percentage of calls, and hang this percentage, at random.
    random: Option<(u32, u32)>,
    /// Act like an unreachable server while this file exists.
    down_while: Option<PathBuf>,
    /// Die of SIGSEGV when a file argument contains this text (a batch that crashes glean).
    crash_on: Option<String>,
    /// After a successful `glean-local write`, append its file arguments (one per line) to this file.
    written_log: Option<PathBuf>,
    /// Every call takes at least this long in all (glean-local's own work included).
    cost: Option<Duration>,
}

impl Wrapper {
    /// Faults only for this verb; other verbs go straight to `glean-local`.
    pub(crate) fn only_for(mut self, verb: &'static str) -> Self {
        self.only_for = Some(verb);
        self
    }
    /// Sleep first.
    pub(crate) fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Make every call take this long in all: glean-local's own work, then a sleep for the
    /// rest (a glean that costs this much per call, as the benchmarks' targets assume).
    pub(crate) fn costing(mut self, cost: Duration) -> Self {
        self.cost = Some(cost);
        self
    }
    /// Print this to stderr.
    pub(crate) fn stderr(mut self, text: &str) -> Self {
        self.stderr = Some(text.to_owned());
        self
    }
    /// Exit with this status instead of running glean-local.
    pub(crate) fn exit(mut self, code: i32) -> Self {
        self.exit = Some(code);
        self
    }
    /// Hang after spawning a `sleep 1000` child; `WRAPPER_PID CHILD_PID` go to `pid_file`.
    pub(crate) fn hang_with_child(mut self, pid_file: &Path) -> Self {
        self.hang_pid_file = Some(pid_file.to_owned());
        self
    }
    /// Leave a `sleep 1000` behind (`WRAPPER_PID CHILD_PID` to `pid_file`), then carry on.
    pub(crate) fn leave_background_child(mut self, pid_file: &Path) -> Self {
        self.background_pid_file = Some(pid_file.to_owned());
        self
    }
    /// Fail `fail` percent of calls (exit 1) and hang `hang` percent of them, at random.
    pub(crate) fn random_faults(mut self, fail: u32, hang: u32) -> Self {
        self.random = Some((fail, hang));
        self
    }
    /// Answer "connection refused" (exit 3) while `flag` exists.
    pub(crate) fn down_while(mut self, flag: &Path) -> Self {
        self.down_while = Some(flag.to_owned());
        self
    }
    /// Crash (SIGSEGV) whenever one of the files given contains `marker`.
    pub(crate) fn crash_on(mut self, marker: &str) -> Self {
        self.crash_on = Some(marker.to_owned());
        self
    }
    /// Record the files of every write that succeeded in `log`, one per line.
    pub(crate) fn log_written(mut self, log: &Path) -> Self {
        self.written_log = Some(log.to_owned());
        self
    }
    /// Record every argv in `log`.
    pub(crate) fn log_argv(mut self, log: &Path) -> Self {
        self.argv_log = Some(log.to_owned());
        self
    }

    /// Writes the script as `dir/name` (executable) and returns its path.
    pub(crate) fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = write_file(dir, name, &self.script());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("make wrapper executable");
        path
    }

    fn script(&self) -> String {
        let mut s = String::from("#!/bin/bash\n");
        if let Some(log) = &self.argv_log {
            // Under a lock: a long argv takes several writes, and concurrent calls would interleave them.
            let _ = writeln!(s, "{{ flock 9; printf '%s\\n' \"$@\" '' >&9; }} 9>> {}", quote(log));
        }
        let mut faults = String::new();
        if let Some(delay) = self.delay {
            let _ = writeln!(faults, "sleep {}", delay.as_secs_f64());
        }
        if let Some(pid_file) = &self.background_pid_file {
            let _ = writeln!(faults, "sleep 1000 & echo $$ $! > {}", quote(pid_file));
        }
        if let Some(text) = &self.stderr {
            let _ = writeln!(faults, "printf '%s\\n' {} >&2", quote(text));
        }
        if let Some(pid_file) = &self.hang_pid_file {
            let _ = writeln!(faults, "sleep 1000 & echo $$ $! > {}\nwait", quote(pid_file));
        }
        if let Some(code) = self.exit {
            let _ = writeln!(faults, "exit {code}");
        }
        if let Some((fail, hang)) = self.random {
            let _ = writeln!(
                faults,
                "r=$((RANDOM % 100))\nif [ $r -lt {fail} ]; then echo 'injected failure' >&2; exit 1; fi\n\
                 if [ $r -ge $((100 - {hang})) ]; then exec sleep 1000; fi"
            );
        }
        if let Some(marker) = &self.crash_on {
            let _ =
                writeln!(faults, "for f in \"$@\"; do if [ -f \"$f\" ] && grep -qF {} \"$f\"; then kill -SEGV $$; fi; done", quote(marker));
        }
        if let Some(flag) = &self.down_while {
            let _ = writeln!(faults, "if [ -e {} ]; then echo 'DB create failure: Connection refused' >&2; exit 3; fi", quote(flag));
        }
        match self.only_for {
            Some(verb) => {
                let _ = write!(s, "if [ \"$1\" = {verb} ]; then\n{faults}fi\n");
            }
            None => s.push_str(&faults),
        }
        if self.written_log.is_none() && self.cost.is_none() {
            let _ = writeln!(s, "exec {} \"$@\"", quote(&glean_local()));
            return s;
        }
        // EPOCHREALTIME (bash 5) in microseconds, without forking `date`.
        s.push_str("started=${EPOCHREALTIME/./}\n");
        let _ = writeln!(s, "{} \"$@\"\nstatus=$?", quote(&glean_local()));
        if let Some(log) = &self.written_log {
            let _ = writeln!(
                s,
                "if [ $status = 0 ] && [ \"$1\" = write ]; then for f in \"$@\"; do case \"$f\" in *.json|*.json.zst) echo \"$f\" >> {};; esac; done; fi",
                quote(log)
            );
        }
        if let Some(cost) = self.cost {
            let _ = writeln!(
                s,
                "left=$((started + {} - ${{EPOCHREALTIME/./}}))\n\
                 if [ $left -gt 0 ]; then printf -v micros %06d $((left % 1000000)); sleep \"$((left / 1000000)).$micros\"; fi",
                cost.as_micros()
            );
        }
        s.push_str("exit $status\n");
        s
    }
}

/// Quotes a value for bash (single quotes).
fn quote(value: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> String {
    format!("'{}'", value.as_ref().to_string_lossy().replace('\'', r"'\''"))
}

/// How many times each file was in a successful write (`Wrapper::log_written`), by file name.
pub(crate) fn written_counts(log: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let name = Path::new(line).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

/// The argv lists recorded by `Wrapper::log_argv`.
pub(crate) fn recorded_argvs(log: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("\n\n").filter(|call| !call.trim().is_empty()).map(|call| call.lines().map(str::to_owned).collect()).collect()
}

/// Reads `WRAPPER_PID CHILD_PID` as written by a wrapper.
pub(crate) fn read_pids(file: &Path) -> (i32, i32) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let pids: Vec<i32> = text.split_whitespace().map(|p| p.parse().expect("a pid")).collect();
    assert_eq!(pids.len(), 2, "{}: {text:?}", file.display());
    (pids[0], pids[1])
}

/// The state letter of a process (`R`, `S`, `Z`, ...), or `None` when it is gone.
pub(crate) fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces and parentheses: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The process group of a process, or `None` when it is gone.
pub(crate) fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the state: ppid, pgrp.
    stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse().ok()
}

/// Every process (zombies included) whose process group is `pgid`.
pub(crate) fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).filter(|pid| process_group(*pid) == Some(pgid)).collect()
}

/// A scratch deployment of glean-sync: its own directories and environment.
/// Clones share the directories, so variants of one deployment can be run.
#[derive(Clone)]
pub(crate) struct SyncEnv {
    /// Everything lives under here (also the working directory of commands).
    pub dir: std::sync::Arc<tempfile::TempDir>,
    /// Extra environment variables, applied after the defaults.
    pub vars: Vec<(String, String)>,
}

/// The database every `SyncEnv` writes into.
pub(crate) const TEST_DB: &str = "etl/0";

impl SyncEnv {
    /// Real-time export into `etl/0` through the cli sink, with `glean-local` as glean.
    pub(crate) fn new() -> SyncEnv {
        let env = SyncEnv { dir: std::sync::Arc::new(tempfile::tempdir().expect("tempdir")), vars: Vec::new() };
        env.with("GLEAN_BIN", &glean_local().to_string_lossy())
    }

    /// Sets (or replaces) an environment variable of every command.
    pub(crate) fn with(mut self, var: &str, value: &str) -> SyncEnv {
        self.vars.retain(|(k, _)| k != var);
        self.vars.push((var.to_owned(), value.to_owned()));
        self
    }

    /// The same deployment with one more variable set.
    pub(crate) fn clone_with(&self, var: &str, value: &str) -> SyncEnv {
        self.clone().with(var, value)
    }

    /// A path inside the environment.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The export directory.
    pub(crate) fn export_dir(&self) -> PathBuf {
        self.path("exports")
    }

    /// The Glean database root.
    pub(crate) fn db_root(&self) -> PathBuf {
        self.path("db")
    }

    /// `glean-sync ARGS` with a clean environment: only PATH and this deployment's settings.
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(glean_sync());
        cmd.args(args).current_dir(self.dir.path()).env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        let defaults = [
            ("RUST_LOG", "warn".to_owned()),
            ("GLEAN_REALTIME_ENABLE", "true".to_owned()),
            ("GLEAN_DB_NAME", TEST_DB.to_owned()),
            ("GLEAN_SINK", "cli".to_owned()),
            ("GLEAN_EXPORT_DIR", self.export_dir().to_string_lossy().into_owned()),
            ("GLEAN_DB_ROOT", self.db_root().to_string_lossy().into_owned()),
        ];
        for (k, v) in defaults {
            cmd.env(k, v);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `glean-sync ARGS` to the end.
    pub(crate) fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("glean-sync runs")
    }

    /// Facts of `predicate` (e.g. `agenticAiETH.ETL.ExportManifest.1`) in the test database, as JSON.
    pub(crate) fn facts(&self, predicate: &str) -> Vec<serde_json::Value> {
        let db: DbRef = TEST_DB.parse().expect("test database name");
        let Ok(database) = Catalog::new(self.db_root()).open(&db) else { return Vec::new() };
        let out = database.query(predicate, &QueryOptions::default()).expect("query");
        out.results.iter().map(|l| serde_json::from_str(l).expect("query prints JSON")).collect()
    }

    /// The `export_file` of every manifest in the test database.
    pub(crate) fn manifest_files(&self) -> Vec<String> {
        let mut files: Vec<String> = self
            .facts("agenticAiETH.ETL.ExportManifest.1")
            .iter()
            .map(|f| f["key"]["export_file"].as_str().expect("manifest names its file").to_owned())
            .collect();
        files.sort();
        files
    }

    /// `glean-sync push FILES` to the end.
    pub(crate) fn push(&self, files: &[PathBuf]) -> std::process::Output {
        self.command(&["push"]).args(self.relative(files)).output().expect("push runs")
    }

    /// `files` relative to the deployment's directory (the commands' working directory)
    /// where they are inside it: 50,000 absolute temp paths exceed the kernel's argv limit.
    fn relative<'a>(&self, files: &'a [PathBuf]) -> impl Iterator<Item = &'a Path> {
        let dir = self.dir.path().to_owned();
        files.iter().map(move |f| f.strip_prefix(&dir).unwrap_or(f))
    }

    /// `glean-sync push FILES` in the background; its stdout lines arrive on the channel.
    pub(crate) fn spawn_push(&self, files: &[PathBuf]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
        use std::io::BufRead;
        let mut child = self
            .command(&["push"])
            .args(self.relative(files))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn push");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (child, rx)
    }

    /// `glean-sync status --json`, parsed.
    pub(crate) fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status prints JSON")
    }
}

/// Output bytes as text, for messages and matching.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asks a child process to shut down gracefully.
pub(crate) fn sigterm(child: &std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
}

/// The graph file and batch file of a push line `saved GRAPH as export N (BATCH[, ...])`.
pub(crate) fn saved_batch(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("saved ")?;
    let (graph, tail) = rest.split_once(" as export ")?;
    let inside = tail.split_once(" (")?.1;
    let batch = inside.split([',', ')']).next()?;
    Some((graph.to_owned(), batch.to_owned()))
}

/// Writes `count` graph files of `nodes` nodes (and a chain of edges) each; graph `i` has `graph_id` `g<i>`.
pub(crate) fn graph_files(dir: &Path, count: usize, nodes: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let ns: Vec<String> = (0..nodes)
                .map(|n| format!(r#"{{"id":"g{i}-n{n}","type":"column","label":"c{n}","props":{{"graph":{i},"n":{n}}}}}"#))
                .collect();
            let es: Vec<String> =
                (1..nodes).map(|n| format!(r#"{{"source_id":"g{i}-n{}","target_id":"g{i}-n{n}","type":"NEXT"}}"#, n - 1)).collect();
            let json =
                format!(r#"{{"graph_id":"g{i}","project_id":"p","system_id":"s","nodes":[{}],"edges":[{}]}}"#, ns.join(","), es.join(","));
            write_file(dir, &format!("graph-{i:05}.json"), &json)
        })
        .collect()
}

/// A running `glean-sync serve` of a `SyncEnv`, killed when dropped.
pub(crate) struct Served {
    /// The server process.
    pub child: std::process::Child,
    /// A client of it.
    pub client: Client,
}

/// An HTTP client of a server (cheap to clone, for client threads).
#[derive(Clone)]
pub(crate) struct Client {
    /// `http://ADDR`.
    pub base: String,
    agent: ureq::Agent,
}

impl SyncEnv {
    /// Starts `glean-sync serve ARGS` on a free port and waits until it listens.
    pub(crate) fn serve(&self, args: &[&str]) -> Served {
        use std::io::BufRead;
        let mut child = self
            .command(&["serve"])
            .args(args)
            .env("GLEAN_SYNC_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
            .expect("serve prints where it listens");
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Served { child, client: Client { base: format!("http://{addr}"), agent } }
    }
}

impl Client {
    /// POSTs a JSON body (with a bearer token if given); the status and the body as JSON.
    pub(crate) fn post(&self, path: &str, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.agent.post(format!("{}{path}", self.base)).header("content-type", "application/json");
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        match request.send(body) {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
            }
            Err(e) => (0, serde_json::Value::String(e.to_string())),
        }
    }

    /// GETs a path; the status and the body as text.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        match self.agent.get(format!("{}{path}", self.base)).call() {
            Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// `GET /stats`, parsed.
    pub(crate) fn stats(&self) -> serde_json::Value {
        let (status, body) = self.get("/stats");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("stats are JSON")
    }

    /// Polls until `done(stats)` or the deadline; the last stats.
    pub(crate) fn wait_stats(&self, deadline: Duration, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let until = std::time::Instant::now() + deadline;
        loop {
            let stats = self.stats();
            if done(&stats) || std::time::Instant::now() > until {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl std::ops::Deref for Served {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Served {
    /// SIGTERM, then waits for the exit status.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        sigterm(&self.child);
        self.child.wait().expect("serve exits")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The variable naming the PostgreSQL database tests may use.
pub(crate) const PG_URL_VAR: &str = "GLEAN_SYNC_TEST_DATABASE_URL";

/// Every test schema's name starts with this (and only test schemas' names do).
const PG_SCHEMA_PREFIX: &str = "glean_sync_test_";

/// Test schemas older than this are leftovers of a killed run (no test runs this long).
const PG_STALE_AFTER: Duration = Duration::from_secs(3600);

/// A fresh schema on the test database (`GLEAN_SYNC_TEST_DATABASE_URL`), dropped with
/// this value, even when the test panics; schemas a killed run left are swept once
/// they are an hour old. Tests run in parallel, each in its own schema.
pub(crate) struct PgSchema {
    /// The test database.
    pub url: String,
    /// The schema (`glean_sync_test_<unix secs>_<ulid>`).
    pub name: String,
}

impl PgSchema {
    /// A fresh schema, or `None` after saying that the `what` tests are skipped.
    pub(crate) fn from_env(what: &str) -> Option<PgSchema> {
        match std::env::var(PG_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => {
                let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let name = format!("{PG_SCHEMA_PREFIX}{secs}_{}", ulid::Ulid::generate().to_string().to_lowercase());
                Some(PgSchema { url, name })
            }
            _ => {
                pg_skipped(what);
                None
            }
        }
    }
}

/// Tells that PostgreSQL tests are skipped: in the test's output, and once per run
/// straight on stderr, which the test harness does not capture.
fn pg_skipped(what: &str) {
    use std::io::Write;
    let line = format!("skipped: {PG_URL_VAR} is not set ({what})");
    println!("{line}");
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(std::io::stderr(), "{line}");
    });
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop may run inside a test's runtime (or while unwinding): the cleanup gets
        // a thread and a runtime of its own, and reports instead of panicking.
        let (url, schema) = (self.url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || drop_pg_schemas(&url, &schema));
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test schema {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("test schema {} was not dropped: cleanup panicked", self.name),
        }
    }
}

/// Drops `schema`, and once per run the test schemas a killed run left behind.
fn drop_pg_schemas(url: &str, schema: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
        // A session still in a transaction (a panic mid-statement) ends when its socket
        // closes; wait for that, but not forever.
        sqlx::query("SET lock_timeout = '30s'").execute(&mut conn).await?;
        drop_pg_schema(&mut conn, schema).await?;
        static SWEEP: std::sync::Once = std::sync::Once::new();
        let mut first = false;
        SWEEP.call_once(|| first = true);
        if first {
            sweep_stale_pg_schemas(&mut conn).await?;
        }
        conn.close().await
    })
}

async fn drop_pg_schema(conn: &mut sqlx::postgres::PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let statement = sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    sqlx::query(statement).execute(conn).await.map(|_| ())
}

/// Drops test schemas older than `PG_STALE_AFTER` (their name carries their creation time).
async fn sweep_stale_pg_schemas(conn: &mut sqlx::postgres::PgConnection) -> Result<(), sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
        .bind(PG_SCHEMA_PREFIX)
        .fetch_all(&mut *conn)
        .await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for name in names {
        let created = name[PG_SCHEMA_PREFIX.len()..].split('_').next().and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|c| now.saturating_sub(c) > PG_STALE_AFTER.as_secs()) {
            drop_pg_schema(conn, &name).await?;
        }
    }
    Ok(())
}
