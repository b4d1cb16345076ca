//! `glean-sync`: the synchronizer's command-line entry point.
//!
//! Thin: parses arguments, sets up logging, installs the signal handlers
//! (only here), and hands each subcommand to `commands`. Every error becomes
//! a message on stderr and an exit status here.

mod commands;

use clap::{Parser, Subcommand, ValueEnum};
use glean_sync::config::{ServeSettings, Settings};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Every saved knowledge graph reaches Glean in real time; the producer never waits.
#[derive(Parser, Debug)]
#[command(name = "glean-sync", version, about)]
pub struct Cli {
    #[command(flatten)]
    settings: Settings,
    /// Log format on stderr: text or json (filter with RUST_LOG).
    #[arg(long, global = true, env = "GLEAN_SYNC_LOG_FORMAT", value_name = "GLEAN_SYNC_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP API and the exporter (and, with --watch, the directory watcher) until SIGTERM/SIGINT.
    Serve(ServeSettings),
    /// Ingest every batch file in DIR once (as watch mode does), deliver them, then exit.
    Ingest {
        /// Directory of batch files written by another program.
        dir: PathBuf,
    },
    /// Save graphs from JSON files, then wait until each is ingested or has failed.
    Push {
        /// Graph JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Stop waiting after this many seconds (exit 1; what is not ingested yet stays pending).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Deliver everything pending in the ledger (after a crash, or after batch mode), then exit.
    Drain {
        /// Stop waiting after this many seconds (exit 1; what is not ingested yet stays pending).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Requeue failed and dead exports.
    Replay {
        /// Only dead exports.
        #[arg(long)]
        dead: bool,
        /// Only failed exports (waiting for a retry).
        #[arg(long)]
        failed: bool,
        /// Only this export.
        #[arg(long)]
        id: Option<i64>,
        /// Only exports saved at or after this time (RFC 3339, e.g. 2026-12-03T10:00:00Z).
        #[arg(long, value_parser = commands::parse_time)]
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Ledger summary: exports per state, oldest pending, dead exports and their reasons.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Dead and failed exports listed at most.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Check batch files against the schema (strictly: as our own writer must produce them).
    Validate {
        /// Batch files (.json or .json.zst).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Accept what real Glean accepts, even forms our writer never produces.
        #[arg(long)]
        lenient: bool,
    },
    /// Print the Angle schema for a predicate prefix (or write it into a directory).
    Schema {
        /// Predicate prefix (default: GLEAN_PREDICATE_PREFIX).
        #[arg(long)]
        prefix: Option<String>,
        /// Write etl.angle and all.angle into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// SIGTERM or SIGINT asks the running command to shut down gracefully.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot install signal handlers; SIGTERM will not shut down gracefully");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received: shutting down"),
    }
    stop.cancel();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("glean-sync: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    let outcome = runtime.block_on(async {
        tokio::spawn(stop_on_signal(stop.clone()));
        commands::run(cli.settings, cli.command, stop).await
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("glean-sync: {}", commands::describe(&e));
            ExitCode::from(commands::EXIT_ERROR)
        }
    }
}
