//! The seed program's own meta agent, driven by a scripted model: it makes
//! code, prompt and manifest edits that pass validation, and cannot write
//! outside the child's directory.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use hyperagents_domain::JsonlSuite;
use hyperagents_llm::ResponseFormat;
use hyperagents_program::{DiffKind, Program};
use hyperagents_runtime::improve::{ImproveConfig, improve};
use hyperagents_runtime::{RunContext, SandboxChecker, run_episode};
use support::{ScriptedModel, context, pool, seed_dir};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}"#;

/// Produces failed trajectories of the seed program under `dir`.
async fn failures(dir: &Path) -> std::path::PathBuf {
    let traces = dir.join("traces");
    let wrong = ScriptedModel::new(|request| match request.response_format {
        ResponseFormat::JsonSchema { .. } => r#"{"answer": "five"}"#.into(),
        ResponseFormat::Text => "It is five.".into(),
    });
    let ctx = context(wrong, pool(1).await, 40, &traces);
    let suite = JsonlSuite::parse("jsonl:t", "t.jsonl", SUITE).unwrap();
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
    let outcome = run_episode(&ctx, program, &suite, "add", 0).await.unwrap();
    assert!(!outcome.summary.success);
    traces
}

/// A meta model that always proposes `edit`.
fn proposing(edit: serde_json::Value) -> Arc<ScriptedModel> {
    ScriptedModel::new(move |_| edit.to_string())
}

async fn run_meta(
    ctx: &RunContext,
    traces: &Path,
    out: &Path,
) -> hyperagents_runtime::improve::ImproveOutcome {
    improve(ctx, &seed_dir(), traces, out, &ImproveConfig::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_prompt_and_manifest_edits_make_valid_children() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let cases = [
        (
            serde_json::json!({
                "reason": "log the reasoning step",
                "path": "tasks/answerer/policy.py",
                "operation": "replace",
                "old": "final = skill(",
                "new": "log(\"reasoned\")\nfinal = skill("
            }),
            DiffKind::Code,
        ),
        (
            serde_json::json!({
                "reason": "ask for brevity",
                "path": "skills/reason/prompt.md",
                "operation": "write",
                "old": "",
                "new": "Question: {{ question }}\nAnswer with the number only."
            }),
            DiffKind::Prompt,
        ),
        (
            serde_json::json!({
                "reason": "give the answerer more steps",
                "path": "hyperagent.toml",
                "operation": "replace",
                "old": "max_steps = 6",
                "new": "max_steps = 8"
            }),
            DiffKind::Hierarchy,
        ),
    ];
    for (i, (edit, kind)) in cases.into_iter().enumerate() {
        let model = proposing(edit);
        let ctx = context(model.clone(), pool(1).await, 40, dir.path());
        let out = dir.path().join(format!("child{i}"));
        let outcome = run_meta(&ctx, &traces, &out).await;
        assert!(
            outcome.script_error.is_none(),
            "{:?}\n{}",
            outcome.script_error,
            outcome.trace
        );
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(
            outcome
                .diff
                .kinds()
                .into_iter()
                .filter(|k| *k != DiffKind::Memory)
                .collect::<Vec<_>>(),
            vec![kind]
        );
        Program::load(&out, &SandboxChecker).expect("the child validates");
        assert!(
            std::fs::read_to_string(&outcome.diff_path)
                .unwrap()
                .contains("+++")
        );
        // The meta agent saw the failure, not the expected answer.
        let prompt = serde_json::to_string(&model.requests.lock().unwrap()[0].messages).unwrap();
        assert!(prompt.contains("task add"), "{prompt}");
        assert!(prompt.contains("no number in the answer"), "{prompt}");
        // It was told which files the failed episode ran through, and those
        // come first among the contents it was shown.
        let text = model.requests.lock().unwrap()[0].messages[0]
            .content
            .clone();
        assert!(
            text.contains("- skills/reason/prompt.md (used by 1 failed episodes)"),
            "{text}"
        );
        assert!(
            text.contains("- tasks/operator/policy.py (not used by the failed episodes)"),
            "{text}"
        );
        let first_shown = text.find("### ").map(|at| &text[at..]).unwrap_or_default();
        assert!(
            first_shown.starts_with("### hyper/main.py"),
            "{first_shown}"
        );
        let reason_prompt = text.find("### skills/reason/prompt.md").unwrap();
        let manifest = text.find("### hyperagent.toml").unwrap();
        assert!(reason_prompt < manifest, "{text}");
        if let Some(unused) = text.find("### tasks/operator/policy.py") {
            assert!(manifest < unused, "{text}");
        }
        // It left a note for later generations.
        let notes = std::fs::read_to_string(out.join("memory/notes.md")).unwrap();
        assert!(notes.contains("edited"), "{notes}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_outside_the_child_are_refused_and_broken_edits_reverted() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;

    let escape = proposing(serde_json::json!({
        "reason": "x", "path": "../escape.txt", "operation": "write", "old": "", "new": "owned"
    }));
    let ctx = context(escape.clone(), pool(1).await, 40, dir.path());
    let out = dir.path().join("child-escape");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(!dir.path().join("escape.txt").exists());
    assert!(outcome.diff.is_empty(), "{}", outcome.diff.unified());
    assert_eq!(escape.request_count(), 3, "three attempts, each refused");
    assert!(outcome.trace.contains("escape"), "{}", outcome.trace);

    // A syntactically broken script is rejected by check() and reverted.
    let broken = proposing(serde_json::json!({
        "reason": "x", "path": "hyper/main.py", "operation": "replace",
        "old": "# The hyperagent", "new": "def broken(:\n# The hyperagent"
    }));
    let ctx = context(broken, pool(1).await, 40, dir.path());
    let out = dir.path().join("child-broken");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.diff.is_empty(), "{}", outcome.diff.unified());
    assert!(outcome.errors.is_empty());
    assert!(outcome.trace.contains("invalid"), "{}", outcome.trace);
}
