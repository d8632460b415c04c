//! Chat models served over HTTP: any OpenAI-compatible Chat Completions
//! endpoint (OpenAI itself, llama.cpp's server, vLLM, Ollama, …) and
//! Anthropic's Messages API, both implementing
//! [`hyperagents_llm::ChatModel`].
//!
//! Both providers share one transport (the private `transport` module): a
//! whole-request timeout, retries through
//! [`hyperagents_llm::retry::RetryPolicy`] that honour `Retry-After`, a
//! concurrency limit shared by clones, SSE streaming, and errors that name
//! provider, model and status but never the API key.

pub mod anthropic;
mod config;
pub mod openai;
mod transport;

pub use anthropic::{AnthropicChat, AnthropicConfig};
pub use config::ConfigError;
pub use openai::{OpenAiChat, OpenAiConfig};
