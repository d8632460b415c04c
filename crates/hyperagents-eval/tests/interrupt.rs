//! Evaluations cut short from outside — a spent run-level budget, a stop
//! request — store nothing they cut short and say why; an episode that ends
//! on its own caps is still a result. The run's ledger outlives a restart.
//! Real parts (seed program, sandbox workers, SQLite), scripted models.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyperagents_domain::{Domain, JsonlSuite};
use hyperagents_eval::ledger::LedgerKeeper;
use hyperagents_eval::{EvalError, EvalPlan, EvalTarget, Interruption, SuiteIdentity, evaluate};
use hyperagents_llm::accounting::{Budget, Ledger, PriceTable};
use hyperagents_llm::router::ModelRouter;
use hyperagents_llm::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, FinishReason, LlmError, Message,
    ModelDescriptor, Usage,
};
use hyperagents_program::Program;
use hyperagents_runtime::{RunContext, SandboxChecker};
use hyperagents_store::{EvalStatus, NewEvalRun, ResultsStore};
use hyperagents_testkit::{ScriptedModel, context, pool, seed_dir};

const SUITE: &str = r#"{"id": "four", "input": "What is 2+2?", "expected": "4"}
{"id": "six", "input": "What is 3+3?", "expected": "6"}
"#;

fn target(program: &Arc<Program>) -> EvalTarget {
    let suite: Arc<dyn Domain> =
        Arc::new(JsonlSuite::parse("jsonl:test", "test.jsonl", SUITE).expect("suite parses"));
    EvalTarget {
        program: program.clone(),
        domain: suite,
        suite: SuiteIdentity {
            name: "jsonl:test".into(),
            version: "v1".into(),
        },
    }
}

fn seed_program() -> Arc<Program> {
    Arc::new(Program::load(seed_dir(), &SandboxChecker).expect("seed loads"))
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

/// Both tasks, one seed, one episode at a time (so the order is fixed).
fn plan() -> EvalPlan {
    EvalPlan {
        tasks: vec!["four".into(), "six".into()],
        seeds: vec![0],
        concurrency: 1,
        reuse_cached: true,
    }
}

/// `context`, with the task role under `budget`.
fn budgeted(model: Arc<dyn ChatModel>, ctx: RunContext, budget: Budget) -> RunContext {
    let mut ctx = ctx;
    ctx.router.bind("task", model, budget);
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_run_budget_stops_the_evaluation_and_stores_no_cut_episode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workers = pool(2).await;
    let program = seed_program();
    // One episode unbudgeted, to learn what an episode spends.
    let probe = ScriptedModel::new(|_| "4".to_string());
    let probe_ctx = context(
        probe.clone(),
        workers.clone(),
        30,
        &dir.path().join("probe"),
    );
    let probe_store = ResultsStore::open(dir.path().join("probe.sqlite")).expect("store");
    let mut one = plan();
    one.tasks.truncate(1);
    evaluate(
        &probe_ctx,
        &target(&program),
        &one,
        &probe_store,
        new_run(&probe_store),
        &|_| {},
    )
    .await
    .expect("probe runs");
    let per_episode = probe_ctx.router.ledger().spend("task").usage.total();
    let calls_per_episode = probe.request_count();
    assert!(calls_per_episode >= 2, "{calls_per_episode} calls");

    // Room for the first episode and the first call of the second.
    let model = ScriptedModel::new(|_| "4".to_string());
    let ctx = budgeted(
        model.clone(),
        context(model.clone(), workers.clone(), 30, &dir.path().join("t")),
        Budget {
            max_tokens: Some(per_episode + 1),
            ..Budget::default()
        },
    );
    let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("store");
    let run = new_run(&store);
    let err = evaluate(&ctx, &target(&program), &plan(), &store, run, &|_| {})
        .await
        .expect_err("the budget runs out in the second episode");
    let Some(Interruption::Budget(LlmError::BudgetExhausted { role, resource, .. })) =
        err.interruption()
    else {
        panic!("not a budget stop: {err:?}");
    };
    assert_eq!((role.as_str(), *resource), ("task", "tokens"));
    assert_eq!(model.request_count(), calls_per_episode + 1);
    // The first episode ended on its own and is stored; the cut one is not.
    let stored = store.run_evaluations(run).expect("reads");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].key.task, "four");
    assert!(stored[0].result.status.is_final());

    // A run over its budget starts nothing.
    let calls = model.request_count();
    let err = evaluate(
        &ctx,
        &target(&program),
        &plan(),
        &store,
        new_run(&store),
        &|_| {},
    )
    .await
    .expect_err("still over budget");
    assert!(matches!(
        err,
        EvalError::Interrupted(Interruption::Budget(_))
    ));
    assert_eq!(model.request_count(), calls);

    // With budget to spare the same evaluation reuses the first episode and
    // computes the cut one.
    let roomy = context(model.clone(), workers, 30, &dir.path().join("t"));
    let report = evaluate(
        &roomy,
        &target(&program),
        &plan(),
        &store,
        new_run(&store),
        &|_| {},
    )
    .await
    .expect("completes");
    assert_eq!(report.summary.reused, 1);
    assert_eq!(report.records.len(), 2);
    assert!(report.records.iter().all(|r| r.status == EvalStatus::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_episode_that_ends_on_its_own_caps_is_still_a_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = ScriptedModel::new(|_| "4".to_string());
    let mut ctx = context(model, pool(1).await, 30, dir.path());
    // The episode's own call cap: the first skill call is all it gets.
    ctx.caps.max_calls = 1;
    let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("store");
    let run = new_run(&store);
    let report = evaluate(
        &ctx,
        &target(&seed_program()),
        &plan(),
        &store,
        run,
        &|_| {},
    )
    .await
    .expect("runs");
    assert_eq!(report.records.len(), 2);
    for record in &report.records {
        assert_eq!(record.status, EvalStatus::Ok, "{record:?}");
        assert!(!record.success);
    }
    assert_eq!(store.run_evaluations(run).expect("reads").len(), 2);
}

/// A model that answers only after a minute.
struct Slow {
    descriptor: ModelDescriptor,
    calls: AtomicUsize,
}

#[async_trait]
impl ChatModel for Slow {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    async fn chat(&self, _: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(ChatResponse {
            text: "4".into(),
            tool_calls: vec![],
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            latency: Duration::from_secs(60),
            cache_hit: false,
            timing: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_abandons_episodes_in_flight_and_stores_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slow = Arc::new(Slow {
        descriptor: ModelDescriptor {
            provider: "scripted".into(),
            model: "slow".into(),
            fingerprint: None,
            capabilities: Capabilities::default(),
        },
        calls: AtomicUsize::new(0),
    });
    let ctx = context(slow.clone(), pool(2).await, 30, dir.path());
    let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("store");
    let run = new_run(&store);
    let mut both = plan();
    both.concurrency = 2;
    let ledger = ctx.router.ledger().clone();
    let started = Instant::now();
    let target = target(&seed_program());
    let (outcome, ()) = tokio::join!(
        evaluate(&ctx, &target, &both, &store, run, &|_| {}),
        async {
            while slow.calls.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ledger.request_stop("SIGINT");
        }
    );
    let err = outcome.expect_err("stopped");
    assert!(
        matches!(err.interruption(), Some(Interruption::Stop(reason)) if reason == "SIGINT"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "episodes in flight are abandoned, not awaited"
    );
    assert!(store.run_evaluations(run).expect("reads").is_empty());
}

#[tokio::test]
async fn a_ledger_saved_before_a_restart_keeps_counting_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("store");
    let model = ScriptedModel::new(|_| "4".to_string());
    let budget = Budget {
        max_tokens: Some(50),
        max_wall_secs: Some(3600.0),
        ..Budget::default()
    };
    let request = ChatRequest::new(vec![Message::user("hi")]);

    // The first session spends its budget, saving as it goes.
    let mut first = ModelRouter::new(PriceTable::default());
    first.bind("task", model.clone(), budget);
    let keeper = LedgerKeeper::resume(store.clone(), "evolution:r1", first.ledger().clone())
        .expect("nothing stored yet");
    let task = first.model("task").expect("bound");
    while task.chat(&request).await.is_ok() {}
    keeper.save().expect("saves");
    let spent = first.ledger().spend("task");
    assert!(spent.usage.total() >= 50);

    // A new process: a fresh ledger restored from the store refuses at once.
    let mut second = ModelRouter::new(PriceTable::default());
    second.bind("task", model.clone(), budget);
    let restored = Ledger::clone(second.ledger());
    LedgerKeeper::resume(store.clone(), "evolution:r1", restored.clone()).expect("restores");
    assert_eq!(restored.spend("task"), spent);
    let calls = model.request_count();
    let err = second
        .model("task")
        .expect("bound")
        .chat(&request)
        .await
        .expect_err("the budget was spent before the restart");
    assert!(matches!(err, LlmError::BudgetExhausted { .. }), "{err}");
    assert_eq!(model.request_count(), calls);

    // Wall time goes on from the earlier sessions' total.
    let stored = store.ledger("evolution:r1").expect("reads").expect("saved");
    assert!(restored.wall_secs() >= stored.wall_secs);
    let long_ago = hyperagents_store::StoredLedger {
        wall_secs: 4000.0,
        ..stored
    };
    store.save_ledger("evolution:r2", &long_ago).expect("saves");
    let mut third = ModelRouter::new(PriceTable::default());
    third.bind(
        "task",
        model,
        Budget {
            max_tokens: None,
            ..budget
        },
    );
    LedgerKeeper::resume(store, "evolution:r2", third.ledger().clone()).expect("restores");
    let err = third
        .model("task")
        .expect("bound")
        .budget_spent()
        .expect("an hour of run time is spent");
    assert!(err.to_string().contains("wall time"), "{err}");
}
