//! The save path: a graph in, a durable batch file and a ledger row out.
//!
//! Never waits on Glean. For a graph with a key, the ledger first says
//! whether its content is unchanged since its last export to this database
//! (then nothing is written or sent) and which of its facts the database is
//! already known to hold (those are left out: the batch is a delta). The
//! file is written before the row; a row that cannot be written takes its
//! file with it, so a failed save leaves nothing behind.

use super::{Exporter, SaveError, SaveReceipt, SaveState, Shared, Stats};
use crate::batch::{self, BatchContent, FactHash, Manifest};
use crate::graph::Graph;
use crate::ledger::{ExportId, NewExport, VersionSlot};
use chrono::Utc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::info;

/// Graphs of up to this many facts are hashed on the async thread (about 0.15 ms here).
const INLINE_HASH_FACTS: usize = 256;

/// A graph with the hashes that identify its facts and content.
struct Hashed {
    /// Shared with the ledger row, which stores it (graph persistence).
    graph: Arc<Graph>,
    /// The nodes' facts, then the edges'.
    facts: Vec<FactHash>,
    content_hash: String,
}

/// What the receipt and the log tell of a batch, kept while the ledger takes its export.
#[derive(Debug, Clone, Copy)]
struct Written {
    version: Option<i64>,
    nodes: i64,
    edges: i64,
    bytes: i64,
}

impl Written {
    fn of(new: &NewExport) -> Written {
        Written { version: new.graph_version, nodes: new.node_count, edges: new.edge_count, bytes: new.bytes }
    }
}

/// Which facts go into the batch.
struct Selection {
    /// Per fact (nodes, then edges): whether the database already holds it.
    known: Vec<bool>,
    /// Whether the batch's facts are tracked (graphs with a key).
    track: bool,
}

impl Exporter {
    /// Saves a graph: a durable batch file and a ledger row, then a queued id. Never waits on Glean.
    pub async fn save(&self, graph: Graph) -> Result<SaveReceipt, SaveError> {
        let shared = &self.shared;
        if !shared.accepting.load(Ordering::SeqCst) {
            return Err(SaveError::ShuttingDown);
        }
        let result = self.save_graph(graph).await;
        if result.is_err() {
            crate::metrics::save("failed");
        }
        result
    }

    async fn save_graph(&self, graph: Graph) -> Result<SaveReceipt, SaveError> {
        let shared = &self.shared;
        // A small graph is hashed here: a hop to the blocking pool and back costs more, and
        // under load its wait for a thread was most of the hash's time (measured).
        let hashed = if graph.nodes.len() + graph.edges.len() <= INLINE_HASH_FACTS {
            hash(graph)
        } else {
            blocking(move || Ok(hash(graph))).await?
        };
        let (version, selection) = match hashed.graph.key() {
            None => (None, Selection { known: vec![false; hashed.facts.len()], track: false }),
            Some(k) => match shared.ledger.begin_save(&shared.db, &k, &hashed.content_hash, &hashed.facts).await? {
                (VersionSlot::Unchanged { export_id, version }, _) => return Ok(shared.unchanged(&hashed, export_id, version)),
                (VersionSlot::New { version }, known) => (Some(version), Selection { known, track: true }),
            },
        };
        let name = shared.batches.next_name();
        let writer = shared.clone();
        let file = name.clone();
        let (new, graph) = blocking(move || write(&writer, file, hashed, version, &selection)).await?;
        let written = Written::of(&new);
        let id = match shared.ledger.insert(new).await {
            Ok(id) => id,
            Err(e) => {
                // Leave nothing half-done: a file without a row would be delivered by nobody.
                let _ = std::fs::remove_file(shared.batches.path().join(&name));
                return Err(e.into());
            }
        };
        Ok(shared.saved(id, name, written, &graph))
    }
}

impl Exporter {
    /// Records a batch file written by another program (the watcher): it is delivered
    /// from where it is, or recorded dead at once with `invalid` as the reason.
    pub async fn ingest_file(&self, path: &std::path::Path, invalid: Option<String>) -> Result<ExportId, SaveError> {
        let shared = &self.shared;
        if !shared.accepting.load(Ordering::SeqCst) {
            return Err(SaveError::ShuttingDown);
        }
        let bytes = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
        let payload = if shared.ledger.shared() && invalid.is_none() {
            Some(std::fs::read(path).map_err(|source| crate::batch::BatchFileError { path: path.to_owned(), source })?)
        } else {
            None
        };
        let new = NewExport {
            db: shared.db.clone(),
            batch_file: path.to_string_lossy().into_owned(),
            bytes,
            dead: invalid,
            payload,
            ..NewExport::default()
        };
        let dead = new.dead.clone();
        let id = shared.ledger.insert(new).await?;
        match &dead {
            Some(reason) => {
                crate::metrics::dead();
                tracing::warn!(export_id = id, file = %path.display(), reason = %reason, state = "dead", "watched batch file is invalid");
            }
            None => {
                Stats::add(&shared.stats.total_exports, 1);
                info!(export_id = id, file = %path.display(), state = "pending", "watched batch file recorded");
                if shared.sink.is_some() {
                    shared.enqueue(id);
                }
            }
        }
        Ok(id)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, SaveError> + Send + 'static) -> Result<T, SaveError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SaveError::Internal(e.to_string()))?
}

fn hash(graph: Graph) -> Hashed {
    let facts = batch::fact_hashes(&graph);
    let content_hash = batch::content_hash(&facts);
    Hashed { graph: Arc::new(graph), facts, content_hash }
}

/// Writes the batch of the facts not known to the database; returns the row to record and
/// the graph (all its facts' hashes are dropped here, before the ledger's work).
fn write(
    shared: &Arc<Shared>,
    name: String,
    hashed: Hashed,
    version: Option<i64>,
    sel: &Selection,
) -> Result<(NewExport, Arc<Graph>), SaveError> {
    let g = &hashed.graph;
    let (known_nodes, known_edges) = match sel.known.split_at_checked(g.nodes.len()) {
        Some(split) if sel.known.len() == hashed.facts.len() => split,
        _ => return Err(SaveError::Internal(format!("the ledger answered {} of {} facts", sel.known.len(), hashed.facts.len()))),
    };
    let nodes: Vec<_> = g.nodes.iter().zip(known_nodes).filter(|(_, k)| !**k).map(|(n, _)| n).collect();
    let edges: Vec<_> = g.edges.iter().zip(known_edges).filter(|(_, k)| !**k).map(|(e, _)| e).collect();
    let manifest = Manifest {
        exported_at: Utc::now(),
        graph_key: g.key(),
        graph_version: version.and_then(|v| u64::try_from(v).ok()),
        content_hash: Some(hashed.content_hash.clone()),
        project_id: g.project_id.clone(),
        system_id: g.system_id.clone(),
        full_node_count: Some(g.nodes.len() as u64),
        full_edge_count: Some(g.edges.len() as u64),
    };
    let (node_count, edge_count) = (nodes.len() as i64, edges.len() as i64);
    let content = BatchContent { predicates: &shared.predicates, nodes, edges, manifest };
    let bytes = shared.batches.write(&name, &content)?;
    // A shared ledger carries the batch, so that any node can write it.
    let payload = if shared.ledger.shared() {
        let path = shared.batches.path().join(&name);
        Some(std::fs::read(&path).map_err(|source| crate::batch::BatchFileError { path, source })?)
    } else {
        None
    };
    let facts = if sel.track {
        // In the order the ledger keeps fact sets in, so it can store them without a copy.
        batch::sorted_unique(hashed.facts.iter().zip(&sel.known).filter(|(_, k)| !**k).map(|(h, _)| *h).collect())
    } else {
        Vec::new()
    };
    let new = NewExport {
        db: shared.db.clone(),
        batch_file: name,
        graph_key: g.key(),
        graph_version: version,
        content_hash: Some(hashed.content_hash.clone()),
        node_count,
        edge_count,
        bytes: bytes as i64,
        facts,
        dead: None,
        snapshot: g.key().map(|_| hashed.graph.clone()),
        payload,
    };
    Ok((new, hashed.graph))
}

impl Shared {
    /// Counts, logs, queues and describes a save that was recorded.
    fn saved(&self, id: ExportId, name: String, new: Written, g: &Graph) -> SaveReceipt {
        Stats::add(&self.stats.total_exports, 1);
        Stats::add(&self.stats.duplicate_nodes, g.duplicate_nodes as u64);
        Stats::add(&self.stats.duplicate_edges, g.duplicate_edges as u64);
        info!(export_id = id, file = %name, version = ?new.version, nodes = new.nodes, edges = new.edges,
              state = "pending", "export saved");
        crate::metrics::batch_written(new.bytes as u64);
        let state = if self.sink.is_some() {
            self.enqueue(id);
            crate::metrics::save("queued");
            SaveState::Queued
        } else {
            crate::metrics::save("batch_mode");
            SaveState::BatchMode
        };
        SaveReceipt {
            export_id: id,
            state,
            batch_file: name,
            graph_version: new.version,
            node_count: new.nodes as usize,
            edge_count: new.edges as usize,
            full_node_count: g.nodes.len(),
            full_edge_count: g.edges.len(),
            duplicate_nodes: g.duplicate_nodes,
            duplicate_edges: g.duplicate_edges,
        }
    }

    /// A save whose content is already exported: counted as skipped, nothing written.
    fn unchanged(&self, hashed: &Hashed, export_id: ExportId, version: i64) -> SaveReceipt {
        let g = &hashed.graph;
        Stats::add(&self.stats.skipped, 1);
        crate::metrics::save("unchanged");
        info!(export_id, version, graph = ?g.key(), state = "unchanged", "graph unchanged since its last export: nothing to write");
        SaveReceipt {
            export_id,
            state: SaveState::Unchanged,
            batch_file: String::new(),
            graph_version: Some(version),
            node_count: 0,
            edge_count: 0,
            full_node_count: g.nodes.len(),
            full_edge_count: g.edges.len(),
            duplicate_nodes: g.duplicate_nodes,
            duplicate_edges: g.duplicate_edges,
        }
    }
}
