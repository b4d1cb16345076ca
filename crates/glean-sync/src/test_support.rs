//! Helpers shared by the unit tests: the real `glean-local`, batch files, fault injection.
//!
//! The sink tests drive the real `glean-local` binary (built by
//! `cargo build --workspace`), wrap it in bash scripts that inject faults
//! (delay, failure, hang with a child process, given stderr), and look at the
//! result through the `glean_catalog` library. Only test code uses this; it
//! must never be compiled into the library.

use glean_catalog::query::QueryOptions;
use glean_catalog::schema::BUILTIN_FILES;
use glean_catalog::store::{Catalog, DbRef};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The predicate the test batches use.
pub(crate) const NODE: &str = "agenticAiETH.ETL.Node.1";

/// The `glean-local` binary next to the test executable (`target/<profile>/glean-local`).
pub(crate) fn glean_local() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/glean_sync-HASH -> target/<profile>/glean-local
    let profile_dir = exe.parent().and_then(Path::parent).expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("glean-local");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace` first (or `cargo build -p glean-catalog --bin glean-local` \
         with the same CARGO_TARGET_DIR as the tests)",
        bin.display()
    );
    bin
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
            let _ = writeln!(s, "printf '%s\\n' \"$@\" '' >> {}", quote(log));
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
        match self.only_for {
            Some(verb) => {
                let _ = write!(s, "if [ \"$1\" = {verb} ]; then\n{faults}fi\n");
            }
            None => s.push_str(&faults),
        }
        let _ = writeln!(s, "exec {} \"$@\"", quote(&glean_local()));
        s
    }
}

/// Quotes a value for bash (single quotes).
fn quote(value: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> String {
    format!("'{}'", value.as_ref().to_string_lossy().replace('\'', r"'\''"))
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
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_group(*pid) == Some(pgid))
        .collect()
}
