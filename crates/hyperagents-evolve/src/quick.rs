//! `quick_eval(tasks)` for meta agents, and how to tell a program's own
//! defect from a failed task. The engine gives each meta step a
//! [`TrainQuickEval`]; benchmarks of meta agents use the same one.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use hyperagents_domain::Domain;
use hyperagents_eval::{EpisodeRecord, EvalPlan, EvalTarget, Evaluator, SuiteIdentity};
use hyperagents_program::Program;
use hyperagents_runtime::improve::QuickEval;
use hyperagents_store::events::QuickEvalCall;
use hyperagents_store::{Archive, EvalStatus, EvolutionEvent, NewEvalRun};
use serde_json::json;

/// Errors that mean the program itself is broken rather than that the agent
/// failed its task: an episode ending in one of these rejects a child.
/// A prompt that names a variable its script does not pass is one too (an
/// evolved prompt's `{{ ref }}` failed every episode before its first model
/// call, and only stage 1 caught it).
/// A missing key or index, or a division by zero, is the script's own logic
/// (an edited skill read `action["arguments"]` from a dict without it, and
/// every episode crashed with "fixed 0, broke 0" in its meta agent's test);
/// `ValueError` stays out: scripts raise it on purpose for a model's bad
/// choice.
pub const CODE_DEFECTS: [&str; 13] = [
    "undefined variable",
    "NameError",
    "SyntaxError",
    "syntax error",
    "TypeError",
    "AttributeError",
    "UnboundLocalError",
    "ImportError",
    "NotImplementedError",
    "recursion limit",
    "KeyError",
    "IndexError",
    "ZeroDivisionError",
];

/// Where a quick evaluation's calls are recorded, when they are.
#[derive(Clone)]
pub struct QuickEvalEvents {
    pub run_id: String,
    pub node: String,
}

/// `quick_eval(tasks)` for one meta step: a few train tasks, one episode
/// seed each, a few calls; results stored (so later evaluations may reuse
/// them) and, with [`QuickEvalEvents`], each call recorded as a
/// `quick_eval` event with its tokens.
pub struct TrainQuickEval {
    pub evaluator: Arc<dyn Evaluator>,
    pub archive: Arc<dyn Archive>,
    pub domain: Arc<dyn Domain>,
    pub suite: SuiteIdentity,
    /// The only tasks it runs.
    pub train: BTreeSet<String>,
    pub seed: u64,
    pub concurrency: usize,
    /// Each call's trajectories go to `quick-<call>/` under this.
    pub traces: PathBuf,
    pub max_tasks: usize,
    pub max_calls: u64,
    pub events: Option<QuickEvalEvents>,
    calls: AtomicU64,
}

impl TrainQuickEval {
    #[allow(clippy::too_many_arguments)] // Every field is a setting of the call.
    pub fn new(
        evaluator: Arc<dyn Evaluator>,
        archive: Arc<dyn Archive>,
        domain: Arc<dyn Domain>,
        suite: SuiteIdentity,
        train: BTreeSet<String>,
        seed: u64,
        concurrency: usize,
        traces: PathBuf,
        max_tasks: usize,
        max_calls: u64,
    ) -> Self {
        Self {
            evaluator,
            archive,
            domain,
            suite,
            train,
            seed,
            concurrency,
            traces,
            max_tasks: max_tasks.max(1),
            max_calls,
            events: None,
            calls: AtomicU64::new(0),
        }
    }

    /// Records every call as a `quick_eval` event of `events.run_id`.
    pub fn recording(mut self, events: QuickEvalEvents) -> Self {
        self.events = Some(events);
        self
    }

    /// Calls that ran so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl QuickEval for TrainQuickEval {
    async fn quick_eval(
        &self,
        program: Program,
        tasks: Vec<String>,
    ) -> Result<serde_json::Value, String> {
        if self.calls.load(Ordering::Relaxed) >= self.max_calls {
            return Err(format!(
                "quick_eval may be called {} times per meta step",
                self.max_calls
            ));
        }
        let mut unique: Vec<String> = Vec::new();
        for task in tasks {
            if !unique.contains(&task) {
                unique.push(task);
            }
        }
        if unique.is_empty() {
            return Err("quick_eval() needs at least one train task".into());
        }
        if unique.len() > self.max_tasks {
            return Err(format!(
                "quick_eval runs at most {} tasks per call",
                self.max_tasks
            ));
        }
        // Train tasks only: a held-out task is refused like an unknown one.
        if let Some(unknown) = unique.iter().find(|t| !self.train.contains(*t)) {
            return Err(format!(
                "`{unknown}` is not a train task; quick_eval runs train tasks only"
            ));
        }
        // Only calls that run count against the limit.
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let program = Arc::new(program);
        let node = self.events.as_ref().map(|e| e.node.clone());
        let eval_run = self
            .archive
            .create_eval_run(&NewEvalRun {
                program_hash: program.content_hash().to_hex(),
                suite: self.suite.name.clone(),
                split: "train".into(),
                config: json!({
                    "evolution": self.events.as_ref().map(|e| e.run_id.clone()),
                    "node": node,
                    "stage": "quick",
                    "call": call,
                }),
            })
            .map_err(|e| e.to_string())?;
        let report = self
            .evaluator
            .evaluate(
                &EvalTarget {
                    program,
                    domain: self.domain.clone(),
                    suite: self.suite.clone(),
                },
                &EvalPlan {
                    tasks: unique.clone(),
                    seeds: vec![self.seed],
                    concurrency: self.concurrency,
                    reuse_cached: true,
                },
                eval_run,
                &self.traces.join(format!("quick-{call}")),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(events) = &self.events {
            self.archive
                .append(
                    &events.run_id,
                    &EvolutionEvent::QuickEval(QuickEvalCall {
                        node: events.node.clone(),
                        call,
                        tasks: unique.clone(),
                        eval_run: Some(report.run.0),
                        tokens: report.summary.tokens_in + report.summary.tokens_out,
                        success_rate: report.summary.success_rate(),
                    }),
                )
                .map_err(|e| e.to_string())?;
        }
        // In the order asked for.
        let mut records: Vec<&EpisodeRecord> = report.records.iter().collect();
        records.sort_by_key(|r| unique.iter().position(|t| *t == r.task));
        Ok(serde_json::Value::Array(
            records
                .into_iter()
                .map(|r| {
                    json!({
                        "task": r.task,
                        "seed": r.seed,
                        "success": r.success,
                        "score": r.score,
                        "status": r.status.as_str(),
                        "reason": clip_chars(&r.reason, 300),
                        "defect": program_defect(r),
                    })
                })
                .collect(),
        ))
    }
}

/// The program's fault in one episode, if any: the episode failed to run,
/// ended in a code defect (see [`CODE_DEFECTS`]), or killed its worker. An
/// agent that merely fails the task has none.
pub fn program_defect(record: &EpisodeRecord) -> Option<String> {
    match record.status {
        EvalStatus::Error => Some(format!(
            "the episode of `{}` failed to run: {}",
            record.task,
            clip_chars(&record.reason, 600)
        )),
        EvalStatus::Unsupported => None,
        EvalStatus::Ok => {
            let trajectory = record.trajectory.as_ref()?;
            let sidecar = PathBuf::from(format!("{}.summary.json", trajectory.display()));
            let text = std::fs::read_to_string(&sidecar).ok()?;
            let summary: hyperagents_runtime::trace::EpisodeSummary =
                serde_json::from_str(&text).ok()?;
            if let Some(failure) = summary
                .failure
                .as_ref()
                .filter(|f| CODE_DEFECTS.iter().any(|d| f.error.contains(d)))
            {
                return Some(format!(
                    "the episode of `{}` hit a code defect at {}: {}",
                    record.task,
                    failure.path,
                    clip_chars(&failure.error, 600)
                ));
            }
            summary
                .stopped
                .filter(|s| s.contains("worker died") || s.contains("memory limit"))
                .map(|stopped| format!("the episode of `{}` stopped: {stopped}", record.task))
        }
    }
}

/// At most `max` characters of `text`, marked when cut.
pub(crate) fn clip_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}
