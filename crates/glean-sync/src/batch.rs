//! Batch files: a graph encoded as a Glean JSON batch, written durably.
//!
//! The second stage of the flow. A graph becomes one file holding
//! `<prefix>.Node.1` and `<prefix>.Edge.1` facts and one
//! `<prefix>.ExportManifest.1` fact that names the file itself. Keys are
//! written in the schema's field order with canonical `properties_json`, so
//! the text of a fact is exactly the canonical form Glean (and glean-local)
//! compares: equal facts, equal bytes, and a per-fact hash that identifies a
//! fact across versions of a graph. We only ever write versioned predicate
//! names, no ids and no `null`, so every batch passes `validate --strict`.
//!
//! Files are written to a hidden temporary name, fsynced, renamed without
//! clobbering, and the directory is fsynced: a batch file either exists whole
//! or not at all, and never replaces another. Names (`graph_<ULID>.json`) are
//! unique and sort in creation order. The encoder streams: a graph's text is
//! never built in memory.

use crate::graph::{Edge, Graph, Node};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The three predicate names under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicates {
    /// `<prefix>.Node.1`.
    pub node: String,
    /// `<prefix>.Edge.1`.
    pub edge: String,
    /// `<prefix>.ExportManifest.1`.
    pub manifest: String,
}

impl Predicates {
    /// The predicates of `prefix` (e.g. `agenticAiETH.ETL`).
    pub fn new(prefix: &str) -> Predicates {
        Predicates { node: format!("{prefix}.Node.1"), edge: format!("{prefix}.Edge.1"), manifest: format!("{prefix}.ExportManifest.1") }
    }
}

/// How batch files are stored (`GLEAN_BATCH_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain `.json`.
    #[default]
    None,
    /// `.json.zst` (glean decompresses it with the zstd tool).
    Zstd,
}

/// The manifest fact of one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// When the batch was written.
    pub exported_at: DateTime<Utc>,
    /// The graph's identity.
    pub graph_key: Option<String>,
    /// Version under that identity.
    pub graph_version: Option<u64>,
    /// Hash of the graph's content.
    pub content_hash: Option<String>,
    /// The graph's project.
    pub project_id: Option<String>,
    /// The graph's system.
    pub system_id: Option<String>,
    /// Nodes in the whole graph (the batch may hold fewer: a delta).
    pub full_node_count: Option<u64>,
    /// Edges in the whole graph.
    pub full_edge_count: Option<u64>,
}

/// What goes into one batch file.
pub struct BatchContent<'a> {
    /// Predicate names.
    pub predicates: &'a Predicates,
    /// Node facts to write.
    pub nodes: Vec<&'a Node>,
    /// Edge facts to write.
    pub edges: Vec<&'a Edge>,
    /// The manifest (its `export_file` is the file's own name).
    pub manifest: Manifest,
}

/// Identifies a fact across exports: 16 bytes of BLAKE3 over its predicate and key text.
pub type FactHash = [u8; 16];

/// Why a batch file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write batch file {}: {source}", path.display())]
pub struct BatchFileError {
    /// The file (or directory) involved.
    pub path: PathBuf,
    /// The underlying error (e.g. no space left on device).
    #[source]
    pub source: io::Error,
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    // serde_json's escaping of a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// A fact whose canonical key text we can write.
pub trait FactKey {
    /// Appends the fact's key as written in batches (schema field order, canonical).
    fn write_key(&self, out: &mut String);
}

impl FactKey for Node {
    fn write_key(&self, out: &mut String) {
        out.push_str("{\"id\":");
        push_json_str(out, &self.id);
        out.push_str(",\"kind\":");
        push_json_str(out, &self.kind);
        out.push_str(",\"label\":");
        push_json_str(out, &self.label);
        push_properties(out, self.properties_json.as_deref());
        out.push('}');
    }
}

impl FactKey for Edge {
    fn write_key(&self, out: &mut String) {
        out.push_str("{\"source\":");
        push_json_str(out, &self.source);
        out.push_str(",\"target\":");
        push_json_str(out, &self.target);
        out.push_str(",\"label\":");
        push_json_str(out, &self.label);
        push_properties(out, self.properties_json.as_deref());
        out.push('}');
    }
}

fn push_properties(out: &mut String, props: Option<&str>) {
    if let Some(p) = props {
        out.push_str(",\"properties_json\":");
        push_json_str(out, p);
    }
}

fn fact_hash(tag: u8, key: &str) -> FactHash {
    let mut h = blake3::Hasher::new();
    h.update(&[tag]);
    h.update(key.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Per-fact hashes of a graph: its nodes', then its edges', in graph order (one vector:
/// a million-node graph's hashes are 32 MiB, better not copied to be looked up whole).
pub fn fact_hashes(graph: &Graph) -> Vec<FactHash> {
    let mut hashes = Vec::with_capacity(graph.nodes.len() + graph.edges.len());
    let mut buf = String::with_capacity(256);
    hash_into(&mut hashes, &mut buf, b'N', &graph.nodes);
    hash_into(&mut hashes, &mut buf, b'E', &graph.edges);
    hashes
}

fn hash_into<T: FactKey>(out: &mut Vec<FactHash>, buf: &mut String, tag: u8, facts: &[T]) {
    out.extend(facts.iter().map(|f| {
        buf.clear();
        f.write_key(buf);
        fact_hash(tag, buf)
    }));
}

/// Hashes in ascending order, each once: the order the ledgers keep and look up fact sets in.
pub fn sorted_unique(mut hashes: Vec<FactHash>) -> Vec<FactHash> {
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

/// A hash of a graph's content that ignores the order of nodes and edges.
pub fn content_hash(facts: &[FactHash]) -> String {
    let mut all: Vec<&FactHash> = facts.iter().collect();
    all.sort_unstable();
    let mut h = blake3::Hasher::new();
    for f in all {
        h.update(f);
    }
    h.finalize().to_hex()[..32].to_owned()
}

/// Where batch files are written, and how they are named.
pub struct BatchDir {
    dir: PathBuf,
    compression: Compression,
    /// ULIDs from one generator are strictly increasing, even within a millisecond.
    names: Mutex<ulid::Generator>,
}

impl BatchDir {
    /// Uses (and creates) `dir`.
    pub fn new(dir: &Path, compression: Compression) -> Result<BatchDir, BatchFileError> {
        std::fs::create_dir_all(dir).map_err(|source| BatchFileError { path: dir.into(), source })?;
        Ok(BatchDir { dir: dir.to_owned(), compression, names: Mutex::new(ulid::Generator::new()) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A new unique, sortable file name: `graph_<ULID>.json[.zst]`.
    pub fn next_name(&self) -> String {
        let mut generator = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The generator only fails when a millisecond's random space is used up.
        let ulid = generator.generate().unwrap_or_else(|_| ulid::Ulid::generate());
        let ext = match self.compression {
            Compression::None => "json",
            Compression::Zstd => "json.zst",
        };
        format!("graph_{ulid}.{ext}")
    }

    /// Writes `content` as file `name`, durably; returns its size in bytes.
    pub fn write(&self, name: &str, content: &BatchContent<'_>) -> Result<u64, BatchFileError> {
        let target = self.dir.join(name);
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| BatchFileError { path, source }
        };
        let tmp = tempfile::Builder::new().prefix(".tmp-").suffix(".part").tempfile_in(&self.dir).map_err(err(&self.dir))?;
        let buffered = BufWriter::with_capacity(1 << 18, tmp.as_file());
        match self.compression {
            Compression::None => finish(encode(content, name, buffered)?).map_err(err(&target))?,
            Compression::Zstd => {
                let encoder = zstd::stream::write::Encoder::new(buffered, 3).map_err(err(&target))?;
                finish(encode(content, name, encoder)?.finish().map_err(err(&target))?).map_err(err(&target))?
            }
        }
        tmp.as_file().sync_all().map_err(err(&target))?;
        let bytes = tmp.as_file().metadata().map_err(err(&target))?.len();
        tmp.persist_noclobber(&target).map_err(|e| BatchFileError { path: target.clone(), source: e.error })?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(err(&self.dir))?;
        Ok(bytes)
    }
}

fn finish<W: Write>(mut w: BufWriter<W>) -> io::Result<()> {
    w.flush()
}

/// Streams the batch text of `content` into `w`.
fn encode<W: Write>(content: &BatchContent<'_>, file_name: &str, mut w: W) -> Result<W, BatchFileError> {
    let io_err = |source| BatchFileError { path: PathBuf::from(file_name), source };
    let mut buf = String::with_capacity(256);
    let manifest = ManifestKey { manifest: &content.manifest, file_name, nodes: content.nodes.len(), edges: content.edges.len() };
    let mut first = true;
    if !content.nodes.is_empty() {
        write_group(&mut w, &mut buf, &mut first, &content.predicates.node, &content.nodes).map_err(io_err)?;
    }
    if !content.edges.is_empty() {
        write_group(&mut w, &mut buf, &mut first, &content.predicates.edge, &content.edges).map_err(io_err)?;
    }
    write_group(&mut w, &mut buf, &mut first, &content.predicates.manifest, &[&manifest]).map_err(io_err)?;
    w.write_all(b"]\n").map_err(io_err)?;
    Ok(w)
}

/// One `{"predicate": ..., "facts": [...]}` group, one fact per line.
fn write_group<W: Write, T: FactKey>(w: &mut W, buf: &mut String, first: &mut bool, predicate: &str, facts: &[&T]) -> io::Result<()> {
    w.write_all(if *first { b"[" } else { b",\n" })?;
    *first = false;
    buf.clear();
    buf.push_str("{\"predicate\":");
    push_json_str(buf, predicate);
    buf.push_str(",\"facts\":[");
    w.write_all(buf.as_bytes())?;
    for (i, fact) in facts.iter().enumerate() {
        buf.clear();
        buf.push_str(if i == 0 { "\n{\"key\":" } else { ",\n{\"key\":" });
        fact.write_key(buf);
        buf.push('}');
        w.write_all(buf.as_bytes())?;
    }
    w.write_all(b"]}")
}

/// The manifest fact of a file, which names the file itself.
struct ManifestKey<'a> {
    manifest: &'a Manifest,
    file_name: &'a str,
    nodes: usize,
    edges: usize,
}

impl FactKey for ManifestKey<'_> {
    /// The manifest's key, in the schema's field order.
    fn write_key(&self, out: &mut String) {
        let m = self.manifest;
        out.push_str("{\"exported_at\":");
        push_json_str(out, &m.exported_at.to_rfc3339_opts(SecondsFormat::Millis, true));
        out.push_str(&format!(",\"node_count\":{},\"edge_count\":{},\"export_file\":", self.nodes, self.edges));
        push_json_str(out, self.file_name);
        push_opt_str(out, "graph_key", &m.graph_key);
        push_opt_nat(out, "graph_version", m.graph_version);
        push_opt_str(out, "content_hash", &m.content_hash);
        push_opt_str(out, "project_id", &m.project_id);
        push_opt_str(out, "system_id", &m.system_id);
        push_opt_nat(out, "full_node_count", m.full_node_count);
        push_opt_nat(out, "full_edge_count", m.full_edge_count);
        out.push('}');
    }
}

/// A `maybe string` field: omitted when absent, as Glean wants.
fn push_opt_str(out: &mut String, field: &str, value: &Option<String>) {
    if let Some(v) = value {
        out.push_str(&format!(",\"{field}\":"));
        push_json_str(out, v);
    }
}

/// A `maybe nat` field: omitted when absent.
fn push_opt_nat(out: &mut String, field: &str, value: Option<u64>) {
    if let Some(v) = value {
        out.push_str(&format!(",\"{field}\":{v}"));
    }
}

#[cfg(test)]
mod tests;
