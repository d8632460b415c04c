//! Reports of evolution runs written into a real SQLite results store
//! through its public API (as the engine writes them), checked number by
//! number, and their files parsed as XML and read as Markdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use hyperagents_report::{
    ReportError, compare_summary, run_summary, write_comparison, write_report,
};
use hyperagents_store::{
    DiffKind, EvalKey, EvalResult, EvalRunId, EvalStatus, NewEvalRun, NewEvolutionRun, NewNode,
    NodeStatus, ResultsStore, RunMode,
};
use serde_json::json;

/// Writes one evolution run the way the engine does.
struct RunBuilder<'s> {
    store: &'s ResultsStore,
    run: String,
    created_at_ms: i64,
}

/// Tokens and cost of each evaluation a builder records.
const TRAIN_IN: u64 = 100;
const TRAIN_OUT: u64 = 20;
const TEST_IN: u64 = 50;
const TEST_OUT: u64 = 5;

impl<'s> RunBuilder<'s> {
    fn new(store: &'s ResultsStore, run: &str, mode: RunMode, seed: u64) -> Self {
        store
            .create_evolution_run(&NewEvolutionRun {
                id: run.into(),
                config: json!({"generations": 2}),
                mode,
                seed,
            })
            .unwrap();
        let created_at_ms = store.evolution_run(run).unwrap().unwrap().created_at_ms;
        Self {
            store,
            run: run.into(),
            created_at_ms,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &self,
        id: &str,
        parent: Option<&str>,
        generation: u64,
        kinds: &[DiffKind],
        status: NodeStatus,
        errors: serde_json::Value,
        meta_tokens: u64,
    ) {
        self.store
            .insert_node(&NewNode {
                run_id: self.run.clone(),
                node_id: id.into(),
                program_hash: format!("content-{}-{id}", self.run),
                parent_id: parent.map(Into::into),
                generation,
                label: format!("node {id}"),
                diff: if parent.is_some() {
                    "--- a/x\n+++ b/x\n".into()
                } else {
                    String::new()
                },
                diff_kinds: kinds.to_vec(),
                status,
                validation_errors: errors,
                meta_tokens,
            })
            .unwrap();
    }

    /// Scores `node` at `stage`: one episode per (task, success), keyed by
    /// `episode_hash` (nodes sharing it share evaluations, as children that
    /// changed only `meta/` do).
    fn eval(&self, node: &str, stage: &str, episode_hash: &str, results: &[(&str, bool)]) {
        self.eval_finishing(
            node,
            stage,
            episode_hash,
            results,
            self.created_at_ms + 1000,
        );
    }

    fn eval_finishing(
        &self,
        node: &str,
        stage: &str,
        episode_hash: &str,
        results: &[(&str, bool)],
        finished_at_ms: i64,
    ) {
        let eval_run = self.record(node, stage, episode_hash, results, finished_at_ms);
        self.store
            .link_node_evaluation(&self.run, node, stage, eval_run)
            .unwrap();
    }

    /// An evaluation run of `node`'s program, not linked to any stage.
    fn record(
        &self,
        node: &str,
        stage: &str,
        episode_hash: &str,
        results: &[(&str, bool)],
        finished_at_ms: i64,
    ) -> EvalRunId {
        let test = stage == "test";
        let eval_run = self
            .store
            .create_run(&NewEvalRun {
                program_hash: format!("content-{}-{node}", self.run),
                suite: "jsonl:t".into(),
                split: if test { "test" } else { "train" }.into(),
                config: json!({"evolution": self.run, "node": node, "stage": stage}),
            })
            .unwrap();
        for (task, success) in results {
            let key = EvalKey {
                program_hash: format!("{}-{episode_hash}", self.run),
                suite: "jsonl:t".into(),
                suite_version: "v1".into(),
                task: (*task).into(),
                seed: 0,
                models: BTreeMap::from([("task".into(), "scripted/model@1".into())]),
                sampling_hash: "sampling".into(),
                host_api_version: 1,
            };
            let result = EvalResult {
                status: EvalStatus::Ok,
                success: *success,
                score: if *success { 1.0 } else { 0.0 },
                reason: String::new(),
                tokens_in: if test { TEST_IN } else { TRAIN_IN },
                tokens_out: if test { TEST_OUT } else { TRAIN_OUT },
                cost: 0.01,
                duration_ms: 1000,
                trajectory: None,
                finished_at_ms,
            };
            // A key already stored is linked as reused, as the evaluator does.
            self.store.record_in_run(eval_run, &key, &result).unwrap();
        }
        eval_run
    }

    fn event(&self, kind: &str, payload: serde_json::Value) {
        self.store.append_event(&self.run, kind, &payload).unwrap();
    }

    fn comparison(&self, node: &str, parent: &str, mean: f64, lower: Option<f64>, accepted: bool) {
        self.event(
            "comparison",
            json!({"node": node, "parent": parent, "stage": "full", "tasks": 4,
                   "mean_difference": mean, "lower_95": lower, "accepted": accepted}),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn generation(
        &self,
        generation: u64,
        valid: u64,
        failed: u64,
        best: f64,
        mean: f64,
        best_node: &str,
        archive: u64,
    ) {
        self.event(
            "generation",
            json!({"generation": generation, "valid_children": valid, "failed_attempts": failed,
                   "best": best, "mean": mean, "improvement": 0.0, "archive_size": archive,
                   "best_node": best_node}),
        );
    }
}

const ALL: [&str; 4] = ["t1", "t2", "t3", "t4"];

fn full(successes: usize) -> Vec<(&'static str, bool)> {
    ALL.iter()
        .enumerate()
        .map(|(i, t)| (*t, i < successes))
        .collect()
}

/// A hyper run: the seed (train 50%, test 0%), generation 1 with a valid
/// prompt child (75%, accepted) and an invalid code child, generation 2 with
/// a meta-only child of g1c0 (sharing its evaluations) and a prompt+code
/// child of the seed (100%, accepted); test scores per generation, a
/// resumed run's repeated events, unknown events and one unreadable event.
fn hyper_run<'s>(store: &'s ResultsStore, id: &str) -> RunBuilder<'s> {
    let b = RunBuilder::new(store, id, RunMode::Hyper, 7);
    b.node("seed", None, 0, &[], NodeStatus::Valid, json!([]), 0);
    b.eval("seed", "stage1", "seed", &[("t1", true), ("t2", true)]);
    // The full stage reuses stage 1's two episodes.
    b.eval("seed", "full", "seed", &full(2));

    b.event(
        "parents",
        json!({"generation": 1, "parents": ["seed", "seed"]}),
    );
    b.node(
        "g1c0",
        Some("seed"),
        1,
        &[DiffKind::Prompt],
        NodeStatus::Valid,
        json!([]),
        1000,
    );
    b.event(
        "child",
        json!({"node": "g1c0", "parent": "seed", "status": "valid", "errors": [], "meta_cost": 0.25,
            "meta_prompt_tokens": 3000, "meta_prompt_reused": 1000}),
    );
    b.eval("g1c0", "stage1", "g1c0", &[("t1", true), ("t2", true)]);
    b.eval("g1c0", "full", "g1c0", &full(3));
    b.comparison("g1c0", "seed", 0.25, Some(0.01), true);
    b.node(
        "g1c1",
        Some("seed"),
        1,
        &[DiffKind::Code],
        NodeStatus::Invalid,
        json!(["script <bad> | & `x` in tools.py:3"]),
        500,
    );
    b.event(
        "child",
        json!({"node": "g1c1", "parent": "seed", "status": "invalid", "errors": ["x"], "meta_cost": 0.125,
            "meta_prompt_tokens": 5000, "meta_prompt_reused": 4000}),
    );
    b.generation(1, 1, 1, 0.75, 0.625, "g1c0", 2);
    // A resume repeats the generation and the comparison: counted once.
    b.comparison("g1c0", "seed", 0.25, Some(0.01), true);
    b.generation(1, 1, 1, 0.75, 0.625, "g1c0", 2);

    // People judged g1c0's episodes: generation 2 drew by its lower fitness.
    b.event(
        "parents",
        json!({"generation": 2, "parents": ["g1c0", "seed"], "fitness": {"g1c0": 0.5}}),
    );
    b.node(
        "g2c0",
        Some("g1c0"),
        2,
        &[DiffKind::Meta],
        NodeStatus::Valid,
        json!([]),
        2000,
    );
    b.eval("g2c0", "stage1", "g1c0", &[("t1", true), ("t2", true)]);
    b.eval("g2c0", "full", "g1c0", &full(3));
    b.comparison("g2c0", "g1c0", 0.0, None, false);
    b.node(
        "g2c1",
        Some("seed"),
        2,
        &[DiffKind::Prompt, DiffKind::Code],
        NodeStatus::Valid,
        json!([]),
        1500,
    );
    b.eval("g2c1", "stage1", "g2c1", &[("t1", true), ("t2", true)]);
    b.eval("g2c1", "full", "g2c1", &full(4));
    b.comparison("g2c1", "seed", 0.5, Some(0.2), true);
    b.generation(2, 2, 0, 1.0, 0.75, "g2c1", 4);

    b.eval("seed", "test", "seed", &[("h1", false), ("h2", false)]);
    b.eval("g1c0", "test", "g1c0", &[("h1", true), ("h2", false)]);
    b.eval_finishing(
        "g2c1",
        "test",
        "g2c1",
        &[("h1", true), ("h2", true)],
        b.created_at_ms + 90_000,
    );
    b.event(
        "test",
        json!({"generation": 1, "node": "g1c0", "success_rate": 0.5}),
    );
    b.event(
        "test",
        json!({"generation": 2, "node": "g2c1", "success_rate": 1.0}),
    );
    b.event("budget", json!({"spent": 123}));
    b.event("a-kind-from-the-future", json!(["anything"]));
    b.event("comparison", json!({"node": 5}));
    b
}

fn open_store(dir: &Path) -> ResultsStore {
    ResultsStore::open(dir.join("results.sqlite")).unwrap()
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{actual} is not {expected}"
    );
}

fn some_close(actual: Option<f64>, expected: f64) {
    close(
        actual.unwrap_or_else(|| panic!("missing, expected {expected}")),
        expected,
    );
}

/// Parses `path` as XML: the root must be an `<svg>` element.
fn parse_svg(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let document = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
    assert_eq!(document.root_element().tag_name().name(), "svg");
    text
}

/// The text of every node (text and attribute values) of an SVG, unescaped.
fn svg_texts(svg: &str) -> Vec<String> {
    let document = roxmltree::Document::parse(svg).unwrap();
    document
        .descendants()
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

#[test]
fn the_summary_computes_improvements_tokens_and_kind_effects() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    hyper_run(&store, "alpha");
    let report = run_summary(&store, "alpha").unwrap();

    assert_eq!(report.mode, RunMode::Hyper);
    assert_eq!(report.run_seed, 7);
    some_close(report.seed_train, 0.5);
    some_close(report.seed_test, 0.0);
    assert_eq!(report.generations_done(), 2);
    assert_eq!(report.best_node, "g2c1");
    // The last generation's best against the seed on the test episodes.
    let paired = report.test_against_seed.clone().expect("paired on test");
    assert_eq!(
        (
            paired.node.as_str(),
            paired.pairs,
            paired.node_successes,
            paired.seed_successes
        ),
        ("g2c1", 2, 2, 0)
    );
    close(paired.mean, 1.0);

    let gens: Vec<u64> = report.generations.iter().map(|g| g.generation).collect();
    assert_eq!(gens, [0, 1, 2]);
    let [g0, g1, g2] = [
        &report.generations[0],
        &report.generations[1],
        &report.generations[2],
    ];
    close(g0.best_so_far_train, 0.5);
    some_close(g0.improvement, 0.0);
    assert_eq!(
        g0.improvement_per_million_meta_tokens, None,
        "no meta tokens yet"
    );
    close(g1.best_train, 0.75);
    close(g1.mean_train, 0.625);
    some_close(g1.improvement, 0.25);
    assert_eq!(g1.meta_tokens, 1500, "g1c0 and the invalid g1c1");
    some_close(g1.improvement_per_million_meta_tokens, 0.25 / 0.0015);
    some_close(g2.improvement, 0.5);
    assert_eq!(g2.meta_tokens, 5000);
    some_close(g2.improvement_per_million_meta_tokens, 100.0);
    assert_eq!(
        (g1.valid_children, g1.failed_attempts, g1.archive_size),
        (1, 1, 2)
    );

    // Test: the seed's own score, then each generation's best node.
    some_close(g0.test_of_best, 0.0);
    some_close(g1.test_of_best, 0.5);
    some_close(g2.test_of_best, 1.0);
    some_close(report.final_test(), 1.0);

    // Tokens: 12 distinct train episodes (seed 4, g1c0 4, g2c1 4; stage 1
    // reused by full, g2c0 reusing g1c0's), out of 24 links; 6 test episodes.
    let t = &report.tokens;
    assert_eq!(t.meta_tokens, 5000);
    // The attempts whose `child` events record a meta cost.
    some_close(t.meta_cost, 0.375);
    assert_eq!(
        (t.task_tokens_in, t.task_tokens_out),
        (12 * TRAIN_IN, 12 * TRAIN_OUT)
    );
    assert_eq!(
        (t.test_tokens_in, t.test_tokens_out),
        (6 * TEST_IN, 6 * TEST_OUT)
    );
    assert_eq!(t.evaluations, 18);
    assert_eq!(t.evaluation_links, 30);
    close(t.task_cost, 0.12);
    close(t.test_cost, 0.06);
    assert_eq!(t.episode_ms, 18_000);
    assert_eq!(t.search_tokens(), 5000 + 1440);
    assert!(report.wall_ms >= 90_000, "{}", report.wall_ms);

    // The equal-budget axis: meta plus train episodes, by generation.
    assert_eq!(g0.total_tokens, 4 * 120);
    assert_eq!(g1.total_tokens, 8 * 120 + 1500);
    assert_eq!(g2.total_tokens, 12 * 120 + 5000);

    // Comparisons (the repeated one counted once) and tokens per accepted.
    assert_eq!(report.comparisons, 3);
    assert_eq!(report.accepted_improvements, 2);
    some_close(report.tokens_per_accepted_improvement, 6440.0 / 2.0);
    some_close(report.meta_tokens_per_accepted_improvement, 2500.0);

    let effect = |kind: DiffKind| {
        report
            .kind_effects
            .iter()
            .find(|e| e.kind == kind)
            .unwrap()
            .clone()
    };
    let prompt = effect(DiffKind::Prompt);
    assert_eq!(
        (
            prompt.valid_children,
            prompt.scored_children,
            prompt.accepted
        ),
        (2, 2, 2)
    );
    some_close(prompt.mean_delta, (0.25 + 0.5) / 2.0);
    let code = effect(DiffKind::Code);
    assert_eq!(
        (code.valid_children, code.accepted),
        (1, 1),
        "the invalid child is not counted"
    );
    some_close(code.mean_delta, 0.5);
    let meta = effect(DiffKind::Meta);
    assert_eq!((meta.valid_children, meta.accepted), (1, 0));
    some_close(meta.mean_delta, 0.0);
    let hierarchy = effect(DiffKind::Hierarchy);
    assert_eq!((hierarchy.valid_children, hierarchy.mean_delta), (0, None));

    let g1c1 = report.node("g1c1").unwrap();
    assert_eq!(g1c1.status, NodeStatus::Invalid);
    assert_eq!(g1c1.errors, ["script <bad> | & `x` in tools.py:3"]);
    let g2c0 = report.node("g2c0").unwrap();
    some_close(g2c0.full, 0.75);
    some_close(g2c0.stage1, 1.0);
    assert!(!g2c0.comparison.as_ref().unwrap().accepted);

    assert_eq!(report.unreadable_events.len(), 1);
    assert!(report.unreadable_events[0].ends_with("(comparison)"));
}

#[test]
fn the_report_writes_markdown_tables_and_well_formed_svgs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    hyper_run(&store, "alpha");
    // The run directory with the seed's and the best node's programs.
    let run_dir = dir.path().join("run");
    let write = |path: &str, text: &str| {
        let path = run_dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("nodes/seed/prompts/task.md", "Answer the question.\n");
    write("nodes/seed/hyper/main.py", "final = skill()\n");
    write(
        "nodes/g2c1/prompts/task.md",
        "Answer with the number only ```.\n",
    );
    write("nodes/g2c1/hyper/main.py", "log('v1')\nfinal = skill()\n");

    let out = dir.path().join("report");
    let files = write_report(&store, "alpha", Some(&run_dir), &out).unwrap();
    assert_eq!(files.markdown, out.join("report.md"));
    let names: Vec<String> = files
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "train.svg",
            "test.svg",
            "improvement_by_generation.svg",
            "improvement_by_meta_tokens.svg",
            "lineage.svg"
        ]
    );
    let svgs: BTreeMap<String, String> = files
        .plots
        .iter()
        .zip(&names)
        .map(|(path, name)| (name.clone(), parse_svg(path)))
        .collect();
    let train = svg_texts(&svgs["train.svg"]);
    assert!(
        train.contains(&"best of the archive".to_owned()),
        "{train:?}"
    );
    assert!(train.contains(&"mean of the archive".to_owned()));
    assert!(svg_texts(&svgs["test.svg"]).contains(&"best node on test".to_owned()));
    let improvement = svg_texts(&svgs["improvement_by_generation.svg"]);
    assert!(
        improvement.contains(&"+50 pp".to_owned()),
        "{improvement:?}"
    );

    let lineage = svg_texts(&svgs["lineage.svg"]);
    for node in ["seed", "g1c0", "g1c1", "g2c0", "g2c1"] {
        assert!(lineage.contains(&node.to_owned()), "{node} in {lineage:?}");
    }
    assert!(lineage.contains(&"invalid".to_owned()));
    assert!(
        lineage
            .iter()
            .any(|t| t.contains("error: script <bad> | & `x`")),
        "{lineage:?}"
    );
    assert!(
        svgs["lineage.svg"].contains("&lt;bad&gt;"),
        "escaped in the file"
    );
    assert!(
        lineage
            .iter()
            .any(|t| t.starts_with("g2c1 (generation 2), the best node"))
    );
    assert!(
        svgs["lineage.svg"].contains(r##"stroke="#d4a000""##),
        "the best node is ringed"
    );
    // Five nodes, four parent → child edges.
    assert_eq!(svgs["lineage.svg"].matches("<line ").count(), 4);

    let md = std::fs::read_to_string(&files.markdown).unwrap();
    for needle in [
        "# Evolution run alpha",
        "| mode | hyper |",
        "| seed train success | 50.0% |",
        "| best train success | 100.0% (g2c1) |",
        "| test success of the best node | 100.0% |",
        "| held out: g2c1 against the seed on the test split | +100.0 pp [+100.0, +100.0] over 2 paired episodes (2 against 0 succeeded) |",
        "| imp@k (best so far − seed, train) | +50.0 pp |",
        "| accepted improvements | 2 of 3 comparisons |",
        "| tokens per accepted improvement (meta + train episodes) | 3,220 |",
        "| 1 | 75.0% | 62.5% | 75.0% | g1c0 | 1 | 1 | 2 |",
        "| 2 | +50.0 pp | 5,000 | +10000.0 pp | 6,440 |",
        "| 1 | g1c0 | 50.0% |",
        "| meta (making nodes) | — | — | 5,000 | 0.3750 |",
        "| task, train split (judge included) | 1,200 | 240 | 1,440 | 0.1200 |",
        "| prompt | 2 | 2 | +37.5 pp | 2 |",
        "| code | 1 | 1 | +50.0 pp | 1 |",
        "| meta | 1 | 1 | +0.0 pp | 0 |",
        "18 distinct evaluations (30 as linked by the stages and events",
        "Meta steps' prompts: 2 steps read 8,000 prompt tokens; 5,000 (62%) were reused from the meta model's cache and 3,000 computed, 1,500 per step.",
        "![Train success per generation](train.svg)",
        "![Lineage tree of the archive](lineage.svg)",
        "![imp@k per cumulative meta tokens](improvement_by_meta_tokens.svg)",
        "| g2c1 (best) | seed | 2 | prompt, code | valid | 100.0% | 100.0% | 100.0% | +50.0 pp ✓ | 1,500 |",
        r"script \<bad\> \| \& \`x\` in tools.py:3",
        "1 event(s) could not be read",
        "## People's judgements in parent selection",
        "| 2 | g1c0 | 75.0% | 50.0% |",
        "The whole diff is in [best.diff](best.diff).",
        "````diff\n",
        "+log('v1')",
        "+Answer with the number only ```.",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    assert!(!md.contains("<bad>"), "untrusted text is escaped");
    let diff = std::fs::read_to_string(out.join("best.diff")).unwrap();
    assert!(
        diff.contains("--- a/hyper/main.py") && diff.contains("+++ b/prompts/task.md"),
        "{diff}"
    );
    assert_eq!(files.others, [out.join("best.diff")]);
}

#[test]
fn without_a_run_directory_the_report_says_so_and_a_missing_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    hyper_run(&store, "alpha");
    let out = dir.path().join("out");
    let files = write_report(&store, "alpha", None, &out).unwrap();
    let md = std::fs::read_to_string(files.markdown).unwrap();
    assert!(md.contains("No run directory was given"), "{md}");
    assert!(files.others.is_empty());
    assert!(!out.join("best.diff").exists());

    let missing = dir.path().join("no-such-run-dir");
    let err = write_report(&store, "alpha", Some(&missing), &out).unwrap_err();
    assert!(matches!(err, ReportError::MissingRunDir { .. }), "{err}");
    assert!(err.to_string().contains("no-such-run-dir") && err.to_string().contains("alpha"));

    // A run directory without the best node's program: noted, not fatal.
    let run_dir = dir.path().join("empty-run");
    std::fs::create_dir_all(run_dir.join("nodes/seed")).unwrap();
    let files = write_report(&store, "alpha", Some(&run_dir), &out).unwrap();
    let md = std::fs::read_to_string(files.markdown).unwrap();
    assert!(md.contains("The diff could not be computed"), "{md}");
}

#[test]
fn an_unknown_run_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let err = run_summary(&store, "nope").unwrap_err();
    assert!(
        matches!(err, ReportError::UnknownRun { ref run, .. } if run == "nope"),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("\"nope\"") && message.contains("results.sqlite"),
        "{message}"
    );
    let err = write_report(&store, "nope", None, &dir.path().join("out")).unwrap_err();
    assert!(matches!(err, ReportError::UnknownRun { .. }));
    assert!(
        !dir.path().join("out").exists(),
        "nothing written for an unknown run"
    );
}

#[test]
fn a_run_without_generations_gets_a_report_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let b = RunBuilder::new(&store, "fresh", RunMode::PromptOnly, 1);
    b.node("seed", None, 0, &[], NodeStatus::Valid, json!([]), 0);
    b.eval("seed", "stage1", "seed", &[("t1", true), ("t2", false)]);
    b.eval("seed", "full", "seed", &full(1));
    b.event("parents", json!({"generation": 1, "parents": ["seed"]}));

    let report = run_summary(&store, "fresh").unwrap();
    assert_eq!(report.generations_done(), 0);
    assert_eq!(report.generations.len(), 1, "generation 0: the seed");
    some_close(report.seed_train, 0.25);
    assert_eq!(report.best_node, "seed");
    assert_eq!(report.tokens.evaluations, 4);
    assert_eq!(report.tokens.evaluation_links, 6);
    assert_eq!(report.tokens.meta_cost, None, "no attempt recorded one");

    let out = dir.path().join("out");
    let files = write_report(&store, "fresh", None, &out).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("No generation has finished yet"), "{md}");
    assert!(
        md.contains("| seed (best) | — | 0 | — | valid | 50.0% | 25.0% | — | — | 0 |"),
        "{md}"
    );
    assert_eq!(files.plots, [out.join("lineage.svg")]);
    assert!(!out.join("train.svg").exists());
    let lineage = parse_svg(&out.join("lineage.svg"));
    assert!(svg_texts(&lineage).contains(&"seed".to_owned()));
}

/// A one-generation run: the seed at `seed_train` quarters, one child at
/// `child_train` quarters with `meta_tokens`, test scores in halves.
fn small_run(
    store: &ResultsStore,
    id: &str,
    mode: RunMode,
    seed: u64,
    (seed_train, child_train): (usize, usize),
    meta_tokens: u64,
    child_test: usize,
) {
    let b = RunBuilder::new(store, id, mode, seed);
    b.node("seed", None, 0, &[], NodeStatus::Valid, json!([]), 0);
    b.eval("seed", "full", "seed", &full(seed_train));
    b.event("parents", json!({"generation": 1, "parents": ["seed"]}));
    let kinds: &[DiffKind] = if mode == RunMode::None {
        &[]
    } else {
        &[DiffKind::Prompt]
    };
    b.node(
        "g1c0",
        Some("seed"),
        1,
        kinds,
        NodeStatus::Valid,
        json!([]),
        meta_tokens,
    );
    b.eval("g1c0", "full", "g1c0", &full(child_train));
    let better = child_train > seed_train;
    b.comparison(
        "g1c0",
        "seed",
        (child_train as f64 - seed_train as f64) / 4.0,
        Some(0.0),
        better,
    );
    let (best, node) = if better {
        (child_train, "g1c0")
    } else {
        (seed_train, "seed")
    };
    let mean = (seed_train + child_train) as f64 / 8.0;
    b.generation(1, 1, 0, best as f64 / 4.0, mean, node, 2);
    b.eval(
        node,
        "test",
        node,
        &[("h1", child_test > 0), ("h2", child_test > 1)],
    );
    b.event(
        "test",
        json!({"generation": 1, "node": node, "success_rate": child_test as f64 / 2.0}),
    );
}

#[test]
fn a_comparison_overlays_runs_and_aggregates_per_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    hyper_run(&store, "alpha");
    small_run(&store, "alpha-2", RunMode::Hyper, 8, (2, 3), 4000, 1);
    small_run(&store, "beta<&>|", RunMode::FixedMeta, 7, (2, 4), 3000, 2);
    small_run(&store, "gamma", RunMode::None, 7, (2, 2), 0, 0);
    let ids: Vec<String> = ["alpha", "alpha-2", "beta<&>|", "gamma"]
        .map(String::from)
        .to_vec();

    let comparison = compare_summary(&store, &ids).unwrap();
    let modes: Vec<RunMode> = comparison.modes.iter().map(|m| m.mode).collect();
    assert_eq!(modes, [RunMode::Hyper, RunMode::FixedMeta, RunMode::None]);
    let hyper = &comparison.modes[0];
    assert_eq!(hyper.runs, 2);
    let imp = hyper.final_improvement.unwrap();
    close(imp.mean, (0.5 + 0.25) / 2.0);
    close(imp.min, 0.25);
    close(imp.max, 0.5);
    let test = hyper.final_test.unwrap();
    close(test.mean, (1.0 + 0.5) / 2.0);
    let tokens = hyper.search_tokens.unwrap();
    close(tokens.max, 6440.0);
    close(tokens.min, 4000.0 + 8.0 * 120.0);
    let none = &comparison.modes[2];
    close(none.final_improvement.unwrap().mean, 0.0);
    assert_eq!(
        comparison.runs[3].generations[1].improvement_per_million_meta_tokens,
        None
    );

    let out = dir.path().join("compare");
    let files = write_comparison(&store, &ids, &out).unwrap();
    assert_eq!(files.markdown, out.join("compare.md"));
    assert_eq!(files.plots.len(), 3);
    for plot in &files.plots {
        let svg = parse_svg(plot);
        let texts = svg_texts(&svg);
        for label in [
            "alpha (hyper)",
            "alpha-2 (hyper)",
            "beta<&>| (fixed-meta)",
            "gamma (none)",
        ] {
            assert!(
                texts.contains(&label.to_owned()),
                "{label} in {}: {texts:?}",
                plot.display()
            );
        }
        // Lines coloured by mode: hyper blue, fixed-meta orange, none grey.
        for color in ["#1F77B4", "#FF7F0E", "#7F7F7F"] {
            assert!(
                svg.contains(&format!(r#"stroke="{color}""#)),
                "{color} in {}",
                plot.display()
            );
        }
    }
    let budget = std::fs::read_to_string(out.join("compare_budget.svg")).unwrap();
    assert!(
        svg_texts(&budget).iter().any(|t| t.ends_with('k')),
        "token axis in thousands"
    );

    let md = std::fs::read_to_string(&files.markdown).unwrap();
    for needle in [
        "# Comparison of 4 evolution runs",
        "| alpha | hyper | 7 | 2 | 50.0% | 100.0% | 100.0% | +50.0 pp | 5,000 | 1,440 |",
        "| alpha-2 | hyper | 8 | 1 | 50.0% | 75.0% | 50.0% | +25.0 pp | 4,000 | 960 |",
        r"| beta\<\&\>\| | fixed-meta | 7 | 1 | 50.0% | 100.0% | 100.0% | +50.0 pp | 3,000 | 960 |",
        "| gamma | none | 7 | 1 | 50.0% | 50.0% | 0.0% | +0.0 pp | 0 | 960 |",
        "| hyper | 2 | 50.0% (50.0% – 50.0%) [2] | 87.5% (75.0% – 100.0%) [2] | 75.0% (50.0% – 100.0%) [2] | +37.5 pp (+25.0 pp – +50.0 pp) [2] |",
        "| fixed-meta | 1 | 50.0% [1] | 100.0% [1] |",
        "![compare_train.svg](compare_train.svg)",
        "![compare_budget.svg](compare_budget.svg)",
        "![compare_test.svg](compare_test.svg)",
    ] {
        assert!(md.contains(needle), "compare.md lacks {needle:?}:\n{md}");
    }
}

#[test]
fn a_comparison_refuses_no_runs_repeated_runs_and_unknown_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    small_run(&store, "a", RunMode::Hyper, 1, (1, 2), 10, 1);
    let out = dir.path().join("out");
    assert!(matches!(
        write_comparison(&store, &[], &out),
        Err(ReportError::NoRuns)
    ));
    let twice = ["a".to_owned(), "a".to_owned()];
    let err = write_comparison(&store, &twice, &out).unwrap_err();
    assert!(
        matches!(err, ReportError::DuplicateRun { ref run } if run == "a"),
        "{err}"
    );
    let unknown = ["a".to_owned(), "b".to_owned()];
    let err = write_comparison(&store, &unknown, &out).unwrap_err();
    assert!(
        matches!(err, ReportError::UnknownRun { ref run, .. } if run == "b"),
        "{err}"
    );
}

#[test]
fn episodes_named_by_events_count_once_and_missing_ones_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    small_run(&store, "q", RunMode::Hyper, 1, (2, 3), 100, 1);
    let before = run_summary(&store, "q").unwrap().tokens;
    assert_eq!(before.task_tokens(), 8 * 120);

    // A meta agent's quick evaluation of g1c0: one episode g1c0's full
    // stage already holds, one new; and an event naming a run never stored.
    let b = RunBuilder {
        store: &store,
        run: "q".into(),
        created_at_ms: 0,
    };
    let quick = b.record(
        "g1c0",
        "quick",
        "g1c0",
        &[("t1", true), ("t5", false)],
        1000,
    );
    b.event(
        "quick_eval",
        json!({"node": "g1c0", "call": 1, "eval_run": quick.0, "tokens": 240}),
    );
    b.event(
        "smoke",
        json!({"node": "g1c0", "eval_run": 9999, "ok": true}),
    );

    let report = run_summary(&store, "q").unwrap();
    assert_eq!(
        report.tokens.task_tokens(),
        9 * 120,
        "only the new episode is added"
    );
    assert_eq!(report.tokens.evaluations, before.evaluations + 1);
    assert_eq!(report.tokens.evaluation_links, before.evaluation_links + 2);
    assert_eq!(
        report.generations[1].total_tokens,
        100 + 9 * 120,
        "spent in generation 1"
    );
    assert_eq!(
        report.unreadable_events.len(),
        1,
        "{:?}",
        report.unreadable_events
    );
    assert!(report.unreadable_events[0].contains("9999"));
}
