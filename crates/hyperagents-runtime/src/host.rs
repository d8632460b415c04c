//! The host functions agent scripts call — the only way out of the
//! sandbox. One [`AgentHost`] serves one script run (the hyperagent, a task
//! agent, or a skill) and records each call as a span under that agent's
//! span.
//!
//! | function | who | what |
//! |---|---|---|
//! | `llm(prompt, system=None, schema=None, max_tokens=None, temperature=None, stop=None)` | all | the agent's model; with `schema`, a parsed JSON value |
//! | `prompt(**vars)` | all | the agent's prompt file rendered with `vars` |
//! | `delegate(agent, goal, context=None)` | hyper, task agents with sub-agents | runs a task agent's policy; returns its result |
//! | `skill(name, args=None)` | task agents | runs a skill (script, or prompt → model); one call |
//! | `observe(positions=True)`, `actions()`, `act(name, args=None)`, `answer(text)`, `done()` | all | the environment (`positions=False`: no element geometry); `act` and `answer` are one step each |
//! | `tools()`, `tool(name, args=None)` | all | the environment's tools (a calculator, …); one step |
//! | `agents()`, `skills()` | hyper, task | what this agent may call, with descriptions |
//! | `log(message)`, `remember(note)`, `budget()` | all | trace notes, memory notes, what is left |
//! | `recall(query, k=1, path="demos/exemplars.jsonl")` | all | the entries of a JSONL file of the program most similar to `query` (`[]` when the file does not exist) |
//! | `read_file(path)` | all | the text of one of the program's files outside `meta/` and `memory/` (`""` when it does not exist): rules, notes, data an agent keeps beside its prompt |
//!
//! A *step* is an environment action; `delegate`, `skill` and `llm` are
//! *calls*, capped separately (see [`crate::budget`]). A task agent's own
//! `max_steps` counts the actions taken under it, its skills' included.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use hyperagents_domain::{Environment, ObserveOptions};
use hyperagents_llm::{ChatModel, ChatRequest, LlmError, Message, Role, Sampling};
use hyperagents_program::{ModelAlias, RelPath, is_episode_file};
use hyperagents_sandbox::{HostError, HostFunctions, ScriptError, ScriptSource, ScriptValue};
use serde_json::{Map, Value, json};

use crate::episode::EpisodeState;
use crate::trace::{SpanId, SpanKind, ms};

/// Which part of the hierarchy a script belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentLevel {
    Hyper,
    Task(String),
    Skill(String),
}

/// Delegation deeper than this is refused even without a cycle.
const MAX_DEPTH: usize = 8;

/// Default output tokens for `llm()` when the script does not say.
const DEFAULT_MAX_TOKENS: u64 = 256;

pub(crate) struct AgentHost {
    state: Arc<EpisodeState>,
    level: AgentLevel,
    /// The span of this agent's script run.
    span: SpanId,
    depth: usize,
    llm_calls: AtomicU64,
    /// The action counters of the task agents this run is under (outermost
    /// first): an action counts against each of them.
    action_caps: Vec<Arc<AgentActions>>,
}

/// A task agent's own cap on the actions taken under it.
struct AgentActions {
    agent: String,
    cap: u32,
    used: AtomicU64,
}

impl AgentHost {
    pub(crate) fn new(state: Arc<EpisodeState>, level: AgentLevel, parent: SpanId) -> Self {
        Self::at_depth(state, level, parent, 0, Vec::new())
    }

    fn at_depth(
        state: Arc<EpisodeState>,
        level: AgentLevel,
        span: SpanId,
        depth: usize,
        action_caps: Vec<Arc<AgentActions>>,
    ) -> Self {
        Self {
            state,
            level,
            span,
            depth,
            llm_calls: AtomicU64::new(0),
            action_caps,
        }
    }

    /// Runs the hyperagent's script with the goal; returns its result.
    pub(crate) async fn run_hyper(self, goal: &str) -> Result<Value, ScriptError> {
        let program = self.state.program.clone();
        let hyper = program.hyper();
        let span = self.state.recorder.start(
            Some(self.span),
            SpanKind::Hyper,
            "hyper",
            json!({"goal": goal}),
        );
        let host = Arc::new(Self::at_depth(
            self.state.clone(),
            AgentLevel::Hyper,
            span,
            0,
            Vec::new(),
        ));
        let mut inputs = Map::new();
        inputs.insert("goal".into(), json!(goal));
        let result = host.run_script(hyper.script.as_str(), inputs).await;
        self.state
            .recorder
            .finish(span, result.clone().map_err(|e| e.to_string()));
        result
    }

    async fn run_script(
        self: &Arc<Self>,
        file: &str,
        inputs: Map<String, Value>,
    ) -> Result<Value, ScriptError> {
        let code = self
            .state
            .program
            .source(file)
            .ok_or_else(|| ScriptError::Internal(format!("{file}: not in the program")))?
            .to_string();
        self.state.use_file(file);
        let source = ScriptSource {
            file: file.to_string(),
            code,
        };
        let host: Arc<dyn HostFunctions> = self.clone();
        self.state.ctx.pool.run(&source, inputs, host).await
    }

    fn alias(&self) -> ModelAlias {
        let program = &self.state.program;
        match &self.level {
            AgentLevel::Hyper => program.hyper().model,
            AgentLevel::Task(name) => program
                .agent(name)
                .map(|a| a.model)
                .unwrap_or(ModelAlias::Task),
            AgentLevel::Skill(name) => program
                .skill(name)
                .map(|s| s.model)
                .unwrap_or(ModelAlias::Task),
        }
    }

    fn prompt_file(&self) -> Option<String> {
        let program = &self.state.program;
        match &self.level {
            AgentLevel::Hyper => Some(program.hyper().prompt.as_str().to_string()),
            AgentLevel::Task(name) => program.agent(name).map(|a| a.prompt.as_str().to_string()),
            AgentLevel::Skill(name) => program
                .skill(name)
                .and_then(|s| s.prompt.as_ref())
                .map(|p| p.as_str().to_string()),
        }
    }

    fn delegates(&self) -> Vec<String> {
        let program = &self.state.program;
        match &self.level {
            AgentLevel::Hyper => program.hyper().agents.clone(),
            AgentLevel::Task(name) => program
                .agent(name)
                .map(|a| a.agents.clone())
                .unwrap_or_default(),
            AgentLevel::Skill(_) => Vec::new(),
        }
    }

    fn skill_names(&self) -> Vec<String> {
        match &self.level {
            AgentLevel::Task(name) => self
                .state
                .program
                .agent(name)
                .map(|a| a.skills.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Counts an environment action against the episode and against the
    /// caps of the task agents it is taken under.
    fn take_step(&self) -> Result<(), HostError> {
        if let Some(spent) = self
            .action_caps
            .iter()
            .find(|c| c.used.load(Ordering::Relaxed) >= u64::from(c.cap))
        {
            return Err(raise(
                "RuntimeError",
                format!(
                    "task agent `{}` used all {} of its steps",
                    spent.agent, spent.cap
                ),
            ));
        }
        self.state.budget.take_step().map_err(abort)?;
        for counter in &self.action_caps {
            counter.used.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The external tools the program's manifest asks for.
    fn requested_tools(&self) -> &[String] {
        &self.state.program.manifest().tools.mcp
    }

    /// Counts a `skill`, `delegate` or `llm` call against the episode.
    fn take_call(&self) -> Result<(), HostError> {
        self.state.budget.take_call().map(|_| ()).map_err(abort)
    }

    /// Runs `work` as a span under this agent, recording its result.
    async fn traced<F, Fut>(
        &self,
        kind: SpanKind,
        name: &str,
        input: Value,
        work: F,
    ) -> Result<Value, HostError>
    where
        F: FnOnce(SpanId) -> Fut,
        Fut: std::future::Future<Output = Result<Value, HostError>>,
    {
        let recorder = &self.state.recorder;
        let span = recorder.start(Some(self.span), kind, name, input);
        let result = work(span).await;
        recorder.finish(span, result.clone().map_err(|e| host_error_text(&e)));
        result
    }

    async fn llm(&self, args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, HostError> {
        self.take_call()?;
        let call = self.llm_calls.fetch_add(1, Ordering::Relaxed);
        let seed = self
            .state
            .seed_root
            .child("span", self.state.recorder.path(self.span))
            .index("call", call)
            .seed();
        let request = llm_request(args, kwargs, seed, self.state.budget.token_allowance())?;
        let alias = self.alias();
        let model = self
            .state
            .ctx
            .router
            .model(alias.as_str())
            .map_err(|e| raise("RuntimeError", e.to_string()))?;
        let input = json!({"messages": request.chat.messages, "seed": seed, "max_tokens": request.chat.sampling.max_tokens, "model": alias.as_str()});
        self.traced(SpanKind::Llm, "llm", input, |span| async move {
            let asked = Instant::now();
            let reply = call_llm(model.as_ref(), self.state.ctx.router.prices(), request).await?;
            let usage = reply.usage;
            self.state
                .timing(|t| t.add_llm(asked.elapsed(), usage, reply.compute));
            self.state.budget.add_tokens(usage.total());
            self.state.recorder.charge(span, usage, reply.cost);
            reply.value
        })
        .await
    }

    fn render_prompt(
        &self,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Value, HostError> {
        let file = self
            .prompt_file()
            .ok_or_else(|| raise("ValueError", "this agent has no prompt file".into()))?;
        let mut vars = kwargs.clone();
        if let Some(Value::Object(extra)) = args.first() {
            for (k, v) in extra {
                vars.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let rendered = self
            .state
            .program
            .prompts()
            .render(&file, &vars)
            .map_err(|e| raise("KeyError", e.to_string()))?;
        self.state.use_file(&file);
        Ok(Value::String(rendered))
    }

    async fn delegate(
        &self,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Value, HostError> {
        let agent = arg(args, kwargs, 0, "agent")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(agent) = agent else {
            return Err(raise("TypeError", "delegate() needs an agent name".into()));
        };
        let allowed = self.delegates();
        if !allowed.contains(&agent) {
            return Err(raise(
                "ValueError",
                format!(
                    "cannot delegate to `{agent}`; available: {}",
                    allowed.join(", ")
                ),
            ));
        }
        if self.depth + 1 >= MAX_DEPTH {
            // RuntimeError, not RecursionError: the sandbox reports an uncaught
            // RecursionError as the interpreter's own stack limit, losing this message.
            return Err(raise(
                "RuntimeError",
                format!(
                    "delegation deeper than {MAX_DEPTH} levels (the limit on agents delegating to agents)"
                ),
            ));
        }
        self.take_call()?;
        let goal = arg(args, kwargs, 1, "goal").cloned().unwrap_or(Value::Null);
        let context = arg(args, kwargs, 2, "context")
            .cloned()
            .unwrap_or(Value::Null);
        let Some(spec) = self.state.program.agent(&agent).cloned() else {
            return Err(raise("ValueError", format!("no task agent `{agent}`")));
        };
        let recorder = &self.state.recorder;
        let span = recorder.start(
            Some(self.span),
            SpanKind::Task,
            &agent,
            json!({"goal": goal, "context": context}),
        );
        let mut action_caps = self.action_caps.clone();
        if let Some(cap) = spec.max_steps {
            action_caps.push(Arc::new(AgentActions {
                agent: agent.clone(),
                cap,
                used: AtomicU64::new(0),
            }));
        }
        let child = Arc::new(Self::at_depth(
            self.state.clone(),
            AgentLevel::Task(agent.clone()),
            span,
            self.depth + 1,
            action_caps,
        ));
        let mut inputs = Map::new();
        inputs.insert("goal".into(), goal);
        inputs.insert("context".into(), context);
        let result = Box::pin(child.run_script(spec.script.as_str(), inputs)).await;
        recorder.finish(span, result.clone().map_err(|e| e.to_string()));
        result.map_err(|e| script_failure(&format!("task agent `{agent}`"), e))
    }

    async fn skill(&self, args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, HostError> {
        let name = arg(args, kwargs, 0, "name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(name) = name else {
            return Err(raise("TypeError", "skill() needs a skill name".into()));
        };
        let allowed = self.skill_names();
        if !allowed.contains(&name) {
            return Err(raise(
                "ValueError",
                format!("unknown skill `{name}`; available: {}", allowed.join(", ")),
            ));
        }
        let Some(spec) = self.state.program.skill(&name).cloned() else {
            return Err(raise("ValueError", format!("no skill `{name}`")));
        };
        self.take_call()?;
        let skill_args = arg(args, kwargs, 1, "args")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let recorder = &self.state.recorder;
        let span = recorder.start(Some(self.span), SpanKind::Skill, &name, skill_args.clone());
        let child = Arc::new(Self::at_depth(
            self.state.clone(),
            AgentLevel::Skill(name.clone()),
            span,
            self.depth + 1,
            self.action_caps.clone(),
        ));
        let result = match &spec.script {
            Some(script) => {
                let mut inputs = Map::new();
                inputs.insert("args".into(), skill_args);
                Box::pin(child.run_script(script.as_str(), inputs))
                    .await
                    .map_err(|e| script_failure(&format!("skill `{name}`"), e))
            }
            // A prompt-only skill: render its prompt with the arguments and ask its model.
            None => {
                let vars = match skill_args {
                    Value::Object(map) => map,
                    other => {
                        let mut map = Map::new();
                        map.insert("input".into(), other);
                        map
                    }
                };
                match child.render_prompt(&[], &vars) {
                    Ok(prompt) => Box::pin(child.llm(&[prompt], &Map::new())).await,
                    Err(e) => Err(e),
                }
            }
        };
        recorder.finish(span, result.clone().map_err(|e| host_error_text(&e)));
        result
    }

    async fn act(&self, name: String, action_args: Value) -> Result<Value, HostError> {
        self.take_step()?;
        let input = json!({"action": name, "args": action_args});
        self.traced(SpanKind::Action, &name.clone(), input, |span| async move {
            let mut env = self.state.env.lock().await;
            let started = Instant::now();
            let outcome = env.act(&name, &action_args).await;
            self.state.timing(|t| t.act_ms += ms(started.elapsed()));
            self.keep_screenshot(env.as_mut(), span).await;
            let outcome = outcome.map_err(|e| raise("ValueError", e.to_string()))?;
            Ok(json!({"message": outcome.message, "done": outcome.done}))
        })
        .await
    }

    /// `recall(query, k=1, path=…)`: see [`crate::recall`]. A file the
    /// program does not have recalls nothing; one it has is recorded as used.
    fn recall(&self, args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, HostError> {
        let query = arg(args, kwargs, 0, "query")
            .map(as_text)
            .ok_or_else(|| raise("TypeError", "recall() needs a query".into()))?;
        let k = match arg(args, kwargs, 1, "k") {
            None => 1,
            Some(value) => value
                .as_u64()
                .and_then(|k| usize::try_from(k).ok())
                .ok_or_else(|| raise("TypeError", "recall(k=…) takes a whole number".into()))?,
        };
        let path = arg(args, kwargs, 2, "path")
            .map(as_text)
            .unwrap_or_else(|| crate::recall::DEFAULT_RECALL_FILE.to_string());
        let Some(text) = self.state.program.source(&path) else {
            return Ok(Value::Array(Vec::new()));
        };
        self.state.use_file(&path);
        let recalled = crate::recall::recall(&path, text, &query, k)
            .map_err(|e| raise("ValueError", e.to_string()))?;
        let span = self.state.recorder.start(
            Some(self.span),
            SpanKind::Memory,
            "recall",
            json!({"query": clip(&query, 200), "k": k, "path": path}),
        );
        self.state.recorder.finish(span, Ok(json!(recalled.len())));
        Ok(Value::Array(recalled))
    }

    /// `read_file(path)`: a program file's text. Only episode files: what
    /// `meta/` and `memory/` hold is outside the episode hash, so an episode
    /// that read it could not be keyed by what it ran.
    fn read_program_file(
        &self,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Value, HostError> {
        let path = arg(args, kwargs, 0, "path")
            .map(as_text)
            .ok_or_else(|| raise("TypeError", "read_file() needs a path".into()))?;
        let rel = RelPath::new(&path).map_err(|e| raise("ValueError", e.to_string()))?;
        if !is_episode_file(&rel) {
            return Err(raise(
                "PermissionError",
                format!("{path}: agents read only files outside meta/ and memory/"),
            ));
        }
        let Some(bytes) = self.state.program.file_bytes(rel.as_str()) else {
            return Ok(Value::String(String::new()));
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| raise("ValueError", format!("{path} is not UTF-8 text")))?;
        self.state.use_file(rel.as_str());
        Ok(Value::String(text.to_string()))
    }

    /// Writes a screenshot of the state after action `span` beside the
    /// trajectory, as a child span; agents never see it. A screenshot that
    /// cannot be taken or written is logged, not fatal: it is evidence, not
    /// part of the episode.
    async fn keep_screenshot(&self, env: &mut dyn Environment, span: SpanId) {
        let Some(dir) = &self.state.screenshots_dir else {
            return;
        };
        let png = match env.screenshot().await {
            Ok(Some(png)) => png,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "screenshot failed");
                return;
            }
        };
        let path = dir.join(format!("step-{span:04}.png"));
        if let Err(error) = fs_err::create_dir_all(dir).and_then(|()| fs_err::write(&path, &png)) {
            // Not a span error: a lost screenshot is no failure of the agent.
            tracing::warn!(%error, "keeping a screenshot failed");
            return;
        }
        let recorder = &self.state.recorder;
        let shot = recorder.start(Some(span), SpanKind::Screenshot, "screenshot", Value::Null);
        recorder.finish(shot, Ok(json!(path.display().to_string())));
    }
}

#[async_trait]
impl HostFunctions for AgentHost {
    fn functions(&self) -> Vec<String> {
        let mut names: Vec<&str> = vec![
            "llm",
            "prompt",
            "observe",
            "actions",
            "act",
            "answer",
            "done",
            "tools",
            "tool",
            "log",
            "remember",
            "budget",
            "recall",
            "read_file",
        ];
        match self.level {
            AgentLevel::Hyper => names.extend(["delegate", "agents"]),
            AgentLevel::Task(_) => names.extend(["delegate", "agents", "skill", "skills"]),
            AgentLevel::Skill(_) => {}
        }
        names.into_iter().map(str::to_string).collect()
    }

    async fn call(
        &self,
        function: &str,
        args: Vec<ScriptValue>,
        kwargs: Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        // Every call, at every level, first checks the episode's wall time.
        self.state.budget.check().map_err(abort)?;
        match function {
            "llm" => self.llm(&args, &kwargs).await,
            "prompt" => self.render_prompt(&args, &kwargs),
            "delegate" => self.delegate(&args, &kwargs).await,
            "skill" => self.skill(&args, &kwargs).await,
            "observe" => {
                let options = observe_options(&kwargs)?;
                let input = if kwargs.is_empty() {
                    Value::Null
                } else {
                    Value::Object(kwargs.clone())
                };
                self.traced(SpanKind::Observe, "observe", input, |_| async {
                    let mut env = self.state.env.lock().await;
                    let started = Instant::now();
                    let observed = env.observe_with(options).await;
                    self.state.timing(|t| t.observe_ms += ms(started.elapsed()));
                    observed
                        .map(Value::String)
                        .map_err(|e| raise("RuntimeError", e.to_string()))
                })
                .await
            }
            "actions" => {
                let env = self.state.env.lock().await;
                Ok(Value::Array(
                    env.actions()
                        .into_iter()
                        .map(|a| json!({"name": a.name, "description": a.description, "parameters": a.parameters}))
                        .collect(),
                ))
            }
            "act" => {
                let name = arg(&args, &kwargs, 0, "name")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let Some(name) = name else {
                    return Err(raise("TypeError", "act() needs an action name".into()));
                };
                let action_args = arg(&args, &kwargs, 1, "args")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                self.act(name, action_args).await
            }
            "answer" => {
                let text = arg(&args, &kwargs, 0, "text")
                    .map(as_text)
                    .unwrap_or_default();
                self.act("answer".into(), json!({"text": text})).await
            }
            "done" => Ok(Value::Bool(self.state.env.lock().await.is_done())),
            "tools" => {
                let mut tools = self.state.env.lock().await.tools();
                if let Some(external) = &self.state.ctx.external_tools {
                    tools.extend(external.list(self.requested_tools()).await);
                }
                Ok(Value::Array(
                    tools
                        .into_iter()
                        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
                        .collect(),
                ))
            }
            "tool" => {
                let name = arg(&args, &kwargs, 0, "name")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let Some(name) = name else {
                    return Err(raise("TypeError", "tool() needs a tool name".into()));
                };
                let tool_args = arg(&args, &kwargs, 1, "args")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                self.take_step()?;
                self.traced(
                    SpanKind::Tool,
                    &name.clone(),
                    tool_args.clone(),
                    |_| async move {
                        // Environment tools have plain names; external ones
                        // are `server/tool`, so the two never collide.
                        if name.contains('/') {
                            let Some(external) = &self.state.ctx.external_tools else {
                                return Err(raise(
                                    "ValueError",
                                    format!("tool `{name}`: this run declares no MCP servers"),
                                ));
                            };
                            let started = Instant::now();
                            let result = external
                                .call(self.requested_tools(), &name, &tool_args)
                                .await;
                            self.state.timing(|t| t.act_ms += ms(started.elapsed()));
                            return result
                                .map(Value::String)
                                .map_err(|e| raise("ValueError", e.to_string()));
                        }
                        let mut env = self.state.env.lock().await;
                        let started = Instant::now();
                        let result = env.call_tool(&name, &tool_args).await;
                        self.state.timing(|t| t.act_ms += ms(started.elapsed()));
                        result
                            .map(Value::String)
                            .map_err(|e| raise("ValueError", e.to_string()))
                    },
                )
                .await
            }
            "agents" => {
                let program = &self.state.program;
                Ok(Value::Array(
                    self.delegates()
                        .iter()
                        .filter_map(|n| program.agent(n))
                        .map(|a| json!({"name": a.name, "description": a.description}))
                        .collect(),
                ))
            }
            "skills" => {
                let program = &self.state.program;
                Ok(Value::Array(
                    self.skill_names()
                        .iter()
                        .filter_map(|n| program.skill(n))
                        .map(|s| json!({"name": s.name, "description": s.description}))
                        .collect(),
                ))
            }
            "log" => {
                let message = args.iter().map(as_text).collect::<Vec<_>>().join(" ");
                self.state
                    .recorder
                    .note(Some(self.span), SpanKind::Log, "log", message)
                    .map_err(|limit| raise("RuntimeError", limit.to_string()))?;
                Ok(Value::Null)
            }
            "remember" => {
                let note = arg(&args, &kwargs, 0, "note")
                    .map(as_text)
                    .unwrap_or_default();
                self.state
                    .recorder
                    .note(Some(self.span), SpanKind::Memory, "remember", note.clone())
                    .map_err(|limit| raise("RuntimeError", limit.to_string()))?;
                self.state
                    .notes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(note);
                Ok(Value::Null)
            }
            "recall" => self.recall(&args, &kwargs),
            "read_file" => self.read_program_file(&args, &kwargs),
            "budget" => {
                let left = self.state.budget.remaining();
                // An agent under its own cap sees the tighter of the two.
                let steps = self
                    .action_caps
                    .iter()
                    .map(|c| u64::from(c.cap).saturating_sub(c.used.load(Ordering::Relaxed)))
                    .fold(left.steps, u64::min);
                Ok(json!({
                    "steps_left": steps,
                    "calls_left": left.calls,
                    "tokens_left": left.tokens,
                    "seconds_left": left.wall.as_secs_f64(),
                }))
            }
            other => Err(raise("NameError", format!("name '{other}' is not defined"))),
        }
    }
}

/// `observe(positions=True)`: what the agent asked the observation to hold.
fn observe_options(kwargs: &Map<String, Value>) -> Result<ObserveOptions, HostError> {
    let mut options = ObserveOptions::default();
    for (key, value) in kwargs {
        match (key.as_str(), value) {
            ("positions", Value::Bool(on)) => options.positions = *on,
            ("positions", other) => {
                return Err(raise(
                    "TypeError",
                    format!("observe(positions=…) takes True or False, not {other}"),
                ));
            }
            (other, _) => {
                return Err(raise(
                    "TypeError",
                    format!("observe() got an unexpected keyword argument '{other}'"),
                ));
            }
        }
    }
    Ok(options)
}

/// An `llm()` call's request, and whether its answer must be parsed as JSON.
pub(crate) struct LlmCall {
    pub chat: ChatRequest,
    pub json: bool,
}

/// Builds the request for `llm(prompt, system=None, schema=None,
/// max_tokens=None, temperature=None, stop=None)`; `prompt` is text or a
/// list of `{"role", "content"}` messages. Output tokens are capped by
/// `allowance`.
pub(crate) fn llm_request(
    args: &[Value],
    kwargs: &Map<String, Value>,
    seed: u64,
    allowance: u64,
) -> Result<LlmCall, HostError> {
    let prompt = arg(args, kwargs, 0, "prompt")
        .ok_or_else(|| raise("TypeError", "llm() needs a prompt".into()))?;
    let mut messages = Vec::new();
    if let Some(system) = kwargs.get("system").and_then(Value::as_str) {
        messages.push(Message::system(system));
    }
    match prompt {
        Value::Array(items) => {
            for item in items {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("system") => Role::System,
                    Some("assistant") => Role::Assistant,
                    _ => Role::User,
                };
                let content = item.get("content").map(as_text).unwrap_or_default();
                messages.push(Message::new(role, content));
            }
        }
        other => messages.push(Message::user(as_text(other))),
    }
    let max_tokens = kwargs
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .min(allowance.max(1));
    let mut chat = ChatRequest::new(messages).with_sampling(Sampling {
        temperature: kwargs
            .get("temperature")
            .and_then(Value::as_f64)
            .map(|t| t as f32)
            .unwrap_or(0.7),
        top_p: 0.95,
        seed,
        max_tokens: u32::try_from(max_tokens).unwrap_or(u32::MAX),
        stop: kwargs
            .get("stop")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    });
    let schema = kwargs.get("schema").filter(|s| !s.is_null()).cloned();
    let json = schema.is_some();
    if let Some(schema) = schema {
        chat = chat.with_json_schema("output", schema);
    }
    Ok(LlmCall { chat, json })
}

/// Sends an `llm()` call: the text (or parsed JSON), its usage and cost.
/// A spent budget aborts the script; other model errors are catchable.
/// A model's reply: the value for the script (or why the output was
/// unusable) and what the call cost either way.
pub(crate) struct LlmReply {
    pub value: Result<Value, HostError>,
    pub usage: hyperagents_llm::Usage,
    pub cost: f64,
    /// Where a local provider's time went.
    pub compute: Option<hyperagents_llm::ComputeTiming>,
}

/// Calls the model. A reply whose text is not the JSON asked for still
/// returns its usage: the tokens were spent and must be charged.
pub(crate) async fn call_llm(
    model: &dyn ChatModel,
    prices: &hyperagents_llm::accounting::PriceTable,
    call: LlmCall,
) -> Result<LlmReply, HostError> {
    let response = model.chat(&call.chat).await.map_err(|err| match err {
        // The run's budget, not the episode's: the episode is interrupted,
        // and its caller must not keep it as a result.
        LlmError::BudgetExhausted { .. } => {
            let message = err.to_string();
            crate::episode::note_interruption(crate::episode::Interruption::Budget(err));
            abort(message)
        }
        other => raise("RuntimeError", other.to_string()),
    })?;
    let descriptor = model.descriptor();
    let cost = prices.cost(&descriptor.provider, &descriptor.model, response.usage);
    let value = if call.json {
        response
            .json_output(descriptor)
            .map_err(|error| raise("ValueError", error.to_string()))
    } else {
        Ok(Value::String(response.text))
    };
    Ok(LlmReply {
        value,
        usage: response.usage,
        cost,
        compute: response.timing,
    })
}

/// Positional argument `index`, or keyword `name`.
pub(crate) fn arg<'a>(
    args: &'a [Value],
    kwargs: &'a Map<String, Value>,
    index: usize,
    name: &str,
) -> Option<&'a Value> {
    args.get(index).or_else(|| kwargs.get(name))
}

pub(crate) fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn raise(exception: &str, message: String) -> HostError {
    HostError::Raise {
        exception: exception.to_string(),
        message,
    }
}

pub(crate) fn abort(message: String) -> HostError {
    HostError::Abort { message }
}

fn host_error_text(error: &HostError) -> String {
    match error {
        HostError::Raise { exception, message } => format!("{exception}: {message}"),
        HostError::Abort { message } => format!("aborted: {message}"),
    }
}

/// A child script's failure as seen by its caller: budget and crash aborts
/// propagate (the episode is over); ordinary failures become a catchable
/// `RuntimeError`.
fn script_failure(who: &str, error: ScriptError) -> HostError {
    match error {
        ScriptError::Aborted { message, .. } => abort(message),
        other => raise(
            "RuntimeError",
            format!("{who} failed: {}", clip(&other.to_string(), 2000)),
        ),
    }
}

pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}
