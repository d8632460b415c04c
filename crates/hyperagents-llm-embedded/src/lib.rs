//! An embedded GGUF model run in-process by llama.cpp (through the
//! `llama-cpp-2` crate) behind the [`ChatModel`] interface.
//!
//! - Prompts come from the model's own chat template ([`template`]).
//! - JSON-schema output is grammar-constrained: llama.cpp turns the schema
//!   into a GBNF grammar and the sampler only admits matching tokens.
//! - Concurrent requests are batched into shared decode steps and reuse
//!   cached prompt prefixes ([`engine`]).
//! - All loaded models share one thread budget
//!   ([`engine::set_thread_budget`]).
//!
//! Tool definitions are not supported: requests carrying tools are refused
//! with a clear error rather than silently ignored.

pub mod engine;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use async_trait::async_trait;
use hyperagents_llm::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, LlmError, ModelDescriptor, ResponseFormat,
    Usage,
};
use tokio::sync::mpsc as async_mpsc;

pub use engine::{EngineConfig, EngineStats, StatsSnapshot, set_thread_budget};
use engine::{Event, Job};
use template::ChatTemplate;

/// Why the embedded engine could not serve a model or a request.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot load model {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("llama.cpp backend: {0}")]
    Backend(String),
    #[error("engine configuration: {0}")]
    Config(String),
    #[error("model {path}: {source}")]
    Template {
        path: PathBuf,
        #[source]
        source: template::TemplateError,
    },
    #[error("{0}")]
    Request(String),
    #[error("{0}")]
    Engine(String),
    #[error("the engine thread stopped")]
    EngineGone,
}

/// A loaded GGUF model.
pub struct EmbeddedModel {
    descriptor: ModelDescriptor,
    template: ChatTemplate,
    add_bos: bool,
    bos_token: String,
    n_ctx_train: u32,
    // `Sender` is `Sync`, but the mutex keeps the type `Sync` on every
    // toolchain and costs nothing next to a decode step.
    jobs: Mutex<mpsc::Sender<Job>>,
    stats: Arc<EngineStats>,
}

impl EmbeddedModel {
    /// Loads the model at `path` and starts its engine thread. `name` is
    /// how the model appears in errors and cache keys; `fingerprint` (the
    /// file's sha256) pins the exact weights.
    pub async fn load(
        name: &str,
        path: &Path,
        fingerprint: Option<String>,
        config: EngineConfig,
    ) -> Result<Self, EmbeddedError> {
        let stats = Arc::new(EngineStats::default());
        let (jobs, ready) = engine::spawn(path.to_path_buf(), config, stats.clone());
        let info = ready.await.map_err(|_| EmbeddedError::EngineGone)??;
        let template = ChatTemplate::new(
            info.chat_template,
            info.bos_token.clone(),
            info.eos_token.clone(),
        )
        .map_err(|source| EmbeddedError::Template {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            descriptor: ModelDescriptor {
                provider: "embedded".into(),
                model: name.to_string(),
                fingerprint,
                capabilities: Capabilities {
                    tools: false,
                    json_schema: true,
                    streaming: true,
                },
            },
            template,
            add_bos: info.add_bos,
            bos_token: info.bos_token,
            n_ctx_train: info.n_ctx_train,
            jobs: Mutex::new(jobs),
            stats,
        })
    }

    /// What the engine has done so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The context length the model was trained with.
    pub fn n_ctx_train(&self) -> u32 {
        self.n_ctx_train
    }

    /// The exact text the model sees for `request`.
    pub fn render_prompt(&self, request: &ChatRequest) -> Result<String, LlmError> {
        self.template
            .render(&request.messages)
            .map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, message: impl Into<String>) -> LlmError {
        LlmError::Engine {
            provider: self.descriptor.provider.clone(),
            model: self.descriptor.model.clone(),
            message: message.into(),
        }
    }

    fn job(
        &self,
        request: &ChatRequest,
        events: async_mpsc::UnboundedSender<Event>,
    ) -> Result<Job, LlmError> {
        if !request.tools.is_empty() {
            return Err(LlmError::Unsupported {
                provider: self.descriptor.provider.clone(),
                model: self.descriptor.model.clone(),
                message: "embedded models take no tool definitions; ask for JSON output with a schema instead".into(),
            });
        }
        let grammar = match &request.response_format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonSchema { schema, .. } => Some(
                llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
                    self.error(format!("cannot turn the JSON schema into a grammar: {e}"))
                })?,
            ),
        };
        let prompt = self.render_prompt(request)?;
        // Templates that write the BOS token themselves must not get a second one.
        let writes_own_bos = !self.bos_token.is_empty() && prompt.starts_with(&self.bos_token);
        let add_bos = self.add_bos && !writes_own_bos;
        Ok(Job {
            prompt,
            add_bos,
            sampling: request.sampling.clone(),
            grammar,
            events,
            submitted: Instant::now(),
        })
    }
}

#[async_trait]
impl ChatModel for EmbeddedModel {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.chat_streaming(request, &mut |_| {}).await
    }

    async fn chat_streaming(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn for<'d> FnMut(&'d str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let (events_tx, mut events) = async_mpsc::unbounded_channel();
        let job = self.job(request, events_tx)?;
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| self.error("the engine thread stopped"))?;
        while let Some(event) = events.recv().await {
            match event {
                Event::Delta(text) => on_delta(&text),
                Event::Done(Ok(done)) => {
                    return Ok(ChatResponse {
                        text: done.text,
                        tool_calls: Vec::new(),
                        usage: Usage {
                            input_tokens: done.prompt_tokens,
                            output_tokens: done.completion_tokens,
                            cached_input_tokens: done.reused_prompt_tokens,
                        },
                        finish_reason: done.finish_reason,
                        latency: started.elapsed(),
                        cache_hit: false,
                        timing: Some(done.timing),
                    });
                }
                Event::Done(Err(err)) => return Err(self.error(err.to_string())),
            }
        }
        Err(self.error("the engine thread stopped"))
    }
}
