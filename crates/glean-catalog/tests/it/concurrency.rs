//! Concurrent `glean-local write` processes on one database: nothing lost or damaged, readers only see whole batches.

use crate::util::{Env, node_key};
use glean_catalog::schema::Lookup;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

const WRITERS: usize = 4;
const FILES_PER_WRITER: usize = 5;
const FACTS_PER_FILE: usize = 500;
const TOTAL: u64 = (WRITERS * FILES_PER_WRITER * FACTS_PER_FILE) as u64;

fn prefix(writer: usize, file: usize) -> String {
    format!("w{writer}f{file}_")
}

/// Raises the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn concurrent_writers_lose_nothing_and_readers_only_see_whole_batches() {
    let env = Env::new();
    env.create("etl/1", &[]);
    let files: Vec<Vec<String>> = (0..WRITERS)
        .map(|w| {
            (0..FILES_PER_WRITER).map(|f| env.node_file(&format!("w{w}_{f}.json"), &prefix(w, f), 0..FACTS_PER_FILE).to_owned()).collect()
        })
        .collect();

    let stop = AtomicBool::new(false);
    let (seen_in_process, seen_by_cli) = std::thread::scope(|s| {
        // Stops the reader even when an assertion below fails, so the scope can end.
        let stop_reader = StopOnDrop(&stop);
        // Reader 1: a raw SQLite connection polling as fast as it can, comparing
        // the stored rows with the per-predicate counters `stats` prints, in one snapshot.
        let reader = s.spawn(|| {
            let conn = env.sqlite("etl/1");
            let mut seen = BTreeSet::new();
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                let (rows, counted) = conn
                    .query_row("SELECT (SELECT count(*) FROM facts), (SELECT total(facts) FROM predicates)", [], |r| {
                        Ok((r.get::<_, u64>(0)?, r.get::<_, f64>(1)? as u64))
                    })
                    .expect("read while writers run");
                assert_eq!(rows, counted, "stored facts and the counters of stats disagree");
                assert_eq!(rows % FACTS_PER_FILE as u64, 0, "a reader saw a half-written batch: {rows} facts");
                assert!(rows >= last, "the fact count went down from {last} to {rows}");
                last = rows;
                seen.insert(rows);
            }
            seen
        });

        let writers: Vec<_> = files
            .iter()
            .map(|fs| {
                let mut args = vec!["write", "--db", "etl/1"];
                args.extend(fs.iter().map(String::as_str));
                env.spawn(&args)
            })
            .collect();

        // Reader 2: `glean-local stats` processes while any writer runs.
        let mut writers = writers;
        let mut seen_by_cli = BTreeSet::new();
        while writers.iter_mut().any(|w| !w.finished()) {
            let count = env.fact_count("etl/1");
            assert_eq!(count % FACTS_PER_FILE as u64, 0, "stats printed a half-written batch: {count} facts");
            seen_by_cli.insert(count);
        }
        for (w, writer) in writers.into_iter().enumerate() {
            let run = writer.wait();
            run.ok();
            let wrote: Vec<String> = (0..FILES_PER_WRITER).map(|f| format!("Wrote w{w}_{f}.json")).collect();
            assert_eq!(run.lines()[1..], wrote, "writer {w}: {}", run.stdout);
        }
        drop(stop_reader);
        (reader.join().expect("reader thread panicked"), seen_by_cli)
    });

    assert!(
        seen_in_process.iter().any(|c| (1..TOTAL).contains(c)),
        "the reader never ran while a writer was between batches (saw {seen_in_process:?}), so it proved nothing"
    );
    eprintln!("reader saw {} distinct counts, stats processes {}", seen_in_process.len(), seen_by_cli.len());

    assert_eq!(env.fact_count("etl/1"), TOTAL);
    let d = env.open("etl/1");
    d.integrity_check().expect("the database is sound after concurrent writes");
    let Lookup::Predicate(node) = d.schema().lookup("agenticAiETH.ETL.Node", 1) else { panic!("Node is in the built-in schema") };
    let (mut ids, mut keys) = (Vec::new(), BTreeSet::new());
    d.scan(node, |id, key, _| {
        ids.push(id);
        keys.insert(key.to_owned());
        true
    })
    .expect("scan");
    assert_eq!(ids, (1024..1024 + TOTAL).collect::<Vec<_>>(), "fact ids are handed out without gaps or repeats");
    let expected: BTreeSet<String> = (0..WRITERS)
        .flat_map(|w| (0..FILES_PER_WRITER).flat_map(move |f| (0..FACTS_PER_FILE).map(move |i| node_key(&prefix(w, f), i))))
        .collect();
    assert!(keys == expected, "stored keys differ from the written ones ({} stored, {} written)", keys.len(), expected.len());
}
