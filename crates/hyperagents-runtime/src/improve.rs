//! One meta step: copy a program, run **its own** meta agent
//! (`meta/improve.py`) against the copy with the child-program tools, then
//! validate the child and record the diff.
//!
//! The meta agent's host functions:
//!
//! | function | what |
//! |---|---|
//! | `list_files(dir="")`, `read_file(path)`, `search(pattern, regex=False)` | read the child program |
//! | `replace(path, old, new)`, `insert(path, line, text)`, `write_file(path, content)`, `delete_file(path)` | edit it (only inside the child's directory; size and edit caps) |
//! | `failures()` | summaries of the failed episodes: task, seed, error path, error, reason, and `files` (the program files the episode ran through: scripts run, prompts rendered) |
//! | `successes()` | the same for the episodes that succeeded |
//! | `trajectory(task, seed=None)` | one episode's span tree as text (a failed one first) |
//! | `steps(task, seed=None)` | one episode step by step: goal, outcome, and per action what the agent saw around the element, chose, got back, and whether the page changed |
//! | `parse_edits(text)` | the whole-file and search/replace blocks of a model's reply: `{path, operation, old, new}` each, and `problems` |
//! | `check()` | validate the child now: a list of `file:line: message` errors |
//! | `llm(...)`, `prompt(**vars)` | the meta model, and the meta prompt rendered |
//! | `language_gaps()` | what the script language lacks |
//! | `log(message)`, `remember(note)` | trace notes; notes appended to `memory/notes.md` |
//! | `context()` | where the edit stands: generation, budget left, the parent's train scores, the archive, what earlier edits did, and the errors of a rejected attempt under `repair` |
//! | `quick_eval(tasks)` | runs the child as edited so far on a few **train** tasks (when the caller allows it): success and the scorer's reason per task |
//!
//! Expected answers never reach the meta agent: it sees summaries and
//! trajectories, which hold the scorer's reason but not the answer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use hyperagents_program::{
    ChildProgram, EditError, EditLimits, ParsedChange, Pattern, Program, ProgramDiff, parse_edits,
};
use hyperagents_sandbox::{HostError, HostFunctions, LANGUAGE_GAPS, ScriptSource, ScriptValue};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::SandboxChecker;
use crate::episode::RunContext;
use crate::host::{arg, as_text, call_llm, clip, llm_request, raise};
use crate::steps::episode_steps;
use crate::trace::{EpisodeSummary, Recorder, SpanKind, read_trajectory, render_tree};

/// Limits of one meta step.
#[derive(Debug, Clone)]
pub struct ImproveConfig {
    pub edit_limits: EditLimits,
    /// Host calls the meta agent may make in total.
    pub max_tool_calls: u64,
    /// At most this many failure summaries are offered.
    pub max_failures: usize,
    pub seed: u64,
    /// What the meta agent knows of its situation, returned by `context()`:
    /// the evolution engine passes the generation, generations left, the
    /// mode, the parent's train scores per task, the archive and the meta
    /// tokens spent. Never test-split results.
    pub context: Value,
    /// The program the child starts from, when it is not the parent itself:
    /// a repair round starts from the rejected child while the parent's meta
    /// agent does the work. The diff is always taken against the parent.
    pub base: Option<PathBuf>,
    /// Runs the child on a few train tasks for `quick_eval(tasks)`; without
    /// it the function raises.
    pub quick_eval: Option<QuickEvalHandle>,
}

impl Default for ImproveConfig {
    fn default() -> Self {
        Self {
            edit_limits: EditLimits::default(),
            max_tool_calls: 200,
            max_failures: 50,
            seed: 0,
            context: Value::Null,
            base: None,
            quick_eval: None,
        }
    }
}

/// Evaluates a program (the child as edited so far, already loaded and
/// validated) on a few tasks for a meta agent. The
/// implementation decides which tasks are allowed (train only) and how many
/// calls a meta step gets; a refusal is an `Err` with a message the meta
/// agent sees.
#[async_trait]
pub trait QuickEval: Send + Sync {
    async fn quick_eval(&self, program: Program, tasks: Vec<String>) -> Result<Value, String>;
}

/// A shared [`QuickEval`], so the config stays `Clone` and `Debug`.
#[derive(Clone)]
pub struct QuickEvalHandle(pub Arc<dyn QuickEval>);

impl fmt::Debug for QuickEvalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuickEvalHandle")
    }
}

/// Where meta steps run: [`improve`] in this process ([`LocalMetaSteps`]),
/// or on a worker that may hold another meta model (the distributed
/// crate's). The caller sees the same [`ImproveOutcome`] either way: the
/// child written to `out`, its diff beside it.
#[async_trait]
pub trait MetaStepper: Send + Sync {
    async fn step(
        &self,
        parent_dir: &Path,
        failures_dir: &Path,
        out: &Path,
        config: &ImproveConfig,
    ) -> Result<ImproveOutcome, ImproveError>;
}

/// Meta steps run here, with this context's meta model.
pub struct LocalMetaSteps(pub RunContext);

#[async_trait]
impl MetaStepper for LocalMetaSteps {
    async fn step(
        &self,
        parent_dir: &Path,
        failures_dir: &Path,
        out: &Path,
        config: &ImproveConfig,
    ) -> Result<ImproveOutcome, ImproveError> {
        improve(&self.0, parent_dir, failures_dir, out, config).await
    }
}

/// What a meta step produced.
#[derive(Debug)]
pub struct ImproveOutcome {
    pub child: PathBuf,
    pub diff: ProgramDiff,
    /// The unified diff, written next to the child as `<child>.diff`.
    pub diff_path: PathBuf,
    /// Validation errors of the child (`file:line: message`); empty when valid.
    pub errors: Vec<String>,
    /// The meta script's own failure, if it failed.
    pub script_error: Option<String>,
    /// What the meta script returned (the seed's: which candidate it kept
    /// and what became of each), for the engine's records.
    pub result: Option<Value>,
    /// The meta step's span tree.
    pub trace: String,
    /// Tokens the meta agent's model calls spent (in and out).
    pub meta_tokens: u64,
    /// The meta agent's model calls, their prompt tokens, and how many of
    /// those the provider reused from its cache rather than computed.
    pub meta_calls: u64,
    pub meta_prompt_tokens: u64,
    pub meta_prompt_cached: u64,
    /// What those calls cost, by the router's price table.
    pub meta_cost: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImproveError {
    #[error("the parent program {path} is invalid:\n{errors}")]
    InvalidParent { path: PathBuf, errors: String },
    #[error("preparing the child program: {0}")]
    Edit(#[from] EditError),
    #[error("reading failures from {path}: {message}")]
    Failures { path: PathBuf, message: String },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A meta step sent elsewhere came back without a child (its worker
    /// failed, or no worker finished it).
    #[error("the meta step on {place}: {message}")]
    Remote { place: String, message: String },
    /// A meta step could not be sent, or its answer not received.
    #[error("sending the meta step: {0}")]
    Unreachable(String),
}

/// Runs the parent's meta agent once and writes the child to `out`.
pub async fn improve(
    ctx: &RunContext,
    parent_dir: &Path,
    failures_dir: &Path,
    out: &Path,
    config: &ImproveConfig,
) -> Result<ImproveOutcome, ImproveError> {
    let parent = Program::load(parent_dir, &SandboxChecker).map_err(|errors| {
        ImproveError::InvalidParent {
            path: parent_dir.to_path_buf(),
            errors: errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    })?;
    let (failures, successes) = read_episodes(failures_dir, config.max_failures)?;
    let base = config.base.as_deref().unwrap_or(parent_dir);
    let child = ChildProgram::from_parent(base, out, config.edit_limits.clone())?;
    let recorder = Recorder::new();
    let root = recorder.start(
        None,
        SpanKind::Hyper,
        "meta",
        json!({"failures": failures.len()}),
    );
    let host = Arc::new(MetaHost {
        parent: Arc::new(parent),
        child: Mutex::new(child),
        failures,
        successes,
        failures_dir: failures_dir.to_path_buf(),
        ctx: ctx.clone(),
        recorder: recorder.clone(),
        span: root,
        calls: AtomicU64::new(0),
        max_calls: config.max_tool_calls,
        seed: hyperagents_llm::seed::SeedPath::root(ctx.run_seed).index("meta", config.seed),
        context: config.context.clone(),
        quick_eval: config.quick_eval.clone(),
    });
    let meta = host.parent.meta().clone();
    let code = host
        .parent
        .source(meta.script.as_str())
        .unwrap_or_default()
        .to_string();
    let source = ScriptSource {
        file: meta.script.as_str().to_string(),
        code,
    };
    let mut inputs = Map::new();
    inputs.insert("failure_count".into(), json!(host.failures.len()));
    let dyn_host: Arc<dyn HostFunctions> = host.clone();
    let result = ctx.pool.run(&source, inputs, dyn_host).await;
    recorder.finish(root, result.clone().map_err(|e| e.to_string()));

    let errors = match Program::load(out, &SandboxChecker) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    };
    let diff = host.child.lock().await.diff_against(parent_dir)?;
    let diff_path = diff_file(out);
    fs_err::write(&diff_path, diff.unified()).map_err(|source| ImproveError::Io {
        path: diff_path.clone(),
        source,
    })?;
    let spans = recorder.spans();
    let meta_tokens = spans
        .iter()
        .filter(|s| s.kind == crate::trace::SpanKind::Llm)
        .map(|s| s.tokens_in + s.tokens_out)
        .sum();
    let meta_cost = spans
        .iter()
        .filter(|s| s.kind == crate::trace::SpanKind::Llm)
        .map(|s| s.cost)
        .sum();
    let llm_spans = || {
        spans
            .iter()
            .filter(|s| s.kind == crate::trace::SpanKind::Llm)
    };
    let meta_calls = llm_spans().count() as u64;
    let meta_prompt_tokens = llm_spans().map(|s| s.tokens_in).sum();
    let meta_prompt_cached = llm_spans().map(|s| s.tokens_cached).sum();
    let trace = render_tree(
        &crate::trace::Trajectory {
            header: crate::trace::EpisodeHeader {
                domain: "meta".into(),
                task: "improve".into(),
                seed: config.seed,
                program: host.parent.content_hash().to_hex(),
                started_at_unix_ms: 0,
            },
            spans,
            summary: None,
        },
        120,
    );
    Ok(ImproveOutcome {
        child: out.to_path_buf(),
        diff,
        diff_path,
        errors,
        script_error: result.as_ref().err().map(|e| e.to_string()),
        result: result.ok(),
        trace,
        meta_tokens,
        meta_calls,
        meta_prompt_tokens,
        meta_prompt_cached,
        meta_cost,
    })
}

/// `programs/child` → `programs/child.diff`.
pub fn diff_file(child: &Path) -> PathBuf {
    let mut name = child.as_os_str().to_owned();
    name.push(".diff");
    PathBuf::from(name)
}

/// A trajectory and its summary.
type EpisodeFile = (PathBuf, EpisodeSummary);

/// The failed and the successful episodes' summaries under `dir`
/// (`*.summary.json`, any depth), at most `max` of each.
fn read_episodes(
    dir: &Path,
    max: usize,
) -> Result<(Vec<EpisodeFile>, Vec<EpisodeFile>), ImproveError> {
    let mut failed = Vec::new();
    let mut succeeded = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = fs_err::read_dir(&current).map_err(|e| ImproveError::Failures {
            path: current.clone(),
            message: e.to_string(),
        })?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".summary.json") {
                let text = fs_err::read_to_string(&path).map_err(|e| ImproveError::Failures {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                let summary: EpisodeSummary =
                    serde_json::from_str(&text).map_err(|e| ImproveError::Failures {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                let trajectory =
                    PathBuf::from(path.to_string_lossy().trim_end_matches(".summary.json"));
                if summary.success {
                    succeeded.push((trajectory, summary));
                } else {
                    failed.push((trajectory, summary));
                }
            }
        }
    }
    failed.truncate(max);
    succeeded.truncate(max);
    Ok((failed, succeeded))
}

/// What a meta agent is told of an episode.
fn episode_brief(summary: &EpisodeSummary) -> Value {
    json!({
        "task": summary.task,
        "seed": summary.seed,
        "success": summary.success,
        "reason": summary.reason,
        "stopped": summary.stopped,
        "failed_at": summary.failure.as_ref().map(|f| f.path.clone()),
        "error": summary.failure.as_ref().map(|f| clip(&f.error, 600)),
        "steps": summary.steps,
        "llm_calls": summary.llm_calls,
        "files": summary.files_used,
    })
}

struct MetaHost {
    parent: Arc<Program>,
    child: Mutex<ChildProgram>,
    failures: Vec<EpisodeFile>,
    successes: Vec<EpisodeFile>,
    failures_dir: PathBuf,
    ctx: RunContext,
    recorder: Recorder,
    span: crate::trace::SpanId,
    calls: AtomicU64,
    max_calls: u64,
    seed: hyperagents_llm::seed::SeedPath,
    context: Value,
    quick_eval: Option<QuickEvalHandle>,
}

impl MetaHost {
    /// The trajectory of `task` (and `seed`, when given): a failed episode
    /// first, else a successful one.
    fn episode_file(&self, task: &str, seed: Option<u64>) -> Result<&PathBuf, HostError> {
        self.failures
            .iter()
            .chain(&self.successes)
            .find(|(_, s)| s.task == task && seed.is_none_or(|seed| s.seed == seed))
            .map(|(path, _)| path)
            .ok_or_else(|| {
                raise(
                    "ValueError",
                    format!(
                        "no episode of task `{task}`{} under {}",
                        seed.map(|s| format!(" with seed {s}")).unwrap_or_default(),
                        self.failures_dir.display()
                    ),
                )
            })
    }

    fn text_arg(
        args: &[Value],
        kwargs: &Map<String, Value>,
        index: usize,
        name: &str,
    ) -> Result<String, HostError> {
        arg(args, kwargs, index, name)
            .map(as_text)
            .ok_or_else(|| raise("TypeError", format!("missing argument `{name}`")))
    }

    async fn edit(
        &self,
        function: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Value, HostError> {
        let path = Self::text_arg(args, kwargs, 0, "path")?;
        let mut child = self.child.lock().await;
        let result = match function {
            "replace" => child.replace(
                &path,
                &Self::text_arg(args, kwargs, 1, "old")?,
                &Self::text_arg(args, kwargs, 2, "new")?,
            ),
            "insert" => {
                let line = arg(args, kwargs, 1, "line")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| raise("TypeError", "insert() needs a line number".into()))?;
                child.insert(
                    &path,
                    usize::try_from(line).unwrap_or(usize::MAX),
                    &Self::text_arg(args, kwargs, 2, "text")?,
                )
            }
            "write_file" => child.write(&path, &Self::text_arg(args, kwargs, 1, "content")?),
            "delete_file" => child.delete(&path),
            _ => {
                return Err(raise(
                    "NameError",
                    format!("name '{function}' is not defined"),
                ));
            }
        };
        result
            .map(|()| json!("ok"))
            .map_err(|e| raise("ValueError", e.to_string()))
    }
}

#[async_trait]
impl HostFunctions for MetaHost {
    fn functions(&self) -> Vec<String> {
        [
            "list_files",
            "read_file",
            "search",
            "replace",
            "insert",
            "write_file",
            "delete_file",
            "failures",
            "successes",
            "trajectory",
            "steps",
            "parse_edits",
            "check",
            "llm",
            "prompt",
            "language_gaps",
            "log",
            "remember",
            "context",
            "quick_eval",
        ]
        .into_iter()
        .map(str::to_string)
        .collect()
    }

    async fn call(
        &self,
        function: &str,
        args: Vec<ScriptValue>,
        kwargs: Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        let used = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if used > self.max_calls {
            return Err(HostError::Abort {
                message: format!("the meta agent used all {} tool calls", self.max_calls),
            });
        }
        let span = self.recorder.start(
            Some(self.span),
            if function == "llm" {
                SpanKind::Llm
            } else {
                SpanKind::Tool
            },
            function,
            json!({"args": args, "kwargs": kwargs}),
        );
        let result = self.dispatch(function, &args, &kwargs, span).await;
        self.recorder.finish(
            span,
            result
                .as_ref()
                .map(|v| Value::String(clip(&as_text(v), 400)))
                .map_err(|e| format!("{e:?}")),
        );
        result
    }
}

impl MetaHost {
    async fn dispatch(
        &self,
        function: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
        span: crate::trace::SpanId,
    ) -> Result<Value, HostError> {
        match function {
            "list_files" => {
                let dir = arg(args, kwargs, 0, "dir").map(as_text).unwrap_or_default();
                let child = self.child.lock().await;
                let entries = child
                    .list(&dir)
                    .map_err(|e| raise("ValueError", e.to_string()))?;
                Ok(Value::Array(
                    entries
                        .iter()
                        .map(|e| json!({"path": e.path.as_str(), "bytes": e.bytes}))
                        .collect(),
                ))
            }
            "read_file" => {
                let path = Self::text_arg(args, kwargs, 0, "path")?;
                let child = self.child.lock().await;
                child
                    .read(&path)
                    .map(Value::String)
                    .map_err(|e| raise("ValueError", e.to_string()))
            }
            "search" => {
                let pattern = Self::text_arg(args, kwargs, 0, "pattern")?;
                let regex = arg(args, kwargs, 1, "regex")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let pattern = if regex {
                    Pattern::Regex(pattern)
                } else {
                    Pattern::Literal(pattern)
                };
                let child = self.child.lock().await;
                let results = child
                    .search(&pattern)
                    .map_err(|e| raise("ValueError", e.to_string()))?;
                Ok(Value::Array(
                    results.hits.iter().map(|h| json!(h.to_string())).collect(),
                ))
            }
            "replace" | "insert" | "write_file" | "delete_file" => {
                self.edit(function, args, kwargs).await
            }
            "failures" => Ok(Value::Array(
                self.failures
                    .iter()
                    .map(|(_, s)| episode_brief(s))
                    .collect(),
            )),
            "successes" => Ok(Value::Array(
                self.successes
                    .iter()
                    .map(|(_, s)| episode_brief(s))
                    .collect(),
            )),
            "trajectory" => {
                let task = Self::text_arg(args, kwargs, 0, "task")?;
                let seed = arg(args, kwargs, 1, "seed").and_then(Value::as_u64);
                let path = self.episode_file(&task, seed)?;
                let trajectory =
                    read_trajectory(path).map_err(|e| raise("ValueError", e.to_string()))?;
                Ok(Value::String(clip(&render_tree(&trajectory, 200), 12_000)))
            }
            "steps" => {
                let task = Self::text_arg(args, kwargs, 0, "task")?;
                let seed = arg(args, kwargs, 1, "seed").and_then(Value::as_u64);
                let path = self.episode_file(&task, seed)?;
                let trajectory =
                    read_trajectory(path).map_err(|e| raise("ValueError", e.to_string()))?;
                serde_json::to_value(episode_steps(&trajectory))
                    .map_err(|e| raise("RuntimeError", e.to_string()))
            }
            "parse_edits" => {
                let text = Self::text_arg(args, kwargs, 0, "text")?;
                let reply = parse_edits(&text);
                let edits: Vec<Value> = reply
                    .edits
                    .iter()
                    .map(|edit| match &edit.change {
                        ParsedChange::Write { content } => json!({
                            "path": edit.path,
                            "operation": "write",
                            "old": "",
                            "new": content,
                        }),
                        ParsedChange::Replace { old, new } => json!({
                            "path": edit.path,
                            "operation": "replace",
                            "old": old,
                            "new": new,
                        }),
                    })
                    .collect();
                Ok(json!({
                    "edits": edits,
                    "problems": reply.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }))
            }
            "check" => {
                let root = self.child.lock().await.root().to_path_buf();
                Ok(match Program::load(&root, &SandboxChecker) {
                    Ok(_) => Value::Array(Vec::new()),
                    Err(errors) => {
                        Value::Array(errors.iter().map(|e| json!(e.to_string())).collect())
                    }
                })
            }
            "llm" => {
                let call = self.calls.load(Ordering::Relaxed);
                let request =
                    llm_request(args, kwargs, self.seed.index("call", call).seed(), u64::MAX)?;
                let model = self
                    .ctx
                    .router
                    .model(self.parent.meta().model.as_str())
                    .map_err(|e| raise("RuntimeError", e.to_string()))?;
                let reply = call_llm(model.as_ref(), self.ctx.router.prices(), request).await?;
                self.recorder.charge(span, reply.usage, reply.cost);
                reply.value
            }
            "prompt" => {
                let mut vars = kwargs.clone();
                vars.entry("language_gaps".to_string())
                    .or_insert_with(|| json!(LANGUAGE_GAPS));
                self.parent
                    .prompts()
                    .render(self.parent.meta().prompt.as_str(), &vars)
                    .map(Value::String)
                    .map_err(|e| raise("KeyError", e.to_string()))
            }
            "language_gaps" => Ok(json!(LANGUAGE_GAPS)),
            "context" => Ok(self.context.clone()),
            "quick_eval" => {
                let Some(handle) = &self.quick_eval else {
                    return Err(raise(
                        "RuntimeError",
                        "quick_eval is not available in this meta step".into(),
                    ));
                };
                let tasks: Vec<String> = match arg(args, kwargs, 0, "tasks") {
                    Some(Value::Array(items)) => items.iter().map(as_text).collect(),
                    Some(Value::String(one)) => vec![one.clone()],
                    _ => {
                        return Err(raise(
                            "TypeError",
                            "quick_eval() needs a list of task names".into(),
                        ));
                    }
                };
                // The child as edited so far must load before it can run.
                let root = self.child.lock().await.root().to_path_buf();
                let program = Program::load(&root, &SandboxChecker).map_err(|errors| {
                    raise(
                        "ValueError",
                        format!(
                            "the child does not load yet: {}",
                            errors
                                .iter()
                                .map(|e| e.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    )
                })?;
                handle
                    .0
                    .quick_eval(program, tasks)
                    .await
                    .map_err(|message| raise("ValueError", message))
            }
            "log" => {
                let message = args.iter().map(as_text).collect::<Vec<_>>().join(" ");
                self.recorder
                    .note(Some(self.span), SpanKind::Log, "log", message)
                    .map_err(|limit| raise("RuntimeError", limit.to_string()))?;
                Ok(Value::Null)
            }
            "remember" => {
                let note = Self::text_arg(args, kwargs, 0, "note")?;
                self.recorder
                    .note(Some(self.span), SpanKind::Memory, "remember", note.clone())
                    .map_err(|limit| raise("RuntimeError", limit.to_string()))?;
                let mut child = self.child.lock().await;
                let existing = child.read("memory/notes.md").unwrap_or_default();
                child
                    .write(
                        "memory/notes.md",
                        &format!("{existing}- {}\n", note.replace('\n', " ")),
                    )
                    .map(|()| Value::Null)
                    .map_err(|e| raise("ValueError", e.to_string()))
            }
            other => Err(raise("NameError", format!("name '{other}' is not defined"))),
        }
    }
}
