//! Benchmark of the archive at scale: the time to insert a node (with its
//! stage evaluation linked and two episode results) and to choose parents
//! (the candidates read from the store, then DGM-H's weighted draw) as a
//! run's archive grows to 100,000 nodes. Writes its section of BENCHMARKS.md.
//!
//! Real SQLite results store in a temporary directory, real candidate
//! building (`fitness::automated_candidates`) and selection; only the nodes
//! are synthetic (random parents, two tasks, random outcomes).
//!
//! Run with `cargo bench -p hyperagents-evolve --bench archive` (or, without
//! an optimised build, `cargo test --workspace --bench archive -- --bench`;
//! the section says which profile measured it).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyperagents_evolve::fitness::automated_candidates;
use hyperagents_evolve::{SelectionPolicy, select_parents};
use hyperagents_store::{
    EvalKey, EvalResult, EvalStatus, NewEvalRun, NewEvolutionRun, NewNode, NodeStatus,
    ResultsStore, RunMode,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Archive sizes at which inserts and selection are timed.
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Inserts timed at each size (their mean is reported).
const TIMED_INSERTS: usize = 200;
/// Children per generation of the synthetic run.
const GENERATION: usize = 1_000;
/// Parents drawn per selection.
const PARENTS: usize = 1_000;
const RUN: &str = "bench";
const SECTION: &str = "evolve-archive";
const COMMAND: &str = "cargo bench -p hyperagents-evolve --bench archive";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("skipped: run it with `{COMMAND}`");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store = ResultsStore::open(dir.path().join("results.sqlite"))?;
    store.create_evolution_run(&NewEvolutionRun {
        id: RUN.into(),
        config: serde_json::json!({}),
        mode: RunMode::Hyper,
        seed: 1,
    })?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut rows = Vec::new();
    let mut inserted = 0;
    let populate_start = Instant::now();
    for size in SIZES {
        while inserted < size - TIMED_INSERTS {
            insert(&store, inserted, &mut rng)?;
            inserted += 1;
        }
        let start = Instant::now();
        while inserted < size {
            insert(&store, inserted, &mut rng)?;
            inserted += 1;
        }
        let insert_mean = start.elapsed() / TIMED_INSERTS as u32;
        let generation = (inserted / GENERATION) as u64 + 1;
        let start = Instant::now();
        let candidates = automated_candidates(&store, RUN, generation)?;
        let read = start.elapsed();
        let start = Instant::now();
        let parents = select_parents(
            &SelectionPolicy::dgm_default(),
            &candidates,
            PARENTS,
            &mut rng,
        )?;
        let draw = start.elapsed();
        assert_eq!(parents.len(), PARENTS);
        eprintln!(
            "{size} nodes: insert {:.2} ms, candidates {:.2} s, draw of {PARENTS} parents {:.1} ms",
            ms(insert_mean),
            read.as_secs_f64(),
            ms(draw)
        );
        rows.push((size, candidates.len(), insert_mean, read, draw));
    }
    let body = render(&rows, populate_start.elapsed());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md");
    hyperagents_eval::benchmarks_file::write_section(&path, SECTION, &body)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    print!("{body}");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Node `index` as the engine stores a valid child: the node, its full
/// stage's evaluation run linked, and one episode per task.
fn insert(
    store: &ResultsStore,
    index: usize,
    rng: &mut StdRng,
) -> Result<(), Box<dyn std::error::Error>> {
    let node = if index == 0 {
        "seed".to_string()
    } else {
        format!("n{index}")
    };
    let parent = (index > 0).then(|| match rng.random_range(0..index) {
        0 => "seed".to_string(),
        p => format!("n{p}"),
    });
    let program_hash = format!("{index:064x}");
    store.insert_node(&NewNode {
        run_id: RUN.into(),
        node_id: node.clone(),
        program_hash: program_hash.clone(),
        parent_id: parent,
        generation: (index / GENERATION) as u64,
        label: "bench".into(),
        diff: String::new(),
        diff_kinds: Vec::new(),
        status: NodeStatus::Valid,
        validation_errors: serde_json::json!([]),
        meta_tokens: 0,
    })?;
    let eval_run = store.create_run(&NewEvalRun {
        program_hash: program_hash.clone(),
        suite: "jsonl:bench".into(),
        split: "train".into(),
        config: serde_json::json!({}),
    })?;
    store.link_node_evaluation(RUN, &node, "full", eval_run)?;
    for task in ["t0", "t1"] {
        let key = EvalKey {
            program_hash: program_hash.clone(),
            suite: "jsonl:bench".into(),
            suite_version: "v1".into(),
            task: task.into(),
            seed: 0,
            models: BTreeMap::from([("task".into(), "double/fixed@-".into())]),
            sampling_hash: String::new(),
            host_api_version: 1,
        };
        let success = rng.random_bool(0.3);
        store.record_in_run(
            eval_run,
            &key,
            &EvalResult {
                status: EvalStatus::Ok,
                success,
                score: if success { 1.0 } else { 0.0 },
                reason: String::new(),
                tokens_in: 100,
                tokens_out: 10,
                cost: 0.0,
                duration_ms: 1,
                trajectory: None,
                finished_at_ms: 0,
            },
        )?;
    }
    Ok(())
}

fn render(rows: &[(usize, usize, Duration, Duration, Duration)], populate: Duration) -> String {
    let profile = if cfg!(debug_assertions) {
        "the test profile (our crates unoptimised, SQLite at -O2)"
    } else {
        "the bench profile (optimised)"
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Archive at scale (`{COMMAND}`)\n\n\
         A synthetic run in a real SQLite results store: each node inserted as the engine stores \
         a valid child (the node, its full stage's evaluation run linked, one episode on each of \
         two tasks), with a random earlier parent, {GENERATION} nodes per generation. At each \
         size: the mean of the last {TIMED_INSERTS} inserts, the time to build every candidate \
         from the store (`fitness::automated_candidates`: scores per task and child counts), and \
         a DGM-H draw of {PARENTS} parents among them. Built with {profile}; filling the store \
         took {:.0} s in all.\n",
        populate.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| nodes | candidates | insert (ms) | candidates built (s) | draw of {PARENTS} parents (ms) |\n|---:|---:|---:|---:|---:|"
    );
    for (size, candidates, insert, read, draw) in rows {
        let _ = writeln!(
            out,
            "| {size} | {candidates} | {:.2} | {:.2} | {:.1} |",
            ms(*insert),
            read.as_secs_f64(),
            ms(*draw)
        );
    }
    out
}
