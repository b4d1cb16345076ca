//! Watch mode: batch files that other programs write into a directory enter the flow.
//!
//! Teams that run the original exporter in batch mode have directories of
//! `graph_<ts>_<seq>.json` files. The watcher records each batch file that
//! appears in the watched directory as an export (delivered from where it
//! is), exactly once: file events (notify) make it prompt, a periodic rescan
//! makes it miss nothing when events are lost or the service was down, and
//! the ledger remembers what was taken across restarts. A file is taken only
//! once it has stopped changing for a settle period (or was closed after
//! writing) and parses completely; a file that is complete but invalid for
//! the schema is recorded dead with the reason. The watcher never modifies
//! or moves the files it watches.

use crate::exporter::{Exporter, SaveError};
use crate::ledger::ExportId;
use glean_catalog::batch::{BatchError, validate_file};
use glean_catalog::schema::Schema;
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How the watcher behaves.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The directory of batch files (`GLEAN_WATCH_DIR`).
    pub dir: PathBuf,
    /// How often the whole directory is listed again.
    pub rescan: Duration,
    /// How long a file must be unchanged before it is taken.
    pub settle: Duration,
    /// How long an incomplete file may stay unchanged before it is declared broken.
    pub give_up: Duration,
}

impl WatchConfig {
    /// The usual timings for `dir`.
    pub fn new(dir: PathBuf) -> WatchConfig {
        WatchConfig { dir, rescan: Duration::from_secs(5), settle: Duration::from_secs(1), give_up: Duration::from_secs(120) }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The directory cannot be used.
    #[error("GLEAN_WATCH_DIR {path}: {message}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Recording an export failed.
    #[error(transparent)]
    Save(#[from] SaveError),
}

/// What is known of a file not yet taken.
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    /// When the size or time last changed.
    changed: Instant,
    /// A close-after-write event arrived since the last change.
    closed: bool,
    /// It settled but did not parse to the end: wait for a change, or give up.
    unfinished: bool,
}

impl Seen {
    fn new(size: u64, modified: Option<SystemTime>) -> Seen {
        Seen { size, modified, changed: Instant::now(), closed: false, unfinished: false }
    }

    /// Ready to be looked at: settled (sooner when closed after writing), or an unfinished one given up on.
    fn due(&self, config: &WatchConfig) -> bool {
        let quiet = self.changed.elapsed();
        if self.unfinished {
            return quiet >= config.give_up;
        }
        quiet >= config.settle || (self.closed && quiet >= config.settle / 4)
    }
}

/// One watched directory.
pub struct Watcher {
    exporter: Exporter,
    schema: Arc<Schema>,
    config: WatchConfig,
    /// Files already recorded in the ledger (checked there once per file, then remembered here).
    taken: HashSet<PathBuf>,
    /// Files waiting to settle.
    waiting: HashMap<PathBuf, Seen>,
}

/// Whether a directory entry looks like a batch file another program finished naming.
fn is_batch_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    !name.starts_with('.') && (name.ends_with(".json") || name.ends_with(".json.zst"))
}

impl Watcher {
    /// A watcher of `config.dir` (absolute), checking files against `schema`.
    pub fn new(exporter: Exporter, schema: Schema, config: WatchConfig) -> Result<Watcher, WatchError> {
        let dir_err = |message: String| WatchError::Dir { path: config.dir.clone(), message };
        let dir = std::fs::canonicalize(&config.dir).map_err(|e| dir_err(e.to_string()))?;
        if !dir.is_dir() {
            return Err(dir_err("not a directory".into()));
        }
        let export_dir = std::fs::canonicalize(exporter.batch_dir()).unwrap_or_else(|_| exporter.batch_dir().to_owned());
        if dir == export_dir {
            return Err(dir_err("must not be GLEAN_EXPORT_DIR (glean-sync's own batch files are delivered already)".into()));
        }
        Ok(Watcher {
            exporter,
            schema: Arc::new(schema),
            config: WatchConfig { dir, ..config },
            taken: HashSet::new(),
            waiting: HashMap::new(),
        })
    }

    /// Watches until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), WatchError> {
        let (tx, mut events) = mpsc::channel::<(PathBuf, bool)>(4096);
        let mut fs_watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            let closed = matches!(event.kind, EventKind::Access(notify::event::AccessKind::Close(notify::event::AccessMode::Write)));
            for path in event.paths {
                // A full channel drops the event: the next rescan finds the file anyway.
                let _ = tx.try_send((path, closed));
            }
        })
        .map_err(|e| WatchError::Dir { path: self.config.dir.clone(), message: e.to_string() })?;
        fs_watcher
            .watch(&self.config.dir, RecursiveMode::NonRecursive)
            .map_err(|e| WatchError::Dir { path: self.config.dir.clone(), message: e.to_string() })?;
        info!(dir = %self.config.dir.display(), "watching for batch files");
        let mut rescan = tokio::time::interval(self.config.rescan);
        let mut settle = tokio::time::interval(self.config.settle / 2);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = rescan.tick() => self.scan().await?,
                _ = settle.tick() => { self.take_settled().await?; }
                Some((path, closed)) = events.recv() => self.observe(path, closed).await?,
            }
        }
    }

    /// Takes every batch file in the directory once it has settled (the `ingest` command).
    pub async fn ingest_all(mut self) -> Result<Vec<ExportId>, WatchError> {
        self.scan().await?;
        let mut ids = Vec::new();
        while !self.waiting.is_empty() {
            ids.extend(self.take_settled().await?);
            if !self.waiting.is_empty() {
                tokio::time::sleep(self.config.settle / 4).await;
            }
        }
        Ok(ids)
    }

    /// Lists the directory: every batch file not taken yet is watched until it settles.
    async fn scan(&mut self) -> Result<(), WatchError> {
        let dir = self.config.dir.clone();
        let entries = tokio::task::spawn_blocking(move || -> Vec<PathBuf> {
            std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).filter(|p| is_batch_file(p)).collect()).unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        for path in entries {
            self.observe(path, false).await?;
        }
        Ok(())
    }

    /// Notes that `path` exists (and whether it was just closed after writing).
    async fn observe(&mut self, path: PathBuf, closed: bool) -> Result<(), WatchError> {
        if !is_batch_file(&path) || self.taken.contains(&path) {
            return Ok(());
        }
        if !self.waiting.contains_key(&path)
            && self.exporter.ledger().by_file(&path.to_string_lossy()).await.map_err(SaveError::from)?.is_some()
        {
            self.taken.insert(path);
            return Ok(());
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            self.waiting.remove(&path);
            return Ok(());
        };
        let (size, modified) = (meta.len(), meta.modified().ok());
        let seen = self.waiting.entry(path).or_insert_with(|| Seen::new(size, modified));
        if seen.size != size || seen.modified != modified {
            *seen = Seen::new(size, modified);
        }
        seen.closed |= closed;
        Ok(())
    }

    /// Takes the files that stopped changing; returns the exports recorded.
    async fn take_settled(&mut self) -> Result<Vec<ExportId>, WatchError> {
        let ready: Vec<PathBuf> = self.waiting.iter().filter(|(_, s)| s.due(&self.config)).map(|(p, _)| p.clone()).collect();
        let mut ids = Vec::new();
        for path in ready {
            if let Some(id) = self.take(&path).await? {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Validates a settled file and records it; an incomplete one keeps waiting (for a while).
    async fn take(&mut self, path: &Path) -> Result<Option<ExportId>, WatchError> {
        let Some(seen) = self.waiting.get_mut(path) else { return Ok(None) };
        // Still being written if it changed since we last looked.
        let now = std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
        match now {
            None => {
                self.waiting.remove(path);
                return Ok(None);
            }
            Some((size, modified)) if size != seen.size || modified != seen.modified => {
                *seen = Seen::new(size, modified);
                return Ok(None);
            }
            Some(_) => {}
        }
        let stale = seen.changed.elapsed() >= self.config.give_up;
        let schema = self.schema.clone();
        let file = path.to_owned();
        let verdict = tokio::task::spawn_blocking(move || validate_file(&file, &schema, false))
            .await
            .map_err(|e| SaveError::Internal(e.to_string()))?;
        let invalid = match verdict {
            Ok(_) => None,
            Err(e) if looks_unfinished(&e) && !stale => {
                // A writer that paused: wait for the file to change, or give up after a while.
                seen.unfinished = true;
                return Ok(None);
            }
            Err(BatchError::Io { source, .. }) => {
                warn!(file = %path.display(), error = %source, "cannot read a watched file; will try again");
                return Ok(None);
            }
            Err(e) => Some(e.to_string()),
        };
        let id = self.exporter.ingest_file(path, invalid).await?;
        self.waiting.remove(path);
        self.taken.insert(path.to_owned());
        Ok(Some(id))
    }
}

/// A parse error at the end of the input: the file may still be being written.
fn looks_unfinished(e: &BatchError) -> bool {
    matches!(e, BatchError::Json { message, .. } if message.contains("EOF"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_files_are_json_not_hidden() {
        assert!(is_batch_file(Path::new("/d/graph_20261203_0001.json")));
        assert!(is_batch_file(Path::new("/d/b.json.zst")));
        assert!(!is_batch_file(Path::new("/d/.graph.json.tmp")));
        assert!(!is_batch_file(Path::new("/d/.hidden.json")));
        assert!(!is_batch_file(Path::new("/d/notes.txt")));
    }
}
