//! The interface every benchmark family implements, and the first family:
//! JSONL task suites.
//!
//! A [`Domain`] lists tasks and starts an [`Environment`] per episode. The
//! environment gives the agent an instruction, observations and primitive
//! actions; scoring happens in [`Environment::score`], on the host side.
//! Nothing an agent can reach — observations, action results — carries the
//! expected answer: the runtime hands agents only what this interface
//! returns before `score`.

pub mod calculator;
pub mod external;
pub mod jsonl;
pub mod judge;
pub mod scorer;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use external::{ExternalTools, ToolCallError};
pub use jsonl::{JsonlSuite, JsonlTask, Split};
pub use judge::{Judge, JudgeConfig, LlmJudge, Verdict};
pub use scorer::{Scorer, ScorerSpec, ScoringContext};

/// Why a domain or environment could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown task `{0}`")]
    UnknownTask(String),
    #[error("unknown action `{name}` (available: {available})")]
    UnknownAction { name: String, available: String },
    #[error("bad arguments for action `{action}`: {message}")]
    BadArguments { action: String, message: String },
    #[error("the episode is over; no more actions are accepted")]
    EpisodeOver,
    #[error("{0}")]
    Environment(String),
    /// The task needs something this build does not implement (a WebArena
    /// `func:` helper, a site that is not configured). Reported as
    /// "unsupported", never as a score.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A scorer could not reach a verdict (the judge model failed or gave a
    /// malformed verdict, a scoring command timed out or could not start,
    /// a judge scorer has no judge). Never a failed answer: that is a
    /// [`Score`].
    #[error("scoring failed: {0}")]
    Scoring(String),
}

/// Reads a task file as text. A file that cannot be read is
/// [`DomainError::Io`]; one that is not UTF-8 is [`DomainError::Parse`] at
/// the line of its first invalid byte, like any other fault in its content.
pub fn read_task_file(path: &std::path::Path) -> Result<String, DomainError> {
    let bytes = fs_err::read(path).map_err(|source| DomainError::Io {
        path: path.display().to_string(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let line = error.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DomainError::Parse {
            file: path.display().to_string(),
            line,
            message: format!("not UTF-8 text (an invalid byte at offset {valid})"),
        }
    })
}

/// A primitive action an environment accepts, described for agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// What an action did, as the agent sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// Text for the agent (e.g. "clicked", a tool's result).
    pub message: String,
    /// True once the episode has ended (an answer was given, the page
    /// signalled completion, …).
    pub done: bool,
}

/// The host-side verdict on an episode. Never shown to agents during the
/// episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 1.0 for success, 0.0 for failure; partial credit where a scorer gives it.
    pub value: f64,
    pub success: bool,
    /// Why, in words, for people and for failure summaries (never the
    /// expected answer itself).
    pub reason: String,
}

/// One benchmark family instance (a suite file, a MiniWoB split, …).
#[async_trait]
pub trait Domain: Send + Sync {
    /// A short name for reports (`jsonl:qa.jsonl`, `miniwob`).
    fn name(&self) -> &str;
    /// The task ids, in a stable order.
    fn task_ids(&self) -> Vec<String>;
    /// Starts an episode of `task` with `seed`.
    async fn reset(&self, task: &str, seed: u64) -> Result<Box<dyn Environment>, DomainError>;
}

/// What an observation includes, as the agent asked (`observe(positions=False)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserveOptions {
    /// Each element's position and size: what spatial tasks need and other
    /// tasks pay for in tokens on every line.
    pub positions: bool,
}

impl Default for ObserveOptions {
    fn default() -> Self {
        Self { positions: true }
    }
}

/// One episode's world.
#[async_trait]
pub trait Environment: Send {
    /// The goal, as given to the agent.
    fn instruction(&self) -> String;
    /// The current observation, as text for a model.
    async fn observe(&mut self) -> Result<String, DomainError>;
    /// The current observation with what the agent asked to leave out;
    /// environments without such detail give [`Environment::observe`].
    async fn observe_with(&mut self, options: ObserveOptions) -> Result<String, DomainError> {
        let _ = options;
        self.observe().await
    }
    /// The actions this environment accepts.
    fn actions(&self) -> Vec<ActionSpec>;
    /// Performs one action.
    async fn act(
        &mut self,
        name: &str,
        args: &serde_json::Value,
    ) -> Result<ActionOutcome, DomainError>;
    /// Whether the episode has ended.
    fn is_done(&self) -> bool;
    /// Tools the agent may call besides actions (a calculator, a file
    /// reader, …); they inform, they do not change the world or end the
    /// episode.
    fn tools(&self) -> Vec<ActionSpec> {
        Vec::new()
    }
    /// Calls a tool; the result is text for the agent.
    async fn call_tool(
        &mut self,
        name: &str,
        _args: &serde_json::Value,
    ) -> Result<String, DomainError> {
        Err(DomainError::UnknownAction {
            name: name.to_string(),
            available: String::new(),
        })
    }
    /// A PNG of the current state, for environments that can take one (a
    /// browser page). The runtime keeps it with the trajectory when
    /// screenshots are enabled; agents never receive it.
    async fn screenshot(&mut self) -> Result<Option<Vec<u8>>, DomainError> {
        Ok(None)
    }
    /// Scores the episode; called by the host after the agent is done.
    async fn score(&mut self) -> Result<Score, DomainError>;
}

/// The `answer(text)` action every question-answering environment offers.
pub fn answer_action() -> ActionSpec {
    ActionSpec {
        name: "answer".into(),
        description: "Give the final answer; ends the episode.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"]
        }),
    }
}

/// Performs the `answer` action of a question-answering environment whose
/// only action it is: `{"text": …}` (or a bare value) becomes the answer,
/// once; the episode is then over.
pub fn record_answer(
    answer: &mut Option<String>,
    name: &str,
    args: &serde_json::Value,
) -> Result<ActionOutcome, DomainError> {
    if name != "answer" {
        return Err(DomainError::UnknownAction {
            name: name.to_string(),
            available: "answer".into(),
        });
    }
    if answer.is_some() {
        return Err(DomainError::EpisodeOver);
    }
    let text = match args {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(map) => match map.get("text") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => {
                return Err(DomainError::BadArguments {
                    action: "answer".into(),
                    message: "missing `text`".into(),
                });
            }
        },
        other => other.to_string(),
    };
    *answer = Some(text);
    Ok(ActionOutcome {
        message: "answer recorded".into(),
        done: true,
    })
}

/// The `calculator` tool question-answering environments offer.
pub fn calculator_tool() -> ActionSpec {
    ActionSpec {
        name: "calculator".into(),
        description: "Evaluates an arithmetic expression (+ - * / % ^ and parentheses).".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"]
        }),
    }
}

/// Runs the calculator tool on `{"expression": …}` (or a bare string).
pub fn run_calculator(args: &serde_json::Value) -> Result<String, DomainError> {
    let expression = match args {
        serde_json::Value::String(s) => s.as_str(),
        other => other
            .get("expression")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| DomainError::BadArguments {
                action: "calculator".into(),
                message: "missing `expression`".into(),
            })?,
    };
    calculator::evaluate(expression)
        .map(calculator::format_number)
        .map_err(|message| DomainError::BadArguments {
            action: "calculator".into(),
            message,
        })
}

/// FNV-1a, 64-bit: a stable hash that will not change with a Rust release
/// (split rules and samples that must never move use it).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
