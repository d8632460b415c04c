//! The fixture the dashboard's tests share: a results store with one run
//! (nodes, a generation, stages with trajectories holding hostile text),
//! its run directory and a feedback file.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use hyperagents_dashboard::DashboardState;
use hyperagents_store::events::GenerationDone;
use hyperagents_store::{
    DiffKind, EvalKey, EvalResult, EvalStatus, EvolutionEvent, FeedbackStore, NewEvalRun,
    NewEvolutionRun, NewNode, NodeStatus, ResultsStore, RunMode, RunStatus,
};
use serde_json::json;

/// The bytes of the fixture's screenshot (a PNG signature; the dashboard
/// passes files through).
pub const SCREENSHOT: &[u8] = b"\x89PNG\r\n\x1a\nfixture";

pub const HOSTILE: &str = "<script>alert(1)</script> <a href=\"javascript:alert(2)\">x</a>";

pub fn node(id: &str, parent: Option<&str>, generation: u64, errors: serde_json::Value) -> NewNode {
    NewNode {
        run_id: "r1".into(),
        node_id: id.into(),
        program_hash: format!("hash-{id}"),
        parent_id: parent.map(str::to_string),
        generation,
        label: id.into(),
        diff: String::new(),
        diff_kinds: if parent.is_some() {
            vec![DiffKind::Prompt]
        } else {
            Vec::new()
        },
        status: if errors.as_array().is_some_and(|e| e.is_empty()) {
            NodeStatus::Valid
        } else {
            NodeStatus::Invalid
        },
        validation_errors: errors,
        meta_tokens: 100,
    }
}

/// A store with run `r1`: the seed and two children in generation 1 (one
/// invalid, with a hostile error), a finished generation; and its run
/// directory with a hostile diff and meta trace.
pub fn fixture(dir: &Path) -> DashboardState {
    let store = ResultsStore::open(dir.join("results.sqlite")).unwrap();
    store
        .create_evolution_run(&NewEvolutionRun {
            id: "r1".into(),
            config: json!({}),
            mode: RunMode::Hyper,
            seed: 7,
        })
        .unwrap();
    store
        .insert_node(&node("seed", None, 0, json!([])))
        .unwrap();
    store
        .insert_node(&node("g1c0", Some("seed"), 1, json!([])))
        .unwrap();
    store
        .insert_node(&node("g1c1", Some("seed"), 1, json!([HOSTILE])))
        .unwrap();
    store
        .append(
            "r1",
            &EvolutionEvent::Generation(GenerationDone {
                generation: 1,
                valid_children: 1,
                failed_attempts: 1,
                best: 0.5,
                mean: 0.25,
                improvement: 0.25,
                archive_size: 2,
                best_node: "g1c0".into(),
            }),
        )
        .unwrap();
    store
        .append(
            "r1",
            &EvolutionEvent::Parents(hyperagents_store::events::ParentsChosen {
                generation: 2,
                parents: vec!["g1c0".into()],
                selector: None,
                fitness: [("g1c0".to_string(), 0.125)].into_iter().collect(),
            }),
        )
        .unwrap();
    store
        .set_run_state("r1", RunStatus::Finished, &json!({"generations_done": 1}))
        .unwrap();
    let nodes = dir.join("runs/r1/nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    // The programs of the seed and g1c0 (its lineage changed one prompt).
    for (id, prompt) in [
        ("seed", "Answer: {{ goal }}\n"),
        ("g1c0", "Answer briefly: {{ goal }}\n"),
    ] {
        std::fs::create_dir_all(nodes.join(id).join("skills/a")).unwrap();
        std::fs::write(nodes.join(id).join("skills/a/prompt.md"), prompt).unwrap();
    }
    std::fs::write(
        nodes.join("g1c0.diff"),
        format!("--- a/skills/x/prompt.md\n+++ b/skills/x/prompt.md\n-old line\n+{HOSTILE}\n"),
    )
    .unwrap();
    std::fs::write(
        nodes.join("g1c0.meta.txt"),
        format!("Llm llm → {HOSTILE}\n"),
    )
    .unwrap();
    // g1c0's stage 1: one episode with a trajectory whose model output is
    // hostile page text, one without a trajectory; the seed's the same.
    let trajectory = dir.join("traces/t1-0.jsonl.gz");
    write_trajectory(&trajectory);
    stage(&store, "g1c0", "stage1", &trajectory);
    stage(&store, "seed", "stage1", &trajectory);
    stage(&store, "seed", "test", &trajectory);
    DashboardState {
        store: ResultsStore::open_read_only(dir.join("results.sqlite")).unwrap(),
        runs_dir: dir.join("runs"),
        token: None,
        feedback: Some(FeedbackStore::open(dir.join("feedback.sqlite")).unwrap()),
        form_secret: "form-secret".into(),
    }
}

/// Stores `node`'s `stage`: task t1 (succeeded, with `trajectory`) and t2
/// (failed, none kept), seed 0.
pub fn stage(store: &ResultsStore, node: &str, stage: &str, trajectory: &Path) {
    let eval_run = store
        .create_run(&NewEvalRun {
            program_hash: format!("hash-{node}"),
            suite: "jsonl:t".into(),
            split: "train".into(),
            config: json!({}),
        })
        .unwrap();
    for (task, kept) in [("t1", Some(trajectory.to_path_buf())), ("t2", None)] {
        let key = EvalKey {
            program_hash: format!("hash-{node}"),
            suite: "jsonl:t".into(),
            suite_version: "v1".into(),
            task: task.into(),
            seed: 0,
            models: Default::default(),
            sampling_hash: stage.into(),
            host_api_version: 2,
        };
        let result = EvalResult {
            status: EvalStatus::Ok,
            success: task == "t1",
            score: 0.0,
            reason: format!("scored {HOSTILE}"),
            tokens_in: 10,
            tokens_out: 2,
            cost: 0.0,
            duration_ms: 50,
            trajectory: kept,
            finished_at_ms: 1,
        };
        store.record_in_run(eval_run, &key, &result).unwrap();
    }
    store
        .link_node_evaluation("r1", node, stage, eval_run)
        .unwrap();
}

/// A trajectory file as the runtime writes it: a header and one model call
/// whose output is hostile text.
pub fn write_trajectory(path: &Path) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A screenshot after the action, and a span naming a file that is not
    // one (the dashboard must not serve it).
    let shot = path.with_file_name("shot-1.png");
    std::fs::write(&shot, SCREENSHOT).unwrap();
    let not_a_shot = path.with_file_name("secret.txt");
    std::fs::write(&not_a_shot, "do not serve").unwrap();
    let lines = [
        json!({"type": "episode", "domain": "jsonl:t", "task": "t1", "seed": 0,
               "program": "hash-g1c0", "started_at_unix_ms": 0}),
        json!({"type": "span", "id": 0, "parent": null, "kind": "llm", "name": "llm",
               "input": {"prompt": "What is on the page?"}, "output": HOSTILE, "error": null,
               "tokens_in": 10, "tokens_out": 2, "tokens_cached": 0, "cost": 0.0,
               "start_ms": 0, "end_ms": 5}),
        json!({"type": "span", "id": 1, "parent": null, "kind": "screenshot", "name": "screenshot",
               "input": null, "output": shot, "error": null, "tokens_in": 0, "tokens_out": 0,
               "tokens_cached": 0, "cost": 0.0, "start_ms": 6, "end_ms": 7}),
        json!({"type": "span", "id": 2, "parent": null, "kind": "screenshot", "name": "screenshot",
               "input": null, "output": not_a_shot, "error": null, "tokens_in": 0, "tokens_out": 0,
               "tokens_cached": 0, "cost": 0.0, "start_ms": 8, "end_ms": 9}),
    ];
    let file = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    for line in lines {
        writeln!(gz, "{line}").unwrap();
    }
    gz.finish().unwrap();
}
