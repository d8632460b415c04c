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
use hyperagents_eval::{
    EpisodeEnd, EpisodeRunner, HOST_API_VERSION, Interruption, episode_end, model_fingerprints,
};
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
    /// The suite, by the name the worker serves it under, and its data
    /// version (part of the key): a worker with other data leaves the job
    /// to others. Empty in jobs of builds before it was sent.
    pub suite: String,
    #[serde(default)]
    pub suite_version: String,
    /// The host API version of the key (0: not sent).
    #[serde(default)]
    pub host_api_version: u32,
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
    /// Keep a screenshot after each action (the coordinator's
    /// `run.screenshots`); they come back as a bundle.
    #[serde(default)]
    pub screenshots: bool,
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
        /// The episode's screenshots, when it kept any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        screenshots: Option<ShippedScreenshots>,
    },
    /// It could not run (`unsupported`: the task needs what the worker has
    /// not configured).
    Failed { unsupported: bool, reason: String },
}

/// An episode's screenshot folder, shipped as a bundle: the trajectory
/// names each file by its path on the worker, under `worker_dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShippedScreenshots {
    pub bundle: String,
    pub worker_dir: String,
}

/// `<stem>.jsonl.gz` → `<stem>.shots`: where an episode's screenshots sit
/// beside its trajectory.
fn screenshots_beside(trajectory: &Path) -> PathBuf {
    let text = trajectory.to_string_lossy();
    PathBuf::from(format!(
        "{}.shots",
        text.strip_suffix(".jsonl.gz").unwrap_or(&text)
    ))
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

/// A suite a worker serves: its environment and its data version.
#[derive(Clone)]
pub struct ServedSuite {
    pub domain: Arc<dyn Domain>,
    pub version: String,
}

/// The suite this worker runs `job` on, or why it leaves the job to
/// others: it does not serve the job's suite, has other data for it, or
/// another host API.
fn suite_for<'a>(
    job: &EpisodeJob,
    suites: &'a BTreeMap<String, ServedSuite>,
) -> Result<&'a ServedSuite, String> {
    let Some(served) = suites.get(&job.suite) else {
        return Err(format!("this worker does not serve {}", job.suite));
    };
    if !job.suite_version.is_empty() && job.suite_version != served.version {
        return Err(format!(
            "the job's {} is version {}; this worker has {}",
            job.suite, job.suite_version, served.version
        ));
    }
    if job.host_api_version != 0 && job.host_api_version != HOST_API_VERSION {
        return Err(format!(
            "the job's host API is version {}; this worker's is {HOST_API_VERSION}",
            job.host_api_version
        ));
    }
    Ok(served)
}

/// Takes episode jobs until the connection ends: each is run with `ctx`
/// (its run seed and caps replaced by the job's) on the suite `suites`
/// serves under the job's suite name, its program fetched into `workdir`.
pub async fn serve_episode_jobs(
    jets: Jets,
    ctx: RunContext,
    suites: BTreeMap<String, ServedSuite>,
    worker: String,
    workdir: PathBuf,
    timing: WorkerTiming,
) -> Result<(), NatsError> {
    let models = model_fingerprints(&ctx).map_err(|e| NatsError::JetStream {
        what: "the worker's models".into(),
        message: e.to_string(),
    })?;
    let handle = |job: EpisodeJob| {
        let (jets, ctx, models, suites, worker, workdir) =
            (&jets, &ctx, &models, &suites, &worker, &workdir);
        async move {
            let served = match suite_for(&job, suites) {
                Ok(served) => served,
                Err(reason) => {
                    // Another worker may serve it.
                    tracing::debug!(%reason, "an episode job for another worker");
                    return Handled::NotMine(Duration::from_secs(1));
                }
            };
            match run_job(jets, ctx, models, served.domain.as_ref(), &job, workdir).await {
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
    ctx.screenshots = job.screenshots;
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
            let shots = screenshots_beside(&trajectory);
            let screenshots = if shots.is_dir() {
                match jets.put_program(&shots).await {
                    Ok(hash) => Some(ShippedScreenshots {
                        bundle: hash.to_hex(),
                        worker_dir: shots.to_string_lossy().into_owned(),
                    }),
                    Err(error) => return failed(format!("storing the screenshots: {error}")),
                }
            } else {
                None
            };
            Some(RemoteEnd::Ran {
                summary,
                trajectory: name,
                screenshots,
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
            suite_version: key.suite_version.clone(),
            host_api_version: key.host_api_version,
            task: task.to_string(),
            seed,
            models: key.models.clone(),
            run_seed: ctx.run_seed,
            max_steps: ctx.caps.max_steps,
            max_calls: ctx.caps.max_calls,
            max_tokens: ctx.caps.max_tokens,
            max_wall_ms: u64::try_from(ctx.caps.max_wall.as_millis()).unwrap_or(u64::MAX),
            screenshots: ctx.screenshots,
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

    /// The worker's trajectory (and screenshots), written where this
    /// evaluation keeps them; the screenshots' paths in the trajectory are
    /// rewritten from the worker's folder to this one.
    async fn fetch_trajectory(
        &self,
        ctx: &RunContext,
        name: &str,
        summary: &EpisodeSummary,
        screenshots: Option<&ShippedScreenshots>,
    ) -> Result<PathBuf, String> {
        let mut bytes = self
            .jets
            .read_object(name)
            .await
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&ctx.traces_dir).map_err(|e| e.to_string())?;
        let path = ctx.traces_dir.join(format!("{name}.jsonl.gz"));
        if let Some(shipped) = screenshots {
            let here = screenshots_beside(&path);
            if here.exists() {
                std::fs::remove_dir_all(&here).map_err(|e| e.to_string())?;
            }
            let hash = hyperagents_program::ContentHash::from_hex(&shipped.bundle)
                .ok_or_else(|| format!("`{}` is not a hash", shipped.bundle))?;
            self.jets
                .get_program(&hash, &here)
                .await
                .map_err(|e| format!("fetching the screenshots: {e}"))?;
            bytes = repoint(&bytes, &shipped.worker_dir, &here.to_string_lossy())?;
        }
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        let sidecar = hyperagents_runtime::trace::summary_path(&path);
        let text = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())?;
        std::fs::write(&sidecar, text).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

/// A gzipped trajectory with every mention of the folder `from` (as a JSON
/// string's contents) replaced by `to`.
fn repoint(gzipped: &[u8], from: &str, to: &str) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(gzipped)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the trajectory: {e}"))?;
    let quoted = |path: &str| {
        let json = serde_json::to_string(path).unwrap_or_default();
        json.trim_matches('"').to_string()
    };
    let text = text.replace(&quoted(from), &quoted(to));
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map_err(|e| format!("writing the trajectory: {e}"))
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
                screenshots,
            } => match self
                .fetch_trajectory(ctx, &trajectory, &summary, screenshots.as_ref())
                .await
            {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn a_trajectory_is_repointed_from_the_workers_screenshots_to_the_coordinators() {
        let text = "{\"kind\":\"screenshot\",\"output\":\"/w/traces/j/t-s0.shots/0.png\"}\n\
                    {\"kind\":\"llm\",\"output\":\"/w/traces/j/t-s0.shots is not a path here\"}\n";
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        let gzipped = encoder.finish().unwrap();
        let moved = repoint(
            &gzipped,
            "/w/traces/j/t-s0.shots",
            "/c/traces/trajectory-j.shots",
        )
        .unwrap();
        let mut back = String::new();
        flate2::read::MultiGzDecoder::new(moved.as_slice())
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(
            back.matches("/c/traces/trajectory-j.shots").count(),
            2,
            "{back}"
        );
        assert!(!back.contains("/w/traces"), "{back}");
        assert_eq!(
            screenshots_beside(Path::new("/c/traces/trajectory-j.jsonl.gz")),
            PathBuf::from("/c/traces/trajectory-j.shots")
        );
    }
}
