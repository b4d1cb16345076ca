//! Command-line interface of `glean-local`: glean's verbs, flags, output and exit codes.
//!
//! Every library error becomes a message and an exit status here, the same
//! ones glean gives (GLEAN.md 3.6): 3 for create/write failures ("DB create
//! failure: ..."), 6 for finishing an empty database, 1 for usage errors and
//! anything else. Verbs print through one locked, buffered standard output
//! (`Out`); when its reader goes away (`glean-local query ... | head -1`) the
//! command stops quietly with status 0, as Unix tools do.

use clap::{Args, Parser, Subcommand, ValueEnum};
use glean_catalog::batch;
use glean_catalog::query::QueryOptions;
use glean_catalog::schema::{SchemaError, SchemaSource};
use glean_catalog::store::{BatchInput, Catalog, DbInfo, DbRef, DbStatus, StoreError, Unreadable};
use std::fmt::Display;
use std::io::{BufWriter, ErrorKind, StdoutLock, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// An embedded, Glean-compatible catalog with the glean CLI's verbs.
#[derive(Parser, Debug)]
#[command(name = "glean-local", version, about)]
pub struct Cli {
    /// Directory holding the databases (glean's --db-root).
    #[arg(long, global = true, env = "GLEAN_DB_ROOT", default_value = "./data/glean/db")]
    db_root: PathBuf,
    /// Schema for new databases: dir:DIR, file:FILE or DIR (default: glean/schema/source, else the built-in ETL schema).
    #[arg(long, global = true)]
    schema: Option<String>,
    /// Remote Glean server: not supported by glean-local, which only has local databases.
    #[arg(long, global = true, hide = true)]
    service: Option<String>,
    /// Reject what only lenient Glean accepts (unversioned names, re-used ids, out-of-range bytes, ...).
    #[arg(long, global = true)]
    strict: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a database, optionally writing FILEs into it.
    Create(WriteArgs),
    /// Write batch FILEs into an existing, incomplete database.
    Write(WriteArgs),
    /// Mark a database complete (read-only).
    Finish {
        #[command(flatten)]
        db: DbArgs,
        /// Allow finishing a database without facts.
        #[arg(long)]
        allow_zero_facts: bool,
    },
    /// List databases.
    List {
        /// Only databases matching NAME, NAME/ or NAME/INSTANCE (`*` wildcards allowed).
        globs: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Tty)]
        format: Format,
        /// Also show schema ids and properties.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Query a database: PREDICATE [PATTERN].
    Query {
        #[command(flatten)]
        db: DbArgs,
        /// Angle query, `@FILE`, or `-` for standard input.
        query: String,
        /// Stop after N results.
        #[arg(long)]
        limit: Option<usize>,
        /// Show nested facts in full.
        #[arg(long, alias = "recursive")]
        expand: bool,
    },
    /// Facts and bytes per predicate.
    Stats {
        #[command(flatten)]
        db: DbArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Tty)]
        format: Format,
        /// Accepted for glean compatibility (statistics are always per predicate).
        #[arg(long)]
        per_predicate: bool,
    },
    /// Delete a database.
    Delete {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check batch FILEs against the schema, without a database.
    Validate {
        /// Batch files (.json or .json.zst).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check a schema (exit 55 when invalid, like glean validate-schema).
    ValidateSchema {
        /// Schema location: dir:DIR, file:FILE or DIR.
        location: String,
    },
}

#[derive(Args, Debug)]
struct DbArgs {
    /// Database as NAME/INSTANCE.
    #[arg(long, conflicts_with_all = ["db_name", "db_instance"])]
    db: Option<String>,
    /// Database name (with --db-instance; alone for queries: the latest complete instance).
    #[arg(long, alias = "repo-name")]
    db_name: Option<String>,
    /// Database instance.
    #[arg(long, alias = "repo-hash", requires = "db_name")]
    db_instance: Option<String>,
}

#[derive(Args, Debug)]
struct WriteArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Property of the new database, NAME=VALUE (create only; repeatable).
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Finish the database after writing.
    #[arg(long)]
    finish: bool,
    /// Accepted for glean compatibility; files are written one after another.
    #[arg(short = 'j', long = "maxConcurrency")]
    max_concurrency: Option<usize>,
    /// Batch files (.json, or .json.zst).
    files: Vec<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq)]
enum Format {
    Tty,
    Plain,
    Json,
    CompactJson,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

/// A failure and the exit status glean gives it.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl ToString) -> Failure {
        Failure { code, message: message.to_string() }
    }

    /// The reader of standard output went away (`| head -1`): stop, quietly and
    /// successfully, as other Unix tools do.
    fn closed_output() -> Failure {
        Failure { code: 0, message: String::new() }
    }

    /// glean's shared create/write error handler: "DB create failure: ...", exit 3.
    fn write(message: impl ToString) -> Failure {
        Failure::new(3, format!("DB create failure: {}", message.to_string()))
    }
}

type Outcome = Result<(), Failure>;

/// Parses arguments, runs the command, and returns the process status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // optparse-applicative exits 1 on usage errors; help and version exit 0.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                // Nothing more can be done if standard error is gone too.
                let _ = writeln!(std::io::stderr(), "{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

/// Standard output, locked once and buffered; every verb prints through it.
struct Out(BufWriter<StdoutLock<'static>>);

impl Out {
    fn new() -> Out {
        Out(BufWriter::new(std::io::stdout().lock()))
    }

    /// Prints one line (held in the buffer until `flush`).
    fn line(&mut self, line: impl Display) -> Outcome {
        writeln!(self.0, "{line}").map_err(output_failure)
    }

    /// Sends what was printed so far: progress lines must not wait for the end.
    fn flush(&mut self) -> Outcome {
        self.0.flush().map_err(output_failure)
    }
}

fn output_failure(e: std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::BrokenPipe => Failure::closed_output(),
        _ => Failure::new(1, format!("cannot write to standard output: {e}")),
    }
}

fn run(cli: Cli) -> Outcome {
    let mut out = Out::new();
    let ran = dispatch(&cli, &mut out);
    // What was printed before a failure still goes out; the failure is what counts.
    let flushed = out.flush();
    ran.and(flushed)
}

fn dispatch(cli: &Cli, out: &mut Out) -> Outcome {
    if let Some(service) = &cli.service {
        return Err(Failure::new(1, format!("--service {service}: glean-local only has local databases; use --db-root DIR")));
    }
    let catalog = Catalog::new(&cli.db_root);
    match &cli.command {
        Command::Create(args) => create(cli, &catalog, args, out),
        Command::Write(args) => write(cli, &catalog, args, out),
        Command::Finish { db, allow_zero_facts } => {
            let db = resolve_db(&catalog, db, false).map_err(|m| Failure::new(1, m))?;
            let mut d = catalog.open(&db).map_err(|e| Failure::new(1, e))?;
            match d.finish(*allow_zero_facts) {
                Err(e @ StoreError::NoFacts) => Err(Failure::new(6, e)),
                Err(e) => Err(Failure::new(1, e)),
                Ok(()) => out.line("[glean finish] ACL: disabled"),
            }
        }
        Command::List { globs, format, verbose } => list(&catalog, globs, *format, *verbose, out),
        Command::Query { db, query, limit, expand } => run_query(&catalog, db, query, *limit, *expand, out),
        Command::Stats { db, format, .. } => stats(&catalog, db, *format, out),
        Command::Delete { db } => {
            let db = resolve_db(&catalog, db, false).map_err(|m| Failure::new(1, m))?;
            catalog.delete(&db).map_err(|e| Failure::new(1, e))
        }
        Command::Validate { files } => validate(cli, files, out),
        Command::ValidateSchema { location } => {
            SchemaSource::from_location(location).and_then(|s| s.resolve()).map(|_| ()).map_err(|e| Failure::new(55, e))
        }
    }
}

/// `--schema` if given, else `glean/schema/source` if present, else the built-in schema.
fn schema_source(cli: &Cli) -> Result<SchemaSource, SchemaError> {
    match &cli.schema {
        Some(loc) => SchemaSource::from_location(loc),
        None if Path::new("glean/schema/source").is_dir() => SchemaSource::from_location("dir:glean/schema/source"),
        None => Ok(SchemaSource::builtin()),
    }
}

fn resolve_db(catalog: &Catalog, args: &DbArgs, latest_complete: bool) -> Result<DbRef, String> {
    match (&args.db, &args.db_name, &args.db_instance) {
        (Some(db), _, _) => db.parse().map_err(|e: StoreError| e.to_string()),
        (None, Some(name), Some(instance)) => DbRef::new(name, instance).map_err(|e| e.to_string()),
        (None, Some(name), None) if latest_complete => {
            let entries = catalog.entries().map_err(|e| e.to_string())?;
            // A database that cannot be read is no candidate.
            entries
                .into_iter()
                .flatten()
                .filter(|i| i.db.name == *name && i.status == DbStatus::Complete)
                .max_by(|a, b| a.created.cmp(&b.created))
                .map(|i| i.db)
                .ok_or_else(|| format!("no complete database named {name}"))
        }
        (None, Some(_), None) => Err("--db-name needs --db-instance here".into()),
        _ => Err("missing --db NAME/INSTANCE".into()),
    }
}

fn create(cli: &Cli, catalog: &Catalog, args: &WriteArgs, out: &mut Out) -> Outcome {
    let db = resolve_db(catalog, &args.db, false).map_err(|m| Failure::new(1, m))?;
    let schema = schema_source(cli).map_err(Failure::write)?;
    out.line(format_args!("Creating DB {db}"))?;
    let mut d = catalog.create(&db, &schema, &args.properties).map_err(Failure::write)?;
    out.line("[glean create] ACL: disabled")?;
    write_files(&mut d, &args.files, cli.strict, out)?;
    finish_after_write(&mut d, args.finish)
}

fn write(cli: &Cli, catalog: &Catalog, args: &WriteArgs, out: &mut Out) -> Outcome {
    let db = resolve_db(catalog, &args.db, false).map_err(|m| Failure::new(1, m))?;
    let mut d = catalog.open(&db).map_err(Failure::write)?;
    if d.status().map_err(Failure::write)? == DbStatus::Complete {
        return Err(Failure::write(StoreError::ReadOnly(db)));
    }
    out.line("[glean write] ACL: disabled")?;
    write_files(&mut d, &args.files, cli.strict, out)?;
    finish_after_write(&mut d, args.finish)
}

/// Writes the files in one transaction (one disk sync for the call, not one per file),
/// stopping at the first rejected one; the files before it stay written.
fn write_files(d: &mut glean_catalog::store::Database, files: &[PathBuf], strict: bool, out: &mut Out) -> Outcome {
    let inputs: Vec<BatchInput<'_>> = files.iter().map(|f| BatchInput::File(f)).collect();
    let results = d.write_until_rejected(&inputs, strict).map_err(Failure::write)?;
    for (file, result) in files.iter().zip(results) {
        if let Err(e) = result {
            out.flush()?;
            return Err(Failure::write(e));
        }
        out.line(format_args!("Wrote {}", file.display()))?;
    }
    out.flush()
}

fn finish_after_write(d: &mut glean_catalog::store::Database, finish: bool) -> Outcome {
    if finish {
        // `--finish` has no zero-fact check in glean.
        d.finish(true).map_err(Failure::write)?;
    }
    Ok(())
}

fn list(catalog: &Catalog, globs: &[String], format: Format, verbose: bool, out: &mut Out) -> Outcome {
    let patterns = globs
        .iter()
        .map(|g| glob::Pattern::new(g).map_err(|e| Failure::new(1, format!("bad pattern {g:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let entries = catalog.entries().map_err(|e| Failure::new(1, e))?;
    let shown: Vec<_> = entries
        .into_iter()
        .filter(|entry| {
            let db = match entry {
                Ok(info) => &info.db,
                Err(u) => &u.db,
            };
            let names = [db.name.clone(), format!("{}/", db.name), db.to_string()];
            patterns.is_empty() || patterns.iter().any(|p| names.iter().any(|n| p.matches(n)))
        })
        .collect();
    match format {
        Format::Json | Format::CompactJson => list_json(&shown, format == Format::Json, out),
        Format::Tty | Format::Plain => shown.iter().try_for_each(|entry| match entry {
            Ok(info) => list_tty(info, verbose, out),
            // Glean lists a broken database with its state too; the others are still listed.
            Err(u) => out.line(format_args!("{} (unreadable: {})", u.db, u.reason())),
        }),
    }
}

fn list_json(shown: &[Result<DbInfo, Unreadable>], pretty: bool, out: &mut Out) -> Outcome {
    let values = shown
        .iter()
        .map(|entry| match entry {
            Ok(info) => serde_json::to_value(info),
            Err(u) => Ok(serde_json::json!({"db": u.db.to_string(), "status": "unreadable", "error": u.reason()})),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::new(1, e))?;
    let text = if pretty { serde_json::to_string_pretty(&values) } else { serde_json::to_string(&values) };
    out.line(text.map_err(|e| Failure::new(1, e))?)
}

fn list_tty(i: &DbInfo, verbose: bool, out: &mut Out) -> Outcome {
    let status = match i.status {
        DbStatus::Complete => "complete",
        DbStatus::Incomplete => "incomplete",
    };
    out.line(format_args!("{} ({status})", i.db))?;
    out.line(format_args!("  Created: {}", i.created))?;
    if let Some(c) = &i.completed {
        out.line(format_args!("  Completed: {c}"))?;
    }
    if verbose {
        out.line(format_args!("  Schema: {}", i.schema_id))?;
        out.line(format_args!("  Facts: {}", i.facts))?;
        for (k, v) in &i.properties {
            out.line(format_args!("  {k}: {v}"))?;
        }
    }
    Ok(())
}

fn run_query(catalog: &Catalog, db: &DbArgs, query: &str, limit: Option<usize>, expand: bool, out: &mut Out) -> Outcome {
    let db = resolve_db(catalog, db, true).map_err(|m| Failure::new(1, m))?;
    let d = catalog.open(&db).map_err(|e| Failure::new(1, e))?;
    let text = match query {
        "-" => std::io::read_to_string(std::io::stdin()).map_err(|e| Failure::new(1, e))?,
        q => match q.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file).map_err(|e| Failure::new(1, format!("{file}: {e}")))?,
            None => q.to_owned(),
        },
    };
    let started = Instant::now();
    let found = d.query(text.trim(), &QueryOptions { limit, expand }).map_err(|e| Failure::new(1, e))?;
    for line in &found.results {
        out.line(line)?;
    }
    out.flush()?;
    let mut stderr = std::io::stderr().lock();
    // Statistics only: a closed standard error is no reason to fail the query.
    let _ = writeln!(
        stderr,
        "{} results, {} facts searched, {:.2}ms",
        found.results.len(),
        found.facts_searched,
        started.elapsed().as_secs_f64() * 1000.0
    );
    if found.truncated {
        let _ = writeln!(stderr, "results truncated at --limit {}", limit.unwrap_or_default());
    }
    Ok(())
}

fn stats(catalog: &Catalog, db: &DbArgs, format: Format, out: &mut Out) -> Outcome {
    let db = resolve_db(catalog, db, false).map_err(|m| Failure::new(1, m))?;
    let stats = catalog.open(&db).and_then(|d| d.stats()).map_err(|e| Failure::new(1, e))?;
    match format {
        Format::Json | Format::CompactJson => {
            let map: serde_json::Map<String, serde_json::Value> =
                stats.iter().map(|s| (s.predicate.clone(), serde_json::json!({"count": s.count, "size": s.bytes}))).collect();
            out.line(serde_json::Value::Object(map))
        }
        Format::Tty | Format::Plain => {
            stats.iter().try_for_each(|s| out.line(format_args!("{}\n  count: {}\n  size: {} bytes", s.predicate, s.count, s.bytes)))
        }
    }
}

fn validate(cli: &Cli, files: &[PathBuf], out: &mut Out) -> Outcome {
    let schema = schema_source(cli).and_then(|s| s.resolve()).map_err(|e| Failure::new(1, e))?;
    let mut failed = 0;
    for file in files {
        match batch::validate_file(file, &schema, cli.strict) {
            Ok(s) => out.line(format_args!("OK {} ({} facts in {} groups)", file.display(), s.facts, s.groups))?,
            Err(e) => {
                failed += 1;
                out.line(format_args!("INVALID {e}"))?;
            }
        }
        out.flush()?;
    }
    if failed > 0 {
        return Err(Failure::new(1, format!("{failed} of {} files are invalid", files.len())));
    }
    Ok(())
}
