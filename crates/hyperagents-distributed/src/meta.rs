//! Meta steps on other machines: the coordinator's [`NatsMetaSteps`] (a
//! [`MetaStepper`]) ships the parent program and the evidence folder (its
//! trajectories) as content-addressed bundles and publishes a
//! [`MetaStepJob`]; a worker ([`serve_meta_jobs`]) runs the parent's own
//! meta agent with **its** meta model (it may hold a bigger one than the
//! coordinator) and sends the child back as a bundle with its diff, trace
//! and token counts. The coordinator unpacks the child where a local step
//! would have written it, so the engine cannot tell the two apart.
//!
//! - `quick_eval(tasks)` is the coordinator's: the worker asks for it by
//!   request-reply on a subject the job names (the child as edited so far
//!   travels as a bundle), and the coordinator runs it with its own
//!   evaluator, train tasks and call cap. A redelivered job shares the cap
//!   with the delivery that died (the cap is per meta step).
//! - The job's identity is a hash of everything the step reads (bundles,
//!   seeds, limits, context), so a coordinator restarted after a crash that
//!   asks for the same step again uses the result that arrived meanwhile.
//! - Only workers that bind the model the parent's manifest names for its
//!   meta agent take the job; the result says which model made the child.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use hyperagents_program::{EditLimits, Program, diff_dirs};
use hyperagents_runtime::improve::{
    ImproveConfig, ImproveError, ImproveOutcome, MetaStepper, QuickEval, QuickEvalHandle,
    diff_file, improve,
};
use hyperagents_runtime::{RunContext, SandboxChecker};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::episodes::fetch_program;
use crate::jetstream::{Jets, NatsError};
use crate::queue::{Finished, Handled, Inbox, Job, WorkerTiming, serve_jobs};

/// The messages' version; a message of another version is refused.
pub const META_FORMAT: u32 = 1;
/// Where meta-step jobs are published.
pub const META_JOBS: &str = "ha.jobs.meta";
/// The durable consumer workers share.
pub const META_WORKERS: &str = "meta-workers";
/// How long a worker waits for the coordinator's answer to one
/// `quick_eval` (a few episodes on its workers).
pub const QUICK_EVAL_WAIT: Duration = Duration::from_secs(30 * 60);

/// One meta step to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaStepJob {
    pub format: u32,
    /// A hash of everything below but `results` and `quick_eval`.
    pub job: String,
    /// Where to publish the result.
    pub results: String,
    /// The program whose meta agent runs (the parent; in fixed-meta mode,
    /// the parent with the seed's `meta/`), as a bundle hash.
    pub program: String,
    /// The evidence folder (trajectories and their summaries), as a bundle.
    pub evidence: String,
    /// The program the child starts from when it is not `program` (a
    /// repair round's rejected child).
    pub base: Option<String>,
    pub limits: EditLimitsMessage,
    pub max_tool_calls: u64,
    pub max_failures: usize,
    /// The step's seed, and the coordinator's run seed.
    pub seed: u64,
    pub run_seed: u64,
    /// What `context()` returns.
    pub context: Value,
    /// The subject the coordinator answers `quick_eval` on; `None`: the
    /// step may not call it.
    pub quick_eval: Option<String>,
}

/// [`EditLimits`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditLimitsMessage {
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    pub max_files: usize,
    pub max_edits: usize,
    pub max_search_hits: usize,
}

impl From<&EditLimits> for EditLimitsMessage {
    fn from(l: &EditLimits) -> Self {
        Self {
            max_file_bytes: l.max_file_bytes,
            max_total_bytes: l.max_total_bytes,
            max_files: l.max_files,
            max_edits: l.max_edits,
            max_search_hits: l.max_search_hits,
        }
    }
}

impl From<EditLimitsMessage> for EditLimits {
    fn from(l: EditLimitsMessage) -> Self {
        Self {
            max_file_bytes: l.max_file_bytes,
            max_total_bytes: l.max_total_bytes,
            max_files: l.max_files,
            max_edits: l.max_edits,
            max_search_hits: l.max_search_hits,
        }
    }
}

/// A meta step's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaStepDone {
    pub format: u32,
    pub job: String,
    pub worker: String,
    pub end: MetaEnd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetaEnd {
    /// The meta agent ran (it may have failed on its own: `script_error`).
    Ran(Box<MetaRan>),
    /// The step could not run there.
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaRan {
    /// The child program, as a bundle hash.
    pub child: String,
    /// The unified diff against the parent.
    pub diff: String,
    pub errors: Vec<String>,
    pub script_error: Option<String>,
    pub result: Option<Value>,
    pub trace: String,
    pub meta_tokens: u64,
    pub meta_calls: u64,
    pub meta_prompt_tokens: u64,
    pub meta_prompt_cached: u64,
    pub meta_cost: f64,
    /// The model that made the child, `provider/model@fingerprint`.
    pub meta_model: String,
}

/// A worker's `quick_eval` call, answered by the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuickEvalRequest {
    pub format: u32,
    /// The child as edited so far, as a bundle hash.
    pub program: String,
    pub tasks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuickEvalAnswer {
    Ran { result: Value },
    Refused { reason: String },
}

impl Job for MetaStepJob {
    fn readable(&self) -> bool {
        self.format == META_FORMAT
    }
    fn results_subject(&self) -> &str {
        &self.results
    }
}

impl Finished for MetaStepDone {
    fn job(&self) -> &str {
        &self.job
    }
    fn readable(&self) -> bool {
        self.format == META_FORMAT
    }
    fn dead_letter(job: String, deliveries: u64) -> Self {
        MetaStepDone {
            format: META_FORMAT,
            job,
            worker: "(none)".into(),
            end: MetaEnd::Failed {
                reason: format!("dead letter: delivered {deliveries} times, no worker finished it"),
            },
        }
    }
}

/// The job's identity: everything the step reads.
fn job_id(job: &MetaStepJob) -> String {
    let identity = serde_json::json!({
        "program": job.program,
        "evidence": job.evidence,
        "base": job.base,
        "limits": job.limits,
        "max_tool_calls": job.max_tool_calls,
        "max_failures": job.max_failures,
        "seed": job.seed,
        "run_seed": job.run_seed,
        "context": job.context,
        "quick_eval": job.quick_eval.is_some(),
    });
    let mut hasher = Sha256::new();
    hasher.update(b"hyperagents meta step\0");
    hasher.update(identity.to_string().as_bytes());
    format!("{:x}", hasher.finalize())
}

fn remote(place: &str) -> impl FnOnce(String) -> ImproveError + '_ {
    move |message| ImproveError::Remote {
        place: place.to_string(),
        message,
    }
}

/// Runs meta steps on workers (see the module's documentation).
pub struct NatsMetaSteps {
    jets: Jets,
    inbox: Inbox<MetaStepDone>,
    /// The run seed the steps' model calls derive from (the coordinator's).
    run_seed: u64,
    /// Where programs a worker sends for `quick_eval` are unpacked.
    workdir: PathBuf,
}

impl NatsMetaSteps {
    /// Starts reading this coordinator's meta-step results (`coordinator`
    /// names it across restarts).
    pub async fn start(
        jets: Jets,
        coordinator: &str,
        run_seed: u64,
        workdir: PathBuf,
    ) -> Result<NatsMetaSteps, NatsError> {
        let inbox = Inbox::start(
            &jets,
            format!("ha.results.{coordinator}.meta"),
            &format!("coordinator-{coordinator}-meta"),
            META_WORKERS,
        )
        .await?;
        Ok(NatsMetaSteps {
            jets,
            inbox,
            run_seed,
            workdir,
        })
    }

    async fn ship(&self, dir: &Path) -> Result<String, ImproveError> {
        self.jets
            .put_program(dir)
            .await
            .map(|hash| hash.to_hex())
            .map_err(|e| ImproveError::Unreachable(format!("sending {}: {e}", dir.display())))
    }
}

/// Aborts a spawned task when dropped (a meta step abandoned mid-way).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl MetaStepper for NatsMetaSteps {
    async fn step(
        &self,
        parent_dir: &Path,
        failures_dir: &Path,
        out: &Path,
        config: &ImproveConfig,
    ) -> Result<ImproveOutcome, ImproveError> {
        let mut job = MetaStepJob {
            format: META_FORMAT,
            job: String::new(),
            results: self.inbox.subject.clone(),
            program: self.ship(parent_dir).await?,
            evidence: self.ship(failures_dir).await?,
            base: match &config.base {
                Some(base) => Some(self.ship(base).await?),
                None => None,
            },
            limits: EditLimitsMessage::from(&config.edit_limits),
            max_tool_calls: config.max_tool_calls,
            max_failures: config.max_failures,
            seed: config.seed,
            run_seed: self.run_seed,
            context: config.context.clone(),
            quick_eval: None,
        };
        job.job = job_id(&job);
        let _answering = match &config.quick_eval {
            Some(handle) => {
                let subject = format!("ha.quick.{}", job.job);
                let requests = self
                    .jets
                    .client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|e| ImproveError::Unreachable(format!("answering quick_eval: {e}")))?;
                job.quick_eval = Some(subject);
                Some(AbortOnDrop(tokio::spawn(answer_quick_evals(
                    self.jets.clone(),
                    requests,
                    handle.clone(),
                    self.workdir.join("quick"),
                ))))
            }
            None => None,
        };
        let done = match self.inbox.expect(&job.job) {
            Ok(done) => done,
            Err(receive) => {
                let bytes = serde_json::to_vec(&job)
                    .map_err(|e| ImproveError::Unreachable(e.to_string()))?;
                self.inbox
                    .publish_job(&self.jets, META_JOBS, &job.job, bytes)
                    .await
                    .map_err(ImproveError::Unreachable)?;
                receive.await.map_err(|_| {
                    ImproveError::Unreachable("the coordinator stopped reading results".into())
                })?
            }
        };
        let place = format!("worker {}", done.worker);
        let ran = match done.end {
            MetaEnd::Failed { reason } => return Err(remote(&place)(reason)),
            MetaEnd::Ran(ran) => ran,
        };
        let child = hyperagents_program::ContentHash::from_hex(&ran.child)
            .ok_or_else(|| remote(&place)(format!("`{}` is not a hash", ran.child)))?;
        if out.exists() {
            std::fs::remove_dir_all(out).map_err(|source| ImproveError::Io {
                path: out.to_path_buf(),
                source,
            })?;
        }
        self.jets
            .get_program(&child, out)
            .await
            .map_err(|e| remote(&place)(format!("fetching the child: {e}")))?;
        let diff_path = diff_file(out);
        std::fs::write(&diff_path, &ran.diff).map_err(|source| ImproveError::Io {
            path: diff_path.clone(),
            source,
        })?;
        let diff = diff_dirs(parent_dir, out)
            .map_err(|e| remote(&place)(format!("comparing the child with its parent: {e}")))?;
        Ok(ImproveOutcome {
            child: out.to_path_buf(),
            diff,
            diff_path,
            errors: ran.errors,
            script_error: ran.script_error,
            result: ran.result,
            trace: format!("(made on {place} with {})\n{}", ran.meta_model, ran.trace),
            meta_tokens: ran.meta_tokens,
            meta_calls: ran.meta_calls,
            meta_prompt_tokens: ran.meta_prompt_tokens,
            meta_prompt_cached: ran.meta_prompt_cached,
            meta_cost: ran.meta_cost,
        })
    }
}

/// Answers a meta step's `quick_eval` requests with the coordinator's own
/// quick evaluation, until the step ends.
async fn answer_quick_evals(
    jets: Jets,
    mut requests: async_nats::Subscriber,
    handle: QuickEvalHandle,
    workdir: PathBuf,
) {
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let answer = match serde_json::from_slice::<QuickEvalRequest>(&message.payload) {
            Ok(request) if request.format == META_FORMAT => {
                match quick_eval_here(&jets, &handle, &workdir, request).await {
                    Ok(result) => QuickEvalAnswer::Ran { result },
                    Err(reason) => QuickEvalAnswer::Refused { reason },
                }
            }
            Ok(_) | Err(_) => QuickEvalAnswer::Refused {
                reason: "a quick_eval request this coordinator cannot read".into(),
            },
        };
        let Ok(bytes) = serde_json::to_vec(&answer) else {
            continue;
        };
        if let Err(error) = jets.client.publish(reply, bytes.into()).await {
            tracing::warn!(%error, "answering a worker's quick_eval");
        }
    }
}

async fn quick_eval_here(
    jets: &Jets,
    handle: &QuickEvalHandle,
    workdir: &Path,
    request: QuickEvalRequest,
) -> Result<Value, String> {
    let dir = jets.fetch_bundle(&request.program, workdir).await?;
    let program = Program::load(&dir, &SandboxChecker).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    handle.0.quick_eval(program, request.tasks).await
}

/// A worker's `quick_eval`: asks the coordinator on the job's subject.
struct RemoteQuickEval {
    jets: Jets,
    subject: String,
}

#[async_trait]
impl QuickEval for RemoteQuickEval {
    async fn quick_eval(&self, program: Program, tasks: Vec<String>) -> Result<Value, String> {
        let hash = self
            .jets
            .put_program(program.root())
            .await
            .map_err(|e| format!("sending the child for quick_eval: {e}"))?;
        let request = QuickEvalRequest {
            format: META_FORMAT,
            program: hash.to_hex(),
            tasks,
        };
        let bytes = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let reply = self
            .jets
            .client
            .send_request(
                self.subject.clone(),
                async_nats::Request::new()
                    .payload(bytes.into())
                    .timeout(Some(QUICK_EVAL_WAIT)),
            )
            .await
            .map_err(|e| format!("the coordinator did not answer quick_eval: {e}"))?;
        match serde_json::from_slice::<QuickEvalAnswer>(&reply.payload) {
            Ok(QuickEvalAnswer::Ran { result }) => Ok(result),
            Ok(QuickEvalAnswer::Refused { reason }) => Err(reason),
            Err(error) => Err(format!("an unreadable quick_eval answer: {error}")),
        }
    }
}

/// Takes meta-step jobs until the connection ends, running each with
/// `ctx`'s meta model (its run seed replaced by the job's), the bundles
/// fetched into `workdir`. A job whose parent names a meta model `ctx` does
/// not bind is left to other workers.
pub async fn serve_meta_jobs(
    jets: Jets,
    ctx: RunContext,
    worker: String,
    workdir: PathBuf,
    timing: WorkerTiming,
) -> Result<(), NatsError> {
    let handle = |job: MetaStepJob| {
        let (jets, ctx, worker, workdir) = (&jets, &ctx, &worker, &workdir);
        async move {
            let end = match run_meta_job(jets, ctx, &job, workdir).await {
                Ok(ran) => MetaEnd::Ran(Box::new(ran)),
                Err(MetaJobError::NotMine(reason)) => {
                    tracing::debug!(%reason, "a meta step for another worker");
                    return Handled::NotMine(Duration::from_secs(5));
                }
                Err(MetaJobError::Failed(reason)) => MetaEnd::Failed { reason },
            };
            Handled::Done(MetaStepDone {
                format: META_FORMAT,
                job: job.job.clone(),
                worker: worker.clone(),
                end,
            })
        }
    };
    serve_jobs(&jets, META_WORKERS, META_JOBS, timing, handle).await
}

enum MetaJobError {
    NotMine(String),
    Failed(String),
}

async fn run_meta_job(
    jets: &Jets,
    ctx: &RunContext,
    job: &MetaStepJob,
    workdir: &Path,
) -> Result<MetaRan, MetaJobError> {
    let failed = MetaJobError::Failed;
    let program = fetch_program(jets, &job.program, workdir)
        .await
        .map_err(failed)?;
    let role = program.meta().model.as_str().to_string();
    let models = hyperagents_eval::model_fingerprints(ctx).map_err(|e| failed(e.to_string()))?;
    let Some(meta_model) = models.get(&role).cloned() else {
        return Err(MetaJobError::NotMine(format!(
            "this worker binds no model to `{role}`"
        )));
    };
    let evidence = jets
        .fetch_bundle(&job.evidence, &workdir.join("evidence"))
        .await
        .map_err(failed)?;
    let base = match &job.base {
        Some(hash) => Some(
            jets.fetch_bundle(hash, &workdir.join("programs"))
                .await
                .map_err(failed)?,
        ),
        None => None,
    };
    let out = workdir
        .join("children")
        .join(format!("{}.{}", job.job, std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let config = ImproveConfig {
        edit_limits: job.limits.into(),
        max_tool_calls: job.max_tool_calls,
        max_failures: job.max_failures,
        seed: job.seed,
        context: job.context.clone(),
        base,
        quick_eval: job.quick_eval.as_ref().map(|subject| {
            QuickEvalHandle(Arc::new(RemoteQuickEval {
                jets: jets.clone(),
                subject: subject.clone(),
            }))
        }),
    };
    let mut ctx = ctx.clone();
    ctx.run_seed = job.run_seed;
    ctx.traces_dir = workdir.join("traces").join(&job.job);
    let outcome = improve(&ctx, program.root(), &evidence, &out, &config)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let sent = jets.put_program(&out).await;
    let diff = std::fs::read_to_string(&outcome.diff_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&outcome.diff_path);
    let child = sent.map_err(|e| failed(format!("sending the child: {e}")))?;
    Ok(MetaRan {
        child: child.to_hex(),
        diff,
        errors: outcome.errors,
        script_error: outcome.script_error,
        result: outcome.result,
        trace: outcome.trace,
        meta_tokens: outcome.meta_tokens,
        meta_calls: outcome.meta_calls,
        meta_prompt_tokens: outcome.meta_prompt_tokens,
        meta_prompt_cached: outcome.meta_prompt_cached,
        meta_cost: outcome.meta_cost,
        meta_model,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn job() -> MetaStepJob {
        MetaStepJob {
            format: META_FORMAT,
            job: String::new(),
            results: "ha.results.c.meta".into(),
            program: "p".into(),
            evidence: "e".into(),
            base: None,
            limits: EditLimitsMessage::from(&EditLimits::default()),
            max_tool_calls: 200,
            max_failures: 50,
            seed: 7,
            run_seed: 1,
            context: serde_json::json!({"generation": 1}),
            quick_eval: None,
        }
    }

    #[test]
    fn a_step_is_named_by_what_it_reads_not_by_where_its_answers_go() {
        let a = job();
        let mut b = job();
        b.results = "ha.results.other.meta".into();
        assert_eq!(job_id(&a), job_id(&b));
        let mut c = job();
        c.seed = 8;
        assert_ne!(job_id(&a), job_id(&c));
        let mut d = job();
        d.context = serde_json::json!({"generation": 2});
        assert_ne!(job_id(&a), job_id(&d));
        let mut e = job();
        e.base = Some("r".into());
        assert_ne!(job_id(&a), job_id(&e));
    }

    #[test]
    fn messages_round_trip() {
        let done = MetaStepDone {
            format: META_FORMAT,
            job: "j".into(),
            worker: "w".into(),
            end: MetaEnd::Ran(Box::new(MetaRan {
                child: "c".into(),
                diff: "--- a\n+++ b\n".into(),
                errors: vec![],
                script_error: None,
                result: Some(serde_json::json!({"kept": 1})),
                trace: "meta".into(),
                meta_tokens: 10,
                meta_calls: 1,
                meta_prompt_tokens: 8,
                meta_prompt_cached: 0,
                meta_cost: 0.0,
                meta_model: "embedded/m@f".into(),
            })),
        };
        let back: MetaStepDone =
            serde_json::from_slice(&serde_json::to_vec(&done).unwrap()).unwrap();
        assert_eq!(back, done);
        let dead = MetaStepDone::dead_letter("j".into(), 5);
        assert!(matches!(dead.end, MetaEnd::Failed { reason } if reason.contains("5 times")));
    }
}
