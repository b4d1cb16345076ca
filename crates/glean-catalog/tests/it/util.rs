//! Shared helpers: a temporary db root, running `glean-local` and capturing what it did, Node batches.
//!
//! Every test gets an `Env`: a temporary directory that is the working
//! directory of each `glean-local` run (so batch files are named relatively,
//! exactly as in the output lines, and the checkout's `glean/schema/source`
//! is never picked up) and holds the db root `db/`. Runs get a clean
//! environment (`GLEAN_DB_ROOT` removed) and a timeout, so a hung binary fails
//! its test instead of hanging the suite. Helpers live here only.

use glean_catalog::store::{Catalog, Database, DbRef};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The predicate of the Node facts the tests write.
pub const NODE: &str = "agenticAiETH.ETL.Node.1";

/// Longest a single `glean-local` run may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A schema with a string-keyed predicate and a record that refers to it.
pub const REF_SCHEMA: &str = "schema t.1 {
  predicate Name : string
  predicate Fn : { name : Name, arity : nat }
}
schema all.1 : t.1 {}
";

/// What one finished run of `glean-local` did.
#[derive(Debug)]
pub struct Run {
    /// The arguments, for failure messages.
    args: Vec<String>,
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Everything printed on standard output.
    pub stdout: String,
    /// Everything printed on standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts the exit status, showing the run's output when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Run {
        assert_eq!(self.code, expected, "exit status of glean-local {}\n{}", self.args.join(" "), self.transcript());
        self
    }

    /// Asserts a successful run.
    #[track_caller]
    pub fn ok(&self) -> &Run {
        self.code(0)
    }

    /// Asserts that standard error contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(self.stderr.contains(needle), "stderr of glean-local {} lacks {needle:?}\n{}", self.args.join(" "), self.transcript());
        self
    }

    /// Standard output, line by line.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn transcript(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}---", self.stdout, self.stderr)
    }
}

/// A `glean-local` process that is still running; killed if dropped unwaited.
pub struct Running {
    args: Vec<String>,
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

/// Reads a child's pipe to the end on its own thread, so neither pipe can fill up and block the child.
fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn joined(handle: Option<JoinHandle<String>>) -> String {
    handle.map(|h| h.join().expect("pipe reader thread panicked")).unwrap_or_default()
}

impl Running {
    /// True once the process has exited.
    pub fn finished(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("cannot poll glean-local").is_some(),
            None => true,
        }
    }

    /// Waits for the process (failing the test after `TIMEOUT`) and collects its output.
    pub fn wait(mut self) -> Run {
        let mut child = self.child.take().expect("waited twice");
        let status = loop {
            if let Some(status) = child.try_wait().expect("cannot poll glean-local") {
                break status;
            }
            if self.started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("glean-local {} still running after {TIMEOUT:?}; killed", self.args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        Run {
            args: std::mem::take(&mut self.args),
            code: status.code().unwrap_or(-1),
            stdout: joined(self.stdout.take()),
            stderr: joined(self.stderr.take()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary directory with a db root (`db/`) and batch files, deleted at the end of the test.
pub struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A fresh, empty environment.
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().expect("cannot create a temporary directory") }
    }

    /// The db root every `run` passes as `--db-root`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// Writes `contents` to the file `name` in the working directory; returns `name`.
    pub fn file<'n>(&self, name: &'n str, contents: impl AsRef<[u8]>) -> &'n str {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        name
    }

    /// Writes a batch of Node facts `{prefix}{i}`, `i` in `ids`, to `name`; returns `name`.
    pub fn node_file<'n>(&self, name: &'n str, prefix: &str, ids: Range<usize>) -> &'n str {
        self.file(name, node_batch(prefix, ids))
    }

    /// Starts `glean-local ARGS` with no `--db-root` added.
    pub fn spawn_raw(&self, args: &[&str]) -> Running {
        let mut child = self.start(args);
        Running {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stdout: drain(child.stdout.take()),
            stderr: drain(child.stderr.take()),
            child: Some(child),
            started: Instant::now(),
        }
    }

    fn start(&self, args: &[&str]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_glean-local"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("GLEAN_DB_ROOT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start glean-local {}: {e}", args.join(" ")))
    }

    /// Runs `glean-local --db-root ROOT ARGS`, reading only the first line of
    /// its standard output before closing it, as `| head -1` does; returns
    /// that line and the run (whose `stdout` is empty).
    pub fn run_first_line(&self, args: &[&str]) -> (String, Run) {
        let root = self.root();
        let mut all = vec!["--db-root", root.to_str().expect("temporary paths are UTF-8")];
        all.extend_from_slice(args);
        let mut child = self.start(&all);
        let stderr = drain(child.stderr.take());
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        BufReader::new(stdout).read_line(&mut first).expect("read the first line");
        let running = Running {
            args: all.iter().map(|a| (*a).to_owned()).collect(),
            stdout: None,
            stderr,
            child: Some(child),
            started: Instant::now(),
        };
        (first.trim_end().to_owned(), running.wait())
    }

    /// Starts `glean-local --db-root ROOT ARGS`.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let root = self.root();
        let root = root.to_str().expect("temporary paths are UTF-8");
        let mut all = vec!["--db-root", root];
        all.extend_from_slice(args);
        self.spawn_raw(&all)
    }

    /// Runs `glean-local --db-root ROOT ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        self.spawn(args).wait()
    }

    /// Runs `glean-local ARGS` (no `--db-root` added) to completion.
    pub fn run_raw(&self, args: &[&str]) -> Run {
        self.spawn_raw(args).wait()
    }

    /// Creates `db` with the built-in schema and writes `files` into it, asserting success.
    pub fn create(&self, db: &str, files: &[&str]) -> Run {
        let mut args = vec!["create", "--db", db];
        args.extend_from_slice(files);
        let run = self.run(&args);
        run.ok();
        run
    }

    /// `stats --format json` of `db`: `{"pred": {"count": N, "size": B}, ...}`.
    pub fn stats(&self, db: &str) -> Value {
        let run = self.run(&["stats", "--db", db, "--format", "json"]);
        run.ok();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("stats output is not JSON ({e}): {}", run.stdout))
    }

    /// Total facts in `db`, read with `stats --format json`.
    pub fn fact_count(&self, db: &str) -> u64 {
        total_count(&self.stats(db))
    }

    /// Query results of `db`, one line per fact, asserting success.
    pub fn query(&self, db: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["query", "--db", db];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        run.ok();
        run.lines().into_iter().map(str::to_owned).collect()
    }

    /// A read-only SQLite connection to `db`'s file (layout: the `store` module documentation).
    pub fn sqlite(&self, db: &str) -> rusqlite::Connection {
        let db: DbRef = db.parse().expect("a NAME/INSTANCE test database");
        let path = self.root().join(&db.name).join(&db.instance).join("facts.sqlite");
        let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        conn.busy_timeout(TIMEOUT).expect("set a busy timeout");
        conn
    }

    /// `db` opened through the library.
    pub fn open(&self, db: &str) -> Database {
        let db: DbRef = db.parse().expect("a NAME/INSTANCE test database");
        Catalog::new(self.root()).open(&db).unwrap_or_else(|e| panic!("cannot open {db}: {e}"))
    }
}

/// The sum of `count` over all predicates of a `stats --format json` object.
pub fn total_count(stats: &Value) -> u64 {
    let preds = stats.as_object().unwrap_or_else(|| panic!("stats is not an object: {stats}"));
    preds.values().map(|s| s["count"].as_u64().unwrap_or_else(|| panic!("no count in {s}"))).sum()
}

/// The key of Node `{prefix}{i}`, in the canonical form queries print.
pub fn node_key(prefix: &str, i: usize) -> String {
    format!(r#"{{"id":"{prefix}{i}","kind":"table","label":"Node {prefix}{i}"}}"#)
}

/// A batch of one Node group with facts `{prefix}{i}`, `i` in `ids`.
pub fn node_batch(prefix: &str, ids: Range<usize>) -> String {
    let facts: Vec<String> = ids.map(|i| format!(r#"{{"key":{}}}"#, node_key(prefix, i))).collect();
    format!(r#"[{{"predicate":"{NODE}","facts":[{}]}}]"#, facts.join(","))
}
