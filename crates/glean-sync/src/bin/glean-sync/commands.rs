//! The subcommands of `glean-sync`, each from settings to exit status.

use crate::Command;
use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use glean_sync::app::{self, App};
use glean_sync::config::{Config, Mode, ServeSettings, Settings, schema_for_prefix};
use glean_sync::exporter::SaveState;
use glean_sync::graph::Graph;
use glean_sync::ledger::{ExportState, Selection};
use glean_sync::server::{self, AppState};
use glean_sync::watch::{WatchConfig, Watcher};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Something failed (an export, a file, the ledger).
pub const EXIT_ERROR: u8 = 1;
/// The configuration is unusable.
const EXIT_CONFIG: u8 = 2;
/// Stopped by SIGINT/SIGTERM before finishing.
const EXIT_INTERRUPTED: u8 = 130;

/// Runs one subcommand; `stop` is cancelled by SIGTERM/SIGINT.
pub async fn run(settings: Settings, command: Command, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    if let Command::Schema { prefix, out } = &command {
        // Printing a schema needs no valid configuration: it is how one gets made.
        return schema(prefix.as_deref().unwrap_or(&settings.predicate_prefix), out.as_deref());
    }
    let config = match settings.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("glean-sync: configuration error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    match command {
        Command::Serve(serve) => serve_http(config, &serve, stop).await,
        Command::Ingest { dir } => ingest(config, dir, Wait::new(stop, None)).await,
        Command::Push { files, timeout } => push(config, &files, Wait::new(stop, timeout)).await,
        Command::Drain { timeout } => drain(config, Wait::new(stop, timeout)).await,
        Command::Replay { dead, failed, id, since } => replay(&config, dead, failed, id, since).await,
        Command::Status { json, limit } => status(&config, json, limit).await,
        Command::Validate { files, lenient } => validate(&config, &files, !lenient),
        Command::Schema { prefix, out } => schema(prefix.as_deref().unwrap_or(&settings.predicate_prefix), out.as_deref()),
    }
}

/// An error and its causes in one line, each cause once (our messages often include their cause).
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

/// Parses `--since`.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("expected RFC 3339 (2026-12-03T10:00:00Z): {e}"))
}

/// How long a command waits for deliveries: until SIGTERM/SIGINT, or `--timeout`.
struct Wait {
    /// Cancelled by SIGTERM/SIGINT.
    stop: CancellationToken,
    /// Given up at this time, if `--timeout` was given.
    deadline: Option<tokio::time::Instant>,
}

/// Why waiting ended early.
enum Interrupted {
    /// SIGTERM or SIGINT.
    Signal,
    /// `--timeout` passed.
    TimedOut,
}

impl Wait {
    fn new(stop: CancellationToken, timeout_secs: Option<u64>) -> Wait {
        Wait { stop, deadline: timeout_secs.map(|s| tokio::time::Instant::now() + Duration::from_secs(s)) }
    }

    /// Resolves when waiting must end.
    async fn ended(&self) -> Interrupted {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.stop.cancelled() => Interrupted::Signal,
            () = deadline => Interrupted::TimedOut,
        }
    }
}

fn code(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_ERROR) }
}

fn read_graph(path: &Path) -> anyhow::Result<Graph> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Graph::from_reader(file).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn progress(len: usize, what: &str) -> ProgressBar {
    // indicatif draws nothing when stderr is not a terminal.
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

async fn push(config: Config, files: &[PathBuf], wait: Wait) -> anyhow::Result<ExitCode> {
    let mode = config.mode;
    let app = app::start(config, mode).await?;
    let mut saved = Vec::new();
    let mut rejected = 0;
    for file in files {
        if wait.stop.is_cancelled() {
            // Stop saving at once: what was saved is kept and delivered later.
            return interrupted(&app, Interrupted::Signal).await;
        }
        let receipt = match read_graph(file) {
            Ok(graph) => app.exporter.save(graph).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match receipt {
            Ok(r) if r.state == SaveState::Unchanged => {
                println!(
                    "unchanged {}: same content as export {} (version {}); nothing to send",
                    file.display(),
                    r.export_id,
                    r.graph_version.unwrap_or_default()
                );
                saved.push((r.export_id, file));
            }
            Ok(r) => {
                let version = r.graph_version.map(|v| format!(", version {v}")).unwrap_or_default();
                let delta = if r.node_count + r.edge_count < r.full_node_count + r.full_edge_count {
                    format!(", {} of {} facts new", r.node_count + r.edge_count, r.full_node_count + r.full_edge_count)
                } else {
                    String::new()
                };
                println!("saved {} as export {} ({}{version}{delta})", file.display(), r.export_id, r.batch_file);
                saved.push((r.export_id, file));
            }
            Err(e) => {
                eprintln!("not saved: {}", describe(&e));
                rejected += 1;
            }
        }
    }
    if mode == Mode::Batch {
        println!(
            "batch mode: {} graph(s) written as batch files; run `glean-sync drain` with GLEAN_DB_NAME set to deliver them",
            saved.len()
        );
        app.exporter.shutdown().await;
        return Ok(code(rejected == 0));
    }
    let labelled: Vec<(i64, String)> = saved.iter().map(|(id, f)| (*id, f.display().to_string())).collect();
    let delivered = await_delivery(&app, &labelled, "graph(s)", wait).await?;
    Ok(if delivered == ExitCode::SUCCESS { code(rejected == 0) } else { delivered })
}

/// Waits until each export is ingested or dead (progress bar on a terminal), reports the
/// dead ones, shuts the exporter down; exit 0 only when all were ingested.
async fn await_delivery(app: &App, exports: &[(i64, String)], what: &str, wait: Wait) -> anyhow::Result<ExitCode> {
    let ids: Vec<i64> = exports.iter().map(|(id, _)| *id).collect();
    let bar = progress(ids.len(), "ingesting");
    let waited = tokio::select! {
        r = app.exporter.wait_for(&ids, |_| bar.inc(1)) => r,
        why = wait.ended() => return interrupted(app, why).await,
    };
    bar.finish_and_clear();
    let finished = waited?;
    let mut failed = 0;
    for e in finished.iter().filter(|e| e.state != ExportState::Ingested) {
        let label = exports.iter().find(|(id, _)| *id == e.id).map(|(_, l)| l.as_str()).unwrap_or_default();
        eprintln!("export {} ({label}) {}: {}", e.id, e.state, e.last_error.as_deref().unwrap_or("no reason recorded"));
        failed += 1;
    }
    let db = app.config.glean.as_ref().map(|g| g.db.to_string()).unwrap_or_default();
    println!("{} of {} {what} ingested into {db}", finished.len() - failed, exports.len());
    print_stats(app).await;
    app.exporter.shutdown().await;
    Ok(code(failed == 0))
}

/// The exporter's statistics of this run, as one JSON line (`stats {...}`), for people and scripts.
async fn print_stats(app: &App) {
    match app.exporter.stats().await.map(|s| serde_json::to_string(&s)) {
        Ok(Ok(json)) => println!("stats {json}"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot print the statistics"),
        Err(e) => tracing::warn!(error = %e, "cannot read the statistics"),
    }
}

/// `serve`: the HTTP API (and the watcher) until SIGTERM/SIGINT, then a graceful drain.
async fn serve_http(config: Config, settings: &ServeSettings, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let schema = config.schema.source.resolve()?;
    let server_config = settings.server_config();
    let mode = config.mode;
    let app = app::start(config, mode).await?;
    let listener = tokio::net::TcpListener::bind(server_config.listen)
        .await
        .with_context(|| format!("GLEAN_SYNC_LISTEN={}: cannot listen", server_config.listen))?;
    println!("listening on {}", listener.local_addr()?);
    let watcher = match &settings.watch {
        Some(dir) => Some(Watcher::new(app.exporter.clone(), schema, WatchConfig::new(dir.clone()))?),
        None => None,
    };
    let watching = watcher.map(|w| tokio::spawn(w.run(stop.clone())));
    server::serve(AppState::new(app.exporter.clone(), &server_config), listener, stop).await?;
    if let Some(task) = watching
        && let Ok(Err(e)) = task.await
    {
        eprintln!("glean-sync: the watcher stopped: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ingest DIR`: watch mode once.
async fn ingest(config: Config, dir: PathBuf, wait: Wait) -> anyhow::Result<ExitCode> {
    let schema = config.schema.source.resolve()?;
    let mode = config.mode;
    let app = app::start(config, mode).await?;
    let ids = Watcher::new(app.exporter.clone(), schema, WatchConfig::new(dir.clone()))?.ingest_all().await?;
    println!("recorded {} batch file(s) from {}", ids.len(), dir.display());
    if mode == Mode::Batch {
        app.exporter.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    let labelled: Vec<(i64, String)> = ids.iter().map(|id| (*id, format!("from {}", dir.display()))).collect();
    await_delivery(&app, &labelled, "batch file(s)", wait).await
}

async fn interrupted(app: &App, why: Interrupted) -> anyhow::Result<ExitCode> {
    app.exporter.shutdown().await;
    let left = app.exporter.ledger().counts().await.map(|c| c.pending + c.in_flight + c.failed).ok();
    let left = left.map(|n| format!(" ({n} in the ledger)")).unwrap_or_default();
    match why {
        Interrupted::Signal => {
            eprintln!("interrupted: saved exports not yet ingested stay pending{left}; `glean-sync drain` delivers them");
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Interrupted::TimedOut => {
            eprintln!("gave up waiting at --timeout: exports not yet ingested stay pending{left}; `glean-sync status` says why");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

async fn drain(config: Config, wait: Wait) -> anyhow::Result<ExitCode> {
    if config.glean.is_none() {
        eprintln!("glean-sync: configuration error: GLEAN_DB_NAME is required to drain (the Glean database to deliver into)");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let app = app::start(config, Mode::Realtime).await?;
    let ledger = app.exporter.ledger().clone();
    let start = ledger.counts().await?;
    let bar = progress((start.pending + start.in_flight + start.failed) as usize, "draining");
    loop {
        let c = ledger.counts().await?;
        let left = c.pending + c.in_flight + c.failed;
        bar.set_position(bar.length().unwrap_or(0).saturating_sub(left));
        if left == 0 {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            why = wait.ended() => return interrupted(&app, why).await,
        }
    }
    bar.finish_and_clear();
    app.exporter.shutdown().await;
    let dead = ledger.list(&Selection { states: vec![ExportState::Dead], ..Selection::default() }).await?;
    if dead.is_empty() {
        println!("drained: every export is ingested");
        return Ok(ExitCode::SUCCESS);
    }
    for e in &dead {
        eprintln!("export {} ({}) is dead: {}", e.id, e.batch_file, e.last_error.as_deref().unwrap_or("no reason recorded"));
    }
    eprintln!("{} export(s) are dead; fix the cause, then `glean-sync replay --dead` and drain again", dead.len());
    Ok(ExitCode::from(EXIT_ERROR))
}

async fn replay(config: &Config, dead: bool, failed: bool, id: Option<i64>, since: Option<DateTime<Utc>>) -> anyhow::Result<ExitCode> {
    let states = match (dead, failed) {
        (true, false) => vec![ExportState::Dead],
        (false, true) => vec![ExportState::Failed],
        _ => vec![ExportState::Failed, ExportState::Dead],
    };
    let ledger = app::open_ledger(config).await?;
    let ids = ledger.replay(&Selection { states, id, since, limit: None }).await?;
    println!("requeued {} export(s){}", ids.len(), if ids.is_empty() { String::new() } else { format!(": {ids:?}") });
    if !ids.is_empty() {
        println!("a running `glean-sync serve` picks them up; otherwise run `glean-sync drain`");
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(config: &Config, json: bool, limit: u64) -> anyhow::Result<ExitCode> {
    let ledger = app::open_ledger(config).await?;
    let counts = ledger.counts().await?;
    let unhealthy = ledger
        .list(&Selection { states: vec![ExportState::Dead, ExportState::Failed], limit: Some(limit), ..Selection::default() })
        .await?;
    let oldest_age = counts.oldest_unfinished.map(|t| (Utc::now() - t).num_seconds());
    if json {
        let out = serde_json::json!({
            "ledger": config.ledger_path,
            "mode": config.mode,
            "counts": counts,
            "oldest_pending_age_secs": oldest_age,
            "problems": unhealthy,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("ledger: {}", config.ledger_path.display());
    println!("mode: {}", if config.mode == Mode::Realtime { "real-time" } else { "batch (files only)" });
    println!(
        "exports: {} pending, {} in flight, {} ingested, {} failed (retrying), {} dead",
        counts.pending, counts.in_flight, counts.ingested, counts.failed, counts.dead
    );
    if let Some(age) = oldest_age {
        println!("oldest export not yet ingested: {age}s old");
    }
    for e in &unhealthy {
        let when = e.next_attempt_at.map(|t| format!(", next attempt {t}")).unwrap_or_default();
        println!(
            "  {} #{} {} (attempts {}{when}): {}",
            e.state,
            e.id,
            e.batch_file,
            e.attempts,
            e.last_error.as_deref().unwrap_or("no reason recorded")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(config: &Config, files: &[PathBuf], strict: bool) -> anyhow::Result<ExitCode> {
    let schema = config.schema.source.resolve()?;
    let mut bad = 0;
    for f in files {
        match glean_catalog::batch::validate_file(f, &schema, strict) {
            Ok(s) => println!("OK {} ({} facts in {} groups)", f.display(), s.facts, s.groups),
            Err(e) => {
                println!("INVALID {e}");
                bad += 1;
            }
        }
    }
    Ok(code(bad == 0))
}

fn schema(prefix: &str, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let source = schema_for_prefix(prefix);
    source.resolve_for_database().with_context(|| format!("{prefix:?} is not a valid Angle schema name"))?;
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, text) in &source.files {
                std::fs::write(dir.join(name), text).with_context(|| format!("cannot write {}", dir.join(name).display()))?;
            }
            println!("wrote the schema for {prefix} into {} (use: glean create --schema dir:{})", dir.display(), dir.display());
        }
        None => {
            for (name, text) in &source.files {
                println!("#FILE {name}\n{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
