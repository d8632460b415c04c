//! Meta steps run by workers through a real nats-server: the parent's own
//! meta agent runs on the worker with the worker's model, its `quick_eval`
//! calls are answered by the coordinator, and the child comes back where a
//! local step would have written it; a coordinator that was down when the
//! result arrived finds it when it asks again.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyperagents_distributed::jetstream::{JOBS_STREAM, Jets, NatsSettings, RESULTS_STREAM};
use hyperagents_distributed::meta::{NatsMetaSteps, serve_meta_jobs};
use hyperagents_distributed::queue::WorkerTiming;
use hyperagents_program::Program;
use hyperagents_runtime::SandboxChecker;
use hyperagents_runtime::improve::{ImproveConfig, MetaStepper, QuickEvalHandle};
use hyperagents_testkit::meta_fixtures::{AsksForANumber, failed_seed_episode};
use hyperagents_testkit::meta_reply::whole_file;
use hyperagents_testkit::nats::NatsServer;
use hyperagents_testkit::{ScriptedModel, context, pool, seed_dir};

const TEST_TIMEOUT: Duration = Duration::from_secs(180);

fn settings(server: &NatsServer) -> NatsSettings {
    NatsSettings {
        url: server.url(),
        ..NatsSettings::default()
    }
}

/// A worker taking meta steps with `model` bound to every role.
async fn worker(
    server: &NatsServer,
    name: &str,
    model: Arc<ScriptedModel>,
    dir: &Path,
) -> tokio::task::JoinHandle<()> {
    let jets = Jets::open(&settings(server)).await.unwrap();
    let ctx = context(
        model,
        pool(2).await,
        40,
        &dir.join(format!("{name}-traces")),
    );
    let workdir = dir.join(name);
    let name = name.to_string();
    tokio::spawn(async move {
        let _ = serve_meta_jobs(jets, ctx, name, workdir, WorkerTiming::default()).await;
    })
}

/// Messages the stream `name` holds now.
async fn messages(jets: &Jets, name: &str) -> u64 {
    jets.context
        .get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

async fn coordinator(server: &NatsServer, name: &str, dir: &Path) -> NatsMetaSteps {
    let jets = Jets::open(&settings(server)).await.unwrap();
    NatsMetaSteps::start(jets, name, 7, dir.join(format!("{name}-quick")))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_step_runs_on_a_worker_and_its_quick_evals_on_the_coordinator() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let traces = failed_seed_episode(dir.path()).await;
        let model = ScriptedModel::queue(vec![
            whole_file(
                "skills/reason/prompt.md",
                "Question: {{ question }}\nAnswer briefly.",
            ),
            whole_file(
                "skills/reason/prompt.md",
                "Question: {{ question }}\nAnswer with a number.",
            ),
        ]);
        let _worker = worker(&server, "w1", model.clone(), dir.path()).await;
        let steps = coordinator(&server, "c1", dir.path()).await;
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
        let outcome = steps
            .step(&seed_dir(), &traces, &out, &config)
            .await
            .unwrap();
        assert!(outcome.script_error.is_none(), "{:?}", outcome.script_error);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        // The worker's model wrote both candidates; the coordinator tried
        // each on its train tasks and the one that fixed the task was kept.
        assert!(model.request_count() >= 2);
        assert_eq!(judge.calls(), 2, "each candidate tried once");
        let prompt = std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap();
        assert!(prompt.contains("Answer with a number."), "{prompt}");
        assert!(
            outcome.trace.starts_with("(made on worker w1 with "),
            "{}",
            outcome.trace
        );
        assert!(
            outcome.trace.contains("edit 2: fixed 1, broke 0"),
            "{}",
            outcome.trace
        );
        // The child is the one the worker made: loadable, its diff beside it.
        Program::load(&out, &SandboxChecker).unwrap();
        let diff = std::fs::read_to_string(&outcome.diff_path).unwrap();
        assert!(diff.contains("+Answer with a number."), "{diff}");
        assert!(!outcome.diff.is_empty());
        assert!(outcome.meta_tokens > 0 && outcome.meta_calls >= 2);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_down_when_the_child_arrived_finds_it_when_it_asks_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let traces = failed_seed_episode(dir.path()).await;
        let config = ImproveConfig::default();
        // The first coordinator sends the step and dies before any worker
        // is there to take it.
        let first = coordinator(&server, "restarts", dir.path()).await;
        let asked = tokio::spawn({
            let (traces, out, config) = (traces.clone(), dir.path().join("lost"), config.clone());
            async move {
                let _ = first.step(&seed_dir(), &traces, &out, &config).await;
            }
        });
        let jets = Jets::open(&settings(&server)).await.unwrap();
        while messages(&jets, JOBS_STREAM).await == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        asked.abort();
        let _ = asked.await;
        // A worker makes the child with nobody listening.
        let model = ScriptedModel::new(|_| {
            whole_file(
                "skills/reason/prompt.md",
                "Question: {{ question }}\nAnswer with a number.",
            )
        });
        let worker = worker(&server, "w1", model.clone(), dir.path()).await;
        while messages(&jets, RESULTS_STREAM).await == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker.abort();
        let calls = model.request_count();
        assert!(calls > 0);
        // Restarted under the same name, it asks for the same step and gets
        // that child: no model call, no worker.
        let second = coordinator(&server, "restarts", dir.path()).await;
        let out = dir.path().join("child");
        let outcome = second
            .step(&seed_dir(), &traces, &out, &config)
            .await
            .unwrap();
        assert_eq!(model.request_count(), calls);
        let prompt = std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap();
        assert!(prompt.contains("Answer with a number."), "{prompt}");
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    })
    .await
    .unwrap();
}
