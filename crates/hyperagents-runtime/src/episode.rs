//! One episode: a program on one task. The hyperagent's script runs in the
//! sandbox; its host calls — `delegate`, `skill`, `llm`, environment
//! actions — are served here, each as a span of the trajectory, under the
//! episode's budget.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyperagents_domain::{Domain, Environment};
use hyperagents_llm::router::ModelRouter;
use hyperagents_program::{EffectiveBudget, Program, RunCaps};
use hyperagents_sandbox::{ScriptError, ScriptPool};
use tokio::sync::Mutex;

use crate::budget::EpisodeBudget;
use crate::host::{AgentHost, AgentLevel};
use crate::trace::{
    EpisodeHeader, EpisodeSummary, EpisodeTiming, Recorder, SpanKind, first_failure, ms,
    write_trajectory,
};

/// What every episode of a run shares.
#[derive(Clone)]
pub struct RunContext {
    /// Models bound to the aliases programs use (`task`, `meta`, `judge`).
    pub router: ModelRouter,
    pub pool: Arc<ScriptPool>,
    /// Budget caps no program can raise.
    pub caps: RunCaps,
    pub run_seed: u64,
    /// Where trajectories are written.
    pub traces_dir: PathBuf,
    /// Keep a screenshot after every action, beside the trajectory (in
    /// `<task>-s<seed>.shots/`), for environments that can take one.
    pub screenshots: bool,
    /// Tools from outside the environment (MCP servers) the run grants;
    /// a program sees those its manifest requests.
    pub external_tools: Option<Arc<dyn hyperagents_domain::ExternalTools>>,
}

/// The outcome of an episode.
#[derive(Debug, Clone)]
pub struct EpisodeOutcome {
    pub summary: EpisodeSummary,
    pub trajectory: PathBuf,
    /// Writing the trajectory (after the summary's `duration_ms` ended).
    pub trace_write: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EpisodeError {
    #[error("cannot start task `{task}`: {source}")]
    Reset {
        task: String,
        #[source]
        source: hyperagents_domain::DomainError,
    },
    #[error("scoring task `{task}` failed: {source}")]
    Score {
        task: String,
        #[source]
        source: hyperagents_domain::DomainError,
    },
    #[error("writing the trajectory: {0}")]
    Trace(#[from] crate::trace::TraceError),
    /// Something outside the episode cut it short: its end says nothing
    /// about the program, and no caller may keep it as a result. (An
    /// episode that ends on its own caps — steps, calls, tokens, wall time —
    /// is not interrupted: it returns an outcome with `stopped` set.)
    #[error("the episode of task `{task}` was cut short: {cause}")]
    Interrupted {
        task: String,
        #[source]
        cause: Interruption,
    },
}

/// Why work was cut short by something outside it.
#[derive(Debug, thiserror::Error)]
pub enum Interruption {
    /// A run-level budget (`[budgets.<role>]`) is spent: the role's model
    /// refused the call.
    #[error("a run-level budget is spent")]
    Budget(#[source] hyperagents_llm::LlmError),
    /// The run was asked to stop (a signal); the runtime never reports it
    /// itself, the callers that watch for it do.
    #[error("the run was asked to stop ({0})")]
    Stop(String),
    /// The host could not keep serving the episode: the sandbox's pool shut
    /// down or could not start a worker, or a worker was killed by a signal
    /// from outside (a Ctrl-C reaches the whole process group).
    #[error("the host stopped serving it: {0}")]
    Host(String),
}

tokio::task_local! {
    /// Where a host function notes that it is ending the running episode for
    /// a reason outside it: the abort that follows looks to the script like
    /// any other, so the episode learns the reason here.
    static INTERRUPTION: Arc<std::sync::Mutex<Option<Interruption>>>;
}

/// Notes that the running episode is being cut short from outside (the
/// first note wins). Outside an episode — a meta step — it does nothing.
pub(crate) fn note_interruption(cause: Interruption) {
    let _ = INTERRUPTION.try_with(|slot| {
        slot.lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(cause);
    });
}

/// A top-level script failure that is the host's doing, not the program's.
fn host_interruption(error: &ScriptError) -> Option<Interruption> {
    match error {
        ScriptError::Internal(message) => Some(Interruption::Host(message.clone())),
        ScriptError::WorkerDied { reason, .. } if killed_from_outside(reason) => {
            Some(Interruption::Host(format!("the worker died: {reason}")))
        }
        _ => None,
    }
}

/// Whether a dead worker's reason says it was killed by SIGHUP, SIGINT or
/// SIGTERM: the sandbox never sends those (it kills with SIGKILL, its
/// limits raise SIGXCPU, SIGKILL or SIGSEGV), so they came from outside.
/// The reason reads `…; killed by signal N…` (the sandbox's wording).
pub fn killed_from_outside(reason: &str) -> bool {
    // Linux's numbers for SIGHUP, SIGINT and SIGTERM.
    const OUTSIDE_SIGNALS: [u32; 3] = [1, 2, 15];
    reason
        .split("killed by signal ")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
        .any(|signal| OUTSIDE_SIGNALS.contains(&signal))
}

/// State shared by every host call of one episode.
pub(crate) struct EpisodeState {
    pub program: Arc<Program>,
    pub env: Mutex<Box<dyn Environment>>,
    pub recorder: Recorder,
    pub budget: EpisodeBudget,
    pub ctx: RunContext,
    /// Seeds of LLM calls derive from (run seed, program, task, episode seed).
    pub seed_root: hyperagents_llm::seed::SeedPath,
    pub notes: std::sync::Mutex<Vec<String>>,
    /// Program files used so far (scripts run, prompts rendered), first use first.
    pub files_used: std::sync::Mutex<Vec<String>>,
    /// Where this episode's screenshots go, when they are kept.
    pub screenshots_dir: Option<PathBuf>,
    /// Where the episode's time went so far.
    pub timing: std::sync::Mutex<EpisodeTiming>,
}

impl EpisodeState {
    /// Notes that the episode used program file `file`.
    pub(crate) fn use_file(&self, file: &str) {
        let mut used = self.files_used.lock().unwrap_or_else(|e| e.into_inner());
        if !used.iter().any(|f| f == file) {
            used.push(file.to_string());
        }
    }

    /// Updates the episode's timing.
    pub(crate) fn timing(&self, update: impl FnOnce(&mut EpisodeTiming)) {
        update(&mut self.timing.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn files_used_so_far(&self) -> Vec<String> {
        self.files_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Runs `program` on `task` of `domain` with `seed`, writes the trajectory,
/// and scores the episode on the host side.
pub async fn run_episode(
    ctx: &RunContext,
    program: Arc<Program>,
    domain: &dyn Domain,
    task: &str,
    seed: u64,
) -> Result<EpisodeOutcome, EpisodeError> {
    let started = Instant::now();
    let env = domain
        .reset(task, seed)
        .await
        .map_err(|source| EpisodeError::Reset {
            task: task.to_string(),
            source,
        })?;
    let reset_ms = ms(started.elapsed());
    let instruction = env.instruction();
    let effective: EffectiveBudget = program.budgets().cap(&ctx.caps);
    let program_hash = program.content_hash().to_hex();
    let seed_root = hyperagents_llm::seed::SeedPath::root(ctx.run_seed)
        .child("program", program.episode_hash().to_hex())
        .child("task", task)
        .index("episode", seed);
    let state = Arc::new(EpisodeState {
        program: program.clone(),
        env: Mutex::new(env),
        recorder: Recorder::new(),
        budget: EpisodeBudget::new(effective),
        ctx: ctx.clone(),
        seed_root,
        notes: std::sync::Mutex::new(Vec::new()),
        files_used: std::sync::Mutex::new(Vec::new()),
        screenshots_dir: ctx
            .screenshots
            .then(|| ctx.traces_dir.join(screenshots_dir_name(task, seed))),
        timing: std::sync::Mutex::new(EpisodeTiming {
            reset_ms,
            ..EpisodeTiming::default()
        }),
    });

    let root = state.recorder.start(
        None,
        SpanKind::Episode,
        "episode",
        serde_json::json!({"task": task, "seed": seed, "goal": instruction}),
    );
    let host = AgentHost::new(state.clone(), AgentLevel::Hyper, root);
    let noted = Arc::new(std::sync::Mutex::new(None));
    let result = INTERRUPTION
        .scope(noted.clone(), host.run_hyper(&instruction))
        .await;
    let noted = noted.lock().unwrap_or_else(|e| e.into_inner()).take();
    let interruption = match (noted, &result) {
        (Some(cause), _) => Some(cause),
        (None, Err(error)) => host_interruption(error),
        (None, Ok(_)) => None,
    };
    if let Some(cause) = interruption {
        // Neither scored nor written: a result cut short must not look like
        // one the program earned.
        return Err(EpisodeError::Interrupted {
            task: task.to_string(),
            cause,
        });
    }
    let stopped = match &result {
        Err(ScriptError::Aborted { message, .. }) => Some(message.clone()),
        Err(
            err @ (ScriptError::WorkerDied { .. }
            | ScriptError::MemoryLimit { .. }
            | ScriptError::TimeLimit { .. }),
        ) => Some(err.to_string()),
        _ => None,
    };
    // A hyperagent that returns a value without answering has answered with it.
    if let Ok(value) = &result {
        let mut env = state.env.lock().await;
        let answers = env.actions().iter().any(|a| a.name == "answer");
        if !env.is_done() && answers && !value.is_null() {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let span = state.recorder.start(
                Some(root),
                SpanKind::Action,
                "answer",
                serde_json::json!({"text": text}),
            );
            let outcome = env.act("answer", &serde_json::json!({"text": text})).await;
            state.recorder.finish(
                span,
                outcome
                    .map(|o| serde_json::json!(o.message))
                    .map_err(|e| e.to_string()),
            );
        }
    }
    state
        .recorder
        .finish(root, result.clone().map_err(|e| e.to_string()));

    let score = {
        let mut env = state.env.lock().await;
        let scoring = Instant::now();
        let score = env.score().await.map_err(|source| EpisodeError::Score {
            task: task.to_string(),
            source,
        })?;
        state.timing(|t| t.score_ms = ms(scoring.elapsed()));
        score
    };
    let spans = state.recorder.spans();
    let (tokens_in, tokens_out, cost) = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Llm)
        .fold((0, 0, 0.0), |(i, o, c), s| {
            (i + s.tokens_in, o + s.tokens_out, c + s.cost)
        });
    let summary = EpisodeSummary {
        domain: domain.name().to_string(),
        task: task.to_string(),
        seed,
        program: program_hash.clone(),
        success: score.success,
        score: score.value,
        reason: score.reason,
        failure: first_failure(&spans),
        stopped,
        steps: state.budget.steps_used(),
        calls: state.budget.calls_used(),
        llm_calls: spans.iter().filter(|s| s.kind == SpanKind::Llm).count() as u64,
        tokens_in,
        tokens_out,
        cost,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        files_used: state.files_used_so_far(),
        timing: *state.timing.lock().unwrap_or_else(|e| e.into_inner()),
    };
    let header = EpisodeHeader {
        domain: domain.name().to_string(),
        task: task.to_string(),
        seed,
        program: program_hash,
        started_at_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
            .unwrap_or(0),
    };
    let path = ctx.traces_dir.join(trajectory_file_name(task, seed));
    let writing = Instant::now();
    let trajectory = write_trajectory(&path, &header, &spans, &summary)?;
    Ok(EpisodeOutcome {
        summary,
        trajectory,
        trace_write: writing.elapsed(),
    })
}

/// `<task>-s<seed>.jsonl.gz`, with the task id made safe for file names.
pub fn trajectory_file_name(task: &str, seed: u64) -> String {
    format!("{}.jsonl.gz", episode_stem(task, seed))
}

/// `<task>-s<seed>.shots`: the episode's screenshots.
fn screenshots_dir_name(task: &str, seed: u64) -> String {
    format!("{}.shots", episode_stem(task, seed))
}

fn episode_stem(task: &str, seed: u64) -> String {
    let safe: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-s{seed}")
}

#[cfg(test)]
mod tests {
    use super::killed_from_outside;

    #[test]
    fn only_signals_the_sandbox_never_sends_are_from_outside() {
        for reason in [
            "the worker closed its output; killed by signal 2; stderr: x",
            "the worker closed its output; killed by signal 15",
            "the worker closed its output; killed by signal 1",
        ] {
            assert!(killed_from_outside(reason), "{reason}");
        }
        for reason in [
            "the worker closed its output; killed by signal 9 (SIGKILL)",
            "the worker closed its output; killed by signal 24 (SIGXCPU: CPU time limit)",
            "the worker closed its output; killed by signal 11 (SIGSEGV)",
            "the worker closed its output; exit code 2",
        ] {
            assert!(!killed_from_outside(reason), "{reason}");
        }
    }
}
