//! Keeping the export directory and the ledger in agreement.
//!
//! At start: temporary files of writes a crash interrupted are removed, and a
//! batch file written just before a crash, whose ledger row was never
//! committed, is adopted (recorded as a pending export), so no file in the
//! directory is left unaccounted for. Only files newer than the newest row
//! (by the time in their ULID name, with a margin) are looked up: the cost
//! does not grow with the history. Before each delivery: a missing batch file
//! makes its export dead, and one whose size is not the size recorded at save
//! (truncated or damaged) is moved aside to `.corrupt/` and its export made
//! dead with the reason, never retried in a loop (a watched file, another
//! program's, is left where it is). Copies of other nodes' batches (shared
//! ledger) are removed once delivered.

use super::Shared;
use crate::ledger::{Export, LedgerError, NewExport};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// How long before the newest ledger row a file of an unfinished save can date from.
const ORPHAN_WINDOW_MS: u64 = 10 * 60 * 1000;

/// Bytes at the end of a batch file that hold its manifest.
const MANIFEST_TAIL: usize = 64 * 1024;

/// Where damaged batch files are moved.
pub(crate) const CORRUPT_DIR: &str = ".corrupt";

/// Removes interrupted writes and adopts batch files that have no ledger row.
pub(super) async fn export_dir(shared: &Shared) -> Result<(), LedgerError> {
    let dir = shared.batches.path().to_owned();
    let newest_ms = shared.ledger.newest().await?.map(|e| e.created_at.timestamp_millis().max(0) as u64);
    let cutoff = newest_ms.map(|ms| ms.saturating_sub(ORPHAN_WINDOW_MS));
    let scan_dir = dir.clone();
    let candidates = tokio::task::spawn_blocking(move || scan(&scan_dir, cutoff)).await.unwrap_or_default();
    for name in candidates {
        if shared.ledger.by_file(&name).await?.is_some() {
            continue;
        }
        let path = dir.join(&name);
        let mut export = describe(&path, &name, &shared.db);
        if shared.ledger.shared() {
            // Any node may deliver it: the shared ledger carries its bytes, as for a save.
            match std::fs::read(&path) {
                Ok(bytes) => export.payload = Some(bytes),
                Err(e) => {
                    warn!(file = %name, error = %e, "cannot read a batch file saved just before a crash; left for the next start");
                    continue;
                }
            }
        }
        let id = shared.ledger.insert(export).await?;
        info!(export_id = id, file = %name, state = "pending", "adopted a batch file saved just before a crash (its save was never acknowledged)");
    }
    Ok(())
}

/// Deletes `.tmp-*.part` files; returns our batch files whose ULID time is at or after `cutoff` (all without one).
fn scan(dir: &Path, cutoff: Option<u64>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") && name.ends_with(".part") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => info!(file = %name, "removed a batch file left half-written by an interrupted save"),
                Err(e) => warn!(file = %name, error = %e, "cannot remove a half-written batch file"),
            }
        } else if let Some(ms) = ulid_time(&name)
            && cutoff.is_none_or(|c| ms >= c)
        {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// The creation time of one of our batch files, from its name `graph_<ULID>.json[.zst]`.
fn ulid_time(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("graph_")?;
    let (ulid, ext) = rest.split_once('.')?;
    if ext != "json" && ext != "json.zst" {
        return None;
    }
    ulid::Ulid::from_string(ulid).ok().map(|u| u.timestamp_ms())
}

/// The ledger row of an adopted file, from its manifest (the last fact in the file).
fn describe(path: &Path, name: &str, db: &str) -> NewExport {
    let bytes = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
    let manifest = manifest_key(path).unwrap_or(Value::Null);
    let text = |k: &str| manifest[k].as_str().map(str::to_owned);
    let num = |k: &str| manifest[k].as_i64();
    NewExport {
        db: db.to_owned(),
        batch_file: name.to_owned(),
        graph_key: text("graph_key"),
        graph_version: num("graph_version"),
        content_hash: text("content_hash"),
        node_count: num("node_count").unwrap_or(0),
        edge_count: num("edge_count").unwrap_or(0),
        bytes,
        // Which of its facts the database lacked is not recorded; they are not tracked.
        facts: Vec::new(),
        dead: None,
        snapshot: None,
        payload: None,
    }
}

/// The key of the manifest fact, read from the end of the file (decompressed if `.zst`).
fn manifest_key(path: &Path) -> Option<Value> {
    let file = std::fs::File::open(path).ok()?;
    let tail =
        if path.extension().is_some_and(|e| e == "zst") { tail_of(zstd::stream::read::Decoder::new(file).ok()?) } else { tail_of(file) }?;
    let text = String::from_utf8_lossy(&tail);
    let start = text.rfind("\n{\"key\":")? + 1;
    let fact = text[start..].trim_end().trim_end_matches(']').trim_end_matches('}').trim_end_matches(']');
    let fact: Value = serde_json::from_str(fact).ok()?;
    Some(fact["key"].clone())
}

/// The last `MANIFEST_TAIL` bytes of a stream, reading it through once.
fn tail_of(mut r: impl Read) -> Option<Vec<u8>> {
    let mut tail = Vec::with_capacity(2 * MANIFEST_TAIL);
    let mut buf = vec![0u8; MANIFEST_TAIL];
    loop {
        let n = r.read(&mut buf).ok()?;
        if n == 0 {
            return Some(tail);
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * MANIFEST_TAIL {
            tail.drain(..tail.len() - MANIFEST_TAIL);
        }
    }
}

/// Checks an export's batch file before it is written; the reason it cannot be, if so.
pub(super) fn check_file(dir: &Path, export: &Export) -> Result<(), String> {
    let path = dir.join(&export.batch_file);
    let size = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("batch file {} is missing", path.display())),
        // Anything else (permissions, I/O) may pass; the write will say.
        Err(_) => return Ok(()),
    };
    if export.bytes <= 0 || size == export.bytes as u64 {
        return Ok(());
    }
    if Path::new(&export.batch_file).is_absolute() {
        // A watched file belongs to the program that wrote it: never moved.
        return Err(format!(
            "batch file {} changed after it was recorded: {size} bytes, {} then; left where it is",
            path.display(),
            export.bytes
        ));
    }
    let moved = move_aside(dir, &export.batch_file);
    Err(format!(
        "batch file {} is truncated or damaged: {size} bytes, {} when saved; {}",
        path.display(),
        export.bytes,
        match moved {
            Ok(to) => format!("moved to {}", to.display()),
            Err(e) => format!("could not be moved aside: {e}"),
        }
    ))
}

/// Where copies of other nodes' batches go (a cache: the shared ledger holds the payloads).
pub(crate) const REMOTE_DIR: &str = ".remote";

/// Writes `bytes`, an export's payload from the shared ledger, where the sink can read it.
pub(super) fn cache_payload(dir: &Path, export: &Export, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = cached_payload(dir, export);
    let cache = dir.join(REMOTE_DIR);
    std::fs::create_dir_all(&cache)?;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(path);
    }
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&cache)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// Removes the copy of another node's batch made for an export now ingested (none: nothing to do).
pub(super) fn drop_cached_payload(dir: &Path, export: &Export) {
    match std::fs::remove_file(cached_payload(dir, export)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(file = %export.batch_file, error = %e, "cannot remove the copy of a delivered batch"),
    }
}

/// Where the copy of another node's batch for `export` goes (`cache_payload`).
fn cached_payload(dir: &Path, export: &Export) -> PathBuf {
    let base = Path::new(&export.batch_file).file_name().unwrap_or_else(|| std::ffi::OsStr::new("batch.json"));
    dir.join(REMOTE_DIR).join(base)
}

fn move_aside(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let aside = dir.join(CORRUPT_DIR);
    std::fs::create_dir_all(&aside)?;
    let to = aside.join(name);
    std::fs::rename(dir.join(name), &to)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_names_only() {
        assert!(ulid_time("graph_01M8YGP6MGXG13Z41PV9YJ94YQ.json").is_some());
        assert!(ulid_time("graph_01M8YGP6MGXG13Z41PV9YJ94YQ.json.zst").is_some());
        assert_eq!(ulid_time("graph_20261203_0001.json"), None, "the original exporter's names are not ours");
        assert_eq!(ulid_time("graph_01M8YGP6MGXG13Z41PV9YJ94YQ.txt"), None);
    }

    #[test]
    fn the_tail_keeps_the_end_of_a_long_stream() {
        let data: Vec<u8> = (0..(5 * MANIFEST_TAIL)).map(|i| (i % 251) as u8).collect();
        let tail = tail_of(&data[..]).expect("reads");
        assert!(tail.len() >= MANIFEST_TAIL);
        assert!(data.ends_with(&tail));
    }
}
