//! Running one glean command: a process group that never outlives the call.
//!
//! `run` starts the program from an argv (never a shell), in a new process
//! group, with stdin closed, and reads stdout and stderr concurrently into
//! bounded tails, so a chatty or stuck child can neither block on a full pipe
//! nor make us hold unbounded memory. When the run ends it leaves nothing
//! behind: past the timeout the whole group gets SIGKILL; after any ending,
//! members still alive are killed and every member is reaped.
//!
//! Reaping needs one process-wide decision. A wrapper script's own children
//! are orphaned when the script dies, and orphans go to the nearest "child
//! subreaper", by default PID 1. PID 1 is not always a real init (in the
//! sandbox this was built in it never reaps), so orphans would stay zombies
//! forever. This process therefore makes itself a child subreaper (Linux
//! `PR_SET_CHILD_SUBREAPER`, once, on the first run): orphans of our groups
//! come back to us, and `Group::reap_rest` waits for them by process group.
//! It never calls `waitpid` for a group whose leader tokio has not reaped
//! yet, so it never steals an exit status tokio is waiting for.
//!
//! Known limit: a member that moves itself into another group or session
//! (`setsid`) leaves the group and is neither killed nor awaited.

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bytes of stderr kept (the end of it, where the cause is).
pub(super) const STDERR_TAIL_BYTES: usize = 4096;
/// Lines of stderr kept.
pub(super) const STDERR_TAIL_LINES: usize = 20;
/// Bytes of stdout kept, for debug logs only (`Wrote FILE` lines).
const STDOUT_TAIL_BYTES: usize = 1024;
/// How long killed processes get to disappear before we stop waiting for them.
const REAP_GRACE: Duration = Duration::from_secs(2);
/// How long the pipe readers get after the group is gone (a process outside it may hold a pipe).
const READER_GRACE: Duration = Duration::from_secs(1);
/// Spawn attempts while the program file is busy being written.
const SPAWN_BUSY_RETRIES: u32 = 10;
/// Pause between polls while killed group members are still dying (and between busy spawns).
const REAP_POLL: Duration = Duration::from_millis(10);

/// How a run that was not killed ended.
#[derive(Debug)]
pub(super) struct Finished {
    /// Exit status of the group leader.
    pub status: ExitStatus,
    /// The end of its standard error, bounded.
    pub stderr: String,
    /// The end of its standard output, bounded.
    pub stdout: String,
}

/// Why a run has no exit status to report.
#[derive(Debug, thiserror::Error)]
pub(super) enum RunError {
    /// The program could not be started.
    #[error("{0}")]
    Spawn(io::Error),
    /// Waiting for the program failed.
    #[error("waiting for the process failed: {0}")]
    Wait(io::Error),
    /// The timeout passed; the group was killed. Carries the stderr read so far.
    #[error("timed out")]
    Timeout {
        /// The end of its standard error, bounded.
        stderr: String,
    },
    /// The caller cancelled the run; the group was killed and reaped.
    #[error("cancelled")]
    Cancelled,
}

/// Runs `program args` until it exits, `timeout` passes or `cancel` fires; see the module doc.
pub(super) async fn run(program: &Path, args: &[OsString], timeout: Duration, cancel: &CancellationToken) -> Result<Finished, RunError> {
    become_subreaper();
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    let mut child = spawn(&mut command).await.map_err(RunError::Spawn)?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
    let stdout = Arc::new(Mutex::new(Tail::new(STDOUT_TAIL_BYTES)));
    let stderr = Arc::new(Mutex::new(Tail::new(STDERR_TAIL_BYTES)));
    let readers = [read_into(child.stdout.take(), stdout.clone()), read_into(child.stderr.take(), stderr.clone())];
    let mut group = Group { leader: Some(child), pgid };

    // `None`: the timeout passed and the group was killed.
    let waited = tokio::select! {
        w = tokio::time::timeout(timeout, group.wait()) => Some(w),
        () = cancel.cancelled() => None,
    };
    let ended = match waited {
        Some(Ok(Ok(status))) => Ok(Some(status)),
        Some(Ok(Err(e))) => {
            group.kill_and_reap().await;
            Err(RunError::Wait(e))
        }
        Some(Err(_elapsed)) => {
            group.kill_and_reap().await;
            Ok(None)
        }
        None => {
            // Killed and reaped here, not left to a background task that a process exit would cut short.
            group.kill_and_reap().await;
            Err(RunError::Cancelled)
        }
    };
    group.reap_rest().await;
    finish_readers(readers).await;
    let stderr = lock(&stderr).render(STDERR_TAIL_LINES);
    match ended? {
        Some(status) => Ok(Finished { status, stderr, stdout: lock(&stdout).render(STDERR_TAIL_LINES) }),
        None => Err(RunError::Timeout { stderr }),
    }
}

/// Spawns, retrying briefly while the program file is busy (`ETXTBSY`).
///
/// The file is "busy" while some process holds it open for writing: a deploy
/// replacing the binary, or, for a script written just now, a child forked by
/// another thread of this process that has not reached `exec` yet. Both pass
/// within milliseconds, so a few short retries beat a failed write.
async fn spawn(command: &mut Command) -> io::Result<Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && attempts < SPAWN_BUSY_RETRIES => {
                attempts += 1;
                tokio::time::sleep(REAP_POLL).await;
            }
            other => return other,
        }
    }
}

/// Makes this process the reaper of its orphaned descendants (see the module doc). Once per process.
fn become_subreaper() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(error = %e, "cannot become a child subreaper: orphans of killed glean runs may stay zombies");
        }
    });
}

/// A running process group: its leader (until reaped) and the group id.
struct Group {
    /// The leader while it is unreaped. While it is `Some`, the group id
    /// cannot have been reused by anyone else, so signalling the group is safe.
    leader: Option<Child>,
    /// The group id (the leader's pid); `None` if the pid was unknowable.
    pgid: Option<Pid>,
}

impl Group {
    /// Waits for the leader to exit and reaps it. Cancel-safe.
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        let Some(leader) = self.leader.as_mut() else {
            return Err(io::Error::other("process already reaped"));
        };
        let status = leader.wait().await?;
        self.leader = None;
        Ok(status)
    }

    /// SIGKILL to every member, while the unreaped leader still pins the group id.
    fn kill(&self) {
        if let (Some(_), Some(pgid)) = (&self.leader, self.pgid) {
            // ESRCH: everyone is gone already, which is what we want.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    /// Kills the group and reaps the leader, waiting at most `REAP_GRACE`.
    async fn kill_and_reap(&mut self) {
        self.kill();
        if tokio::time::timeout(REAP_GRACE, self.wait()).await.is_err() {
            tracing::warn!(pgid = ?self.pgid, "killed glean process did not exit in time; leaving it to the background reaper");
        }
    }

    /// After the leader is reaped: kills members still alive and reaps every member that is our child.
    async fn reap_rest(&self) {
        let (None, Some(pgid)) = (&self.leader, self.pgid) else { return };
        let deadline = Instant::now() + REAP_GRACE;
        loop {
            match waitpid(Pid::from_raw(-pgid.as_raw()), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    // A child of ours is still in the group, so the id is still this group's.
                    let _ = killpg(pgid, Signal::SIGKILL);
                    if Instant::now() >= deadline {
                        tracing::warn!(pgid = pgid.as_raw(), "members of a killed glean process group outlived the grace period");
                        return;
                    }
                    tokio::time::sleep(REAP_POLL).await;
                }
                Ok(_) | Err(Errno::EINTR) => {}
                // ECHILD: no child of ours is left in the group.
                Err(_) => return,
            }
        }
    }
}

impl Drop for Group {
    /// The call was cancelled mid-run: kill the group and reap it in the background.
    fn drop(&mut self) {
        if self.leader.is_none() {
            return;
        }
        self.kill();
        let (leader, pgid) = (self.leader.take(), self.pgid);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime: `kill_on_drop` and tokio's orphan queue still reap the leader.
            return;
        };
        runtime.spawn(async move {
            let mut group = Group { leader, pgid };
            if tokio::time::timeout(REAP_GRACE, group.wait()).await.is_ok() {
                group.reap_rest().await;
            }
            // Dropping a still unreaped leader here hands it to tokio's orphan queue, not to this Drop again.
            drop(group.leader.take());
        });
    }
}

/// Copies a pipe into a bounded tail until end of file.
fn read_into<R: AsyncRead + Unpin + Send + 'static>(pipe: Option<R>, tail: Arc<Mutex<Tail>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => lock(&tail).push(&buf[..n]),
            }
        }
    })
}

/// Waits briefly for the readers; a pipe held open by an escaped process must not hold us.
async fn finish_readers(readers: [JoinHandle<()>; 2]) {
    let deadline = Instant::now() + READER_GRACE;
    for mut reader in readers {
        if tokio::time::timeout_at(deadline, &mut reader).await.is_err() {
            reader.abort();
        }
    }
}

/// Locks a tail; a reader that panicked leaves a usable tail behind.
fn lock(tail: &Mutex<Tail>) -> std::sync::MutexGuard<'_, Tail> {
    tail.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The last `cap` bytes of a stream.
#[derive(Debug)]
pub(super) struct Tail {
    buf: VecDeque<u8>,
    cap: usize,
    /// True once bytes were dropped from the front.
    cut: bool,
}

impl Tail {
    /// An empty tail keeping at most `cap` bytes.
    pub(super) fn new(cap: usize) -> Tail {
        Tail { buf: VecDeque::with_capacity(cap.min(1024)), cap, cut: false }
    }

    /// Appends bytes, dropping the oldest beyond the cap.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        let bytes = if bytes.len() > self.cap {
            self.cut = true;
            &bytes[bytes.len() - self.cap..]
        } else {
            bytes
        };
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.cut = true;
            self.buf.drain(..overflow);
        }
        self.buf.extend(bytes);
    }

    /// The kept text, at most `max_lines` lines, trimmed; `...` marks a cut.
    pub(super) fn render(&self, max_lines: usize) -> String {
        let (a, b) = self.buf.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).trim().to_owned();
        let lines: Vec<&str> = text.lines().collect();
        let keep = lines.len().min(max_lines);
        let body = lines[lines.len() - keep..].join("\n");
        if self.cut || keep < lines.len() { format!("...\n{body}") } else { body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes_and_lines() {
        let mut tail = Tail::new(16);
        tail.push(b"0123456789");
        tail.push(b"abcdefghij");
        assert_eq!(tail.render(20), "...\n456789abcdefghij");
        let mut lines = Tail::new(4096);
        for i in 0..30 {
            lines.push(format!("line {i}\n").as_bytes());
        }
        let shown = lines.render(3);
        assert_eq!(shown, "...\nline 27\nline 28\nline 29");
    }

    #[test]
    fn a_huge_write_keeps_only_its_end() {
        let mut tail = Tail::new(8);
        tail.push(&[b'x'; 100_000]);
        tail.push(b"END");
        assert_eq!(tail.render(20), "...\nxxxxxEND");
        assert!(tail.buf.len() <= 8);
    }
}
