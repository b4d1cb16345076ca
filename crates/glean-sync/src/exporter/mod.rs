//! The exporter: takes saves without waiting on Glean, and delivers them.
//!
//! `save` writes the batch file durably, records a `pending` row in the ledger
//! and puts the export's id on a bounded in-memory queue; it never waits for
//! Glean. When the queue is full the row simply stays pending: the sweeper
//! reads ready rows from the ledger and feeds the queue as room frees, so no
//! save is ever dropped, and the queue holds ids only, so memory does not grow
//! with a backlog. A worker woken by queued ids claims the oldest ready
//! exports (up to `max_files`; the ledger enforces per-graph order), makes
//! one sink call for all of them, and records the outcome decided by the
//! retry policy. When such a call fails, the batch at fault is isolated
//! (named by Glean, or found by halving the set), so the others in the same
//! call still get written and keep their attempts.
//!
//! Shutdown stops intake (saves fail, workers take nothing new), lets writes
//! in flight finish within the shutdown timeout, then cancels what is left:
//! cancelled writes are released back to `pending` for the next start.

mod gate;
mod reconcile;
mod retry;
mod save;
mod stats;

pub use retry::{Failure, RetryPolicy};
pub use stats::{Percentiles, StatsSnapshot};

use crate::batch::{BatchDir, BatchFileError, Predicates};
use crate::config::{ExporterConfig, Mode};
use crate::ledger::{Export, ExportId, ExportState, Ledger, LedgerError, Outcome};
use crate::sink::{Sink, SinkError};
use chrono::Utc;
use serde::Serialize;
use stats::{SnapshotContext, Stats};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How often the sweeper looks at the ledger even when nothing woke it
/// (retries coming due, exports saved by other nodes).
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// The longest part of the shutdown timeout kept for cancelling writes still in flight
/// (killing and reaping glean, recording the release), so that shutdown ends within it.
const RELEASE_GRACE: Duration = Duration::from_secs(1);

/// Why a save failed. Nothing was recorded when it fails.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The exporter is shutting down.
    #[error("glean-sync is shutting down; the graph was not saved")]
    ShuttingDown,
    /// The batch file could not be written (disk full, directory unwritable).
    #[error(transparent)]
    File(#[from] BatchFileError),
    /// The ledger could not record the export (the batch file was removed again).
    #[error("the export could not be recorded: {0}")]
    Ledger(#[from] LedgerError),
    /// The encoding task failed.
    #[error("internal error while writing the batch: {0}")]
    Internal(String),
}

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaveState {
    /// Recorded and queued for delivery.
    Queued,
    /// Recorded; batch mode delivers nothing until `drain`.
    BatchMode,
    /// Same content as the graph's last export: nothing written, nothing sent.
    Unchanged,
}

/// The answer to a save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaveReceipt {
    /// The export's id in the ledger (for `unchanged`, the export that already carries the content).
    pub export_id: ExportId,
    /// What happened.
    pub state: SaveState,
    /// The batch file's name in the export directory (empty for `unchanged`).
    pub batch_file: String,
    /// The graph's version under its key, if it has one.
    pub graph_version: Option<i64>,
    /// Node facts in the batch (only the new ones when the graph has a key).
    pub node_count: usize,
    /// Edge facts in the batch.
    pub edge_count: usize,
    /// Nodes in the graph.
    pub full_node_count: usize,
    /// Edges in the graph.
    pub full_edge_count: usize,
    /// Duplicate nodes dropped from the graph.
    pub duplicate_nodes: usize,
    /// Duplicate edges dropped from the graph.
    pub duplicate_edges: usize,
}

/// An export reached a state a waiter may care about.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The export.
    pub id: ExportId,
    /// Its new state (`ingested`, `failed` or `dead`).
    pub state: ExportState,
    /// The reason, when it failed.
    pub error: Option<String>,
}

/// What the exporter is built from.
pub struct Parts {
    /// The ledger.
    pub ledger: Arc<dyn Ledger>,
    /// The sink; `None` in batch mode.
    pub sink: Option<Arc<dyn Sink>>,
    /// Where batch files go.
    pub batches: BatchDir,
    /// Predicate names.
    pub predicates: Predicates,
    /// Queue, workers, retries.
    pub config: ExporterConfig,
    /// This process's name as a ledger owner (claims and recovery).
    pub owner: String,
    /// The Glean database exports are for (`NAME/INSTANCE`; empty when none is configured):
    /// versions and known facts are tracked per database.
    pub db: String,
}

struct Shared {
    ledger: Arc<dyn Ledger>,
    sink: Option<Arc<dyn Sink>>,
    batches: BatchDir,
    predicates: Predicates,
    config: ExporterConfig,
    owner: String,
    db: String,
    /// Export ids waiting for a worker: hints only, the ledger is the truth.
    queue: mpsc::Sender<ExportId>,
    /// Ids in the queue or with a worker, so the sweeper does not queue them twice.
    queued: Mutex<HashSet<ExportId>>,
    /// Wakes the sweeper: the queue overflowed, or room freed up.
    wake_sweeper: Notify,
    /// Announces ingested, failed and dead exports to waiters (`push`, `drain`).
    completions: broadcast::Sender<Completion>,
    stats: Stats,
    /// Pauses deliveries while the sink keeps failing.
    gate: gate::Gate,
    /// Cleared at shutdown: saves are refused from then on.
    accepting: AtomicBool,
    /// Cancelled at shutdown: workers and the sweeper take no new work.
    intake_stop: CancellationToken,
    /// Cancelled when the shutdown timeout passes: writes in flight are abandoned and released.
    hard_stop: CancellationToken,
}

/// The running exporter. Cheap to clone; all clones drive the same workers.
#[derive(Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
    /// The workers and the sweeper, waited for at shutdown.
    tasks: TaskTracker,
    /// Set by the first `shutdown`, so that later calls return at once.
    shut_down: Arc<AtomicBool>,
}

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReport {
    /// Every write in flight finished.
    Drained,
    /// The timeout passed; writes still in flight were cancelled and released to `pending`.
    TimedOut,
    /// Another call already shut the exporter down.
    AlreadyShutDown,
}

impl Exporter {
    /// Recovers this owner's unfinished claims, then starts the sweeper and workers (real-time mode).
    pub async fn start(parts: Parts) -> Result<Exporter, LedgerError> {
        let recovered = parts.ledger.recover(&parts.owner).await?;
        if recovered > 0 {
            info!(recovered, "exports left in flight by an earlier run are pending again");
        }
        let (tx, rx) = mpsc::channel(parts.config.queue_capacity);
        let (completions, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            ledger: parts.ledger,
            sink: parts.sink,
            batches: parts.batches,
            predicates: parts.predicates,
            config: parts.config,
            owner: parts.owner,
            db: parts.db,
            queue: tx,
            queued: Mutex::new(HashSet::new()),
            wake_sweeper: Notify::new(),
            completions,
            stats: Stats::default(),
            gate: gate::Gate::default(),
            accepting: AtomicBool::new(true),
            intake_stop: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
        });
        reconcile::export_dir(&shared).await?;
        let tasks = TaskTracker::new();
        if shared.sink.is_some() {
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            tasks.spawn(sweeper(shared.clone()));
            for _ in 0..shared.config.workers {
                tasks.spawn(worker(shared.clone(), rx.clone()));
            }
        }
        Ok(Exporter { shared, tasks, shut_down: Arc::new(AtomicBool::new(false)) })
    }

    /// Real-time or batch.
    pub fn mode(&self) -> Mode {
        if self.shared.sink.is_some() { Mode::Realtime } else { Mode::Batch }
    }

    /// The ledger behind this exporter.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.shared.ledger
    }

    /// Checks that the sink can take writes (always fine in batch mode, which has none).
    pub async fn check_sink(&self) -> Result<(), SinkError> {
        match &self.shared.sink {
            Some(sink) => sink.check().await,
            None => Ok(()),
        }
    }

    /// The directory of batch files.
    pub fn batch_dir(&self) -> &std::path::Path {
        self.shared.batches.path()
    }

    /// Statistics now.
    pub async fn stats(&self) -> Result<StatsSnapshot, LedgerError> {
        let s = &self.shared;
        let ledger = s.ledger.counts().await?;
        Ok(s.stats.snapshot(SnapshotContext {
            ledger,
            queue_depth: s.config.queue_capacity - s.queue.capacity(),
            queue_capacity: s.config.queue_capacity,
            mode: self.mode(),
            sink: s.sink.as_ref().map(|k| k.kind()),
            sink_description: s.sink.as_ref().map(|k| k.describe()),
            node: s.owner.clone(),
            shared_ledger: s.ledger.shared(),
        }))
    }

    /// Completions from now on (ingested, failed, dead exports).
    pub fn subscribe(&self) -> broadcast::Receiver<Completion> {
        self.shared.completions.subscribe()
    }

    /// Waits until every one of `ids` is ingested or dead; `progress` sees each as it ends.
    pub async fn wait_for(&self, ids: &[ExportId], mut progress: impl FnMut(&Export)) -> Result<Vec<Export>, LedgerError> {
        let mut events = self.subscribe();
        let mut outstanding: HashSet<ExportId> = ids.iter().copied().collect();
        self.settle(&mut outstanding, &mut progress).await?;
        while !outstanding.is_empty() {
            // An event settles its own export: re-reading every outstanding one per event
            // made waiting on a burst of n saves cost n^2 ledger reads.
            match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
                Ok(Ok(c)) if outstanding.contains(&c.id) && matches!(c.state, ExportState::Ingested | ExportState::Dead) => {
                    self.settle_one(c.id, &mut outstanding, &mut progress).await?;
                }
                Ok(Ok(_)) => {}
                // Missed events, or a quiet second: ask the ledger about every one.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => self.settle(&mut outstanding, &mut progress).await?,
                // No more events (the exporter stopped): ask the ledger once a second.
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.settle(&mut outstanding, &mut progress).await?;
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.shared.ledger.get(*id).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Removes the ids that reached a final state, reporting each.
    async fn settle(&self, outstanding: &mut HashSet<ExportId>, progress: &mut impl FnMut(&Export)) -> Result<(), LedgerError> {
        let mut ids: Vec<ExportId> = outstanding.iter().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.settle_one(id, outstanding, progress).await?;
        }
        Ok(())
    }

    /// Removes `id` if it reached a final state (or is unknown), reporting it.
    async fn settle_one(
        &self,
        id: ExportId,
        outstanding: &mut HashSet<ExportId>,
        progress: &mut impl FnMut(&Export),
    ) -> Result<(), LedgerError> {
        match self.shared.ledger.get(id).await? {
            Some(e) if matches!(e.state, ExportState::Ingested | ExportState::Dead) => {
                progress(&e);
                outstanding.remove(&id);
            }
            Some(_) => {}
            None => {
                outstanding.remove(&id);
            }
        }
        Ok(())
    }

    /// Stops intake, lets writes in flight finish within the shutdown timeout, then cancels the rest.
    pub async fn shutdown(&self) -> ShutdownReport {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return ShutdownReport::AlreadyShutDown;
        }
        let s = &self.shared;
        s.accepting.store(false, Ordering::SeqCst);
        s.intake_stop.cancel();
        self.tasks.close();
        let in_flight = s.stats.in_flight.load(Ordering::Relaxed);
        let timeout = s.config.shutdown_timeout;
        info!(in_flight, timeout_secs = timeout.as_secs(), "shutting down: waiting for writes in flight");
        let grace = (timeout / 5).min(RELEASE_GRACE);
        if tokio::time::timeout(timeout - grace, self.tasks.wait()).await.is_ok() {
            info!("shutdown complete: every write in flight finished");
            return ShutdownReport::Drained;
        }
        warn!("shutdown timeout is near: cancelling writes in flight; they stay pending for the next start");
        s.hard_stop.cancel();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            warn!("some workers did not stop in time; their exports are recovered at the next start");
        }
        ShutdownReport::TimedOut
    }
}

impl Shared {
    /// Queues an id, or leaves it to the sweeper when the queue is full.
    fn enqueue(&self, id: ExportId) {
        let mut queued = self.queued();
        if !queued.insert(id) {
            return;
        }
        match self.queue.try_send(id) {
            Ok(()) => {}
            Err(_) => {
                queued.remove(&id);
                drop(queued);
                self.wake_sweeper.notify_one();
            }
        }
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<ExportId>> {
        self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unqueue(&self, ids: impl IntoIterator<Item = ExportId>) {
        let mut queued = self.queued();
        for id in ids {
            queued.remove(&id);
        }
    }

    fn path_of(&self, e: &Export) -> PathBuf {
        self.batches.path().join(&e.batch_file)
    }

    /// Claims, writes and records one set of queued ids.
    async fn process(&self, ids: Vec<ExportId>) {
        if let Some(wait) = self.gate.wait() {
            // The sink keeps failing: claim nothing until the pause is over.
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.intake_stop.cancelled() => {
                    self.unqueue(ids);
                    return;
                }
            }
        }
        // The queued ids say that work is ready; which work is the ledger's to say:
        // the oldest ready exports, so that a backlog is always delivered oldest first.
        let claimed = self.ledger.claim(&[], self.config.max_files, &self.owner, self.config.lease).await;
        self.unqueue(ids);
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot claim exports; they stay pending");
                tokio::time::sleep(SWEEP_INTERVAL).await;
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        let claimed_ids: Vec<ExportId> = claimed.iter().map(|e| e.id).collect();
        let n = claimed.len() as u64;
        Stats::add(&self.stats.in_flight, n);
        for e in &claimed {
            info!(export_id = e.id, attempt = e.attempts, file = %e.batch_file, state = "in_flight", "writing export");
        }
        let outcomes = self.deliver(&claimed).await;
        self.record(&claimed, outcomes).await;
        self.stats.in_flight.fetch_sub(n, Ordering::Relaxed);
        self.unqueue(claimed_ids);
        self.wake_sweeper.notify_one();
    }

    /// Writes the claimed exports and decides each one's outcome.
    ///
    /// One sink call for all of them; when a call of several files fails (other than
    /// with the sink down), the files at fault are found and the rest delivered: the
    /// file Glean names is set apart, otherwise the set is split in halves and each
    /// half written again. An export that failed before is written alone from the
    /// start, so one bad batch never holds back, nor spends the attempts of, others.
    /// A claim holds at most one export per graph, so splitting never reorders versions.
    async fn deliver(&self, exports: &[Export]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; exports.len()];
        let mut together = Vec::new();
        let mut groups = Vec::new();
        for (i, e) in exports.iter().enumerate() {
            match self.batch_file(e).await {
                Ok(path) if e.attempts > 1 => groups.push(vec![(i, path)]),
                Ok(path) => together.push((i, path)),
                Err(failure) => {
                    self.stats.failed(1, failure.cause(), &failure.to_string());
                    outcomes[i] = Some(self.decide(&failure, e));
                }
            }
        }
        if !together.is_empty() {
            groups.push(together);
        }
        let mut first = true;
        // A stack, last group first: the coalesced one, then suspects; halves left before right.
        while let Some(mut group) = groups.pop() {
            if !std::mem::take(&mut first) {
                self.renew(exports, &outcomes).await;
            }
            let paths: Vec<PathBuf> = group.iter().map(|(_, p)| p.clone()).collect();
            match self.write(&paths).await {
                Ok(()) => settle(&mut outcomes, &group, |_| Outcome::Ingested),
                Err(None) => settle(&mut outcomes, &group, |_| Outcome::Released),
                Err(Some(e)) if group.len() > 1 && !e.is_outage() => match named(&group, &e) {
                    // Glean named the file at fault: it alone fails, the others go again without it.
                    Some(pos) => {
                        let (i, _) = group.remove(pos);
                        self.stats.failed(1, e.cause(), &e.to_string());
                        outcomes[i] = Some(self.decide(&Failure::Sink(e), &exports[i]));
                        groups.push(group);
                    }
                    None => groups.extend(halves(group)),
                },
                Err(Some(e)) => {
                    self.stats.failed(group.len() as u64, e.cause(), &e.to_string());
                    let failure = Failure::Sink(e);
                    settle(&mut outcomes, &group, |i| self.decide(&failure, &exports[i]));
                }
            }
        }
        outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Released)).collect()
    }

    /// Extends the hold on the exports still being written, so a long isolation never
    /// loses them to another claimer; a failure only risks a second write, which is harmless.
    async fn renew(&self, exports: &[Export], outcomes: &[Option<Outcome>]) {
        let open: Vec<ExportId> = exports.iter().zip(outcomes).filter(|(_, o)| o.is_none()).map(|(e, _)| e.id).collect();
        if let Err(e) = self.ledger.renew(&open, &self.owner, self.config.lease).await {
            warn!(error = %e, exports = ?open, "cannot renew the lease of exports being written");
        }
    }

    /// The file to hand the sink: the local batch file, or, on a shared ledger, a
    /// copy of the payload of an export another node saved.
    async fn batch_file(&self, e: &Export) -> Result<PathBuf, Failure> {
        let local = self.path_of(e);
        if local.exists() || !self.ledger.shared() {
            return reconcile::check_file(self.batches.path(), e).map(|()| local).map_err(Failure::BadFile);
        }
        match self.ledger.payload(e.id).await {
            Ok(Some(bytes)) => reconcile::cache_payload(self.batches.path(), e, &bytes)
                .map_err(|err| Failure::Unavailable(format!("cannot copy the batch here: {err}"))),
            Ok(None) => Err(Failure::BadFile(format!(
                "batch file {} is not on this node and the shared ledger holds no payload for it",
                e.batch_file
            ))),
            Err(err) => Err(Failure::Unavailable(format!("cannot fetch the batch from the shared ledger: {err}"))),
        }
    }

    /// The retry policy's outcome for this export's attempt failing.
    fn decide(&self, failure: &Failure, export: &Export) -> Outcome {
        let attempt = u32::try_from(export.attempts).unwrap_or(u32::MAX);
        self.config.retry.decide(failure, attempt, Utc::now())
    }

    /// One sink call; `Err(None)` when the shutdown timeout cancelled it. Tells the gate how it went.
    async fn write(&self, paths: &[PathBuf]) -> Result<(), Option<SinkError>> {
        let Some(sink) = &self.sink else { return Err(None) };
        if self.hard_stop.is_cancelled() {
            return Err(None);
        }
        let started = std::time::Instant::now();
        // The sink stops at a hard stop and cleans up (kills and reaps glean) before returning.
        let result = match sink.write_until(paths, &self.hard_stop).await {
            Ok(written) => {
                if written.created_database {
                    self.forget_database().await;
                }
                Ok(())
            }
            Err(SinkError::Cancelled) => Err(None),
            Err(e) => Err(Some(e)),
        };
        crate::metrics::write(result.is_ok(), started.elapsed());
        match &result {
            Ok(()) => self.gate.success(),
            Err(Some(e)) if e.is_retriable() => self.gate.failure(&self.config.retry, e.cause()),
            Err(_) => {}
        }
        result
    }

    /// The sink had to create the database: nothing from before is in it, so later saves
    /// must carry every fact (this call's facts become known as it is recorded).
    async fn forget_database(&self) {
        match self.ledger.forget_database(&self.db).await {
            Ok(()) => info!(db = %self.db, "the glean database was created anew: saves from now on carry all their facts"),
            Err(e) => warn!(db = %self.db, error = %e, "the glean database was created anew, but the ledger cannot forget what it held"),
        }
    }

    /// Stores each outcome in the ledger, logs it, counts it and announces it.
    async fn record(&self, exports: &[Export], outcomes: Vec<Outcome>) {
        let now = Utc::now();
        let mut ingested = Vec::new();
        let mut released = Vec::new();
        for (e, outcome) in exports.iter().zip(outcomes) {
            match outcome {
                Outcome::Ingested => ingested.push(e),
                Outcome::Released => released.push(e.id),
                other => self.finish_one(e, other).await,
            }
        }
        if !ingested.is_empty() {
            let ids: Vec<ExportId> = ingested.iter().map(|e| e.id).collect();
            if self.finish(&ids, &Outcome::Ingested).await {
                for e in &ingested {
                    info!(export_id = e.id, file = %e.batch_file, state = "ingested", "export ingested");
                    self.announce(e.id, ExportState::Ingested, None);
                    if self.ledger.shared() {
                        reconcile::drop_cached_payload(self.batches.path(), e);
                    }
                }
                self.stats.ingested(ingested.iter().map(|e| (now - e.created_at).to_std().unwrap_or_default()));
            }
        }
        if !released.is_empty() && self.finish(&released, &Outcome::Released).await {
            for id in released {
                info!(export_id = id, state = "pending", reason = "shutdown", "export released for the next start");
            }
        }
    }

    async fn finish_one(&self, e: &Export, outcome: Outcome) {
        if !self.finish(&[e.id], &outcome).await {
            return;
        }
        match &outcome {
            Outcome::Retry { error, retry_at } => {
                Stats::add(&self.stats.retries, 1);
                crate::metrics::retry();
                warn!(export_id = e.id, attempt = e.attempts, retry_at = %retry_at, reason = %error, state = "failed", "export failed; will retry");
                self.announce(e.id, ExportState::Failed, Some(error.clone()));
            }
            Outcome::Dead { error } => {
                crate::metrics::dead();
                warn!(export_id = e.id, attempt = e.attempts, reason = %error, state = "dead", "export is dead; replay it once the cause is fixed");
                self.announce(e.id, ExportState::Dead, Some(error.clone()));
            }
            Outcome::Postponed { error } => {
                info!(export_id = e.id, reason = %error, state = "pending", "the sink is down: export postponed, attempt not counted");
            }
            Outcome::Ingested | Outcome::Released => {}
        }
    }

    /// Records an outcome, retrying while the ledger fails (a full disk, say)
    /// until it works or shutdown passes its timeout; false then, and the rows
    /// stay in flight until this owner restarts (or their lease lapses).
    async fn finish(&self, ids: &[ExportId], outcome: &Outcome) -> bool {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.ledger.finish(ids, &self.owner, outcome).await {
                Ok(()) => return true,
                Err(e) => warn!(error = %e, exports = ?ids, "cannot record an outcome in the ledger; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.hard_stop.cancelled() => {
                    warn!(exports = ?ids, "gave up recording an outcome at shutdown; the exports are recovered at the next start");
                    return false;
                }
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    fn announce(&self, id: ExportId, state: ExportState, error: Option<String>) {
        // No receiver is fine: nobody is waiting.
        let _ = self.completions.send(Completion { id, state, error });
    }
}

/// Gives every export of `group` its outcome.
fn settle(outcomes: &mut [Option<Outcome>], group: &[(usize, PathBuf)], decide: impl Fn(usize) -> Outcome) {
    for &(i, _) in group {
        outcomes[i] = Some(decide(i));
    }
}

/// Where in `group` is the file a rejection names, if it names one of them.
fn named(group: &[(usize, PathBuf)], error: &SinkError) -> Option<usize> {
    match error {
        SinkError::Rejected { file: Some(bad), .. } => group.iter().position(|(_, p)| p == bad),
        _ => None,
    }
}

/// A group's two halves, as the stack of groups to write takes them: the first half is written first.
fn halves(mut group: Vec<(usize, PathBuf)>) -> [Vec<(usize, PathBuf)>; 2] {
    let second = group.split_off(group.len() / 2);
    [second, group]
}

/// Feeds the queue from the ledger: the backlog, retries that came due, other nodes' saves.
async fn sweeper(shared: Arc<Shared>) {
    loop {
        let room = shared.queue.capacity();
        if room > 0 {
            let in_memory = shared.queued().len();
            match shared.ledger.ready(room + in_memory).await {
                Ok(ids) => {
                    let mut room = room;
                    for id in ids {
                        if room == 0 {
                            break;
                        }
                        let mut queued = shared.queued();
                        if queued.insert(id) {
                            if shared.queue.try_send(id).is_err() {
                                queued.remove(&id);
                                break;
                            }
                            room -= 1;
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot read the backlog from the ledger; retrying"),
            }
        }
        tokio::select! {
            () = shared.intake_stop.cancelled() => return,
            () = shared.wake_sweeper.notified() => {}
            () = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
    }
}

/// Takes ids from the queue, up to `max_files` at a time, until shutdown.
async fn worker(shared: Arc<Shared>, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<ExportId>>>) {
    loop {
        let ids = tokio::select! {
            () = shared.intake_stop.cancelled() => return,
            ids = next_ids(&rx, shared.config.max_files) => ids,
        };
        match ids {
            Some(ids) => shared.process(ids).await,
            None => return,
        }
    }
}

async fn next_ids(rx: &tokio::sync::Mutex<mpsc::Receiver<ExportId>>, max: usize) -> Option<Vec<ExportId>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut ids = vec![first];
    while ids.len() < max {
        match rx.try_recv() {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
    }
    Some(ids)
}

#[cfg(test)]
pub(crate) mod tests;
