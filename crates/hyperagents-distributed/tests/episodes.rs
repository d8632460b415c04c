//! Episodes run by workers through a real nats-server: an evaluation whose
//! episodes all ran on a worker stores what a local one would; a worker
//! that dies holding a job loses nothing — another worker takes the job and
//! its result is stored once; a worker with other models refuses the job.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_distributed::episodes::{
    NatsRunner, ServedSuite, WorkerTiming, serve_episode_jobs,
};
use hyperagents_distributed::jetstream::{Jets, NatsSettings};
use hyperagents_domain::{Domain, DomainError, Environment, JsonlSuite};
use hyperagents_eval::{EvalPlan, EvalTarget, SuiteIdentity, evaluate_with};
use hyperagents_program::Program;
use hyperagents_runtime::SandboxChecker;
use hyperagents_store::{EvalStatus, NewEvalRun, ResultsStore};
use hyperagents_testkit::nats::NatsServer;
use hyperagents_testkit::{ScriptedModel, context, pool, seed_dir};

const SUITE: &str = r#"{"id": "four", "input": "What is 2+2?", "expected": "4"}
{"id": "six", "input": "What is 3+3?", "expected": "6"}
"#;
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn suite() -> Arc<dyn Domain> {
    Arc::new(JsonlSuite::parse("jsonl:test", "test.jsonl", SUITE).unwrap())
}

/// The suite, except that every episode hangs: a worker stuck (or dying)
/// in the middle of a job.
struct Hanging(Arc<dyn Domain>);

#[async_trait]
impl Domain for Hanging {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn task_ids(&self) -> Vec<String> {
        self.0.task_ids()
    }
    async fn reset(&self, _task: &str, _seed: u64) -> Result<Box<dyn Environment>, DomainError> {
        std::future::pending().await
    }
}

fn served(domain: Arc<dyn Domain>, version: &str) -> ServedSuite {
    ServedSuite {
        domain,
        version: version.into(),
    }
}

fn settings(server: &NatsServer) -> NatsSettings {
    NatsSettings {
        url: server.url(),
        ..NatsSettings::default()
    }
}

/// The seed program on the suite.
fn target(program: &Arc<Program>) -> EvalTarget {
    EvalTarget {
        program: program.clone(),
        domain: suite(),
        suite: SuiteIdentity {
            name: "jsonl:test".into(),
            version: "v1".into(),
        },
    }
}

fn plan(tasks: &[&str], seeds: &[u64], concurrency: usize) -> EvalPlan {
    EvalPlan {
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        seeds: seeds.to_vec(),
        concurrency,
        reuse_cached: true,
    }
}

/// A coordinator's runner named `name`.
async fn runner(server: &NatsServer, name: &str) -> NatsRunner {
    let jets = Jets::open(&settings(server)).await.unwrap();
    NatsRunner::start(jets, name, "jsonl:test").await.unwrap()
}

fn new_run(store: &ResultsStore) -> hyperagents_store::EvalRunId {
    store
        .create_run(&NewEvalRun {
            program_hash: "seed".into(),
            suite: "jsonl:test".into(),
            split: "train".into(),
            config: serde_json::json!({}),
        })
        .unwrap()
}

/// A worker answering "4" (right for `four`) on `domain`, in this process.
async fn worker(
    server: &NatsServer,
    name: &str,
    domain: Arc<dyn Domain>,
    dir: &std::path::Path,
    timing: WorkerTiming,
) -> tokio::task::JoinHandle<()> {
    let jets = Jets::open(&settings(server)).await.unwrap();
    let model = ScriptedModel::new(|_| "4".to_string());
    let ctx = context(
        model,
        pool(1).await,
        30,
        &dir.join(format!("{name}-traces")),
    );
    let domains = BTreeMap::from([("jsonl:test".to_string(), served(domain, "v1"))]);
    let workdir = dir.join(name);
    let name = name.to_string();
    tokio::spawn(async move {
        let _ = serve_episode_jobs(jets, ctx, domains, name, workdir, timing).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn episodes_run_on_workers_are_stored_once_even_when_a_worker_dies() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(server) = NatsServer::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let timing = WorkerTiming {
            ack_wait: Duration::from_secs(2),
            max_deliver: 5,
        };
        // The coordinator: the same scripted model (so the same fingerprints).
        let model = ScriptedModel::new(|_| "4".to_string());
        let ctx = context(model, pool(1).await, 30, &dir.path().join("traces"));
        let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
        let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
        let target = target(&program);
        let plan = plan(&["four", "six"], &[0], 2);

        // A worker that takes a job and hangs; it dies (aborted) holding it.
        let stuck = worker(
            &server,
            "stuck",
            Arc::new(Hanging(suite())),
            dir.path(),
            timing,
        )
        .await;
        let runner = runner(&server, "c1").await;
        let run = new_run(&store);
        let evaluation = {
            let (ctx, target, plan, store, runner) = (&ctx, &target, &plan, &store, &runner);
            async move { evaluate_with(ctx, target, plan, store, run, &|_| {}, runner).await }
        };
        let killer = async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            stuck.abort();
            // Another worker, after the dead one's jobs time out.
            // (In a tuple: the handle is not awaited here.)
            (worker(&server, "alive", suite(), dir.path(), timing).await,)
        };
        let (report, (alive,)) = tokio::join!(evaluation, killer);
        let report = report.unwrap();
        assert_eq!(report.records.len(), 2);
        let stored = store.run_evaluations(run).unwrap();
        assert_eq!(stored.len(), 2, "each episode stored once");
        let four = stored.iter().find(|r| r.key.task == "four").unwrap();
        let six = stored.iter().find(|r| r.key.task == "six").unwrap();
        assert!(four.result.success && !six.result.success);
        assert_eq!(four.result.status, EvalStatus::Ok);
        // The trajectory came back and reads as one.
        let path = four.result.trajectory.clone().unwrap();
        let trajectory = hyperagents_runtime::trace::read_trajectory(&path).unwrap();
        assert_eq!(trajectory.header.task, "four");

        // Asked again, the store answers: no job is sent.
        let again = new_run(&store);
        let report = evaluate_with(&ctx, &target, &plan, &store, again, &|_| {}, &runner)
            .await
            .unwrap();
        assert!(report.records.iter().all(|r| r.cached));
        alive.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_other_models_refuses_the_job() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(server) = NatsServer::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let other = worker(
            &server,
            "other",
            suite(),
            dir.path(),
            WorkerTiming::default(),
        )
        .await;
        // The coordinator names models no worker has.
        let model = ScriptedModel::new(|_| "4".to_string());
        let mut ctx = context(model, pool(1).await, 30, &dir.path().join("traces"));
        ctx.run_seed = 3;
        let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
        let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
        let runner = runner(&server, "c2").await;
        let target = target(&program);
        let plan = plan(&["four"], &[0], 1);
        let mut key_models = BTreeMap::new();
        key_models.insert("task".to_string(), "elsewhere/other@1".to_string());
        // Through the runner directly, with a key naming other models.
        let key = hyperagents_store::EvalKey {
            program_hash: "x".into(),
            suite: "jsonl:test".into(),
            suite_version: "v1".into(),
            task: "four".into(),
            seed: 0,
            models: key_models,
            sampling_hash: "s".into(),
            host_api_version: 2,
        };
        let end = hyperagents_eval::EpisodeRunner::run(
            &runner,
            &ctx,
            target.program.clone(),
            target.domain.as_ref(),
            "four",
            0,
            &key,
        )
        .await;
        match end {
            hyperagents_eval::EpisodeEnd::Failed { status, reason } => {
                assert_eq!(status, EvalStatus::Error);
                assert!(
                    reason.contains("the job's key names task = elsewhere/other@1"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let _ = (&plan, &store);
        other.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_restarted_mid_evaluation_loses_nothing_and_counts_nothing_twice() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(mut server) = NatsServer::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let timing = WorkerTiming {
            ack_wait: Duration::from_secs(3),
            max_deliver: 10,
        };
        // Slow episodes, so the restart falls in the middle of the run.
        let slow = || {
            ScriptedModel::new(|_| {
                std::thread::sleep(Duration::from_millis(300));
                "4".to_string()
            })
        };
        let jets = Jets::open(&settings(&server)).await.unwrap();
        let domains = BTreeMap::from([("jsonl:test".to_string(), served(suite(), "v1"))]);
        let wctx = context(slow(), pool(1).await, 30, &dir.path().join("w-traces"));
        let work = tokio::spawn({
            let workdir = dir.path().join("w");
            async move {
                let _ = serve_episode_jobs(jets, wctx, domains, "w".into(), workdir, timing).await;
            }
        });
        let ctx = context(slow(), pool(1).await, 30, &dir.path().join("traces"));
        let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
        let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
        let runner = runner(&server, "c3").await;
        let target = target(&program);
        let plan = plan(&["four", "six"], &[0, 1, 2], 6);
        let run = new_run(&store);
        let evaluation = evaluate_with(&ctx, &target, &plan, &store, run, &|_| {}, &runner);
        let restart = async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            server.restart();
        };
        let (report, ()) = tokio::join!(evaluation, restart);
        let report = report.unwrap();
        assert_eq!(report.records.len(), 6);
        let stored = store.run_evaluations(run).unwrap();
        assert_eq!(stored.len(), 6, "each episode once");
        assert_eq!(
            stored.iter().filter(|r| r.result.success).count(),
            3,
            "`four` on each seed"
        );
        work.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_worker_finishes_ends_as_a_dead_letter() {
    // The only worker serves another suite: it hands every job back.
    dead_letter_when_the_worker_serves("jsonl:other", "v1", "c4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_other_data_for_the_suite_leaves_its_jobs_to_others() {
    // The same suite at another data version: the key names `v1`.
    dead_letter_when_the_worker_serves("jsonl:test", "v0", "c5").await;
}

/// An evaluation whose only worker serves `suite` at `version` and so
/// takes none of its jobs: each ends as a dead letter.
async fn dead_letter_when_the_worker_serves(suite_name: &str, version: &str, coordinator: &str) {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(server) = NatsServer::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let jets = Jets::open(&settings(&server)).await.unwrap();
        let wctx = context(
            ScriptedModel::new(|_| "4".to_string()),
            pool(1).await,
            30,
            &dir.path().join("w-traces"),
        );
        let domains = BTreeMap::from([(suite_name.to_string(), served(suite(), version))]);
        let timing = WorkerTiming {
            ack_wait: Duration::from_secs(3),
            max_deliver: 3,
        };
        let work = tokio::spawn({
            let workdir = dir.path().join("w");
            async move {
                let _ = serve_episode_jobs(jets, wctx, domains, "w".into(), workdir, timing).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ctx = context(
            ScriptedModel::new(|_| "4".to_string()),
            pool(1).await,
            30,
            &dir.path().join("traces"),
        );
        let program = Arc::new(Program::load(seed_dir(), &SandboxChecker).unwrap());
        let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
        let runner = runner(&server, coordinator).await;
        let target = target(&program);
        let plan = plan(&["four"], &[0], 1);
        let run = new_run(&store);
        let report = evaluate_with(&ctx, &target, &plan, &store, run, &|_| {}, &runner)
            .await
            .unwrap();
        assert_eq!(report.records.len(), 1);
        let stored = store.run_evaluations(run).unwrap();
        assert_eq!(stored[0].result.status, EvalStatus::Error);
        assert!(
            stored[0]
                .result
                .reason
                .contains("dead letter: delivered 3 times"),
            "{}",
            stored[0].result.reason
        );
        work.abort();
    })
    .await
    .expect("test timed out");
}
