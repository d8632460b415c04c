//! Episodes of the seed program through the real sandbox: delegation,
//! skills, trajectories and budgets, with a scripted model double.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use hyperagents_domain::JsonlSuite;
use hyperagents_llm::ResponseFormat;
use hyperagents_program::Program;
use hyperagents_runtime::trace::{MAX_NOTE_BYTES, SpanKind, read_trajectory};
use hyperagents_runtime::{EpisodeOutcome, SandboxChecker, run_episode};
use support::{ScriptedModel, context, pool, seed_copy, seed_dir};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "capital", "input": "What is the capital of France?", "expected": "Paris", "scorer": "contains"}
"#;

fn suite() -> JsonlSuite {
    JsonlSuite::parse("jsonl:test", "test.jsonl", SUITE).unwrap()
}

/// Reasoning for free-text requests, `{"answer": …}` for JSON ones.
fn answering(answer: &'static str) -> Arc<ScriptedModel> {
    ScriptedModel::new(move |request| match request.response_format {
        ResponseFormat::JsonSchema { .. } => format!(r#"{{"answer": "{answer}"}}"#),
        ResponseFormat::Text => format!("Let me think. The answer is {answer}."),
    })
}

/// `program_dir` run once on `add` (episode seed 0), every model reply `4`,
/// at most `max_steps` actions.
async fn run_add(program_dir: &Path, max_steps: u32, dir: &Path) -> EpisodeOutcome {
    let program = Arc::new(Program::load(program_dir, &SandboxChecker).unwrap());
    let ctx = context(answering("4"), pool(1).await, max_steps, dir);
    run_episode(&ctx, program, &suite(), "add", 0)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_delegates_to_the_answerer_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let model = answering("4");
    let ctx = context(model.clone(), pool(2).await, 40, dir.path());
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
    let outcome = run_episode(&ctx, program, &suite(), "add", 3)
        .await
        .unwrap();
    let s = &outcome.summary;
    assert!(s.success, "{s:?}");
    // The suite offers a calculator: choose_tool (which chose none), reason,
    // extract_answer.
    assert_eq!(s.llm_calls, 3, "choose_tool + reason + extract_answer");
    assert_eq!(model.request_count(), 3);
    assert!(s.failure.is_none(), "{:?}", s.failure);
    // Scripts that ran and prompts that were rendered, first use first; the
    // hyperagent's prompt is never rendered on this path, nor is the
    // operator touched.
    assert_eq!(
        s.files_used,
        [
            "hyper/main.py",
            "tasks/answerer/policy.py",
            "skills/choose_tool/skill.py",
            "skills/choose_tool/prompt.md",
            "skills/reason/prompt.md",
            "skills/extract_answer/skill.py",
            "skills/extract_answer/prompt.md",
        ],
    );

    let trajectory = read_trajectory(&outcome.trajectory).unwrap();
    assert_eq!(
        trajectory.summary.as_ref().unwrap().files_used,
        s.files_used
    );
    let kinds: Vec<(SpanKind, &str)> = trajectory
        .spans
        .iter()
        .map(|s| (s.kind, s.name.as_str()))
        .collect();
    for expected in [
        (SpanKind::Hyper, "hyper"),
        (SpanKind::Task, "answerer"),
        (SpanKind::Skill, "reason"),
        (SpanKind::Skill, "extract_answer"),
        (SpanKind::Llm, "llm"),
        (SpanKind::Action, "answer"),
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected:?} missing from {kinds:?}"
        );
    }
    // The skill's LLM call hangs under the skill, under the task agent.
    let skill = trajectory
        .spans
        .iter()
        .find(|s| s.name == "extract_answer")
        .unwrap();
    let task = trajectory
        .spans
        .iter()
        .find(|s| s.name == "answerer")
        .unwrap();
    assert_eq!(skill.parent, Some(task.id));
    assert!(
        trajectory
            .spans
            .iter()
            .any(|s| s.kind == SpanKind::Llm && s.parent == Some(skill.id) && s.tokens_in > 0)
    );
    // The expected answer reached no prompt.
    for request in model.requests.lock().unwrap().iter() {
        let text = serde_json::to_string(&request.messages).unwrap();
        assert!(!text.contains("\"expected\""), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_answer_fails_with_the_scorers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(answering("Lyon"), pool(1).await, 40, dir.path());
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
    let outcome = run_episode(&ctx, program, &suite(), "capital", 0)
        .await
        .unwrap();
    assert!(!outcome.summary.success);
    assert!(
        outcome.summary.reason.contains("not found"),
        "{}",
        outcome.summary.reason
    );
    assert!(!outcome.summary.reason.contains("Paris"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_seeds_are_deterministic_and_distinct_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
    let mut seeds = Vec::new();
    for _ in 0..2 {
        let model = answering("4");
        let ctx = context(model.clone(), pool(1).await, 40, dir.path());
        run_episode(&ctx, program.clone(), &suite(), "add", 5)
            .await
            .unwrap();
        seeds.push(
            model
                .requests
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.sampling.seed)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(seeds[0], seeds[1], "the same episode makes the same calls");
    assert_ne!(
        seeds[0][0], seeds[0][1],
        "distinct calls get distinct seeds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_step_budget_stops_the_episode_and_a_greedy_program_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    // The program asks for far more steps than the run allows (caps: 3).
    let manifest = std::fs::read_to_string(program_dir.join("hyperagent.toml")).unwrap();
    std::fs::write(
        program_dir.join("hyperagent.toml"),
        manifest.replace("max_steps = 12", "max_steps = 100000"),
    )
    .unwrap();
    // The answerer is made to use its tool over and over: each use is an action.
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "while True:\n    tool(\"calculator\", {\"expression\": \"2+2\"})\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 3, dir.path()).await;
    let s = &outcome.summary;
    assert!(!s.success);
    assert_eq!(s.steps, 3, "{s:?}");
    let stopped = s.stopped.as_deref().unwrap_or_default();
    assert!(
        stopped.contains("step budget spent (3 of 3 actions)"),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_are_calls_not_steps_and_spend_their_own_budget() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    let manifest = std::fs::read_to_string(program_dir.join("hyperagent.toml")).unwrap();
    std::fs::write(
        program_dir.join("hyperagent.toml"),
        manifest.replace("max_calls = 60", "max_calls = 9"),
    )
    .unwrap();
    // The answerer loops on its reasoning skill (a skill call and an llm
    // call each time) and never acts.
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "while True:\n    skill(\"reason\", {\"question\": goal})\n",
    )
    .unwrap();
    let program = Arc::new(Program::load(&program_dir, &SandboxChecker).unwrap());
    // The run allows 3 actions; skills take none of them.
    let ctx = context(answering("4"), pool(1).await, 3, dir.path());
    let outcome = run_episode(&ctx, program, &suite(), "add", 0)
        .await
        .unwrap();
    let s = &outcome.summary;
    assert_eq!(s.steps, 0, "{s:?}");
    // delegate (1), then (skill, llm) pairs until the ninth call is refused.
    assert_eq!(s.calls, 9, "{s:?}");
    assert_eq!(s.llm_calls, 4, "{s:?}");
    let stopped = s.stopped.as_deref().unwrap_or_default();
    assert!(stopped.contains("call budget spent (9 of 9"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_agents_own_cap_counts_the_actions_its_skills_take() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    let manifest = std::fs::read_to_string(program_dir.join("hyperagent.toml")).unwrap();
    // The answerer may take 2 actions of the run's 10; it answers through
    // a skill, so the actions happen one level down.
    let manifest = manifest.replace(
        "skills = [\"reason\", \"extract_answer\", \"choose_tool\"]\nmax_steps = 6",
        "skills = [\"reason\", \"extract_answer\", \"choose_tool\"]\nmax_steps = 2",
    );
    assert!(
        manifest.contains("max_steps = 2"),
        "the seed's answerer caps its steps"
    );
    std::fs::write(program_dir.join("hyperagent.toml"), manifest).unwrap();
    std::fs::write(
        program_dir.join("skills/extract_answer/skill.py"),
        "tool(\"calculator\", {\"expression\": \"2+2\"})\n",
    )
    .unwrap();
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "left = []\nwhile True:\n    left.append(budget()[\"steps_left\"])\n    log(str(left))\n    skill(\"extract_answer\", {\"question\": goal, \"reasoning\": \"\"})\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 10, dir.path()).await;
    let s = &outcome.summary;
    assert_eq!(s.steps, 2, "{s:?}");
    let failure = s.failure.as_ref().expect("the third action is refused");
    assert!(
        failure
            .error
            .contains("task agent `answerer` used all 2 of its steps"),
        "{failure:?}"
    );
    // budget() shows the agent's own cap, the tighter one.
    let trajectory = read_trajectory(&outcome.trajectory).unwrap();
    let logs: Vec<String> = trajectory
        .spans
        .iter()
        .filter(|span| span.name == "log")
        .map(|span| span.input.to_string())
        .collect();
    assert!(logs.iter().any(|l| l.contains("[2, 1, 0]")), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_skill_is_the_recorded_failure_point() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    std::fs::write(
        program_dir.join("skills/extract_answer/skill.py"),
        "x = args[\"missing\"]\nx\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 40, dir.path()).await;
    let failure = outcome.summary.failure.clone().expect("a failure point");
    assert!(
        failure.path.ends_with("answerer/extract_answer"),
        "{failure:?}"
    );
    assert!(failure.error.contains("KeyError"), "{failure:?}");
    assert!(
        failure.error.contains("skills/extract_answer/skill.py"),
        "{failure:?}"
    );
}

/// Answers with the number N found as "Question N" in the prompt.
fn echo_question_number() -> Arc<ScriptedModel> {
    ScriptedModel::new(|request| {
        let text = serde_json::to_string(&request.messages).unwrap();
        let n: String = text
            .split("Question ")
            .nth(1)
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        match request.response_format {
            ResponseFormat::JsonSchema { .. } => format!(r#"{{"answer": "{n}"}}"#),
            ResponseFormat::Text => format!("The answer is {n}."),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_episodes_share_two_workers_and_keep_to_their_own_task() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"id": "q{i}", "input": "Question {i}: what number is this?", "expected": {i}, "scorer": "numeric"}}"#))
        .collect();
    let suite = Arc::new(JsonlSuite::parse("jsonl:many", "many.jsonl", &lines.join("\n")).unwrap());
    let pool = pool(2).await;
    let ctx = context(echo_question_number(), pool.clone(), 40, dir.path());
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (ctx, program, suite) = (ctx.clone(), program.clone(), suite.clone());
        tasks.push(tokio::spawn(async move {
            run_episode(&ctx, program, suite.as_ref(), &format!("q{i}"), 0).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = task.await.unwrap().unwrap();
        assert!(outcome.summary.success, "q{i}: {:?}", outcome.summary);
        let trajectory = read_trajectory(&outcome.trajectory).unwrap();
        assert_eq!(trajectory.header.task, format!("q{i}"));
        let text = serde_json::to_string(
            &trajectory
                .spans
                .iter()
                .map(|s| (&s.input, &s.output))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(text.contains(&format!("Question {i}:")), "q{i}");
        let others = text.matches("Question ").count();
        let own = text.matches(&format!("Question {i}:")).count();
        assert_eq!(others, own, "q{i}'s trajectory mentions another task");
    }
    let stats = pool.stats();
    assert!(stats.max_workers_alive <= 2, "{stats:?}");
    assert!(stats.runs_started >= 300, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_answer_through_the_environment_and_are_traced() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "names = [t[\"name\"] for t in tools()]\nresult = tool(\"calculator\", {\"expression\": \"2+2\"})\nanswer(result)\nresult\n",
    )
    .unwrap();
    let program = Arc::new(Program::load(&program_dir, &SandboxChecker).unwrap());
    let ctx = context(answering("unused"), pool(1).await, 40, dir.path());
    let outcome = run_episode(&ctx, program, &suite(), "add", 0)
        .await
        .unwrap();
    assert!(outcome.summary.success, "{:?}", outcome.summary);
    let trajectory = read_trajectory(&outcome.trajectory).unwrap();
    let tool = trajectory
        .spans
        .iter()
        .find(|s| s.kind == SpanKind::Tool)
        .expect("a tool span");
    assert_eq!(tool.name, "calculator");
    assert_eq!(tool.output, Some(serde_json::json!("4")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_read_their_own_files_and_recall_similar_examples() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    std::fs::create_dir_all(program_dir.join("demos")).unwrap();
    std::fs::write(
        program_dir.join("demos/exemplars.jsonl"),
        "{\"goal\": \"What is 3+5?\", \"steps\": [\"answer 8\"]}\n{\"goal\": \"Name a river\", \"steps\": [\"answer Nile\"]}\n",
    )
    .unwrap();
    std::fs::write(
        program_dir.join("tasks/answerer/rules.md"),
        "Answer with a number.\n",
    )
    .unwrap();
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        concat!(
            "rules = read_file(\"tasks/answerer/rules.md\")\n",
            "missing = read_file(\"tasks/answerer/none.md\")\n",
            "examples = recall(goal, 1)\n",
            "log(rules + \"|\" + missing + \"|\" + examples[0][\"steps\"][0])\n",
            "try:\n",
            "    read_file(\"meta/prompt.md\")\n",
            "    log(\"meta readable\")\n",
            "except Exception as error:\n",
            "    log(\"refused: \" + str(error))\n",
            "answer(\"4\")\n",
        ),
    )
    .unwrap();
    let outcome = run_add(&program_dir, 10, dir.path()).await;
    let s = &outcome.summary;
    assert!(s.success, "{s:?}");
    let trajectory = read_trajectory(&outcome.trajectory).unwrap();
    let logs: Vec<String> = trajectory
        .spans
        .iter()
        .filter(|span| span.name == "log")
        .map(|span| span.input.as_str().unwrap_or_default().to_string())
        .collect();
    // The hyperagent logs its delegation first.
    assert_eq!(logs[1], "Answer with a number.\n||answer 8", "{logs:?}");
    assert!(
        logs[2].starts_with("refused:") && logs[2].contains("outside meta/ and memory/"),
        "{logs:?}"
    );
    // Files read count as used, so meta agents see them behind a failure.
    assert!(
        s.files_used
            .contains(&"tasks/answerer/rules.md".to_string()),
        "{s:?}"
    );
    assert!(
        s.files_used.contains(&"demos/exemplars.jsonl".to_string()),
        "{s:?}"
    );
    assert!(
        !s.files_used.contains(&"tasks/answerer/none.md".to_string()),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_hits_the_note_limit_and_fails_the_episode_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    // 64 KiB per line, forever: the limit, not the time limit, ends it.
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "line = \"x\" * 65536\nwhile True:\n    log(line)\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 3, dir.path()).await;
    let s = &outcome.summary;
    assert!(!s.success);
    let said = format!("{s:?}");
    assert!(
        said.contains("log() refused") && said.contains(&MAX_NOTE_BYTES.to_string()),
        "{said}"
    );
    // What was written stays within the limit.
    let logged: usize = read_trajectory(&outcome.trajectory)
        .unwrap()
        .spans
        .iter()
        .filter(|span| span.name == "log")
        .map(|span| span.input.as_str().map_or(0, str::len))
        .sum();
    assert!(logged <= MAX_NOTE_BYTES, "{logged}");
    assert!(logged >= MAX_NOTE_BYTES - 65536, "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_prompt_template_runs_out_of_render_fuel_and_fails_the_episode() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    // Checked at load (the template parses); rendering it never ends.
    std::fs::write(
        program_dir.join("skills/reason/prompt.md"),
        "Question: {{ question }}\n{% for i in range(10000) %}{% for j in range(10000) %}.{% endfor %}{% endfor %}\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 3, dir.path()).await;
    let s = &outcome.summary;
    assert!(!s.success);
    let said = format!("{s:?}");
    assert!(said.contains("fuel"), "{said}");
    assert!(said.contains("skills/reason/prompt.md"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_answerer_calls_a_tool_the_model_chooses_and_reasons_over_its_result() {
    let dir = tempfile::tempdir().unwrap();
    // The model picks the calculator when asked; otherwise it answers 4.
    let model = ScriptedModel::new(|request| {
        let text = serde_json::to_string(&request.messages).unwrap();
        match request.response_format {
            ResponseFormat::JsonSchema { .. } if text.contains("may call one tool first") => {
                r#"{"tool": "calculator", "input": "2+2"}"#.to_string()
            }
            ResponseFormat::JsonSchema { .. } => r#"{"answer": "4"}"#.to_string(),
            ResponseFormat::Text => "The answer is 4.".to_string(),
        }
    });
    let ctx = context(model.clone(), pool(1).await, 40, dir.path());
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
    let outcome = run_episode(&ctx, program, &suite(), "add", 0)
        .await
        .unwrap();
    assert!(outcome.summary.success, "{:?}", outcome.summary);
    let trajectory = read_trajectory(&outcome.trajectory).unwrap();
    let calculator = trajectory
        .spans
        .iter()
        .find(|s| s.kind == SpanKind::Tool && s.name == "calculator")
        .expect("the calculator was called");
    assert_eq!(
        calculator.input["expression"], "2+2",
        "{:?}",
        calculator.input
    );
    // Its result reached the reasoning prompt.
    let requests = model.requests.lock().unwrap();
    assert!(
        requests.iter().any(|r| {
            let text = serde_json::to_string(&r.messages).unwrap();
            text.contains("calculator(2+2) returned") && text.contains("Think step by step")
        }),
        "no reasoning prompt carried the tool's result"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_host_calls_hit_the_host_call_limit() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    // budget() costs no action and no call: only the sandbox's host-call limit ends this.
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "for i in range(1000000):\n    budget()\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 3, dir.path()).await;
    let said = format!("{:?}", outcome.summary);
    assert!(!outcome.summary.success);
    assert!(said.contains("host call budget exhausted"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_host_call_argument_is_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    // 9 MiB of answer: raised in the script as a ValueError naming the limit, caught here
    // to show the script goes on, then answered small.
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "try:\n    answer(\"x\" * (9 << 20))\nexcept ValueError as e:\n    log(str(e))\n    answer(\"4\")\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 3, dir.path()).await;
    assert!(outcome.summary.success, "{:?}", outcome.summary);
    let trajectory = read_trajectory(&outcome.trajectory).unwrap();
    let logged: Vec<&str> = trajectory
        .spans
        .iter()
        .filter(|span| span.name == "log")
        .filter_map(|span| span.input.as_str())
        .collect();
    let limit = hyperagents_sandbox::MAX_CALL_ARGUMENT_BYTES.to_string();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("answer() was given about") && l.contains(&limit)),
        "{logged:?}"
    );
    // Nothing of the refused argument reached the trajectory.
    let bytes = std::fs::metadata(&outcome.trajectory).unwrap().len();
    assert!(bytes < 1 << 20, "{bytes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_delegation_chain_stops_at_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    // A chain of ten task agents, each delegating to the next: the eighth level refuses.
    let mut manifest = std::fs::read_to_string(program_dir.join("hyperagent.toml")).unwrap();
    manifest = manifest.replace(
        "agents = [\"operator\", \"answerer\"]",
        "agents = [\"operator\", \"answerer\", \"link0\"]",
    );
    for i in 0..10 {
        manifest.push_str(&format!(
            "\n[agents.link{i}]\ndescription = \"Passes the goal on.\"\nprompt = \"tasks/operator/prompt.md\"\nscript = \"tasks/link{i}.py\"\nmodel = \"task\"\nagents = [\"link{}\"]\n",
            i + 1
        ));
        std::fs::write(
            program_dir.join(format!("tasks/link{i}.py")),
            format!("delegate(\"link{}\", goal)\n", i + 1),
        )
        .unwrap();
    }
    manifest.push_str("\n[agents.link10]\ndescription = \"The end.\"\nprompt = \"tasks/operator/prompt.md\"\nscript = \"tasks/link10.py\"\nmodel = \"task\"\n");
    std::fs::write(program_dir.join("tasks/link10.py"), "answer(\"4\")\n").unwrap();
    std::fs::write(program_dir.join("hyperagent.toml"), manifest).unwrap();
    std::fs::write(
        program_dir.join("hyper/main.py"),
        "delegate(\"link0\", goal)\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 3, dir.path()).await;
    let said = format!("{:?}", outcome.summary);
    assert!(!outcome.summary.success, "{said}");
    assert!(said.contains("delegation deeper than 8 levels"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_render_past_the_output_limit_fails_the_episode_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let program_dir = seed_copy(dir.path());
    // A short loop over a 1 MiB variable: within the fuel, far past the output limit.
    std::fs::write(
        program_dir.join("tasks/answerer/prompt.md"),
        "{% for i in range(1000) %}{{ goal }}{% endfor %}\n",
    )
    .unwrap();
    std::fs::write(
        program_dir.join("tasks/answerer/policy.py"),
        "text = prompt(goal=\"x\" * (1 << 20))\nanswer(text[:10])\n",
    )
    .unwrap();
    let outcome = run_add(&program_dir, 3, dir.path()).await;
    let said = format!("{:?}", outcome.summary);
    assert!(!outcome.summary.success, "{said}");
    assert!(
        said.contains(&hyperagents_program::MAX_RENDER_BYTES.to_string())
            && said.contains("tasks/answerer/prompt.md"),
        "{said}"
    );
}
