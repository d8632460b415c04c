//! Evaluating one program on a suite: every (task, seed) pair becomes an
//! episode, run concurrently up to a limit, its result stored durably in the
//! results store before it counts, and reused from there when the same
//! computation (same [`EvalKey`]) was already done.
//!
//! This crate knows nothing about browsers, WebArena or GAIA: the binary
//! opens a [`Domain`] and hands it in. The evolution engine runs its staged
//! evaluations through the [`Evaluator`] trait; [`LocalEvaluator`] is
//! [`evaluate`] in this process.

pub mod benchmarks_file;
pub mod ledger;
pub mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hyperagents_domain::{Domain, DomainError};
use hyperagents_llm::ChatModel;
use hyperagents_program::Program;
pub use hyperagents_runtime::Interruption;
use hyperagents_runtime::trace::EpisodeTiming;
use hyperagents_runtime::{EpisodeError, RunContext, run_episode};
use hyperagents_store::{
    EvalKey, EvalResult, EvalRunId, EvalStatus, ResultsStore, RunSummary, StoreError, TaskStats,
};
use sha2::{Digest, Sha256};

/// Version of the host-function interface programs are written against.
/// Part of every evaluation key: a change to what host functions do must
/// bump it, so stored results of the old interface are not reused.
/// 2: `max_steps` counts environment actions (it counted skill calls too),
/// `skill`/`delegate`/`llm` count against `max_calls`, and `budget()`
/// reports `calls_left`.
pub const HOST_API_VERSION: u32 = 2;

/// Names a suite and the exact version of its tasks and scorers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteIdentity {
    /// `miniwob`, `jsonl:qa.jsonl`, …
    pub name: String,
    /// A package version or a content hash of the task file.
    pub version: String,
}

/// What is evaluated: a program on a suite's domain.
#[derive(Clone)]
pub struct EvalTarget {
    pub program: Arc<Program>,
    pub domain: Arc<dyn Domain>,
    pub suite: SuiteIdentity,
}

/// How it is evaluated.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    pub tasks: Vec<String>,
    /// Episode seeds; every task runs once per seed.
    pub seeds: Vec<u64>,
    /// Episodes in flight at once.
    pub concurrency: usize,
    /// Reuse stored results with the same key instead of running again.
    pub reuse_cached: bool,
}

/// One episode's result as the evaluation saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    pub task: String,
    pub seed: u64,
    pub status: EvalStatus,
    pub success: bool,
    pub score: f64,
    pub reason: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost: f64,
    pub duration_ms: u64,
    pub trajectory: Option<PathBuf>,
    /// Taken from the store rather than run now.
    pub cached: bool,
    /// Where the time of an episode run now went (`None` when it was
    /// taken from the store or failed to run).
    pub breakdown: Option<EpisodeBreakdown>,
}

/// Where a computed episode's wall time went: the runtime's account of the
/// episode, then writing its trajectory and storing its result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeBreakdown {
    pub timing: EpisodeTiming,
    /// The episode as the runtime timed it (reset to score).
    pub episode: Duration,
    pub trace_write: Duration,
    pub store: Duration,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub run: EvalRunId,
    /// In (task, seed) order.
    pub records: Vec<EpisodeRecord>,
    pub tasks: Vec<TaskStats>,
    pub summary: RunSummary,
    pub wall: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("unknown task `{task}` in suite {suite}")]
    UnknownTask { suite: String, task: String },
    #[error("the plan has no seeds: ask for at least one episode per task")]
    NoSeeds,
    #[error("results store: {0}")]
    Store(#[from] StoreError),
    #[error("model for role `{role}`: {source}")]
    Model {
        role: String,
        #[source]
        source: hyperagents_llm::LlmError,
    },
    /// The evaluation stopped before its plan was done. Episodes cut short
    /// were not stored; those that finished were, so the same evaluation
    /// run again computes only the rest.
    #[error("the evaluation stopped before it was done")]
    Interrupted(#[source] Interruption),
}

impl EvalError {
    /// Why the evaluation was cut short, if it was.
    pub fn interruption(&self) -> Option<&Interruption> {
        match self {
            EvalError::Interrupted(cause) => Some(cause),
            _ => None,
        }
    }
}

/// Where episodes run, as the evolution engine sees it: a plan for a target,
/// its results stored under an evaluation run as each is known (reused when
/// stored before), trajectories under a folder. [`LocalEvaluator`] runs them
/// in this process; a distributed one hands them to workers. Implementations
/// stop early with [`EvalError::Interrupted`] as [`evaluate`] does.
#[async_trait::async_trait]
pub trait Evaluator: Send + Sync {
    async fn evaluate(
        &self,
        target: &EvalTarget,
        plan: &EvalPlan,
        run: EvalRunId,
        traces: &std::path::Path,
    ) -> Result<EvalReport, EvalError>;
}

/// Runs episodes in this process with [`evaluate`], storing into `store`.
#[derive(Clone)]
pub struct LocalEvaluator {
    /// Bound to the episodes' models; its trace folder is replaced per call.
    pub ctx: RunContext,
    pub store: ResultsStore,
}

#[async_trait::async_trait]
impl Evaluator for LocalEvaluator {
    async fn evaluate(
        &self,
        target: &EvalTarget,
        plan: &EvalPlan,
        run: EvalRunId,
        traces: &std::path::Path,
    ) -> Result<EvalReport, EvalError> {
        let mut ctx = self.ctx.clone();
        ctx.traces_dir = traces.to_path_buf();
        evaluate(&ctx, target, plan, &self.store, run, &|_| {}).await
    }
}

/// Why the run of `ctx` may start no more work, if it may not: it was asked
/// to stop, or a role's run-level budget is spent. Callers ask at their
/// safe points.
pub fn run_limit(ctx: &RunContext) -> Option<Interruption> {
    if let Some(reason) = ctx.router.ledger().stop_requested() {
        return Some(Interruption::Stop(reason));
    }
    ctx.router
        .roles()
        .find_map(|role| ctx.router.model(role).ok()?.budget_spent())
        .map(Interruption::Budget)
}

/// Runs `plan` for the target's program on its domain, storing each result in `store` as
/// part of eval run `run` the moment it is known. `on_episode` sees each
/// record as it completes (for progress bars).
///
/// The evaluation stops early with [`EvalError::Interrupted`] when the run
/// must stop: a stop request (see [`hyperagents_llm::accounting::Ledger`])
/// abandons the episodes in flight at once; a spent run-level budget lets
/// them finish or be cut at their next model call, and starts no more.
/// Either way only episodes that ended on their own are stored.
pub async fn evaluate(
    ctx: &RunContext,
    target: &EvalTarget,
    plan: &EvalPlan,
    store: &ResultsStore,
    run: EvalRunId,
    on_episode: &(dyn Fn(&EpisodeRecord) + Send + Sync),
) -> Result<EvalReport, EvalError> {
    evaluate_with(ctx, target, plan, store, run, on_episode, &InProcess).await
}

/// [`evaluate`], with the episodes the store does not hold run by `runner`
/// (in this process, or elsewhere): keys, reuse and recording stay here.
pub async fn evaluate_with(
    ctx: &RunContext,
    target: &EvalTarget,
    plan: &EvalPlan,
    store: &ResultsStore,
    run: EvalRunId,
    on_episode: &(dyn Fn(&EpisodeRecord) + Send + Sync),
    runner: &dyn EpisodeRunner,
) -> Result<EvalReport, EvalError> {
    let started = Instant::now();
    let EvalTarget {
        program,
        domain,
        suite,
    } = target;
    if plan.seeds.is_empty() {
        return Err(EvalError::NoSeeds);
    }
    let known = domain.task_ids();
    if let Some(task) = plan.tasks.iter().find(|t| !known.contains(t)) {
        return Err(EvalError::UnknownTask {
            suite: suite.name.clone(),
            task: task.clone(),
        });
    }
    if let Some(cause) = run_limit(ctx) {
        return Err(EvalError::Interrupted(cause));
    }
    let base_key = KeyTemplate::new(ctx, program, suite)?;
    let jobs: Vec<(String, u64)> = plan
        .tasks
        .iter()
        .flat_map(|t| plan.seeds.iter().map(move |s| (t.clone(), *s)))
        .collect();

    let mut pending = Vec::new();
    let mut records = Vec::with_capacity(jobs.len());
    for (task, seed) in jobs {
        let key = base_key.key(&task, seed);
        let cached = if plan.reuse_cached {
            store.lookup(&key)?.filter(|r| r.result.status.is_final())
        } else {
            None
        };
        match cached {
            Some(found) => {
                store.link_cached(run, &found.key_hash)?;
                let record = record_from_result(&task, seed, &found.result, true);
                on_episode(&record);
                records.push(record);
            }
            None => pending.push((task, seed, key)),
        }
    }

    let domain_ref: &dyn Domain = domain.as_ref();
    // Cleared once the run must stop: episodes not yet begun are skipped.
    let launching = AtomicBool::new(true);
    let launching = &launching;
    let mut results = futures::stream::iter(pending)
        .map(|(task, seed, key)| {
            let program = program.clone();
            async move {
                if !launching.load(Ordering::SeqCst) {
                    return (task, seed, key, None);
                }
                let end = runner
                    .run(ctx, program, domain_ref, &task, seed, &key)
                    .await;
                (task, seed, key, Some(end))
            }
        })
        .buffer_unordered(plan.concurrency.max(1));
    let ledger = ctx.router.ledger().clone();
    let stop_requested = ledger.stopped();
    tokio::pin!(stop_requested);
    // Why no more episodes start, once that is so.
    let mut stopping: Option<Interruption> = None;
    // Set once an episode of the plan was skipped or cut short.
    let mut unfinished = false;
    loop {
        let next = tokio::select! {
            biased;
            // Episodes in flight are abandoned: a Ctrl-C has likely killed
            // their workers, and their ends would say nothing.
            reason = &mut stop_requested => {
                stopping = Some(Interruption::Stop(reason));
                unfinished = true;
                break;
            }
            next = results.next() => next,
        };
        let Some((task, seed, key, outcome)) = next else {
            break;
        };
        let Some(outcome) = outcome else {
            unfinished = true;
            continue;
        };
        // An episode that ended after a stop request may have ended because
        // of it (its worker killed by the same Ctrl-C).
        if let Some(reason) = ledger.stop_requested() {
            stopping = Some(Interruption::Stop(reason));
            unfinished = true;
            break;
        }
        let mut breakdown = None;
        let result = match outcome {
            EpisodeEnd::Interrupted(cause) => {
                tracing::info!(%task, seed, %cause, "episode cut short; not stored");
                launching.store(false, Ordering::SeqCst);
                stopping.get_or_insert(cause);
                unfinished = true;
                continue;
            }
            EpisodeEnd::Ran {
                summary,
                trajectory,
                trace_write,
            } => {
                let s = *summary;
                breakdown = Some(EpisodeBreakdown {
                    timing: s.timing,
                    episode: Duration::from_millis(s.duration_ms),
                    trace_write,
                    store: Duration::ZERO,
                });
                EvalResult {
                    status: EvalStatus::Ok,
                    success: s.success,
                    score: s.score,
                    reason: s.reason,
                    tokens_in: s.tokens_in,
                    tokens_out: s.tokens_out,
                    cost: s.cost,
                    duration_ms: s.duration_ms,
                    trajectory: Some(trajectory),
                    finished_at_ms: now_ms(),
                }
            }
            EpisodeEnd::Failed { status, reason } => EvalResult {
                status,
                success: false,
                score: 0.0,
                reason,
                tokens_in: 0,
                tokens_out: 0,
                cost: 0.0,
                duration_ms: 0,
                trajectory: None,
                finished_at_ms: now_ms(),
            },
        };
        // A failure to run while the run is over its limits (a judge
        // refused by a spent budget, say) is the limit's doing.
        if result.status == EvalStatus::Error
            && let Some(cause) = run_limit(ctx)
        {
            launching.store(false, Ordering::SeqCst);
            stopping.get_or_insert(cause);
            unfinished = true;
            continue;
        }
        // Durable before it counts.
        let storing = Instant::now();
        store.record_in_run(run, &key, &result)?;
        if let Some(b) = breakdown.as_mut() {
            b.store = storing.elapsed();
        }
        let mut record = record_from_result(&task, seed, &result, false);
        record.breakdown = breakdown;
        on_episode(&record);
        records.push(record);
        // A safe point: once a run-level budget is spent, no episode starts.
        if stopping.is_none()
            && let Some(cause) = run_limit(ctx)
        {
            launching.store(false, Ordering::SeqCst);
            stopping = Some(cause);
        }
    }
    drop(results);
    if unfinished && let Some(cause) = stopping {
        return Err(EvalError::Interrupted(cause));
    }
    records.sort_by(|a, b| (a.task.as_str(), a.seed).cmp(&(b.task.as_str(), b.seed)));
    Ok(EvalReport {
        run,
        records,
        tasks: store.task_stats(run)?,
        summary: store.run_summary(run)?,
        wall: started.elapsed(),
    })
}

/// How one episode the store did not hold ended, as [`evaluate_with`]
/// records it.
#[derive(Debug)]
pub enum EpisodeEnd {
    /// It ran (succeeded or not); its trajectory is a file on this machine.
    Ran {
        summary: Box<hyperagents_runtime::trace::EpisodeSummary>,
        trajectory: PathBuf,
        trace_write: Duration,
    },
    /// It could not run: [`EvalStatus::Unsupported`] (the task needs what is
    /// not configured) or [`EvalStatus::Error`], with why.
    Failed { status: EvalStatus, reason: String },
    /// Cut short by the run's limits, a stop or the host: never stored.
    Interrupted(Interruption),
}

/// Where an episode the store does not hold runs. `key` names it (a remote
/// runner sends it along, so a repeated job is stored once).
#[async_trait::async_trait]
pub trait EpisodeRunner: Send + Sync {
    async fn run(
        &self,
        ctx: &RunContext,
        program: Arc<Program>,
        domain: &dyn Domain,
        task: &str,
        seed: u64,
        key: &EvalKey,
    ) -> EpisodeEnd;
}

/// Runs episodes in this process ([`run_episode`]).
pub struct InProcess;

#[async_trait::async_trait]
impl EpisodeRunner for InProcess {
    async fn run(
        &self,
        ctx: &RunContext,
        program: Arc<Program>,
        domain: &dyn Domain,
        task: &str,
        seed: u64,
        _key: &EvalKey,
    ) -> EpisodeEnd {
        episode_end(run_episode(ctx, program, domain, task, seed).await)
    }
}

/// How [`run_episode`]'s result is recorded.
pub fn episode_end(
    outcome: Result<hyperagents_runtime::EpisodeOutcome, EpisodeError>,
) -> EpisodeEnd {
    match outcome {
        Ok(outcome) => EpisodeEnd::Ran {
            summary: Box::new(outcome.summary),
            trajectory: outcome.trajectory,
            trace_write: outcome.trace_write,
        },
        Err(EpisodeError::Interrupted { cause, .. }) => EpisodeEnd::Interrupted(cause),
        Err(error) => {
            let status = match &error {
                EpisodeError::Reset {
                    source: DomainError::Unsupported(_),
                    ..
                }
                | EpisodeError::Score {
                    source: DomainError::Unsupported(_),
                    ..
                } => EvalStatus::Unsupported,
                _ => EvalStatus::Error,
            };
            if status == EvalStatus::Error {
                tracing::warn!(%error, "episode failed to run");
            }
            EpisodeEnd::Failed {
                status,
                reason: error.to_string(),
            }
        }
    }
}

/// Each role's model as evaluation keys name it (`provider/model@fingerprint`):
/// two processes whose roles give the same map compute the same episodes.
pub fn model_fingerprints(ctx: &RunContext) -> Result<BTreeMap<String, String>, EvalError> {
    let mut models = BTreeMap::new();
    for role in ctx.router.roles() {
        let model = ctx.router.model(role).map_err(|source| EvalError::Model {
            role: role.to_string(),
            source,
        })?;
        let d = model.descriptor();
        models.insert(
            role.to_string(),
            format!(
                "{}/{}@{}",
                d.provider,
                d.model,
                d.fingerprint.as_deref().unwrap_or("-")
            ),
        );
    }
    Ok(models)
}

/// The parts of an [`EvalKey`] shared by every episode of one evaluation.
struct KeyTemplate {
    program_hash: String,
    suite: SuiteIdentity,
    models: BTreeMap<String, String>,
    sampling_hash: String,
}

impl KeyTemplate {
    fn new(ctx: &RunContext, program: &Program, suite: &SuiteIdentity) -> Result<Self, EvalError> {
        let models = model_fingerprints(ctx)?;
        // Sampling inside an episode is decided by the program's own files
        // (in the program hash) and by the run's seed and caps (here).
        let mut run_settings = serde_json::json!({
            "run_seed": ctx.run_seed,
            "max_steps": ctx.caps.max_steps,
            "max_calls": ctx.caps.max_calls,
            "max_tokens": ctx.caps.max_tokens,
            "max_wall_ms": u64::try_from(ctx.caps.max_wall.as_millis()).unwrap_or(u64::MAX),
        });
        // External tools change episodes only for programs that ask for
        // some; for the others the key stays what it was without them.
        if let Some(tools) = &ctx.external_tools
            && !program.manifest().tools.mcp.is_empty()
        {
            run_settings["external_tools"] = tools.identity();
        }
        let sampling_hash = hex::encode(Sha256::digest(run_settings.to_string().as_bytes()));
        Ok(Self {
            program_hash: program.episode_hash().to_hex(),
            suite: suite.clone(),
            models,
            sampling_hash,
        })
    }

    fn key(&self, task: &str, seed: u64) -> EvalKey {
        EvalKey {
            program_hash: self.program_hash.clone(),
            suite: self.suite.name.clone(),
            suite_version: self.suite.version.clone(),
            task: task.to_string(),
            seed,
            models: self.models.clone(),
            sampling_hash: self.sampling_hash.clone(),
            host_api_version: HOST_API_VERSION,
        }
    }
}

fn record_from_result(task: &str, seed: u64, r: &EvalResult, cached: bool) -> EpisodeRecord {
    EpisodeRecord {
        task: task.to_string(),
        seed,
        status: r.status,
        success: r.success,
        score: r.score,
        reason: r.reason.clone(),
        tokens_in: r.tokens_in,
        tokens_out: r.tokens_out,
        cost: r.cost,
        duration_ms: r.duration_ms,
        trajectory: r.trajectory.clone(),
        cached,
        breakdown: None,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
