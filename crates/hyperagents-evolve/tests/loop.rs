//! The generation loop on real parts — the seed program and its own meta
//! agent in real sandbox workers, a JSONL suite, a real SQLite store — with
//! scripted models standing in for the task and meta models (loop mechanics
//! only).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyperagents_domain::{Domain, JsonlSuite};
use hyperagents_eval::{LocalEvaluator, SuiteIdentity};
use hyperagents_evolve::{Evolution, EvolveSettings, LocalMetaSteps, SelectionPolicy};
use hyperagents_llm::{ChatRequest, ResponseFormat};
use hyperagents_runtime::improve::{ImproveConfig, ImproveError, ImproveOutcome, MetaStepper};
use hyperagents_store::{NodeStatus, ResultsStore, RunMode};
use hyperagents_testkit::meta_reply::{search_replace, whole_file};
use hyperagents_testkit::{ScriptedModel, context, pool, seed_without_exemplars};

/// The seed program the loop's tests evolve: its meta agent writes only the
/// scripted meta model's edits (no worked examples mined by code).
fn mechanics_seed() -> std::path::PathBuf {
    seed_without_exemplars()
}

/// A copy of the seed under `dir` whose meta agent is `script`: a meta
/// agent that ignores what the run's mode allows, to test that the engine
/// refuses what it must.
fn seed_with_meta_script(dir: &Path, script: &str) -> std::path::PathBuf {
    let seed = dir.join("custom-seed");
    hyperagents_program::copy_program(&mechanics_seed(), &seed).unwrap();
    std::fs::write(seed.join("meta/improve.py"), script).unwrap();
    seed
}

const SUITE: &str = r#"{"id": "four", "input": "What is 2+2?", "expected": "4"}
{"id": "six", "input": "What is 3+3?", "expected": "6"}
{"id": "eight", "input": "What is 4+4?", "expected": "8"}
{"id": "animal", "input": "Name the marsupial.", "expected": "QUOKKA-77"}
{"id": "held", "input": "TEST-ONLY-QUESTION: what is 5+5?", "expected": "ZEBRA-42", "split": "test"}
"#;

/// The task model: always answers 4 (right for one task of three).
fn task_model() -> Arc<ScriptedModel> {
    ScriptedModel::new(|request: &ChatRequest| match &request.response_format {
        ResponseFormat::JsonSchema { .. } => r#"{"answer": "4"}"#.into(),
        ResponseFormat::Text => "4".into(),
    })
}

/// The meta model: proposes a distinct edit each call, to `path`.
fn meta_model(path: &'static str, counter: Arc<AtomicUsize>) -> Arc<ScriptedModel> {
    ScriptedModel::new(move |_| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if path.starts_with("meta/") {
            search_replace(path, "Keep every", &format!("Keep every (v{n})"))
        } else if path.ends_with(".py") {
            search_replace(
                path,
                "final = skill(",
                &format!("log(\"v{n}\")\nfinal = skill("),
            )
        } else {
            whole_file(
                path,
                &format!("Question: {{{{ question }}}}\nAnswer with the number only (v{n})."),
            )
        }
    })
}

fn settings(run_id: &str, mode: RunMode) -> EvolveSettings {
    EvolveSettings {
        run_id: run_id.into(),
        mode,
        generations: 2,
        children: 2,
        selection: SelectionPolicy::dgm_default(),
        stage1_tasks: vec!["four".into(), "six".into()],
        full_tasks: vec!["four".into(), "six".into(), "eight".into(), "animal".into()],
        test_tasks: vec!["held".into()],
        seeds: vec![0],
        concurrency: 2,
        improve: ImproveConfig::default(),
        ..EvolveSettings::default()
    }
}

async fn evolution(
    dir: &Path,
    mode: RunMode,
    task: Arc<ScriptedModel>,
    meta: Arc<ScriptedModel>,
) -> Evolution {
    let suite: Arc<dyn Domain> = Arc::new(JsonlSuite::parse("jsonl:t", "t.jsonl", SUITE).unwrap());
    let workers = pool(2).await;
    let store = ResultsStore::open(dir.join("results.sqlite")).unwrap();
    let episodes = context(task, workers.clone(), 40, &dir.join("traces"));
    let meta_ctx = context(meta, workers, 40, &dir.join("meta-traces"));
    Evolution {
        episodes: episodes.clone(),
        meta: meta_ctx.clone(),
        meta_steps: Arc::new(LocalMetaSteps(meta_ctx)),
        archive: Arc::new(store.clone()),
        evaluator: Arc::new(LocalEvaluator {
            ctx: episodes.clone(),
            store,
        }),
        feedback: None,
        domain: suite,
        suite: SuiteIdentity {
            name: "jsonl:t".into(),
            version: "v1".into(),
        },
        settings: settings("run", mode),
        dir: dir.join("run"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_make_validated_evaluated_children_and_resume_without_repeating_work() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let task = task_model();
    let meta = meta_model("skills/reason/prompt.md", counter.clone());
    let evo = evolution(dir.path(), RunMode::Hyper, task.clone(), meta.clone()).await;
    let stats = evo.run(&mechanics_seed()).await.unwrap();
    assert_eq!(stats.len(), 2);
    let nodes = store_of(&evo).nodes("run").unwrap();
    assert_eq!(nodes.len(), 5, "the seed and 2 × 2 children");
    let valid: Vec<_> = nodes
        .iter()
        .filter(|n| n.generation > 0 && n.status == NodeStatus::Valid)
        .collect();
    assert!(
        !valid.is_empty(),
        "prompt edits make valid children: {nodes:?}"
    );
    for node in &valid {
        assert!(
            node.diff.contains("Answer with the number only"),
            "{}",
            node.diff
        );
        assert!(
            store_of(&evo)
                .node_stage_summary("run", &node.node_id, "stage1")
                .unwrap()
                .is_some(),
            "every valid child runs stage 1"
        );
    }
    // The seed scores 1/4 on the full stage; the children answer the same.
    let seed = store_of(&evo)
        .node_stage_summary("run", "seed", "full")
        .unwrap()
        .unwrap();
    assert_eq!((seed.successes, seed.episodes), (1, 4));
    // Each generation's best is scored on the test split at the end.
    assert!(stats.iter().all(|g| g.best_test == Some(0.0)), "{stats:?}");
    let best = &stats[1].best_node;
    let test = store_of(&evo)
        .node_stage_summary("run", best, "test")
        .unwrap()
        .unwrap();
    assert_eq!(test.episodes, 1);
    let events = store_of(&evo).events("run", 0).unwrap();
    // The seed is scored there too, so a report pairs the final best with it.
    let seed_test = store_of(&evo)
        .node_stage_summary("run", "seed", "test")
        .unwrap()
        .unwrap();
    assert_eq!(seed_test.episodes, 1);
    assert!(
        events.iter().any(|e| e.kind == "test"
            && e.payload["generation"] == 0
            && e.payload["node"] == "seed"),
        "a test event for the seed"
    );
    assert_eq!(events.iter().filter(|e| e.kind == "generation").count(), 2);
    // Each valid child is compared with its parent, paired by task; answering
    // exactly as the parent does is no accepted improvement.
    let comparisons: Vec<_> = events.iter().filter(|e| e.kind == "comparison").collect();
    assert_eq!(comparisons.len(), valid.len());
    for c in &comparisons {
        assert_eq!(c.payload["mean_difference"], 0.0, "{}", c.payload);
        assert_eq!(c.payload["accepted"], false, "{}", c.payload);
    }
    assert!(
        meta.request_count() >= 4,
        "each attempt asks the parent's meta agent"
    );
    // Each child records the prompt tokens its meta step read and, of
    // those, the ones the model reused from its cache.
    for child in events.iter().filter(|e| e.kind == "child") {
        let read = child.payload["meta_prompt_tokens"].as_u64().unwrap();
        let reused = child.payload["meta_prompt_reused"].as_u64().unwrap();
        assert!(read > 0 && reused <= read, "{}", child.payload);
    }
    // Meta agents are told where they stand from the first generation on.
    let first = serde_json::to_string(&meta.requests.lock().unwrap()[0]).unwrap();
    assert!(first.contains("generations_left"), "{first}");
    assert!(first.contains("parent_train_success_by_task"), "{first}");

    // Resume: everything is in the store, so no model is asked again.
    let (task_calls, meta_calls) = (task.request_count(), meta.request_count());
    let again = evolution(dir.path(), RunMode::Hyper, task.clone(), meta.clone()).await;
    let resumed = again.run(&mechanics_seed()).await.unwrap();
    assert_eq!(task.request_count(), task_calls);
    assert_eq!(meta.request_count(), meta_calls);
    assert_eq!(resumed, stats);
    assert_eq!(store_of(&again).nodes("run").unwrap().len(), 5);
}

/// Meta steps run locally, each step's `parent_attempts_before` recorded
/// by the child it makes.
struct RecordsAttemptsBefore {
    inner: LocalMetaSteps,
    seen: std::sync::Mutex<Vec<(String, u64)>>,
}

#[async_trait::async_trait]
impl MetaStepper for RecordsAttemptsBefore {
    async fn step(
        &self,
        parent: &Path,
        failures: &Path,
        out: &Path,
        config: &ImproveConfig,
    ) -> Result<ImproveOutcome, ImproveError> {
        let child = out.file_name().unwrap().to_string_lossy().into_owned();
        let before = config.context["parent_attempts_before"].as_u64().unwrap();
        self.seen.lock().unwrap().push((child, before));
        self.inner.step(parent, failures, out, config).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_step_is_told_how_many_children_its_parent_had_before() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::default());
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    let recorder = Arc::new(RecordsAttemptsBefore {
        inner: LocalMetaSteps(evo.meta.clone()),
        seen: std::sync::Mutex::default(),
    });
    evo.meta_steps = recorder.clone();
    evo.run(&mechanics_seed()).await.unwrap();
    let nodes = store_of(&evo).nodes("run").unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for (child, before) in &seen {
        let node = nodes.iter().find(|n| &n.node_id == child).unwrap();
        let index: usize = child.rsplit('c').next().unwrap().parse().unwrap();
        // Children of the same parent in earlier generations, and siblings
        // with lower numbers drawn from it.
        let expected = nodes
            .iter()
            .filter(|n| n.parent_id == node.parent_id)
            .filter(|n| {
                n.generation < node.generation
                    || (n.generation == node.generation
                        && n.node_id
                            .rsplit('c')
                            .next()
                            .unwrap()
                            .parse::<usize>()
                            .unwrap()
                            < index)
            })
            .count() as u64;
        assert_eq!(*before, expected, "{child}: {seen:?}");
    }
    // The first generation's two children both come from the seed.
    let mut first: Vec<_> = seen
        .iter()
        .filter(|(c, _)| c.starts_with("g1"))
        .cloned()
        .collect();
    first.sort();
    assert_eq!(first, [("g1c0".to_string(), 0), ("g1c1".to_string(), 1)]);
}

/// Meta steps sent to workers that never come back with a child.
struct NoChildBack;

#[async_trait::async_trait]
impl MetaStepper for NoChildBack {
    async fn step(
        &self,
        _parent: &Path,
        _failures: &Path,
        _out: &Path,
        _config: &ImproveConfig,
    ) -> Result<ImproveOutcome, ImproveError> {
        Err(ImproveError::Remote {
            place: "worker w1".into(),
            message: "dead letter: delivered 5 times, no worker finished it".into(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_step_that_comes_back_without_a_child_fails_its_attempt_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::default());
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta).await;
    evo.meta_steps = Arc::new(NoChildBack);
    let stats = evo.run(&mechanics_seed()).await.unwrap();
    assert_eq!(stats.len(), 2);
    assert!(
        stats
            .iter()
            .all(|g| g.valid_children == 0 && g.failed_attempts == 2),
        "{stats:?}"
    );
    let nodes = store_of(&evo).nodes("run").unwrap();
    let children: Vec<_> = nodes.iter().filter(|n| n.generation > 0).collect();
    assert_eq!(children.len(), 4, "{nodes:?}");
    for child in children {
        assert_eq!(child.status, NodeStatus::Invalid);
        assert!(
            child.validation_errors.to_string().contains("dead letter"),
            "{}",
            child.validation_errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_only_mode_rejects_code_edits() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("tasks/answerer/policy.py", Arc::new(AtomicUsize::new(0)));
    let evo = evolution(dir.path(), RunMode::PromptOnly, task_model(), meta).await;
    let seed = seed_with_meta_script(
        dir.path(),
        "text = read_file(\"tasks/answerer/policy.py\")\nwrite_file(\"tasks/answerer/policy.py\", \"log(1)\\n\" + text)\n",
    );
    evo.run(&seed).await.unwrap();
    let children: Vec<_> = store_of(&evo)
        .nodes("run")
        .unwrap()
        .into_iter()
        .filter(|n| n.generation > 0)
        .collect();
    assert_eq!(children.len(), 4);
    for child in children {
        assert_eq!(child.status, NodeStatus::Invalid);
        assert!(
            child.validation_errors.to_string().contains("prompt-only"),
            "{}",
            child.validation_errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_only_mode_keeps_prompt_edits_and_the_meta_agents_notes() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let mut evo = evolution(dir.path(), RunMode::PromptOnly, task_model(), meta.clone()).await;
    evo.settings.generations = 1;
    evo.run(&mechanics_seed()).await.unwrap();
    for child in ["g1c0", "g1c1"] {
        let node = store_of(&evo).node("run", child).unwrap().unwrap();
        assert_eq!(node.status, NodeStatus::Valid, "{}", node.validation_errors);
        assert!(node.diff.contains("memory/notes.md"), "{}", node.diff);
    }
    // The seed's meta agent asks its model to rewrite only files the mode
    // lets it edit (what the engine says in `context()["editable"]`).
    let requests = meta.requests.lock().unwrap();
    let aimed: Vec<String> = requests
        .iter()
        .filter_map(|r| {
            let focus = r.messages[0].content.trim_end().lines().last()?;
            // "Rewrite PATH …" or "Write … lines of instructions to add to PATH …".
            let rest = focus
                .strip_prefix("Rewrite ")
                .or_else(|| focus.split_once(" to add to ").map(|(_, rest)| rest))?;
            let path = rest.split([' ', ':', ',']).next()?;
            Some(path.to_string())
        })
        .collect();
    assert!(
        aimed.contains(&"skills/reason/prompt.md".to_string()),
        "{aimed:?}"
    );
    for path in &aimed {
        assert!(path.ends_with(".md"), "{path} offered in prompt-only mode");
        assert!(
            !path.starts_with("meta/") && !path.starts_with("memory/"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_mode_reruns_the_seed_on_fresh_episode_seeds_without_a_meta_agent() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let evo = evolution(dir.path(), RunMode::None, task_model(), meta.clone()).await;
    evo.run(&mechanics_seed()).await.unwrap();
    assert_eq!(
        meta.request_count(),
        0,
        "no meta step without self-improvement"
    );
    let nodes = store_of(&evo).nodes("run").unwrap();
    let seed_hash = nodes[0].program_hash.clone();
    assert!(nodes.iter().all(|n| n.program_hash == seed_hash));
    assert!(nodes.iter().all(|n| n.status == NodeStatus::Valid));
    assert_eq!(nodes.len(), 5);
    // Every re-run meets episodes no other node met.
    let mut seen = std::collections::BTreeSet::new();
    for node in &nodes {
        let eval_run = store_of(&evo)
            .node_eval_run("run", &node.node_id, "stage1")
            .unwrap()
            .unwrap();
        let seeds: std::collections::BTreeSet<u64> = store_of(&evo)
            .run_evaluations(eval_run)
            .unwrap()
            .iter()
            .map(|r| r.key.seed)
            .collect();
        for seed in seeds {
            assert!(
                seen.insert(seed),
                "{} re-ran episode seed {seed}",
                node.node_id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_meta_mode_uses_the_seeds_meta_agent_and_refuses_meta_edits() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("meta/prompt.md", Arc::new(AtomicUsize::new(0)));
    let evo = evolution(dir.path(), RunMode::FixedMeta, task_model(), meta).await;
    let seed = seed_with_meta_script(
        dir.path(),
        "text = read_file(\"meta/prompt.md\")\nwrite_file(\"meta/prompt.md\", text + \"\\nBe bold.\\n\")\n",
    );
    evo.run(&seed).await.unwrap();
    for child in store_of(&evo)
        .nodes("run")
        .unwrap()
        .into_iter()
        .filter(|n| n.generation > 0)
    {
        assert_eq!(child.status, NodeStatus::Invalid);
        assert!(
            child.validation_errors.to_string().contains("fixed-meta"),
            "{}",
            child.validation_errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_whose_results_came_from_the_store_still_teaches_its_children() {
    // The meta agent edits only meta/: the child's episodes are the seed's,
    // so its evaluations are reused from the store and write no trajectory.
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("meta/prompt.md", Arc::new(AtomicUsize::new(0)));
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta).await;
    // Equal scores: `best` breaks the tie by the smallest id, g1c0.
    evo.settings.selection = SelectionPolicy::Best;
    evo.run(&mechanics_seed()).await.unwrap();
    let nodes = store_of(&evo).nodes("run").unwrap();
    let g1c0 = nodes.iter().find(|n| n.node_id == "g1c0").unwrap();
    assert_eq!(
        g1c0.status,
        NodeStatus::Valid,
        "{:?}",
        g1c0.validation_errors
    );
    let children: Vec<_> = nodes.iter().filter(|n| n.generation == 2).collect();
    assert!(
        children
            .iter()
            .all(|n| n.parent_id.as_deref() == Some("g1c0"))
    );
    let failures = dir.path().join("run/work/g2c0-failures");
    let summaries = std::fs::read_dir(&failures)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".summary.json")
        })
        .count();
    assert_eq!(
        summaries, 4,
        "the parent's full-stage trajectories, gathered from the store"
    );
}

/// Every file under `dir`, as text (gzip trajectories decompressed), for
/// scanning.
fn contents(dir: &Path, out: &mut Vec<(std::path::PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            contents(&path, out);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let mut decoded = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&bytes[..]),
                &mut decoded,
            )
            .unwrap();
            decoded
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        out.push((path, text));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_agents_never_see_the_test_split_or_expected_answers() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    evo.run(&mechanics_seed()).await.unwrap();
    // What meta agents were shown: their prompts (every request), the
    // failures handed to them, their own traces and the programs they edit.
    let mut seen: Vec<(std::path::PathBuf, String)> = Vec::new();
    for request in meta.requests.lock().unwrap().iter() {
        seen.push(("request".into(), serde_json::to_string(request).unwrap()));
    }
    contents(&dir.path().join("run/work"), &mut seen);
    contents(&dir.path().join("run/nodes"), &mut seen);
    assert!(
        seen.iter().any(|(_, t)| t.contains("Name the marsupial")),
        "failures were shown"
    );
    for (path, text) in &seen {
        for secret in ["TEST-ONLY-QUESTION", "ZEBRA-42", "QUOKKA-77"] {
            assert!(
                !text.contains(secret),
                "{secret} reached a meta agent via {}",
                path.display()
            );
        }
    }
    // The test split was evaluated, on the host side only.
    let mut host = Vec::new();
    contents(&dir.path().join("run/traces"), &mut host);
    assert!(host.iter().any(|(_, t)| t.contains("TEST-ONLY-QUESTION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_file_ends_the_run_before_the_next_generation() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    std::fs::write(dir.path().join("run/STOP"), "").unwrap();
    let stats = evo.run(&mechanics_seed()).await.unwrap();
    assert!(stats.is_empty());
    assert_eq!(meta.request_count(), 0);
    let run = store_of(&evo).evolution_run("run").unwrap().unwrap();
    assert_eq!(run.status, hyperagents_store::RunStatus::Stopped);
    // Removing the file and running again resumes where it stopped.
    std::fs::remove_file(dir.path().join("run/STOP")).unwrap();
    assert_eq!(evo.run(&mechanics_seed()).await.unwrap().len(), 2);
}

/// A meta model whose first edit calls an undefined function (it compiles,
/// then fails at run time) and whose later edits, once told of a rejection,
/// replace `old` with `new` in the same file.
fn defect_then_model(old: &'static str, new: &'static str) -> Arc<ScriptedModel> {
    ScriptedModel::new(move |request: &ChatRequest| {
        let prompt = serde_json::to_string(&request.messages).unwrap();
        if prompt.contains("rejected") || prompt.contains("failed to run") {
            search_replace("tasks/answerer/policy.py", old, new)
        } else {
            search_replace(
                "tasks/answerer/policy.py",
                "final = skill(",
                "undefined_helper()\nfinal = skill(",
            )
        }
    })
}

/// Repairs the rejected child: the broken call becomes a log line.
fn defect_then_fix_model() -> Arc<ScriptedModel> {
    defect_then_model("undefined_helper()\n", "log(\"repaired\")\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_with_a_code_defect_fails_its_smoke_episode_and_gets_one_repair_round() {
    let dir = tempfile::tempdir().unwrap();
    let meta = defect_then_fix_model();
    let (evo, child) = one_child(dir.path(), meta.clone(), true).await;
    assert_eq!(
        child.status,
        NodeStatus::Valid,
        "{}",
        child.validation_errors
    );
    assert!(child.label.contains("repaired"), "{}", child.label);
    // The diff is against the parent: the defect and its fix cancel out.
    assert!(child.diff.contains("log(\"repaired\")"), "{}", child.diff);
    assert!(!child.diff.contains("undefined_helper"), "{}", child.diff);
    let events = store_of(&evo).events("run", 0).unwrap();
    let smokes: Vec<_> = events.iter().filter(|e| e.kind == "smoke").collect();
    assert_eq!(smokes.len(), 2, "{smokes:?}");
    assert_eq!(smokes[0].payload["ok"], false);
    assert!(
        smokes[0].payload["errors"]
            .to_string()
            .contains("undefined_helper"),
        "{}",
        smokes[0].payload
    );
    assert_eq!(smokes[1].payload["ok"], true);
    let repair = events.iter().find(|e| e.kind == "repair").unwrap();
    assert!(repair.payload["errors"].to_string().contains("NameError"));
    // The repair round was told why: its prompt names the rejection.
    let requests = meta.requests.lock().unwrap();
    assert!(
        serde_json::to_string(&requests[requests.len() - 1])
            .unwrap()
            .contains("NameError")
    );
    let trace = std::fs::read_to_string(dir.path().join("run/nodes/g1c0.meta.txt")).unwrap();
    assert!(trace.contains("repair round"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_episode_the_search_uses_twice_is_spent_once() {
    let dir = tempfile::tempdir().unwrap();
    // An edit to the meta agent cannot change an episode: the child's smoke,
    // stage-1 and full episodes are its parent's, and stage 1 is inside the
    // full stage.
    let meta = meta_model("meta/prompt.md", Arc::new(AtomicUsize::new(0)));
    let (evo, child) = one_child(dir.path(), meta, true).await;
    assert_eq!(
        child.status,
        NodeStatus::Valid,
        "{}",
        child.validation_errors
    );
    for stage in ["stage1", "full"] {
        assert!(
            store_of(&evo)
                .node_stage_summary("run", "g1c0", stage)
                .unwrap()
                .is_some()
        );
    }
    let seed = store_of(&evo)
        .node_stage_summary("run", "seed", "full")
        .unwrap()
        .unwrap();
    let spent = evo.tokens_spent().unwrap();
    assert!(seed.tokens_in + seed.tokens_out > 0);
    assert_eq!(spent.episodes, seed.tokens_in + seed.tokens_out);
    assert!(spent.meta > 0);
}

/// One generation of one child made by `meta`, without `quick_eval` (so the
/// meta agent cannot catch a defect itself) and, unless `repair`, without a
/// repair round.
async fn one_child(
    dir: &Path,
    meta: Arc<ScriptedModel>,
    repair: bool,
) -> (Evolution, hyperagents_store::NodeRecord) {
    let mut evo = evolution(dir, RunMode::Hyper, task_model(), meta).await;
    evo.settings.generations = 1;
    evo.settings.children = 1;
    evo.settings.quick_eval_calls = 0;
    evo.settings.repair = repair;
    evo.run(&mechanics_seed()).await.unwrap();
    let child = store_of(&evo).node("run", "g1c0").unwrap().unwrap();
    (evo, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_naming_a_variable_its_script_does_not_pass_is_a_code_defect() {
    let dir = tempfile::tempdir().unwrap();
    let meta = ScriptedModel::new(|_| {
        search_replace(
            "skills/reason/prompt.md",
            "{{ question }}",
            "{{ question }}\nHint: {{ hint }}",
        )
    });
    let (_, child) = one_child(dir.path(), meta, false).await;
    assert_eq!(child.status, NodeStatus::Invalid);
    let errors = child.validation_errors.to_string();
    assert!(errors.contains("code defect"), "{errors}");
    assert!(errors.contains("undefined variable `hint`"), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_reading_a_missing_key_is_a_code_defect() {
    // What a meta model wrote in bench meta: every episode crashed on a
    // missing key, and its meta agent's test saw "fixed 0, broke 0".
    let dir = tempfile::tempdir().unwrap();
    let meta = ScriptedModel::new(|_| {
        search_replace(
            "tasks/answerer/policy.py",
            "final = skill(",
            "missing = {}[\"arguments\"]\nfinal = skill(",
        )
    });
    let (_, child) = one_child(dir.path(), meta, false).await;
    assert_eq!(child.status, NodeStatus::Invalid);
    let errors = child.validation_errors.to_string();
    assert!(errors.contains("code defect"), "{errors}");
    assert!(errors.contains("KeyError"), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_repair_round_a_defective_child_is_rejected_by_its_smoke_episode() {
    let dir = tempfile::tempdir().unwrap();
    let (evo, child) = one_child(dir.path(), defect_then_fix_model(), false).await;
    assert_eq!(child.status, NodeStatus::Invalid);
    assert!(
        child.validation_errors.to_string().contains("code defect"),
        "{}",
        child.validation_errors
    );
    assert!(
        store_of(&evo)
            .node_stage_summary("run", "g1c0", "stage1")
            .unwrap()
            .is_none(),
        "a rejected child is never evaluated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_meta_agent_catches_a_defect_with_quick_eval_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    // The defect is undone within the round, so the retry edits the original.
    let meta = defect_then_model("final = skill(", "log(\"second try\")\nfinal = skill(");
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    evo.settings.generations = 1;
    evo.settings.children = 1;
    evo.run(&mechanics_seed()).await.unwrap();
    let child = store_of(&evo).node("run", "g1c0").unwrap().unwrap();
    assert_eq!(
        child.status,
        NodeStatus::Valid,
        "{}",
        child.validation_errors
    );
    assert!(!child.label.contains("repaired"), "caught within the round");
    assert!(child.diff.contains("second try"), "{}", child.diff);
    assert!(!child.diff.contains("undefined_helper"), "{}", child.diff);
    let events = store_of(&evo).events("run", 0).unwrap();
    assert!(events.iter().all(|e| e.kind != "repair"));
    let quick: Vec<_> = events.iter().filter(|e| e.kind == "quick_eval").collect();
    assert!(!quick.is_empty());
    for event in &quick {
        for task in event.payload["tasks"].as_array().unwrap() {
            assert_ne!(task, "held", "quick_eval ran a held-out task");
        }
    }
    assert!(quick[0].payload["tokens"].as_u64().unwrap() > 0);
    let trace = std::fs::read_to_string(dir.path().join("run/nodes/g1c0.meta.txt")).unwrap();
    assert!(trace.contains("failed to run"), "{trace}");
    // Every role's tokens count toward the run's spending, quick
    // evaluations included.
    let spent = evo.tokens_spent().unwrap();
    assert!(spent.meta > 0 && spent.episodes > 0, "{spent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_eval_refuses_held_out_tasks_and_limits_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    let seed = hyperagents_testkit::seed_copy(dir.path());
    std::fs::write(
        seed.join("meta/improve.py"),
        r#"
outcomes = []
for tasks in [["held"], ["four", "six", "eight", "animal", "four"], ["four", "six", "eight", "animal", "extra"], ["four"], ["six"]]:
    try:
        results = quick_eval(tasks)
        outcomes.append("ran " + ",".join([r["task"] + "=" + str(r["success"]) for r in results]))
    except ValueError as error:
        outcomes.append("refused: " + str(error))
write_file("memory/quick.md", "\n".join(outcomes))
"#,
    )
    .unwrap();
    let mut evo = evolution(
        dir.path(),
        RunMode::Hyper,
        task_model(),
        meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0))),
    )
    .await;
    evo.settings.generations = 1;
    evo.settings.children = 1;
    evo.settings.quick_eval_calls = 2;
    evo.run(&seed).await.unwrap();
    let notes = std::fs::read_to_string(dir.path().join("run/nodes/g1c0/memory/quick.md")).unwrap();
    let lines: Vec<&str> = notes.lines().collect();
    assert_eq!(lines.len(), 5, "{notes}");
    assert!(
        lines[0].contains("refused") && lines[0].contains("not a train task"),
        "{notes}"
    );
    // Duplicates collapse to four tasks: within the limit.
    assert_eq!(
        lines[1], "ran four=True,six=False,eight=False,animal=False",
        "{notes}"
    );
    assert!(lines[2].contains("at most 4 tasks"), "{notes}");
    assert!(lines[3].starts_with("ran four"), "{notes}");
    assert!(lines[4].contains("2 times per meta step"), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_budget_stops_the_run_and_a_larger_one_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    // The seed's own evaluation already spends more than this.
    evo.settings.token_budget = Some(1);
    let stats = evo.run(&mechanics_seed()).await.unwrap();
    assert!(stats.is_empty());
    assert_eq!(meta.request_count(), 0);
    let events = store_of(&evo).events("run", 0).unwrap();
    let budget = events.iter().find(|e| e.kind == "budget").unwrap();
    assert!(budget.payload["episode_tokens"].as_u64().unwrap() > 0);
    evo.settings.token_budget = None;
    assert_eq!(evo.run(&mechanics_seed()).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_best_nodes_selection_script_chooses_parents_and_a_broken_one_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    evo.settings.program_selection = true;
    evo.run(&mechanics_seed()).await.unwrap();
    let parents: Vec<_> = store_of(&evo)
        .events("run", 0)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "parents")
        .collect();
    assert_eq!(parents.len(), 2);
    assert_eq!(
        parents[0].payload["selector"]["script"],
        "seed/meta/select.py"
    );
    assert!(
        parents[0].payload["selector"].get("fallback").is_none(),
        "{}",
        parents[0].payload
    );
    assert_eq!(
        parents[0].payload["parents"],
        serde_json::json!(["seed", "seed"])
    );

    // A selection script that answers nonsense costs a warning, not the run.
    let other = tempfile::tempdir().unwrap();
    let seed = hyperagents_testkit::seed_copy(other.path());
    std::fs::write(seed.join("meta/select.py"), "[\"no-such-node\"] * count\n").unwrap();
    let mut broken = evolution(other.path(), RunMode::Hyper, task_model(), meta).await;
    broken.settings.program_selection = true;
    broken.settings.generations = 1;
    broken.run(&seed).await.unwrap();
    let event = store_of(&broken)
        .events("run", 0)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "parents")
        .unwrap();
    assert!(
        event.payload["selector"]["fallback"]
            .as_str()
            .unwrap()
            .contains("no-such-node"),
        "{}",
        event.payload
    );
    assert_eq!(
        event.payload["parents"],
        serde_json::json!(["seed", "seed"])
    );

    // A script may rank by its own metric: each candidate carries its mean
    // score per train task (here it fails with an IndexError, and falls back,
    // unless the seed's scores are there).
    let third = tempfile::tempdir().unwrap();
    let seed = hyperagents_testkit::seed_copy(third.path());
    std::fs::write(
        seed.join("meta/select.py"),
        "scored = [c for c in candidates if len(c[\"task_scores\"]) > 0 and sum(c[\"task_scores\"].values()) >= 0]\n[scored[0][\"node\"]] * count\n",
    )
    .unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let mut scored = evolution(third.path(), RunMode::Hyper, task_model(), meta).await;
    scored.settings.program_selection = true;
    scored.settings.generations = 1;
    scored.run(&seed).await.unwrap();
    let event = store_of(&scored)
        .events("run", 0)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "parents")
        .unwrap();
    assert!(
        event.payload["selector"].get("fallback").is_none(),
        "{}",
        event.payload
    );

    // The script reads its settings from the JSON file beside it (what a
    // meta agent can rewrite whole); one that is not JSON falls back, named.
    let parents_chosen_with = |script: Option<&'static str>, settings: &'static str| async move {
        let dir = tempfile::tempdir().unwrap();
        let seed = hyperagents_testkit::seed_copy(dir.path());
        if let Some(script) = script {
            std::fs::write(seed.join("meta/select.py"), script).unwrap();
        }
        std::fs::write(seed.join("meta/select.json"), settings).unwrap();
        let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
        let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta).await;
        evo.settings.program_selection = true;
        evo.settings.generations = 1;
        evo.run(&seed).await.unwrap();
        store_of(&evo)
            .events("run", 0)
            .unwrap()
            .into_iter()
            .find(|e| e.kind == "parents")
            .unwrap()
            .payload
    };
    let reads_settings = Some("[settings[\"parent\"]] * count\n");
    let event = parents_chosen_with(reads_settings, "{\"parent\": \"seed\"}").await;
    assert!(event["selector"].get("fallback").is_none(), "{event}");
    assert_eq!(event["parents"], serde_json::json!(["seed", "seed"]));
    // The seed's own script, with partial progress weighed in.
    let event = parents_chosen_with(
        None,
        "{\"top\": 1, \"sharpness\": 20, \"child_penalty\": 2, \"partial_weight\": 0.5}",
    )
    .await;
    assert!(event["selector"].get("fallback").is_none(), "{event}");
    assert_eq!(event["parents"], serde_json::json!(["seed", "seed"]));
    let event = parents_chosen_with(reads_settings, "{\"parent\": ").await;
    assert!(
        event["selector"]["fallback"]
            .as_str()
            .unwrap()
            .contains("meta/select.json is not JSON"),
        "{event}"
    );
}

/// A meta double whose edit depends only on the request's seed, so a resumed
/// run proposes exactly what an uninterrupted one does.
fn seeded_meta_model() -> Arc<ScriptedModel> {
    ScriptedModel::new(|request: &ChatRequest| {
        let n = request.sampling.seed % 1000;
        whole_file(
            "skills/reason/prompt.md",
            &format!("Question: {{{{ question }}}}\nAnswer with the number only (v{n})."),
        )
    })
}

type ArchiveRow = (
    String,
    Option<String>,
    NodeStatus,
    String,
    Option<(u64, u64)>,
    Option<(u64, u64)>,
);

/// The archive as a comparable value: each node's parent, status, program
/// and stage results.
fn archive_of(store: &ResultsStore) -> Vec<ArchiveRow> {
    let stage = |node: &str, stage: &str| {
        store
            .node_stage_summary("run", node, stage)
            .unwrap()
            .map(|s| (s.successes, s.episodes))
    };
    let mut rows: Vec<ArchiveRow> = store
        .nodes("run")
        .unwrap()
        .into_iter()
        .map(|n| {
            let stage1 = stage(&n.node_id, "stage1");
            let full = stage(&n.node_id, "full");
            (
                n.node_id,
                n.parent_id,
                n.status,
                n.program_hash,
                stage1,
                full,
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_at_any_point_resumes_to_the_archive_of_an_uninterrupted_run() {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = seeded_hyper(reference_dir.path()).await;
    let reference_stats = reference.run(&mechanics_seed()).await.unwrap();
    let reference_archive = archive_of(&store_of(&reference));
    let total_events = store_of(&reference).events("run", 0).unwrap().len();
    assert!(total_events > 10, "{total_events}");

    // Kill after the first event, in the middle, and near the end.
    for kill_after in [1, 3, total_events / 3, total_events / 2, total_events - 2] {
        let dir = tempfile::tempdir().unwrap();
        let evo = seeded_hyper(dir.path()).await;
        kill_when(evo, |events| events.len() >= kill_after).await;
        let resumed = seeded_hyper(dir.path()).await;
        let stats = resumed.run(&mechanics_seed()).await.unwrap();
        assert_eq!(stats, reference_stats, "killed after {kill_after} events");
        assert_eq!(
            archive_of(&store_of(&resumed)),
            reference_archive,
            "killed after {kill_after} events"
        );
        // The record of finished work reads as if the run had never stopped.
        for kind in ["parents", "generation", "comparison", "test"] {
            assert_eq!(
                event_count(&store_of(&resumed), kind),
                event_count(&store_of(&reference), kind),
                "{kind} events, killed after {kill_after} events"
            );
        }
    }
}

/// Another connection to the store an [`evolution`] writes (beside its run
/// directory), for what the engine's archive does not expose.
fn store_of(evo: &Evolution) -> ResultsStore {
    ResultsStore::open(evo.dir.parent().unwrap().join("results.sqlite")).unwrap()
}

async fn seeded_hyper(dir: &Path) -> Evolution {
    evolution(dir, RunMode::Hyper, task_model(), seeded_meta_model()).await
}

/// Runs `evo` until its events satisfy `stop`, then drops it: whatever was
/// in flight — a meta step, an evaluation, a node insert — is cut off
/// mid-way, as in a killed process.
async fn kill_when(evo: Evolution, stop: impl Fn(&[hyperagents_store::EventRecord]) -> bool) {
    let watcher = store_of(&evo).clone();
    let running = tokio::spawn(async move { evo.run(&mechanics_seed()).await });
    while !running.is_finished() && !stop(&watcher.events("run", 0).unwrap()) {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    running.abort();
    let _ = running.await;
}

fn event_count(store: &ResultsStore, kind: &str) -> usize {
    let events = store.events("run", 0).unwrap();
    events.iter().filter(|e| e.kind == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_begun_before_a_restart_finishes_even_past_the_budget() {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = seeded_hyper(reference_dir.path()).await;
    let reference_stats = reference.run(&mechanics_seed()).await.unwrap();
    assert_eq!(reference_stats.len(), 2);

    // Killed once the last generation has drawn its parents…
    let dir = tempfile::tempdir().unwrap();
    let evo = seeded_hyper(dir.path()).await;
    kill_when(evo, |events| {
        events
            .iter()
            .any(|e| e.kind == "parents" && e.payload["generation"] == 2)
    })
    .await;

    // …and resumed with a budget that is already spent: the begun generation
    // still finishes, every generation keeps its stats, and the replayed
    // generations are not recorded twice.
    let mut resumed = seeded_hyper(dir.path()).await;
    resumed.settings.token_budget = Some(1);
    let stats = resumed.run(&mechanics_seed()).await.unwrap();
    assert_eq!(stats, reference_stats);
    assert_eq!(
        archive_of(&store_of(&resumed)),
        archive_of(&store_of(&reference))
    );
    // (Work cut off by the kill — a smoke episode, a meta step — is redone
    // and recorded again; the record of finished work is not.)
    for kind in ["parents", "generation", "comparison", "test"] {
        assert_eq!(
            event_count(&store_of(&resumed), kind),
            event_count(&store_of(&reference), kind),
            "{kind} events"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_program_edited_on_disk_is_never_scored_under_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta_model("skills/reason/prompt.md", Arc::new(AtomicUsize::new(0)));
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta).await;
    evo.settings.generations = 1;
    // The seed is archived and evaluated on train, then the run stops.
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    std::fs::write(dir.path().join("run/STOP"), "").unwrap();
    evo.run(&mechanics_seed()).await.unwrap();
    // Someone edits the seed's archived copy; the run goes on, and the seed
    // (still the best) is due for its test-split evaluation.
    let prompt = dir.path().join("run/nodes/seed/skills/reason/prompt.md");
    std::fs::write(&prompt, "Tampered {{ question }}").unwrap();
    std::fs::remove_file(dir.path().join("run/STOP")).unwrap();
    let error = evo.run(&mechanics_seed()).await.unwrap_err().to_string();
    assert!(error.contains("changed since it was archived"), "{error}");
    assert!(error.contains("nodes/seed"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_meta_agent_refuses_a_write_that_would_gut_a_file() {
    // What a 1.5B meta model did in the first experiment: a whole-file
    // write that guts the file (there, the path as the whole new content,
    // which the parser now reads as a label and no edit).
    let meta = ScriptedModel::new(|request: &ChatRequest| {
        let prompt = serde_json::to_string(&request.messages).unwrap();
        if prompt.contains("could not be used") {
            search_replace(
                "skills/reason/prompt.md",
                "Think step by step",
                "Think briefly",
            )
        } else {
            whole_file("tasks/answerer/policy.py", "pass")
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta).await;
    evo.settings.generations = 1;
    evo.settings.children = 1;
    evo.run(&mechanics_seed()).await.unwrap();
    let child = store_of(&evo).node("run", "g1c0").unwrap().unwrap();
    assert!(child.diff.contains("Think briefly"), "{}", child.diff);
    assert!(!child.diff.contains("answerer/policy.py"), "{}", child.diff);
    let trace = std::fs::read_to_string(dir.path().join("run/nodes/g1c0.meta.txt")).unwrap();
    assert!(
        trace.contains("would shrink tasks/answerer/policy.py"),
        "{trace}"
    );
}

/// Asserts that no stored evaluation is an episode a run-level budget cut
/// short: every stored trajectory's summary ended on the episode's own terms.
fn no_stored_episode_was_cut_short(store: &ResultsStore) {
    for eval_run in store.run_ids().unwrap() {
        for record in store.run_evaluations(eval_run).unwrap() {
            assert!(record.result.status.is_final(), "{record:?}");
            let Some(trajectory) = &record.result.trajectory else {
                continue;
            };
            let sidecar = format!("{}.summary.json", trajectory.display());
            let summary: hyperagents_runtime::trace::EpisodeSummary =
                serde_json::from_str(&std::fs::read_to_string(sidecar).unwrap()).unwrap();
            let stopped = summary.stopped.unwrap_or_default();
            assert!(!stopped.contains("budget for role"), "stored: {stopped}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_run_budget_stops_the_run_resumably_and_stores_nothing_cut_short() {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = seeded_hyper(reference_dir.path()).await;
    let reference_stats = reference.run(&mechanics_seed()).await.unwrap();
    let spent = reference
        .episodes
        .router
        .ledger()
        .spend("task")
        .usage
        .total();

    // Half of what the run needs, as a run-level budget of the task role.
    let dir = tempfile::tempdir().unwrap();
    let mut evo = seeded_hyper(dir.path()).await;
    let budget = hyperagents_llm::accounting::Budget {
        max_tokens: Some(spent / 2),
        ..Default::default()
    };
    evo.episodes.router.bind("task", task_model(), budget);
    let err = evo
        .run(&mechanics_seed())
        .await
        .expect_err("the budget runs out");
    assert!(
        matches!(
            err.interruption(),
            Some(hyperagents_runtime::Interruption::Budget(_))
        ),
        "{err:?}"
    );
    let run = store_of(&evo).evolution_run("run").unwrap().unwrap();
    assert_eq!(run.status, hyperagents_store::RunStatus::Stopped);
    let stopped = store_of(&evo)
        .last_event("run", "stopped")
        .unwrap()
        .unwrap();
    assert_eq!(stopped.payload["interrupted"], "budget");
    let message = stopped.payload["message"].as_str().unwrap();
    assert!(message.contains("budget for role `task`"), "{message}");
    no_stored_episode_was_cut_short(&store_of(&evo));

    // Resumed with budget to spare, the run ends where an uninterrupted one
    // did: nothing the budget cut short was kept as a result.
    let resumed = seeded_hyper(dir.path()).await;
    let stats = resumed.run(&mechanics_seed()).await.unwrap();
    assert_eq!(stats, reference_stats);
    assert_eq!(
        archive_of(&store_of(&resumed)),
        archive_of(&store_of(&reference))
    );
    for kind in ["parents", "generation", "comparison", "test"] {
        assert_eq!(
            event_count(&store_of(&resumed), kind),
            event_count(&store_of(&reference), kind),
            "{kind} events"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_stops_the_run_resumably() {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = seeded_hyper(reference_dir.path()).await;
    let reference_stats = reference.run(&mechanics_seed()).await.unwrap();
    let total_events = store_of(&reference).events("run", 0).unwrap().len();

    let dir = tempfile::tempdir().unwrap();
    let evo = seeded_hyper(dir.path()).await;
    let ledger = evo.episodes.router.ledger().clone();
    let watcher = store_of(&evo).clone();
    let running = tokio::spawn(async move { evo.run(&mechanics_seed()).await });
    while !running.is_finished() && watcher.events("run", 0).unwrap().len() < total_events / 3 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    ledger.request_stop("SIGINT");
    let err = running.await.unwrap().expect_err("stopped");
    assert!(
        matches!(
            err.interruption(),
            Some(hyperagents_runtime::Interruption::Stop(reason)) if reason == "SIGINT"
        ),
        "{err:?}"
    );
    let run = watcher.evolution_run("run").unwrap().unwrap();
    assert_eq!(run.status, hyperagents_store::RunStatus::Stopped);
    let stopped = watcher.last_event("run", "stopped").unwrap().unwrap();
    assert_eq!(stopped.payload["interrupted"], "signal");

    let resumed = seeded_hyper(dir.path()).await;
    let stats = resumed.run(&mechanics_seed()).await.unwrap();
    assert_eq!(stats, reference_stats);
    assert_eq!(
        archive_of(&store_of(&resumed)),
        archive_of(&store_of(&reference))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_identical_siblings_the_lower_numbered_is_kept_whichever_finishes_first() {
    let dir = tempfile::tempdir().unwrap();
    // Every meta step writes the same file; the first request (the first
    // child's) is slow, so the second child is made first.
    let first = Arc::new(AtomicUsize::new(0));
    let meta = ScriptedModel::new(move |_| {
        if first.fetch_add(1, Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1500));
        }
        whole_file(
            "skills/reason/prompt.md",
            "Question: {{ question }}\nAnswer with the number only.",
        )
    });
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta).await;
    evo.settings.generations = 1;
    evo.run(&mechanics_seed()).await.unwrap();
    let nodes = store_of(&evo).nodes("run").unwrap();
    let status = |id: &str| {
        nodes
            .iter()
            .find(|n| n.node_id == id)
            .map(|n| (n.status, n.validation_errors.to_string()))
            .unwrap()
    };
    let (first_child, _) = status("g1c0");
    let (second_child, errors) = status("g1c1");
    assert_eq!(first_child, NodeStatus::Valid);
    assert_eq!(second_child, NodeStatus::Invalid);
    assert!(errors.contains("identical"), "{errors}");
}

/// People's judgements change fitness as documented: a success rated bad
/// counts as a failure, a preference blends a Bradley–Terry score in, the
/// parent-selection weights move accordingly, the next generation records
/// the fitness it drew by, and comments reach the meta agents below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_judgements_shape_fitness_selection_and_meta_evidence() {
    use hyperagents_store::{EpisodePreference, EpisodeRating, Feedback, FeedbackStore};
    let dir = tempfile::tempdir().unwrap();
    let feedback = FeedbackStore::open(dir.path().join("feedback.sqlite")).unwrap();
    let meta = seeded_meta_model();
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    evo.feedback = Some(Arc::new(feedback.clone()));
    evo.settings.generations = 1;
    evo.settings.test_tasks.clear();
    evo.run(&mechanics_seed()).await.unwrap();

    let before = evo.parent_candidates(2).unwrap();
    let score = |candidates: &[hyperagents_evolve::Candidate], node: &str| {
        candidates.iter().find(|c| c.node.0 == node).unwrap().score
    };
    let weight = |candidates: &[hyperagents_evolve::Candidate], node: &str| {
        hyperagents_evolve::weights(&evo.settings.selection, candidates)
            .into_iter()
            .find(|(id, _)| id.0 == node)
            .unwrap()
            .1
    };
    // The task model answers 4: every node solves `four`, one of its four tasks.
    for node in ["seed", "g1c0", "g1c1"] {
        assert_eq!(score(&before, node), 0.25, "{node}");
    }
    let rating = |node: &str, good: bool, comment: &str, at_ms: i64| {
        Feedback::Rating(EpisodeRating {
            run: "run".into(),
            node: node.into(),
            stage: "full".into(),
            task: "four".into(),
            seed: 0,
            good,
            comment: comment.into(),
            rater: "ana".into(),
            at_ms,
        })
    };
    // g1c0's success is a hack, say; g1c1's episode is preferred to the seed's.
    feedback.add(&rating("g1c0", false, "", 1)).unwrap();
    feedback
        .add(&rating("seed", true, "answers with the number alone", 2))
        .unwrap();
    let preference = EpisodePreference {
        run: "run".into(),
        stage: "full".into(),
        task: "four".into(),
        seed: 0,
        a: "g1c1".into(),
        b: "seed".into(),
        preferred: "g1c1".into(),
        comment: String::new(),
        rater: "ben".into(),
        at_ms: 3,
    };
    feedback
        .add(&Feedback::Preference(preference.clone()))
        .unwrap();
    let after = evo.parent_candidates(2).unwrap();
    assert_eq!(score(&after, "g1c0"), 0.0, "its only success was rated bad");
    let bt = hyperagents_evolve::fitness::bradley_terry(&[preference]);
    let blended = |node: &str| 0.25 + 0.25 * (bt[node] - 0.5);
    assert!((score(&after, "g1c1") - blended("g1c1")).abs() < 1e-12);
    assert!((score(&after, "seed") - blended("seed")).abs() < 1e-12);
    assert!(score(&after, "g1c1") > 0.25 && score(&after, "seed") < 0.25);
    assert!(weight(&after, "g1c0") < weight(&before, "g1c0"));
    assert!(weight(&after, "g1c1") > weight(&before, "g1c1"));

    // A run whose generation draws by fitness records it, and its meta
    // agents see the comment on their ancestor's episode (judged before the
    // run: the seed's only success rated bad).
    let dir = tempfile::tempdir().unwrap();
    let feedback = FeedbackStore::open(dir.path().join("feedback.sqlite")).unwrap();
    feedback
        .add(&rating(
            "seed",
            false,
            "typed the answer into the page title",
            4,
        ))
        .unwrap();
    let meta = seeded_meta_model();
    let mut evo = evolution(dir.path(), RunMode::Hyper, task_model(), meta.clone()).await;
    evo.feedback = Some(Arc::new(feedback));
    evo.settings.generations = 1;
    evo.settings.test_tasks.clear();
    evo.run(&mechanics_seed()).await.unwrap();
    let parents = store_of(&evo)
        .events("run", 0)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.event() {
            Ok(hyperagents_store::EvolutionEvent::Parents(p)) if p.generation == 1 => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(parents.fitness["seed"], 0.0);
    let requests = meta.requests.lock().unwrap();
    assert!(
        requests.iter().any(|r| r.messages[0]
            .content
            .contains("typed the answer into the page title")),
        "a meta prompt of the seed's children shows the comment"
    );
}
