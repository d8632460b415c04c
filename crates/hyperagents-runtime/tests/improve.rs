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
use hyperagents_runtime::improve::{ImproveConfig, QuickEvalHandle, improve};
use hyperagents_runtime::{RunContext, SandboxChecker, run_episode};
use support::{ScriptedModel, context, pool, seed_dir};

use support::meta_fixtures::{AsksForANumber, failed_seed_episode as failures};

/// A meta model that always proposes `edit`.
fn proposing(edit: String) -> Arc<ScriptedModel> {
    ScriptedModel::new(move |_| edit.clone())
}

/// An edit as the meta model writes it: with `old` empty, `new` as the
/// whole file in a fenced block under its path; else a SEARCH/REPLACE block
/// swapping `old` for `new`.
fn edit(reason: &str, path: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        format!("{reason}.\n\n{path}\n```\n{new}\n```\n")
    } else {
        format!("{reason}.\n\n{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n")
    }
}

/// The last line of the meta agent's first request: what it asked for.
fn focus(model: &ScriptedModel) -> String {
    let requests = model.requests.lock().unwrap();
    requests[0].messages[0]
        .content
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// The meta agent's run context, answered by `model`.
async fn meta_context(model: Arc<ScriptedModel>, dir: &Path) -> RunContext {
    context(model, pool(1).await, 40, dir)
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

/// A meta step of the seed program under the engine's `situation`, answered
/// by `model`, its child written to `out`; the script must not fail.
async fn meta_step_in(
    model: Arc<ScriptedModel>,
    dir: &Path,
    traces: &Path,
    situation: serde_json::Value,
    out: &Path,
) -> hyperagents_runtime::improve::ImproveOutcome {
    let ctx = meta_context(model, dir).await;
    let config = ImproveConfig {
        context: situation,
        ..ImproveConfig::default()
    };
    let outcome = improve(&ctx, &seed_dir(), traces, out, &config)
        .await
        .unwrap();
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    outcome
}

/// The prompt of the model's `n`th request.
fn request_text(model: &ScriptedModel, n: usize) -> String {
    model.requests.lock().unwrap()[n].messages[0]
        .content
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_prompt_and_manifest_edits_make_valid_children() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let cases = [
        (
            edit(
                "log the reasoning step",
                "tasks/answerer/policy.py",
                "final = skill(",
                "log(\"reasoned\")\nfinal = skill(",
            ),
            DiffKind::Code,
        ),
        (
            edit(
                "ask for brevity",
                "skills/reason/prompt.md",
                "",
                "Question: {{ question }}\nAnswer with the number only.",
            ),
            DiffKind::Prompt,
        ),
        (
            edit(
                "give the answerer more steps",
                "hyperagent.toml",
                "max_steps = 6",
                "max_steps = 8",
            ),
            DiffKind::Hierarchy,
        ),
    ];
    for (i, (edit, kind)) in cases.into_iter().enumerate() {
        let model = proposing(edit);
        let ctx = meta_context(model.clone(), dir.path()).await;
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
        // The meta agent saw the failure step by step, not the expected answer.
        let prompt = serde_json::to_string(&model.requests.lock().unwrap()[0].messages).unwrap();
        assert!(prompt.contains("Task add (seed 0): failed"), "{prompt}");
        assert!(prompt.contains("no number in the answer"), "{prompt}");
        assert!(prompt.contains("Goal: What is 2+2?"), "{prompt}");
        // It was told which files the failed episode ran through, and those
        // come first among the contents it was shown.
        let text = request_text(&model, 0);
        assert!(
            text.contains("- skills/reason/prompt.md (used by 1 failed episodes)"),
            "{text}"
        );
        assert!(
            text.contains("- tasks/operator/policy.py (not used by the failed episodes)"),
            "{text}"
        );
        // Among the files the failed episode used, the first candidate is
        // aimed at the lowest level of the hierarchy, a prompt before code
        // (in the order the episode used them), the second at the next; each
        // is shown only the file it changes.
        let requests = model.requests.lock().unwrap();
        let shown = |i: usize| -> (String, Vec<String>) {
            let text = &requests[i].messages[0].content;
            let focus = text
                .trim_end()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string();
            let headings = text
                .lines()
                .filter(|l| l.starts_with("### "))
                .map(str::to_string)
                .collect();
            (focus, headings)
        };
        let (first_focus, first_files) = shown(0);
        assert!(
            first_focus.contains("to add to skills/choose_tool/prompt.md,"),
            "{first_focus}"
        );
        assert_eq!(
            first_files,
            vec!["### skills/choose_tool/prompt.md (whole file)".to_string()]
        );
        let (second_focus, second_files) = shown(1);
        assert!(
            second_focus.contains("to add to skills/reason/prompt.md,"),
            "{second_focus}"
        );
        assert_eq!(
            second_files,
            vec!["### skills/reason/prompt.md (whole file)".to_string()]
        );
        drop(requests);
        // It left a note for later generations.
        let notes = std::fs::read_to_string(out.join("memory/notes.md")).unwrap();
        assert!(notes.contains("edited"), "{notes}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_outside_the_child_are_refused_and_broken_edits_reverted() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;

    let escape = proposing(edit("x", "../escape.txt", "", "owned"));
    let ctx = meta_context(escape.clone(), dir.path()).await;
    let out = dir.path().join("child-escape");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(!dir.path().join("escape.txt").exists());
    // No path that leaves the program is read as a file's name (a block
    // without a usable name may go to the one file a candidate is aimed at).
    assert!(escape.request_count() >= 2);
    assert!(
        !outcome.diff.unified().contains("escape"),
        "{}",
        outcome.diff.unified()
    );

    // A syntactically broken script is rejected by check() and reverted.
    let broken = proposing(edit(
        "x",
        "hyper/main.py",
        "# The hyperagent",
        "def broken(:\n# The hyperagent",
    ));
    let ctx = meta_context(broken, dir.path()).await;
    let out = dir.path().join("child-broken");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.diff.is_empty(), "{}", outcome.diff.unified());
    assert!(outcome.errors.is_empty());
    assert!(outcome.trace.contains("invalid"), "{}", outcome.trace);
}

/// What the evolution engine tells a hyper-mode meta agent after `tried`
/// evaluated edits, `accepted` of them improvements, when its parent's own
/// change was `parent_changed`.
fn hyper_situation(tried: u64, accepted: u64, parent_changed: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "generation": 2,
        "generations_left": 2,
        "mode": "hyper",
        "parent": "g1c0",
        "parent_train_success_by_task": {"add": 0.0},
        "best_of_archive": [
            {"node": "g1c0", "parent": "seed", "score": 0.0, "changed": parent_changed},
            {"node": "seed", "parent": null, "score": 0.0, "changed": []},
        ],
        "edit_effects": {
            "prompt": {"children": tried, "mean_score_change": 0.0, "accepted": accepted},
            "memory": {"children": tried, "mean_score_change": 0.0, "accepted": accepted},
        },
    })
}

/// The seed's policy file with `key` set to `value`.
fn policy_with(key: &str, value: serde_json::Value) -> String {
    let text = std::fs::read_to_string(seed_dir().join("meta/policy.json")).unwrap();
    let mut policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    policy[key] = value;
    serde_json::to_string_pretty(&policy).unwrap()
}

/// Every request's last line: what each of the meta agent's calls asked for.
fn foci(model: &ScriptedModel) -> Vec<String> {
    let requests = model.requests.lock().unwrap();
    requests
        .iter()
        .map(|r| {
            let text = r.messages[0].content.trim_end();
            text.lines().last().unwrap_or_default().to_string()
        })
        .collect()
}

/// The seed's selection settings with `key` set to `value`.
fn selection_with(key: &str, value: serde_json::Value) -> String {
    let text = std::fs::read_to_string(seed_dir().join("meta/select.json")).unwrap();
    let mut settings: serde_json::Value = serde_json::from_str(&text).unwrap();
    settings[key] = value;
    serde_json::to_string_pretty(&settings).unwrap()
}

/// Improving the improver reaches parent selection: where the program
/// chooses its parents, a meta turn may rewrite the selection settings that
/// meta/select.py reads (bounded), and nowhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_turn_may_retune_parent_selection_where_the_program_selects() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let settings = selection_with("partial_weight", serde_json::json!(0.5));
    let model = proposing(edit(
        "weigh partial progress",
        "meta/select.json",
        "",
        &settings,
    ));
    // Generation 4: the selection settings are tried first.
    let mut situation = hyper_situation(2, 0, &["prompt", "memory"]);
    situation["generation"] = serde_json::json!(4);
    let out = dir.path().join("selection-child");
    let outcome = meta_step_in(model.clone(), dir.path(), &traces, situation.clone(), &out).await;
    assert!(
        focus(&model).contains("which programs of the archive get children"),
        "{}",
        focus(&model)
    );
    let text = request_text(&model, 0);
    assert!(
        text.contains("partial_weight: weight of partial progress"),
        "{text}"
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta/select.json")).unwrap())
            .unwrap();
    assert_eq!(written["partial_weight"], 0.5);
    assert!(outcome.diff.kinds().contains(&DiffKind::Meta));

    // Out of bounds: refused with the reason, and the file stays as it was.
    let settings = selection_with("partial_weight", serde_json::json!(3));
    let model = proposing(edit(
        "only partial progress",
        "meta/select.json",
        "",
        &settings,
    ));
    let out = dir.path().join("selection-refused");
    meta_step_in(model.clone(), dir.path(), &traces, situation.clone(), &out).await;
    let retry = request_text(&model, 1);
    assert!(
        retry.contains("partial_weight must be between 0.0 and 1.0"),
        "{retry}"
    );
    let kept = std::fs::read_to_string(out.join("meta/select.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&kept).unwrap(),
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(seed_dir().join("meta/select.json")).unwrap()
        )
        .unwrap()
    );

    // Where the engine keeps selection (`select: false`), the settings are
    // never offered.
    let model = proposing(edit(
        "weigh partial progress",
        "meta/select.json",
        "",
        &selection_with("top", 5.into()),
    ));
    let mut situation = situation;
    situation["editable"] = serde_json::json!({"meta": true, "select": false});
    let out = dir.path().join("no-selection");
    meta_step_in(model.clone(), dir.path(), &traces, situation, &out).await;
    let asked = foci(&model);
    assert!(
        asked.iter().all(|f| !f.contains("meta/select.json")),
        "{asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_hyper_mode_a_stalled_run_makes_the_seed_meta_agent_improve_itself() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;

    // Two edits evaluated, none accepted, the parent changed a prompt: a
    // meta turn. In an odd generation it rewrites the meta agent's policy.
    let policy = policy_with("model_candidates", serde_json::json!(3));
    let model = proposing(edit("more candidates", "meta/policy.json", "", &policy));
    let mut situation = hyper_situation(2, 0, &["prompt", "memory"]);
    situation["generation"] = serde_json::json!(3);
    let out = dir.path().join("meta-child");
    let outcome = meta_step_in(model.clone(), dir.path(), &traces, situation, &out).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(
        focus(&model).contains("Improve the improver"),
        "{}",
        focus(&model)
    );
    assert!(
        focus(&model).contains("meta/policy.json"),
        "{}",
        focus(&model)
    );
    let text = request_text(&model, 0);
    assert!(text.contains("### meta/policy.json (whole file)"), "{text}");
    assert!(
        text.contains("model_candidates: edits the model writes"),
        "{text}"
    );
    assert!(outcome.diff.kinds().contains(&DiffKind::Meta));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta/policy.json")).unwrap())
            .unwrap();
    assert_eq!(written["model_candidates"], 3);
    let notes = std::fs::read_to_string(out.join("memory/notes.md")).unwrap();
    assert!(notes.contains("improved the improver"), "{notes}");

    // In an even generation it adds lines to its own prompt.
    let model = proposing(
        "When the failed episodes stop right after typing, tell the agent to submit.".into(),
    );
    let out = dir.path().join("meta-prompt-child");
    meta_step_in(
        model.clone(),
        dir.path(),
        &traces,
        hyper_situation(2, 0, &["prompt", "memory"]),
        &out,
    )
    .await;
    assert!(
        focus(&model).contains("to add to meta/prompt.md"),
        "{}",
        focus(&model)
    );
    let meta_prompt = std::fs::read_to_string(out.join("meta/prompt.md")).unwrap();
    assert!(
        meta_prompt.contains("tell the agent to submit.") && meta_prompt.contains("{{ focus }}"),
        "{meta_prompt}"
    );

    // A policy out of its bounds is refused with the reason, and when no
    // meta edit lands the step edits the task program instead.
    let policy = policy_with("model_candidates", serde_json::json!(9));
    let model = proposing(edit("many candidates", "meta/policy.json", "", &policy));
    let mut situation = hyper_situation(2, 0, &["prompt", "memory"]);
    situation["generation"] = serde_json::json!(3);
    let out = dir.path().join("fallback-child");
    let outcome = meta_step_in(model.clone(), dir.path(), &traces, situation, &out).await;
    let text = request_text(&model, 1);
    assert!(
        text.contains("model_candidates must be between 1 and 4"),
        "{text}"
    );
    assert!(
        outcome
            .trace
            .contains("no edit to the meta agent landed; this step edits the task program"),
        "{}",
        outcome.trace
    );
    let asked = foci(&model);
    assert!(
        asked
            .iter()
            .any(|f| f.contains("skills/choose_tool/prompt.md") && !f.contains("improver")),
        "{asked:?}"
    );

    // The parent just changed meta/, or an edit was accepted: a task turn.
    for situation in [
        hyper_situation(2, 0, &["meta", "memory"]),
        hyper_situation(3, 1, &["prompt"]),
        hyper_situation(1, 0, &["prompt"]),
    ] {
        let model = proposing(edit(
            "ask for brevity",
            "skills/reason/prompt.md",
            "",
            "Question: {{ question }}\nAnswer with the number only.",
        ));
        let out = tempfile::tempdir_in(dir.path()).unwrap();
        meta_step_in(
            model.clone(),
            dir.path(),
            &traces,
            situation,
            &out.path().join("c"),
        )
        .await;
        assert!(
            focus(&model).contains("skills/choose_tool/prompt.md"),
            "{}",
            focus(&model)
        );
        let text = request_text(&model, 0);
        assert!(!text.contains("Improve the improver"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snippet_quoted_under_the_wrong_file_is_applied_where_it_occurs_once() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    // The snippet is from the extract_answer skill, named as the answerer's policy.
    let model = proposing(edit(
        "allow longer answers",
        "tasks/answerer/policy.py",
        "max_tokens=32",
        "max_tokens=48",
    ));
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let skill = std::fs::read_to_string(out.join("skills/extract_answer/skill.py")).unwrap();
    assert!(skill.contains("max_tokens=48"), "{skill}");
    assert_eq!(
        std::fs::read_to_string(out.join("tasks/answerer/policy.py")).unwrap(),
        std::fs::read_to_string(seed_dir().join("tasks/answerer/policy.py")).unwrap()
    );
    assert!(
        outcome
            .trace
            .contains("applied it to skills/extract_answer/skill.py"),
        "{}",
        outcome.trace
    );
    let notes = std::fs::read_to_string(out.join("memory/notes.md")).unwrap();
    assert!(
        notes.contains("edited skills/extract_answer/skill.py"),
        "{notes}"
    );
    // One model call per candidate: the edit was not sent back as a failure.
    assert_eq!(model.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_longer_than_the_meta_models_context_is_retried_with_less_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let brevity = edit(
        "ask for brevity",
        "skills/reason/prompt.md",
        "",
        "Question: {{ question }}\nAnswer with the number only.",
    );
    // How long the first prompt is when nothing limits it.
    let unlimited = proposing(brevity.clone());
    let ctx = meta_context(unlimited.clone(), dir.path()).await;
    run_meta(&ctx, &traces, &dir.path().join("measure")).await;
    let full = unlimited.requests.lock().unwrap()[0].messages[0]
        .content
        .len();

    let limited = ScriptedModel::with_context_chars(full - 1, move |_| brevity.clone());
    let ctx = meta_context(limited.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(outcome.diff.kinds().contains(&DiffKind::Prompt));
    let requests = limited.requests.lock().unwrap();
    // One refused request and a shorter retry that lands; the second
    // candidate (another file shown) is asked with the shorter episodes and
    // retried shorter once more at most.
    assert!((3..=4).contains(&requests.len()), "{}", requests.len());
    assert!(requests[1].messages[0].content.len() < full);
    assert!(requests.last().unwrap().messages[0].content.len() < full);
    assert!(
        outcome.trace.contains("the meta model failed"),
        "{}",
        outcome.trace
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_rewrite_that_drops_a_placeholder_lands_as_added_lines() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    // The first candidate is aimed at the tool-choosing prompt.
    let blind = edit(
        "simplify",
        "skills/choose_tool/prompt.md",
        "",
        "Pick the calculator when the question holds arithmetic, then state the answer as a number.",
    );
    let kept = edit(
        "ask for a number",
        "skills/reason/prompt.md",
        "",
        "Question: {{ question }}\nThink step by step, then state the answer as a number.",
    );
    let model = ScriptedModel::queue(vec![blind, kept]);
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    // The template keeps every placeholder; the rewrite's new sentence is
    // put in by code after the prompt's first paragraph.
    let prompt = std::fs::read_to_string(out.join("skills/choose_tool/prompt.md")).unwrap();
    let seed_prompt =
        std::fs::read_to_string(seed_dir().join("skills/choose_tool/prompt.md")).unwrap();
    assert!(
        ["{{ question }}", "{{ tool.name }}", "{{ notes }}"]
            .iter()
            .all(|p| prompt.contains(p))
            && prompt.contains("then state the answer as a number.")
            && prompt.len() > seed_prompt.len(),
        "{prompt}"
    );
    assert!(
        outcome
            .trace
            .contains("added 1 lines to skills/choose_tool/prompt.md"),
        "{}",
        outcome.trace
    );
    // The candidate asked for lines, with a small reply budget.
    let requests = model.requests.lock().unwrap();
    let focus = requests[0].messages[0]
        .content
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(
        focus.contains("lines of instructions to add to skills/choose_tool/prompt.md"),
        "{focus}"
    );
    assert!(
        requests[0].sampling.max_tokens <= 200,
        "{}",
        requests[0].sampling.max_tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_used_files_are_shown_and_a_missed_snippet_is_answered_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    // First a snippet that is in no file, then one copied from the file.
    let logged = "log(\"answering \" + str(final))\nanswer(final)";
    let model = ScriptedModel::queue(vec![
        edit(
            "log the answer",
            "tasks/answerer/policy.py",
            "final = skill(\"extract\", goal)",
            logged,
        ),
        edit(
            "log the answer",
            "tasks/answerer/policy.py",
            "answer(final)",
            logged,
        ),
    ]);
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(model.request_count(), 3);
    let requests = model.requests.lock().unwrap();
    let first = &requests[0].messages[0].content;
    // The answerer's episode used its policy, never the web operator's files:
    // the listing says so, and the one file shown is one it used.
    assert!(
        first.contains("- tasks/answerer/policy.py (used by 1 failed episodes)"),
        "{first}"
    );
    assert!(
        first.contains("- tasks/operator/policy.py (not used by the failed episodes)"),
        "{first}"
    );
    assert!(
        first.contains("### skills/choose_tool/prompt.md"),
        "{first}"
    );
    assert!(
        !first.contains("### skills/choose_action/prompt.md"),
        "{first}"
    );
    assert!(!first.contains("### tasks/operator/policy.py"), "{first}");
    let second = &requests[1].messages[0].content;
    assert!(
        second.contains("The file tasks/answerer/policy.py reads:\n# The answerer:"),
        "{second}"
    );
    let policy = std::fs::read_to_string(out.join("tasks/answerer/policy.py")).unwrap();
    assert!(policy.contains("log(\"answering \""), "{policy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_only_reflows_a_prompt_is_undone_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let sentence = "Think step by step in a few short sentences, then state the answer.";
    let model = ScriptedModel::queue(vec![
        // The same words, split over two lines.
        edit(
            "be brief",
            "skills/reason/prompt.md",
            sentence,
            "Think step by step in a few short\nsentences, then state the answer.",
        ),
        edit(
            "be brief",
            "skills/reason/prompt.md",
            sentence,
            "Think step by step in two short sentences, then state the answer.",
        ),
    ]);
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(model.request_count(), 3);
    assert!(
        outcome.trace.contains("saying what it said"),
        "{}",
        outcome.trace
    );
    let prompt = std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap();
    assert!(prompt.contains("in two short sentences"), "{prompt}");
}

/// Trajectories of the seed program under `dir`: `add` fails (the model
/// says five), `word` succeeds (five is what it asks for).
async fn failures_and_a_success(dir: &Path) -> std::path::PathBuf {
    let traces = dir.join("traces");
    let five = ScriptedModel::new(|request| match request.response_format {
        ResponseFormat::JsonSchema { .. } => r#"{"answer": "five"}"#.into(),
        ResponseFormat::Text => "It is five.".into(),
    });
    let ctx = context(five, pool(1).await, 40, &traces);
    let suite = JsonlSuite::parse(
        "jsonl:t",
        "t.jsonl",
        concat!(
            r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}"#,
            "\n",
            r#"{"id": "word", "input": "Spell the number after four.", "expected": "five", "scorer": "contains"}"#,
        ),
    )
    .unwrap();
    play(&ctx, &seed_dir(), &suite, &["add", "word"]).await;
    traces
}

/// Episodes of `tasks` (seed 0) of `program` on `domain`, traced by `ctx`.
async fn play(
    ctx: &RunContext,
    program: &Path,
    domain: &dyn hyperagents_domain::Domain,
    tasks: &[&str],
) {
    let program = Arc::new(Program::load(program, &SandboxChecker).unwrap());
    for task in tasks {
        run_episode(ctx, program.clone(), domain, task, 0)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_file_in_a_fenced_block_lands() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let reply = "The reasoning prompt should ask for a number.\n\n**skills/reason/prompt.md**\n```markdown\nQuestion: {{ question }}\nGive the answer as a number.\n```\n";
    let model = proposing(reply.to_string());
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap(),
        "Question: {{ question }}\nGive the answer as a number.\n"
    );
    // Every model call of the step is counted, with its prompt tokens.
    assert_eq!(outcome.meta_calls, model.request_count() as u64);
    assert!(outcome.meta_calls >= 1);
    assert!(outcome.meta_prompt_tokens > 0);
    assert!(outcome.meta_prompt_cached <= outcome.meta_prompt_tokens);
    assert!(outcome.meta_tokens > outcome.meta_prompt_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shortened_path_lands_on_the_one_file_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let reply = "### reason/prompt.md (whole file)\n```\nQuestion: {{ question }}\nGive the answer as a number.\n```\n";
    let model = proposing(reply.to_string());
    let ctx = meta_context(model, dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert_eq!(
        std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap(),
        "Question: {{ question }}\nGive the answer as a number.\n"
    );
    assert!(!out.join("reason/prompt.md").exists());

    // Asked for one file, a reply naming it under misspelt folders lands there.
    let reply = "### reasoning/prompt.md (whole file)\n```\nQuestion: {{ question }}\nAnswer with a number.\n```\n";
    let model = proposing(reply.to_string());
    let ctx = meta_context(model, dir.path()).await;
    let out = dir.path().join("child2");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert_eq!(
        std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap(),
        "Question: {{ question }}\nAnswer with a number.\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worked_examples_are_mined_from_successful_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures_and_a_success(dir.path()).await;
    // A meta model that writes nothing usable: the mined examples are the
    // only candidate.
    let model = proposing("```\n```".into());
    let ctx = meta_context(model, dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let examples = std::fs::read_to_string(out.join("demos/exemplars.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = examples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{examples}");
    assert_eq!(lines[0]["goal"], "Spell the number after four.");
    assert!(
        lines[0]["steps"][0].as_str().unwrap().contains("five"),
        "{examples}"
    );
    // Nothing of the failed task leaks into the examples.
    assert!(!examples.contains("2+2"), "{examples}");
    assert!(
        outcome.trace.contains("kept exemplars"),
        "{}",
        outcome.trace
    );

    // On a tie a model-written candidate is kept: the mined examples are
    // the same for every child of this parent, sampled edits are not.
    let model = proposing("Give the answer as a number, nothing else.".into());
    let ctx = meta_context(model, dir.path()).await;
    let out = dir.path().join("sibling");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.trace.contains("kept edit 1"), "{}", outcome.trace);
    assert!(!out.join("demos/exemplars.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_tried_on_train_tasks_and_the_one_that_fixes_most_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let vague = edit(
        "be brief",
        "skills/reason/prompt.md",
        "",
        "Question: {{ question }}\nAnswer briefly.",
    );
    let numeric = edit(
        "ask for a number",
        "skills/reason/prompt.md",
        "",
        "Question: {{ question }}\nAnswer with a number.",
    );
    let model = ScriptedModel::queue(vec![vague, numeric]);
    let ctx = meta_context(model, dir.path()).await;
    let judge = Arc::new(AsksForANumber::default());
    let config = ImproveConfig {
        context: serde_json::json!({
            "mode": "hyper",
            "quick_eval": {"calls": 4, "tasks_per_call": 4, "seed": 0},
        }),
        quick_eval: Some(QuickEvalHandle(judge.clone())),
        ..ImproveConfig::default()
    };
    let out = dir.path().join("child");
    let outcome = improve(&ctx, &seed_dir(), &traces, &out, &config)
        .await
        .unwrap();
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        judge.calls.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "each candidate tried once"
    );
    let prompt = std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap();
    assert!(prompt.contains("Answer with a number."), "{prompt}");
    assert!(
        outcome.trace.contains("edit 2: fixed 1, broke 0"),
        "{}",
        outcome.trace
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meta_agent_follows_its_policy_file_and_its_defaults_when_the_file_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    // Calls a meta step makes when no reply is usable, for a program whose
    // meta/policy.json reads `policy`.
    let calls = |policy: String, name: &'static str| {
        let dir = dir.path().to_path_buf();
        let traces = traces.clone();
        async move {
            let program = dir.join(name);
            hyperagents_program::copy_program(&seed_dir(), &program).unwrap();
            std::fs::write(program.join("meta/policy.json"), policy).unwrap();
            // A reply with nothing in it: every try is refused.
            let model = proposing("```\n```".into());
            let ctx = meta_context(model.clone(), &dir).await;
            let out = dir.join(format!("{name}-child"));
            let outcome = improve(&ctx, &program, &traces, &out, &ImproveConfig::default())
                .await
                .unwrap();
            assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
            let n = model.requests.lock().unwrap().len();
            (n, outcome.trace)
        }
    };
    let seed_policy = std::fs::read_to_string(seed_dir().join("meta/policy.json")).unwrap();
    let (default_calls, _) = calls(seed_policy, "default").await;
    let one: serde_json::Value =
        serde_json::from_str(&policy_with("model_candidates", 1.into())).unwrap();
    let mut one = one;
    one["attempts"] = 1.into();
    let (one_calls, _) = calls(one.to_string(), "one").await;
    // Two candidates with two tries each by default; one with one try here.
    assert_eq!(default_calls, 4);
    assert_eq!(one_calls, 1);
    let (broken_calls, trace) = calls("{\"model_candidates\": ".into(), "broken").await;
    assert_eq!(broken_calls, default_calls);
    assert!(
        trace.contains("meta/policy.json is not JSON")
            && trace.contains("using the default policy"),
        "{trace}"
    );
    let (unknown_calls, trace) = calls(policy_with("candidates", 1.into()), "unknown").await;
    assert_eq!(unknown_calls, default_calls);
    assert!(trace.contains("unknown setting \"candidates\""), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_written_for_a_script_are_inserted_after_the_line_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    // Asked for code, the model names a line that opens a block (read off
    // the numbered file it was shown); a line past the end first.
    let tries = std::sync::atomic::AtomicU64::new(0);
    let model = ScriptedModel::new(move |request| {
        let text = &request.messages[0].content;
        let asked = text.trim_end().lines().last().unwrap_or_default();
        if !asked.contains("lines of Python to insert into tasks/answerer/policy.py") {
            return "```\n```".into();
        }
        if tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            return "after line 999:\n```python\nlog(\"x\")\n```".into();
        }
        let opener = text
            .lines()
            .find(|l| l.contains("| if \"read_file\" in names:"))
            .unwrap();
        let number = opener.split('|').next().unwrap().trim();
        format!("after line {number}:\n```python\nlog(\"reading the files the goal names\")\n```\n")
    });
    // A policy that aims edits at the task agents first.
    let program = dir.path().join("tasks-first");
    hyperagents_program::copy_program(&seed_dir(), &program).unwrap();
    let mut policy: serde_json::Value = serde_json::from_str(&policy_with(
        "levels",
        serde_json::json!(["tasks/", "skills/"]),
    ))
    .unwrap();
    policy["model_candidates"] = 1.into();
    std::fs::write(program.join("meta/policy.json"), policy.to_string()).unwrap();
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = improve(&ctx, &program, &traces, &out, &ImproveConfig::default())
        .await
        .unwrap();
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let requests = model.requests.lock().unwrap();
    assert!(
        requests.iter().any(|r| r.messages[0]
            .content
            .contains("line 999 is not in the file")),
        "the refusal is fed back: {:?}",
        requests
            .iter()
            .map(|r| r.messages[0]
                .content
                .trim_end()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string())
            .collect::<Vec<_>>()
    );
    drop(requests);
    assert!(
        outcome
            .trace
            .contains("inserted lines into tasks/answerer/policy.py"),
        "{}",
        outcome.trace
    );
    let policy = std::fs::read_to_string(out.join("tasks/answerer/policy.py")).unwrap();
    let seed = std::fs::read_to_string(seed_dir().join("tasks/answerer/policy.py")).unwrap();
    let lines: Vec<&str> = policy.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "if \"read_file\" in names:")
        .unwrap();
    // Inside the block the named line opens, everything else as it was.
    assert_eq!(
        lines[at + 1],
        "    log(\"reading the files the goal names\")"
    );
    assert_eq!(
        policy.replace("    log(\"reading the files the goal names\")\n", ""),
        seed
    );
}

/// The tool prompt after a meta step whose model first answered the request
/// for added lines with `first` (refused, with `feedback` fed back), then
/// with a line of its own.
async fn refused_then_own_line(first: &str, feedback: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let traces = failures(dir.path()).await;
    let model = ScriptedModel::queue(vec![
        first.into(),
        "State the number alone, with no words around it.".into(),
    ]);
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    let requests = model.requests.lock().unwrap();
    assert!(
        requests[1].messages[0].content.contains(feedback),
        "the refusal is fed back"
    );
    drop(requests);
    let prompt = std::fs::read_to_string(out.join("skills/choose_tool/prompt.md")).unwrap();
    assert!(prompt.contains("State the number alone"), "{prompt}");
    prompt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_copies_the_example_is_refused_and_asked_again() {
    // The example itself, bolded as small models write it.
    let prompt = refused_then_own_line(
        "- **Do not repeat an action that left the page unchanged; try another element.**",
        "that line is the example, copied",
    )
    .await;
    assert!(!prompt.contains("try another element"), "{prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_or_code_written_as_lines_of_instructions_is_refused_and_asked_again() {
    // Answered as the task model would (e19: its JSON action became four
    // "lines" of a prompt).
    let prompt = refused_then_own_line(
        "```json\n{\n  \"action\": \"click\",\n  \"ref\": 1,\n  \"text\": \"okay\"\n}\n```",
        "plain lines of instructions in words, nothing else (no JSON, no code)",
    )
    .await;
    for data in ["{", "}", "\"action\": \"click\",", "\"ref\": 1,"] {
        assert!(
            !prompt.lines().any(|l| l.trim() == data),
            "{data} in {prompt}"
        );
    }
}

/// A failed web episode written as the runtime records one: the goal quotes
/// "okay", the page shows an "okay" button at [2], and the agent clicks the
/// text at [1] twice, the page unchanged.
fn missed_the_named_button(traces: &Path) {
    use hyperagents_runtime::trace::{
        EpisodeHeader, EpisodeSummary, SpanKind, SpanRecord, write_trajectory,
    };
    let page = "url: http://127.0.0.1/click-button.html\nelements ([ref] tag \"text\" attributes):\n[1] div \"okay then\"\n[2] button \"okay\"\n[3] button \"next\"\n";
    let span = |id: u64, kind: SpanKind, name: &str, input, output| SpanRecord {
        id,
        parent: None,
        kind,
        name: name.into(),
        input,
        output,
        error: None,
        tokens_in: 0,
        tokens_out: 0,
        tokens_cached: 0,
        cost: 0.0,
        start_ms: id,
        end_ms: Some(id + 1),
    };
    let observe = |id| {
        let seen = Some(serde_json::Value::from(page));
        span(
            id,
            SpanKind::Observe,
            "observe",
            serde_json::Value::Null,
            seen,
        )
    };
    let click = serde_json::json!({"name": "click", "args": {"ref": 1}});
    let clicked = Some(serde_json::json!({"message": "clicked [1]", "done": false}));
    let spans = vec![
        span(
            0,
            SpanKind::Episode,
            "episode",
            serde_json::json!({"goal": "Click on the \"okay\" button."}),
            None,
        ),
        observe(1),
        span(2, SpanKind::Action, "click", click.clone(), clicked.clone()),
        observe(3),
        span(4, SpanKind::Action, "click", click, clicked),
        observe(5),
    ];
    let header = EpisodeHeader {
        domain: "miniwob".into(),
        task: "click-button".into(),
        seed: 0,
        program: "p".into(),
        started_at_unix_ms: 0,
    };
    let summary = EpisodeSummary {
        domain: "miniwob".into(),
        task: "click-button".into(),
        seed: 0,
        program: "p".into(),
        success: false,
        score: 0.0,
        reason: "the episode did not finish".into(),
        failure: None,
        stopped: Some("step budget spent".into()),
        steps: 2,
        calls: 4,
        llm_calls: 2,
        tokens_in: 0,
        tokens_out: 0,
        cost: 0.0,
        duration_ms: 10,
        files_used: vec![
            "hyper/main.py".into(),
            "tasks/operator/policy.py".into(),
            "skills/choose_action/skill.py".into(),
            "skills/choose_action/prompt.md".into(),
        ],
        timing: Default::default(),
    };
    write_trajectory(
        &traces.join("click-button-s0.jsonl.gz"),
        &header,
        &spans,
        &summary,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_element_the_goal_names_but_no_step_acted_on_is_a_pattern_code_is_asked_to_prevent() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    missed_the_named_button(&traces);
    let model = ScriptedModel::new(|request| {
        let asked = request.messages[0]
            .content
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        if asked.contains("lines of Python to insert into") {
            "after line 16:\n```python\nlog(\"choosing\")\n```\n".into()
        } else {
            "Act on the element the goal names.".into()
        }
    });
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = run_meta(&ctx, &traces, &out).await;
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    let requests = model.requests.lock().unwrap();
    let prompt = &requests[0].messages[0].content;
    let pattern = "1 of 1 failed episodes never acted on the element showing the text the goal quotes, though the page showed it";
    // Found from the steps' observations, listed first (ties with the
    // repeated click and the unchanged page go to the more specific).
    let listed = prompt
        .split("How the failed episodes went:\n")
        .nth(1)
        .unwrap();
    assert!(listed.starts_with(&format!("- {pattern}\n")), "{listed}");
    assert!(
        listed.contains("- 1 of 1 failed episodes acted only on the first element the page lists"),
        "every click went to [1], the first element: {listed}"
    );
    assert!(
        prompt.contains("the page showed: [2] button \"okay\")"),
        "the episode shown names the element: {prompt}"
    );
    let code = requests
        .iter()
        .map(|r| {
            r.messages[0]
                .content
                .trim_end()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string()
        })
        .find(|focus| {
            focus.contains("lines of Python to insert into skills/choose_action/skill.py")
        })
        .expect("a code candidate was asked for");
    assert!(
        code.contains(&format!(
            "that prevent this, the most common failure: {pattern}"
        )),
        "{code}"
    );
    // What the script has to work with, read off it by code.
    // A function's own names are not listed: inserted code cannot use them.
    assert!(
        code.contains("The script's names, each set at the line given: available (line 8), names (line 9), RANKING_FILE (line 16), args[\"goal\"] (line 125), args[\"observation\"] (line 125), ranked (line 125), observation (line 126), page_ref (line 127), refs (line 129)"),
        "{code}"
    );
    assert!(
        !code.contains("features (") && code.contains("choice (line"),
        "{code}"
    );
}

/// The seed's episodes of the button pages' tasks, played by a task model
/// that picks the first element listed; returns the traces folder.
async fn button_episodes(dir: &Path, program: &Path, tasks: &[&str]) -> std::path::PathBuf {
    use support::pages::{ButtonPages, picks_the_first_element};
    let traces = dir.join("traces");
    let ctx = context(picks_the_first_element(), pool(1).await, 3, &traces);
    play(&ctx, program, &ButtonPages, tasks).await;
    traces
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_agent_lists_elements_by_its_programs_ranking_and_acts_on_the_page_ref() {
    use support::pages::{ButtonPages, picks_the_first_element};
    let dir = tempfile::tempdir().unwrap();
    let program_dir = dir.path().join("program");
    hyperagents_program::copy_program(&seed_dir(), &program_dir).unwrap();
    // Each episode of task `third` under `ranking`, two actions at most:
    // its summary and every prompt the model read.
    let play = |ranking: &'static str| {
        let program_dir = program_dir.clone();
        let traces = dir.path().join("traces");
        async move {
            std::fs::write(
                program_dir.join("skills/choose_action/ranking.json"),
                ranking,
            )
            .unwrap();
            let model = picks_the_first_element();
            let ctx = context(model.clone(), pool(1).await, 2, &traces);
            let program = Arc::new(Program::load(&program_dir, &SandboxChecker).unwrap());
            let outcome = run_episode(&ctx, program, &ButtonPages, "third", 0)
                .await
                .unwrap();
            let prompts: Vec<String> = model
                .requests
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.messages[0].content.clone())
                .collect();
            (outcome.summary, prompts)
        }
    };
    let page_order = "[1] div \"dolor sit\"\n[2] button \"no\"\n[3] button \"yes\"";
    // The seed's empty ranking keeps the page's order: the model's [1] is
    // the page's first element, not the button the goal names.
    let (summary, prompts) = play("{\"weights\": {}}\n").await;
    assert!(!summary.success);
    assert!(prompts[0].contains(page_order), "{}", prompts[0]);
    assert!(
        prompts[1].contains("- click {'ref': 1} -> clicked [1]"),
        "{}",
        prompts[1]
    );
    assert!(
        summary
            .files_used
            .contains(&"skills/choose_action/ranking.json".to_string())
    );

    // Ranked: the quoted button is listed first as [1], and the model's
    // [1] is mapped back to the page's [3].
    let (summary, prompts) = play("{\"weights\": {\"quoted\": 2.0, \"tag:div\": -1.0}}\n").await;
    assert!(summary.success, "{prompts:?}");
    assert!(
        prompts[0].contains("[1] button \"yes\"\n[2] button \"no\"\n[3] div \"dolor sit\""),
        "{}",
        prompts[0]
    );

    // Ranked the wrong way, the model's [1] is the page's [2]; the next
    // step's history names it by the number this page shows it under.
    // Equal scores keep the page's order (the div before the "yes" button).
    let (summary, prompts) = play("{\"weights\": {\"tag:button\": 1.0, \"quoted\": -1.0}}\n").await;
    assert!(!summary.success && prompts.len() == 2, "{summary:?}");
    assert!(
        prompts[1].contains("[1] button \"no\"\n[2] div \"dolor sit\"\n[3] button \"yes\""),
        "{}",
        prompts[1]
    );
    assert!(
        prompts[1].contains("- click {'ref': 1} -> clicked [1]"),
        "{}",
        prompts[1]
    );

    // A file that is not a ranking ranks nothing and breaks nothing.
    for broken in [
        "[1, 2]\n",
        "{\"weights\": [\"quoted\"]}\n",
        "{\"weights\": {\"quoted\": \"high\"}}\n",
        "not json\n",
    ] {
        let (summary, prompts) = play(broken).await;
        assert!(
            summary.steps == 2 && !summary.success,
            "{broken}: {summary:?}"
        );
        assert!(prompts[0].contains(page_order), "{broken}: {}", prompts[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranking_weights_are_mined_from_successful_steps_and_kept_when_they_fix_a_failure() {
    use support::pages::{PlaysButtonPages, picks_the_first_element};
    let dir = tempfile::tempdir().unwrap();
    // `first` succeeds (the named button is listed first), `third` fails.
    let traces = button_episodes(dir.path(), &seed_dir(), &["first", "third"]).await;
    // A meta model that writes nothing usable: only mined candidates compete.
    let model = proposing("```\n```".into());
    let ctx = meta_context(model, dir.path()).await;
    let quick_ctx = context(
        picks_the_first_element(),
        pool(1).await,
        40,
        &dir.path().join("quick"),
    );
    let config = ImproveConfig {
        context: serde_json::json!({
            "mode": "hyper",
            "quick_eval": {"calls": 4, "tasks_per_call": 4, "seed": 0},
        }),
        quick_eval: Some(QuickEvalHandle(Arc::new(PlaysButtonPages {
            ctx: quick_ctx,
        }))),
        ..ImproveConfig::default()
    };
    let out = dir.path().join("child");
    let outcome = improve(&ctx, &seed_dir(), &traces, &out, &config)
        .await
        .unwrap();
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    let ranking: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("skills/choose_action/ranking.json")).unwrap(),
    )
    .unwrap();
    let weights = &ranking["weights"];
    // The acted-on element of the success was the quoted button; the others
    // on its page were a div and another button.
    assert!(weights["quoted"].as_f64().unwrap() > 0.0, "{ranking}");
    assert!(weights["tag:div"].as_f64().unwrap() < 0.0, "{ranking}");
    assert!(
        outcome.trace.contains("ranking: fixed 1, broke 0"),
        "{}",
        outcome.trace
    );
    assert!(outcome.trace.contains("kept ranking"), "{}", outcome.trace);

    // Nothing to learn from without a success: no ranking candidate.
    let dir = tempfile::tempdir().unwrap();
    let traces = button_episodes(dir.path(), &seed_dir(), &["third"]).await;
    let ctx = meta_context(proposing("```\n```".into()), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = improve(&ctx, &seed_dir(), &traces, &out, &ImproveConfig::default())
        .await
        .unwrap();
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    let result = outcome.result.clone().unwrap();
    let labels: Vec<&str> = result["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["label"].as_str())
        .collect();
    assert!(
        !labels.is_empty() && !labels.contains(&"ranking"),
        "{labels:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("skills/choose_action/ranking.json")).unwrap(),
        std::fs::read_to_string(seed_dir().join("skills/choose_action/ranking.json")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parents_later_children_mine_from_part_of_its_successes_so_they_differ() {
    use support::pages::{ButtonPages, picks_the_first_element};
    let dir = tempfile::tempdir().unwrap();
    // Two successes: task `first` on episode seeds 0 and 1.
    let traces = dir.path().join("traces");
    let ctx = context(picks_the_first_element(), pool(1).await, 3, &traces);
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
    for seed in [0, 1] {
        run_episode(&ctx, program.clone(), &ButtonPages, "first", seed)
            .await
            .unwrap();
    }
    let mined = |attempts_before: u64| {
        let dir = dir.path().to_path_buf();
        let traces = traces.clone();
        async move {
            let out = dir.join(format!("child-{attempts_before}"));
            let situation = serde_json::json!({
                "mode": "hyper",
                "parent_attempts_before": attempts_before,
            });
            meta_step_in(proposing("```\n```".into()), &dir, &traces, situation, &out).await;
            let text =
                std::fs::read_to_string(out.join("skills/choose_action/ranking.json")).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        }
    };
    let first = mined(0).await;
    let second = mined(1).await;
    // The first child mines from both successes, the second from one.
    assert_eq!(first["mined_from_steps"], 2, "{first}");
    assert_eq!(second["mined_from_steps"], 1, "{second}");
    assert_ne!(first, second);
    assert!(
        second["weights"]["quoted"].as_f64().unwrap() > 0.0,
        "{second}"
    );
}

/// The body of `def element_features` in `text`, its comment lines left out.
fn element_features_body(text: &str) -> Vec<&str> {
    let start = text
        .find("def element_features(goal, line):\n")
        .expect("the script defines element_features");
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .filter(|l| !l.trim_start().starts_with('#') && !l.is_empty())
        .collect()
}

#[test]
fn the_ranked_features_and_the_mined_features_are_the_same_code() {
    let skill = std::fs::read_to_string(seed_dir().join("skills/choose_action/skill.py")).unwrap();
    let meta = std::fs::read_to_string(seed_dir().join("meta/improve.py")).unwrap();
    let ranked = element_features_body(&skill);
    assert!(ranked.len() > 10, "{ranked:?}");
    assert_eq!(ranked, element_features_body(&meta));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_written_ranking_that_the_task_agent_could_not_use_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A parent whose meta agent writes four candidates at the skills level,
    // so one is aimed at the ranking file its failed episode read.
    let parent = dir.path().join("parent");
    hyperagents_program::copy_program(&seed_dir(), &parent).unwrap();
    let policy_path = parent.join("meta/policy.json");
    let mut policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&policy_path).unwrap()).unwrap();
    policy["model_candidates"] = serde_json::json!(4);
    policy["levels"] = serde_json::json!(["skills/"]);
    policy["ranking"] = serde_json::json!(false);
    std::fs::write(&policy_path, policy.to_string()).unwrap();
    let traces = button_episodes(dir.path(), &parent, &["third"]).await;
    let model = ScriptedModel::new(|request| {
        let asked = request.messages[0]
            .content
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        if asked.contains("skills/choose_action/ranking.json") {
            edit(
                "rank quoted elements higher",
                "skills/choose_action/ranking.json",
                "",
                "{\"weights\": {\"quoted\": \"high\"}}",
            )
        } else {
            "```\n```".into()
        }
    });
    let ctx = meta_context(model.clone(), dir.path()).await;
    let out = dir.path().join("child");
    let outcome = improve(&ctx, &parent, &traces, &out, &ImproveConfig::default())
        .await
        .unwrap();
    assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
    let requests = model.requests.lock().unwrap();
    let retried = requests
        .iter()
        .map(|r| r.messages[0].content.clone())
        .find(|text| text.contains("the weight of \"quoted\" must be a number"));
    assert!(retried.is_some(), "the refusal is fed back");
    assert_eq!(
        std::fs::read_to_string(out.join("skills/choose_action/ranking.json")).unwrap(),
        std::fs::read_to_string(seed_dir().join("skills/choose_action/ranking.json")).unwrap()
    );
}
