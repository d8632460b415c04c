//! Episodes on other machines: the coordinator's [`NatsRunner`] (an
//! [`EpisodeRunner`]) publishes an [`EpisodeJob`] per episode an evaluation
//! does not find stored; workers ([`serve_episode_jobs`]) take jobs from the
//! work queue, run them, and publish an [`EpisodeDone`] keyed by the job's
//! evaluation key. The coordinator keeps keys, reuse and recording, so a job
//! delivered twice (a worker killed before its ack) is stored once.
//!
//! - A worker acks a job only after its result is published, and tells the
//!   server it is still working while an episode runs (`+WPI`), so the ack
//!   deadline is short and a dead worker's job goes to another one.
//! - A job is run only by a worker that binds every role the key names to
//!   the same model (else its result is an error saying so), with the coordinator's run
//!   seed and caps, on the program bundle the job names (checked by hash).
//! - Results stay in `HA_RESULTS` until the coordinator has read them, so a
//!   coordinator restarted after a crash finds what arrived while it was down.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{AckKind, consumer};
use futures::StreamExt;
use hyperagents_domain::Domain;
use hyperagents_eval::{EpisodeEnd, EpisodeRunner, Interruption, episode_end, model_fingerprints};
use hyperagents_program::{ContentHash, Program, RunCaps};
use hyperagents_runtime::trace::EpisodeSummary;
use hyperagents_runtime::{RunContext, SandboxChecker, run_episode};
use hyperagents_store::{EvalKey, EvalStatus};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::jetstream::{JOBS_STREAM, Jets, NatsError, RESULTS_STREAM};

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

fn jetstream_error(what: &str) -> impl FnOnce(String) -> NatsError + '_ {
    move |message| NatsError::JetStream {
        what: what.to_string(),
        message,
    }
}

/// How long a worker may go without saying it is still working before its
/// job goes to another worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerTiming {
    pub ack_wait: Duration,
    /// Deliveries of one job before it is left alone (a job that kills
    /// every worker it reaches).
    pub max_deliver: i64,
}

impl Default for WorkerTiming {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(60),
            max_deliver: 5,
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
    let stream = jets
        .context
        .get_stream(JOBS_STREAM)
        .await
        .map_err(|e| jetstream_error(JOBS_STREAM)(e.to_string()))?;
    let consumer = stream
        .get_or_create_consumer(
            WORKERS,
            consumer::pull::Config {
                durable_name: Some(WORKERS.into()),
                filter_subject: EPISODE_JOBS.into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: timing.ack_wait,
                max_deliver: timing.max_deliver,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| jetstream_error(WORKERS)(e.to_string()))?;
    let models = model_fingerprints(&ctx).map_err(|e| NatsError::JetStream {
        what: "the worker's models".into(),
        message: e.to_string(),
    })?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| jetstream_error(WORKERS)(e.to_string()))?;
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "reading a job");
                continue;
            }
        };
        let job: EpisodeJob = match serde_json::from_slice(&message.payload) {
            Ok(job) if job_format_ok(&job) => job,
            Ok(_) | Err(_) => {
                tracing::warn!("a job this worker cannot read; left alone");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        let Some(domain) = domains.get(&job.suite).cloned() else {
            // Another worker may serve it.
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            continue;
        };
        // Still working, every third of the ack deadline, until done; both
        // end together, so a worker that dies stops saying it works.
        let beat = async {
            loop {
                tokio::time::sleep(timing.ack_wait / 3).await;
                if message.ack_with(AckKind::Progress).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let end = tokio::select! {
            end = run_job(&jets, &ctx, &models, domain.as_ref(), &job, &workdir) => end,
            () = beat => None,
        };
        let Some(end) = end else {
            // Cut short here (this worker is stopping): another worker runs it.
            let _ = message.ack_with(AckKind::Nak(None)).await;
            continue;
        };
        let done = EpisodeDone {
            format: MESSAGE_FORMAT,
            job: job.job.clone(),
            worker: worker.clone(),
            end,
        };
        let published = match serde_json::to_vec(&done) {
            Ok(bytes) => match jets
                .context
                .publish(job.results.clone(), bytes.into())
                .await
            {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            },
            Err(_) => false,
        };
        // Acked only once the result is stored on the server.
        if published {
            let _ = message.double_ack().await;
        } else {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }
    Ok(())
}

fn job_format_ok(job: &EpisodeJob) -> bool {
    job.format == MESSAGE_FORMAT
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
async fn fetch_program(jets: &Jets, hash: &str, workdir: &Path) -> Result<Program, String> {
    let content = ContentHash::from_hex(hash).ok_or_else(|| format!("`{hash}` is not a hash"))?;
    let dir = workdir.join("programs").join(hash);
    if !dir.exists() {
        let partial = workdir
            .join("programs")
            .join(format!("{hash}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        jets.get_program(&content, &partial)
            .await
            .map_err(|e| e.to_string())?;
        if std::fs::rename(&partial, &dir).is_err() && !dir.exists() {
            return Err(format!("cannot keep the program in {}", dir.display()));
        }
    }
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
    results: String,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<EpisodeDone>>>>,
    /// Results that arrived with nobody waiting (while this coordinator was
    /// down, or before it asked again).
    arrived: Arc<Mutex<HashMap<String, EpisodeDone>>>,
    /// The jobs stream's sequence number of each job this process sent.
    sent: Arc<Mutex<HashMap<u64, String>>>,
    /// Programs already in the bundle store: every episode of an evaluation
    /// names the same program, which is packed and sent once.
    shipped: Mutex<std::collections::HashSet<String>>,
    reader: tokio::task::JoinHandle<()>,
    dead_letters: tokio::task::JoinHandle<()>,
}

impl Drop for NatsRunner {
    fn drop(&mut self) {
        self.reader.abort();
        self.dead_letters.abort();
    }
}

/// The server's advisory when a job reached its last delivery without an
/// ack (it killed, or was refused by, every worker that took it).
#[derive(Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

impl NatsRunner {
    /// Starts reading this coordinator's results (`coordinator` names it
    /// across restarts); `suite` is the name workers serve the suite under.
    pub async fn start(
        jets: Jets,
        coordinator: &str,
        suite: &str,
    ) -> Result<NatsRunner, NatsError> {
        let results = format!("ha.results.{coordinator}");
        let stream = jets
            .context
            .get_stream(RESULTS_STREAM)
            .await
            .map_err(|e| jetstream_error(RESULTS_STREAM)(e.to_string()))?;
        let durable = format!("coordinator-{coordinator}");
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: results.clone(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| jetstream_error(&durable)(e.to_string()))?;
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<EpisodeDone>>>> = Arc::default();
        let arrived: Arc<Mutex<HashMap<String, EpisodeDone>>> = Arc::default();
        // Results that arrived while this coordinator was down are read
        // before it asks for anything, so none of their jobs is sent again.
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(256)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(|e| jetstream_error(&durable)(e.to_string()))?;
            let mut read = 0;
            while let Some(Ok(message)) = batch.next().await {
                read += 1;
                if let Ok(done) = serde_json::from_slice::<EpisodeDone>(&message.payload)
                    && done.format == MESSAGE_FORMAT
                {
                    lock(&arrived).insert(done.job.clone(), done);
                }
                let _ = message.ack().await;
            }
            if read == 0 {
                break;
            }
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| jetstream_error(&durable)(e.to_string()))?;
        let reader = {
            let waiting = waiting.clone();
            let arrived = arrived.clone();
            tokio::spawn(async move {
                while let Some(message) = messages.next().await {
                    // A lost connection (the server restarting) is an error
                    // here, not the end: the client reconnects.
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => {
                            tracing::debug!(%error, "reading results");
                            continue;
                        }
                    };
                    if let Ok(done) = serde_json::from_slice::<EpisodeDone>(&message.payload)
                        && done.format == MESSAGE_FORMAT
                    {
                        let waiter = lock(&waiting).remove(&done.job);
                        match waiter {
                            Some(waiter) => {
                                let _ = waiter.send(done);
                            }
                            None => {
                                lock(&arrived).insert(done.job.clone(), done);
                            }
                        }
                    }
                    let _ = message.ack().await;
                }
            })
        };
        // Dead letters: a job no worker finished in its deliveries ends as
        // an error result saying so, instead of being waited for forever.
        let sent: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
        let mut advisories = jets
            .client
            .subscribe(format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.{WORKERS}"
            ))
            .await
            .map_err(|e| jetstream_error("dead-letter advisories")(e.to_string()))?;
        let dead_letters = {
            let waiting = waiting.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                while let Some(message) = advisories.next().await {
                    let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&message.payload)
                    else {
                        continue;
                    };
                    let Some(job) = lock(&sent).remove(&advisory.stream_seq) else {
                        continue;
                    };
                    tracing::warn!(%job, deliveries = advisory.deliveries, "a job ran out of deliveries");
                    if let Some(waiter) = lock(&waiting).remove(&job) {
                        let _ = waiter.send(EpisodeDone {
                            format: MESSAGE_FORMAT,
                            job,
                            worker: "(none)".into(),
                            end: RemoteEnd::Failed {
                                unsupported: false,
                                reason: format!(
                                    "dead letter: delivered {} times, no worker finished it",
                                    advisory.deliveries
                                ),
                            },
                        });
                    }
                }
            })
        };
        Ok(NatsRunner {
            jets,
            suite: suite.to_string(),
            results,
            waiting,
            arrived,
            sent,
            shipped: Mutex::default(),
            reader,
            dead_letters,
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
        let (send, receive) = oneshot::channel();
        {
            // A result already here (a restarted coordinator) is used as it is.
            if let Some(done) = lock(&self.arrived).remove(&job_id) {
                return Ok(done);
            }
            lock(&self.waiting).insert(job_id.clone(), send);
        }
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
            results: self.results.clone(),
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
        let published = self
            .jets
            .context
            .publish(EPISODE_JOBS, bytes.into())
            .await
            .map_err(|e| failed(format!("publishing the job: {e}")))?;
        let ack = published
            .await
            .map_err(|e| failed(format!("publishing the job: {e}")))?;
        lock(&self.sent).insert(ack.sequence, job_id.clone());
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
                lock(&self.waiting).remove(&job_id);
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
