//! Episodes on other machines: the coordinator's [`NatsRunner`] (an
//! [`EpisodeRunner`]) publishes an [`EpisodeJob`] per episode an evaluation
//! does not find stored; workers ([`serve_episode_jobs`]) take jobs from the
//! work queue, run them, and publish an [`EpisodeDone`] keyed by the job's
//! evaluation key. The coordinator keeps keys, reuse and recording, so a job
//! delivered twice (a worker killed before its ack) is stored once.
//!
//! The queue's mechanics (acks, progress, dead letters, results kept for a
//! coordinator that was down) are [`crate::queue`]'s.
//!
//! - A job is run only by a worker that binds every role the key names to
//!   the same model (else its result is an error saying so), with the coordinator's run
//!   seed and caps, on the program bundle the job names (checked by hash).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperagents_domain::Domain;
use hyperagents_eval::{EpisodeEnd, EpisodeRunner, Interruption, episode_end, model_fingerprints};
use hyperagents_program::{Program, RunCaps};
use hyperagents_runtime::trace::EpisodeSummary;
use hyperagents_runtime::{RunContext, SandboxChecker, run_episode};
use hyperagents_store::{EvalKey, EvalStatus};
use serde::{Deserialize, Serialize};

use crate::jetstream::{Jets, NatsError};
pub use crate::queue::WorkerTiming;
use crate::queue::{Finished, Handled, Inbox, Job, lock, serve_jobs};

/// The messages' version; a message of another version is refused.
pub const MESSAGE_FORMAT: u32 = 1;
/// Where episode jobs are published.
pub const EPISODE_JOBS: &str = "ha.jobs.episode";
/// The durable consumer workers share.
pub const WORKERS: &str = "episode-workers";

/// One episode to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeJob {
    pub format: u32,
    /// The evaluation key's hash: the job's identity.
    pub job: String,
    /// Where to publish the result.
    pub results: String,
    /// The program bundle's content hash (hex).
    pub program: String,
    /// The suite, by the name the worker serves it under.
    pub suite: String,
    pub task: String,
    pub seed: u64,
    /// The models the key names, role → `provider/model@fingerprint`.
    pub models: BTreeMap<String, String>,
    /// The coordinator's run seed and caps (part of the key).
    pub run_seed: u64,
    pub max_steps: u32,
    pub max_calls: u32,
    pub max_tokens: u64,
    pub max_wall_ms: u64,
}

/// A job's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeDone {
    pub format: u32,
    pub job: String,
    /// Which worker ran it.
    pub worker: String,
    pub end: RemoteEnd,
}

/// How a job ended on its worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteEnd {
    /// It ran; the trajectory is the named object in the bundle store.
    Ran {
        summary: Box<EpisodeSummary>,
        trajectory: String,
    },
    /// It could not run (`unsupported`: the task needs what the worker has
    /// not configured).
    Failed { unsupported: bool, reason: String },
}

impl Job for EpisodeJob {
    fn readable(&self) -> bool {
        self.format == MESSAGE_FORMAT
    }
    fn results_subject(&self) -> &str {
        &self.results
    }
}

impl Finished for EpisodeDone {
    fn job(&self) -> &str {
        &self.job
    }
    fn readable(&self) -> bool {
        self.format == MESSAGE_FORMAT
    }
    fn dead_letter(job: String, deliveries: u64) -> Self {
        EpisodeDone {
            format: MESSAGE_FORMAT,
            job,
            worker: "(none)".into(),
            end: RemoteEnd::Failed {
                unsupported: false,
                reason: format!("dead letter: delivered {deliveries} times, no worker finished it"),
            },
        }
    }
}

/// Takes episode jobs until the connection ends: each is run with `ctx`
/// (its run seed and caps replaced by the job's) on the domain `domains`
/// serves under the job's suite name, its program fetched into `workdir`.
pub async fn serve_episode_jobs(
    jets: Jets,
    ctx: RunContext,
    domains: BTreeMap<String, Arc<dyn Domain>>,
    worker: String,
    workdir: PathBuf,
    timing: WorkerTiming,
) -> Result<(), NatsError> {
    let models = model_fingerprints(&ctx).map_err(|e| NatsError::JetStream {
        what: "the worker's models".into(),
        message: e.to_string(),
    })?;
    let handle = |job: EpisodeJob| {
        let (jets, ctx, models, domains, worker, workdir) =
            (&jets, &ctx, &models, &domains, &worker, &workdir);
        async move {
            let Some(domain) = domains.get(&job.suite).cloned() else {
                // Another worker may serve it.
                return Handled::NotMine(Duration::from_secs(1));
            };
            match run_job(jets, ctx, models, domain.as_ref(), &job, workdir).await {
                Some(end) => Handled::Done(EpisodeDone {
                    format: MESSAGE_FORMAT,
                    job: job.job.clone(),
                    worker: worker.clone(),
                    end,
                }),
                None => Handled::CutShort,
            }
        }
    };
    serve_jobs(&jets, WORKERS, EPISODE_JOBS, timing, handle).await
}

/// Runs one job; `None` when it was cut short (not a result).
async fn run_job(
    jets: &Jets,
    ctx: &RunContext,
    models: &BTreeMap<String, String>,
    domain: &dyn Domain,
    job: &EpisodeJob,
    workdir: &Path,
) -> Option<RemoteEnd> {
    let failed = |reason: String| {
        Some(RemoteEnd::Failed {
            unsupported: false,
            reason,
        })
    };
    // Every role the job's key names must be bound here to the same model
    // (roles bound here and not named are never used by its episode).
    if let Some((role, wanted)) = job
        .models
        .iter()
        .find(|(role, wanted)| models.get(*role) != Some(*wanted))
    {
        return failed(format!(
            "the job's key names {role} = {wanted}; this worker binds {} (its models: {models:?})",
            models.get(role).map_or("nothing", String::as_str)
        ));
    }
    let program = match fetch_program(jets, &job.program, workdir).await {
        Ok(program) => Arc::new(program),
        Err(reason) => return failed(reason),
    };
    let mut ctx = ctx.clone();
    ctx.run_seed = job.run_seed;
    ctx.caps = RunCaps {
        max_steps: job.max_steps,
        max_calls: job.max_calls,
        max_tokens: job.max_tokens,
        max_wall: Duration::from_millis(job.max_wall_ms),
    };
    ctx.traces_dir = workdir.join("traces").join(&job.job);
    let end = episode_end(run_episode(&ctx, program, domain, &job.task, job.seed).await);
    match end {
        EpisodeEnd::Interrupted(_) => None,
        EpisodeEnd::Failed { status, reason } => Some(RemoteEnd::Failed {
            unsupported: status == EvalStatus::Unsupported,
            reason,
        }),
        EpisodeEnd::Ran {
            summary,
            trajectory,
            ..
        } => {
            let name = format!("trajectory-{}", job.job);
            let bytes = match std::fs::read(&trajectory) {
                Ok(bytes) => bytes,
                Err(error) => return failed(format!("reading the trajectory: {error}")),
            };
            if let Err(error) = jets.bundles.put(name.as_str(), &mut bytes.as_slice()).await {
                return failed(format!("storing the trajectory: {error}"));
            }
            Some(RemoteEnd::Ran {
                summary,
                trajectory: name,
            })
        }
    }
}

/// The program bundle `hash`, fetched (once) into `workdir/programs/`.
pub(crate) async fn fetch_program(
    jets: &Jets,
    hash: &str,
    workdir: &Path,
) -> Result<Program, String> {
    let dir = jets.fetch_bundle(hash, &workdir.join("programs")).await?;
    Program::load(&dir, &SandboxChecker).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Runs an evaluation's episodes on workers: publishes a job per episode
/// and waits for its result on this coordinator's results subject.
pub struct NatsRunner {
    jets: Jets,
    suite: String,
    inbox: Inbox<EpisodeDone>,
    /// Programs already in the bundle store: every episode of an evaluation
    /// names the same program, which is packed and sent once.
    shipped: Mutex<std::collections::HashSet<String>>,
}

impl NatsRunner {
    /// Starts reading this coordinator's results (`coordinator` names it
    /// across restarts); `suite` is the name workers serve the suite under.
    pub async fn start(
        jets: Jets,
        coordinator: &str,
        suite: &str,
    ) -> Result<NatsRunner, NatsError> {
        let inbox = Inbox::start(
            &jets,
            format!("ha.results.{coordinator}"),
            &format!("coordinator-{coordinator}"),
            WORKERS,
        )
        .await?;
        Ok(NatsRunner {
            jets,
            suite: suite.to_string(),
            inbox,
            shipped: Mutex::default(),
        })
    }

    async fn wait_for(
        &self,
        ctx: &RunContext,
        program: &Program,
        task: &str,
        seed: u64,
        key: &EvalKey,
    ) -> Result<EpisodeDone, EpisodeEnd> {
        let job_id = key.hash().as_str().to_string();
        // A result already here (a restarted coordinator) is used as it is.
        let receive = match self.inbox.expect(&job_id) {
            Ok(done) => return Ok(done),
            Err(receive) => receive,
        };
        let failed = |reason: String| EpisodeEnd::Failed {
            status: EvalStatus::Error,
            reason,
        };
        // The bundle's name is the program's content hash.
        let hash = program.content_hash();
        if !lock(&self.shipped).contains(&hash.to_hex()) {
            let sent = self
                .jets
                .put_program(program.root())
                .await
                .map_err(|e| failed(format!("sending the program: {e}")))?;
            lock(&self.shipped).insert(sent.to_hex());
        }
        let job = EpisodeJob {
            format: MESSAGE_FORMAT,
            job: job_id.clone(),
            results: self.inbox.subject.clone(),
            program: hash.to_hex(),
            suite: self.suite.clone(),
            task: task.to_string(),
            seed,
            models: key.models.clone(),
            run_seed: ctx.run_seed,
            max_steps: ctx.caps.max_steps,
            max_calls: ctx.caps.max_calls,
            max_tokens: ctx.caps.max_tokens,
            max_wall_ms: u64::try_from(ctx.caps.max_wall.as_millis()).unwrap_or(u64::MAX),
        };
        let bytes = serde_json::to_vec(&job).map_err(|e| failed(e.to_string()))?;
        self.inbox
            .publish_job(&self.jets, EPISODE_JOBS, &job_id, bytes)
            .await
            .map_err(failed)?;
        receive.await.map_err(|_| {
            EpisodeEnd::Interrupted(Interruption::Host(
                "the coordinator stopped reading results".into(),
            ))
        })
    }

    /// The worker's trajectory, written where this evaluation keeps them.
    async fn fetch_trajectory(
        &self,
        ctx: &RunContext,
        name: &str,
        summary: &EpisodeSummary,
    ) -> Result<PathBuf, String> {
        let bytes = self
            .jets
            .read_object(name)
            .await
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&ctx.traces_dir).map_err(|e| e.to_string())?;
        let path = ctx.traces_dir.join(format!("{name}.jsonl.gz"));
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        let sidecar = hyperagents_runtime::trace::summary_path(&path);
        let text = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())?;
        std::fs::write(&sidecar, text).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

#[async_trait::async_trait]
impl EpisodeRunner for NatsRunner {
    async fn run(
        &self,
        ctx: &RunContext,
        program: Arc<Program>,
        _domain: &dyn Domain,
        task: &str,
        seed: u64,
        key: &EvalKey,
    ) -> EpisodeEnd {
        // A stop request ends the wait wherever it is (sending the program,
        // publishing, or waiting for a worker), even with the server gone.
        let job_id = key.hash().as_str().to_string();
        let done = tokio::select! {
            done = self.wait_for(ctx, &program, task, seed, key) => match done {
                Ok(done) => done,
                Err(end) => return end,
            },
            reason = ctx.router.ledger().stopped() => {
                self.inbox.forget(&job_id);
                return EpisodeEnd::Interrupted(Interruption::Stop(reason));
            }
        };
        match done.end {
            RemoteEnd::Failed {
                unsupported,
                reason,
            } => EpisodeEnd::Failed {
                status: if unsupported {
                    EvalStatus::Unsupported
                } else {
                    EvalStatus::Error
                },
                reason: format!("on worker {}: {reason}", done.worker),
            },
            RemoteEnd::Ran {
                summary,
                trajectory,
            } => match self.fetch_trajectory(ctx, &trajectory, &summary).await {
                Ok(path) => EpisodeEnd::Ran {
                    summary,
                    trajectory: path,
                    trace_write: Duration::ZERO,
                },
                Err(reason) => EpisodeEnd::Failed {
                    status: EvalStatus::Error,
                    reason,
                },
            },
        }
    }
}

/// The evolution engine's [`hyperagents_eval::Evaluator`] over workers:
/// [`hyperagents_eval::evaluate_with`] with a [`NatsRunner`], storing into
/// `store` as a local evaluation does.
pub struct NatsEvaluator {
    /// Bound to the episodes' models (the jobs name their fingerprints).
    pub ctx: RunContext,
    pub store: hyperagents_store::ResultsStore,
    pub runner: NatsRunner,
}

#[async_trait::async_trait]
impl hyperagents_eval::Evaluator for NatsEvaluator {
    async fn evaluate(
        &self,
        target: &hyperagents_eval::EvalTarget,
        plan: &hyperagents_eval::EvalPlan,
        run: hyperagents_store::EvalRunId,
        traces: &Path,
    ) -> Result<hyperagents_eval::EvalReport, hyperagents_eval::EvalError> {
        let mut ctx = self.ctx.clone();
        ctx.traces_dir = traces.to_path_buf();
        hyperagents_eval::evaluate_with(&ctx, target, plan, &self.store, run, &|_| {}, &self.runner)
            .await
    }
}
