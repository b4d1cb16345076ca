//! Turning a failed glean run into a `SinkError`: the one place that reads glean's words.
//!
//! Input: how the process ended and the tail of its stderr (GLEAN.md 3.6:
//! create and write failures are "DB create failure: ...", exit 3). Output:
//! the `SinkError` variant that names the cause, carrying the stderr tail so
//! it reaches the ledger's `last_error`. This module only describes; whether
//! to retry is `SinkError::is_retriable`'s decision alone.

use crate::sink::SinkError;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// The prefix of glean's shared create/write error handler.
const FAILURE_PREFIX: &str = "DB create failure: ";

/// Texts of "the database does not exist" (lower case).
const UNKNOWN_DATABASE: &[&str] = &["unknowndatabase", "unknown database"];

/// Texts of "the database is finished" (lower case; local and remote spellings).
const READ_ONLY: &[&str] = &["can't write to a read only database", "can't write to a read-only database"];

/// Texts of "the server cannot be reached" (lower case).
const UNREACHABLE: &[&str] = &[
    "connection refused",
    "connectionfailure",
    "connection reset",
    "network is unreachable",
    "no route to host",
    "host is unreachable",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no default glean service",
];

/// Texts of a batch glean refuses (lower case): parse and type errors of a file's content.
const REJECTED: &[&str] = &[
    " fact #",
    "error in fact",
    "not in scope",
    "invalid fact redefinition",
    "unknown fact",
    "invalid json",
    "expecting a fact",
    "can't parse",
    "parse error",
    "error in $",
    "type error",
    "typeerror",
    "key too large",
    "zstd decompression failed",
    "does not match schema id of db",
];

/// Describes a run that exited unsuccessfully, from its status and stderr tail.
///
/// `db` and `files` are what the run was given: `db` names the database in
/// the error, and a message that starts with one of `files` names that file.
pub(super) fn classify(status: ExitStatus, stderr: &str, db: &str, files: &[PathBuf]) -> SinkError {
    let stderr_text = if stderr.is_empty() { "(no stderr)" } else { stderr };
    if let Some(signal) = status.signal() {
        return SinkError::Crashed { status: format!("signal {signal}"), stderr: stderr_text.to_owned() };
    }
    let lower = stderr.to_lowercase();
    let says = |texts: &[&str]| texts.iter().any(|t| lower.contains(t));
    // A message about one of our files is about its content, even if that content echoes other words.
    if let Some(file) = file_named(stderr, files).filter(|_| says(REJECTED)) {
        return SinkError::Rejected { file: Some(file), reason: stderr_text.to_owned() };
    }
    if says(UNKNOWN_DATABASE) {
        return SinkError::UnknownDatabase(format!("{db}: {stderr_text}"));
    }
    if says(READ_ONLY) {
        return SinkError::ReadOnly(format!("{db}: {stderr_text}"));
    }
    if says(UNREACHABLE) {
        return SinkError::Unreachable(stderr_text.to_owned());
    }
    if says(REJECTED) {
        return SinkError::Rejected { file: file_named(stderr, files), reason: stderr_text.to_owned() };
    }
    match status.code() {
        // glean's own failure exits (3: create/write handler, 1: uncaught exception or usage).
        Some(1 | 3) => SinkError::Other(format!("glean exited with {status}: {stderr_text}")),
        Some(code) => SinkError::Crashed { status: format!("exit status {code}"), stderr: stderr_text.to_owned() },
        None => SinkError::Crashed { status: status.to_string(), stderr: stderr_text.to_owned() },
    }
}

/// The file a failure message is about: the last stderr line that starts with `FILE:`.
fn file_named(stderr: &str, files: &[PathBuf]) -> Option<PathBuf> {
    stderr.lines().rev().find_map(|line| {
        let message = line.trim_start().strip_prefix(FAILURE_PREFIX).unwrap_or(line.trim_start());
        files.iter().find(|f| starts_with_path(message, f)).cloned()
    })
}

/// True when `message` is `PATH: ...` for `path` as it was passed on the command line.
fn starts_with_path(message: &str, path: &Path) -> bool {
    let shown = super::arg_path(path);
    let shown = shown.to_string_lossy();
    message.strip_prefix(shown.as_ref()).is_some_and(|rest| rest.starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn files() -> Vec<PathBuf> {
        vec![PathBuf::from("/x/a.json"), PathBuf::from("/x/b c.json")]
    }

    fn cause(status: ExitStatus, stderr: &str) -> &'static str {
        classify(status, stderr, "etl/0", &files()).cause()
    }

    #[test]
    fn glean_local_messages_get_their_causes() {
        assert_eq!(cause(exit(3), "DB create failure: UnknownDatabase: etl/0"), "unknown_database");
        assert_eq!(cause(exit(3), "DB create failure: etl/0: can't write to a read only database"), "read_only");
        assert_eq!(
            cause(exit(3), "DB create failure: /x/a.json: agenticAiETH.ETL.Node.1 fact #0 .kind: expected string, got number"),
            "rejected"
        );
        assert_eq!(cause(exit(3), "DB create failure: /x/a.json: group #0: not in scope: agenticAiETH.ETL.Nope.1"), "rejected");
        assert_eq!(cause(exit(3), "DB create failure: /x/a.json: invalid JSON at line 2 column 0: EOF"), "rejected");
        assert_eq!(cause(exit(3), "DB create failure: /x/a.json: storage error: disk I/O error"), "other");
        assert_eq!(cause(exit(3), "DB create failure: /x/a.json: No such file or directory (os error 2)"), "other");
    }

    #[test]
    fn real_glean_messages_get_their_causes() {
        assert_eq!(
            cause(exit(3), "DB create failure: UnknownDatabase (Repo {repo_name = \"etl\", repo_hash = \"0\"})"),
            "unknown_database"
        );
        assert_eq!(cause(exit(3), "DB create failure: etl/0: can't write to a read-only database"), "read_only");
        assert_eq!(cause(exit(1), "Network.Socket.connect: <socket: 11>: does not exist (Connection refused)"), "unreachable");
        assert_eq!(cause(exit(3), "DB create failure: Error in fact: {\"key\": 1}"), "rejected");
        assert_eq!(cause(exit(3), "DB create failure: invalid fact redefinition"), "rejected");
        assert_eq!(cause(exit(3), "Parse error: Expecting a fact"), "rejected");
    }

    #[test]
    fn signals_and_odd_exit_codes_are_crashes() {
        assert_eq!(cause(ExitStatus::from_raw(9), "DB create failure: UnknownDatabase"), "crash");
        assert_eq!(cause(exit(139), "Segmentation fault"), "crash");
        assert_eq!(cause(exit(3), "something new"), "other");
        assert_eq!(cause(exit(1), ""), "other");
    }

    #[test]
    fn a_rejection_names_the_file_and_keeps_the_stderr_tail() {
        let stderr = "log line\nDB create failure: /x/b c.json: agenticAiETH.ETL.Node.1 fact #3 .label: expected string";
        match classify(exit(3), stderr, "etl/0", &files()) {
            SinkError::Rejected { file, reason } => {
                assert_eq!(file, Some(PathBuf::from("/x/b c.json")));
                assert!(reason.contains("log line") && reason.contains(".label"), "{reason}");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        let e = classify(exit(3), "DB create failure: /x/other.json: Error in fact", "etl/0", &files());
        assert!(matches!(e, SinkError::Rejected { file: None, .. }), "{e:?}");
    }

    #[test]
    fn words_echoed_from_a_rejected_file_do_not_change_the_cause() {
        let stderr = "DB create failure: /x/a.json: agenticAiETH.ETL.Node.1 fact #0 .label: \"unknown database\" is not a nat";
        assert_eq!(cause(exit(3), stderr), "rejected");
    }

    #[test]
    fn every_error_text_carries_the_stderr() {
        for (status, stderr) in [(exit(3), "UnknownDatabase X"), (exit(3), "zzz"), (exit(2), "yyy"), (exit(1), "connection refused qqq")] {
            let text = classify(status, stderr, "etl/0", &files()).to_string();
            assert!(text.contains(stderr), "{text:?} lacks {stderr:?}");
        }
        assert!(classify(exit(3), "", "etl/0", &[]).to_string().contains("(no stderr)"));
    }
}
