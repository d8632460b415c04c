//! `evaluate` end to end on real parts — the seed program in real sandbox
//! workers, a JSONL suite, a real SQLite store — with a scripted model
//! standing in for the LLM (loop mechanics only).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hyperagents_domain::{Domain, DomainError, Environment, JsonlSuite};
use hyperagents_eval::{EvalError, EvalPlan, EvalTarget, SuiteIdentity, evaluate, table};
use hyperagents_program::Program;
use hyperagents_runtime::SandboxChecker;
use hyperagents_store::{EvalStatus, NewEvalRun, ResultsStore};
use hyperagents_testkit::{ScriptedModel, context, pool, seed_dir};

const SUITE: &str = r#"{"id": "four", "input": "What is 2+2?", "expected": "4"}
{"id": "six", "input": "What is 3+3?", "expected": "6"}
"#;

fn suite() -> Arc<dyn Domain> {
    Arc::new(JsonlSuite::parse("jsonl:test", "test.jsonl", SUITE).expect("suite parses"))
}

fn target(program: &Arc<Program>, domain: Arc<dyn Domain>) -> EvalTarget {
    EvalTarget {
        program: program.clone(),
        domain,
        suite: identity(),
    }
}

fn identity() -> SuiteIdentity {
    SuiteIdentity {
        name: "jsonl:test".into(),
        version: "v1".into(),
    }
}

fn new_run(store: &ResultsStore) -> hyperagents_store::EvalRunId {
    store
        .create_run(&NewEvalRun {
            program_hash: "seed".into(),
            suite: "jsonl:test".into(),
            split: "train".into(),
            config: serde_json::json!({}),
        })
        .expect("run created")
}

#[tokio::test]
async fn runs_every_task_and_seed_stores_results_and_reuses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The model always says 4: right for `four`, wrong for `six`.
    let model = ScriptedModel::new(|_| "4".to_string());
    let ctx = context(model.clone(), pool(2).await, 30, &dir.path().join("traces"));
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).expect("seed loads"));
    let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("store opens");
    let plan = EvalPlan {
        tasks: vec!["four".into(), "six".into()],
        seeds: vec![0, 1],
        concurrency: 2,
        reuse_cached: true,
    };
    let seen = Mutex::new(0usize);
    let run = new_run(&store);
    let report = evaluate(
        &ctx,
        &target(&program, suite()),
        &plan,
        &store,
        run,
        &|_| *seen.lock().expect("lock") += 1,
    )
    .await
    .expect("evaluation runs");
    assert_eq!(*seen.lock().expect("lock"), 4);
    assert_eq!(report.records.len(), 4);
    assert!(report.records.iter().all(|r| !r.cached));
    let by_task: Vec<(&str, u64, u64)> = report
        .tasks
        .iter()
        .map(|t| (t.task.as_str(), t.episodes, t.successes))
        .collect();
    assert_eq!(by_task, vec![("four", 2, 2), ("six", 2, 0)]);
    assert_eq!(report.summary.successes, 2);
    assert!(
        report
            .records
            .iter()
            .all(|r| r.trajectory.as_ref().is_some_and(|p| p.is_file()))
    );
    let calls = model.request_count();
    assert!(calls > 0);

    // Same program, tasks, seeds and models: everything comes from the store.
    let again = new_run(&store);
    let reused = evaluate(
        &ctx,
        &target(&program, suite()),
        &plan,
        &store,
        again,
        &|_| {},
    )
    .await
    .expect("second evaluation");
    assert!(reused.records.iter().all(|r| r.cached));
    assert_eq!(reused.summary.reused, 4);
    assert_eq!(reused.summary.successes, 2);
    assert_eq!(
        model.request_count(),
        calls,
        "no model call on a full cache hit"
    );
    let text = table::task_table(&reused.tasks);
    assert!(text.contains("four") && text.contains("100.0%"), "{text}");
}

#[tokio::test]
async fn unknown_tasks_and_empty_seed_lists_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(
        ScriptedModel::new(|_| "4".to_string()),
        pool(1).await,
        10,
        dir.path(),
    );
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).expect("seed loads"));
    let store = ResultsStore::open(dir.path().join("r.sqlite")).expect("store");
    let run = new_run(&store);
    let mut plan = EvalPlan {
        tasks: vec!["nope".into()],
        seeds: vec![0],
        concurrency: 1,
        reuse_cached: true,
    };
    let err = evaluate(
        &ctx,
        &target(&program, suite()),
        &plan,
        &store,
        run,
        &|_| {},
    )
    .await
    .expect_err("unknown task");
    assert!(matches!(err, EvalError::UnknownTask { .. }), "{err}");
    plan.tasks = vec!["four".into()];
    plan.seeds.clear();
    let err = evaluate(
        &ctx,
        &target(&program, suite()),
        &plan,
        &store,
        run,
        &|_| {},
    )
    .await
    .expect_err("no seeds");
    assert!(matches!(err, EvalError::NoSeeds), "{err}");
}

/// A domain whose tasks need something not built: reset says unsupported.
struct NeedsASite;

#[async_trait]
impl Domain for NeedsASite {
    fn name(&self) -> &str {
        "needs-a-site"
    }
    fn task_ids(&self) -> Vec<String> {
        vec!["t".into()]
    }
    async fn reset(&self, _task: &str, _seed: u64) -> Result<Box<dyn Environment>, DomainError> {
        Err(DomainError::Unsupported(
            "site `__GITLAB__` is not configured".into(),
        ))
    }
}

#[tokio::test]
async fn unsupported_tasks_are_reported_never_scored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = context(
        ScriptedModel::new(|_| "x".to_string()),
        pool(1).await,
        10,
        dir.path(),
    );
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).expect("seed loads"));
    let store = ResultsStore::open(dir.path().join("r.sqlite")).expect("store");
    let run = new_run(&store);
    let plan = EvalPlan {
        tasks: vec!["t".into()],
        seeds: vec![0, 1],
        concurrency: 2,
        reuse_cached: true,
    };
    let report = evaluate(
        &ctx,
        &target(&program, Arc::new(NeedsASite)),
        &plan,
        &store,
        run,
        &|_| {},
    )
    .await
    .expect("evaluation runs");
    assert!(
        report
            .records
            .iter()
            .all(|r| r.status == EvalStatus::Unsupported)
    );
    assert!(report.records[0].reason.contains("__GITLAB__"));
    assert_eq!(
        report.summary.episodes, 0,
        "unsupported episodes are not scored"
    );
    assert_eq!(report.summary.unsupported, 2);
    assert_eq!(report.summary.success_rate(), None);
}

/// A runner standing for another machine: `four` could not run there
/// (unsupported), `six` was cut short; it records the keys it was given.
struct Elsewhere {
    keys: Mutex<Vec<String>>,
}

#[async_trait]
impl hyperagents_eval::EpisodeRunner for Elsewhere {
    async fn run(
        &self,
        _ctx: &hyperagents_runtime::RunContext,
        _program: Arc<Program>,
        _domain: &dyn Domain,
        task: &str,
        _seed: u64,
        key: &hyperagents_store::EvalKey,
    ) -> hyperagents_eval::EpisodeEnd {
        self.keys
            .lock()
            .expect("lock")
            .push(key.hash().as_str().to_string());
        match task {
            "four" => hyperagents_eval::EpisodeEnd::Failed {
                status: EvalStatus::Unsupported,
                reason: "needs a site this worker does not have".into(),
            },
            _ => hyperagents_eval::EpisodeEnd::Interrupted(hyperagents_eval::Interruption::Stop(
                "the worker went away".into(),
            )),
        }
    }
}

#[tokio::test]
async fn episodes_run_elsewhere_are_recorded_by_key_and_cut_ones_never() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = ScriptedModel::new(|_| "4".to_string());
    let ctx = context(model, pool(1).await, 30, &dir.path().join("traces"));
    let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).expect("seed loads"));
    let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("store opens");
    let run = new_run(&store);
    let runner = Elsewhere {
        keys: Mutex::new(Vec::new()),
    };
    let plan = EvalPlan {
        tasks: vec!["four".into(), "six".into()],
        seeds: vec![0],
        concurrency: 1,
        reuse_cached: true,
    };
    let outcome = hyperagents_eval::evaluate_with(
        &ctx,
        &target(&program, suite()),
        &plan,
        &store,
        run,
        &|_| {},
        &runner,
    )
    .await;
    // `six` was cut short: the evaluation stops, and only `four` is stored.
    assert!(
        matches!(outcome, Err(EvalError::Interrupted(_))),
        "{outcome:?}"
    );
    let stored = store.run_evaluations(run).expect("read back");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].key.task, "four");
    assert_eq!(stored[0].result.status, EvalStatus::Unsupported);
    // Under the key the runner was given.
    assert_eq!(
        runner.keys.lock().expect("lock")[0],
        stored[0].key_hash.as_str()
    );
}

/// External tools that only name a grant: what the key sees of them.
struct GrantOnly(&'static str);

#[async_trait]
impl hyperagents_domain::ExternalTools for GrantOnly {
    async fn list(&self, _requested: &[String]) -> Vec<hyperagents_domain::ActionSpec> {
        Vec::new()
    }
    async fn call(
        &self,
        _requested: &[String],
        name: &str,
        _args: &serde_json::Value,
    ) -> Result<String, hyperagents_domain::ToolCallError> {
        Err(hyperagents_domain::ToolCallError::Unavailable {
            server: name.into(),
            reason: "not a real server".into(),
        })
    }
    fn identity(&self) -> serde_json::Value {
        serde_json::json!({"srv": {"grant": [self.0]}})
    }
}

#[tokio::test]
async fn a_runs_grant_enters_the_keys_of_programs_that_request_tools_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = ScriptedModel::new(|_| "4".to_string());
    let plain_ctx = context(model.clone(), pool(2).await, 30, &dir.path().join("traces"));
    let with_grant = |grant: &'static str| {
        let mut ctx = plain_ctx.clone();
        ctx.external_tools = Some(Arc::new(GrantOnly(grant)));
        ctx
    };
    let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("store opens");
    let plan = EvalPlan {
        tasks: vec!["four".into()],
        seeds: vec![0],
        concurrency: 1,
        reuse_cached: true,
    };
    let cached = |ctx: hyperagents_runtime::RunContext, program: Arc<Program>| {
        let store = store.clone();
        let plan = plan.clone();
        async move {
            let run = new_run(&store);
            let report = evaluate(
                &ctx,
                &target(&program, suite()),
                &plan,
                &store,
                run,
                &|_| {},
            )
            .await
            .expect("evaluation runs");
            report.records[0].cached
        }
    };

    // A program that asks for no tool: a grant changes nothing it does.
    let plain = Arc::new(Program::load(seed_dir(), &SandboxChecker).expect("seed loads"));
    assert!(!cached(plain_ctx.clone(), plain.clone()).await);
    assert!(
        cached(with_grant("a"), plain).await,
        "same key with a grant"
    );

    // A program that asks for tools: each grant is its own key.
    let asking_dir = dir.path().join("asking");
    hyperagents_program::copy_program(&seed_dir(), &asking_dir).expect("copied");
    let manifest = std::fs::read_to_string(asking_dir.join("hyperagent.toml")).expect("read");
    std::fs::write(
        asking_dir.join("hyperagent.toml"),
        format!("{manifest}\n[tools]\nmcp = [\"srv/*\"]\n"),
    )
    .expect("written");
    let asking = Arc::new(Program::load(&asking_dir, &SandboxChecker).expect("loads"));
    assert!(!cached(with_grant("a"), asking.clone()).await);
    assert!(cached(with_grant("a"), asking.clone()).await);
    assert!(
        !cached(with_grant("b"), asking.clone()).await,
        "another grant"
    );
    assert!(!cached(plain_ctx, asking).await, "no grant at all");
}
