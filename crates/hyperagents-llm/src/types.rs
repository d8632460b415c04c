//! The normalized request and response types shared by all providers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LlmError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool call, answering the assistant's `tool_calls`.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Tool calls the assistant made in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`] messages: which call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A tool the model may call; `parameters` is a JSON schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// A call the model asked for; `arguments` is the raw JSON text it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// The shape the answer must take.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    #[default]
    Text,
    /// Output constrained to a JSON schema (grammar-constrained where the
    /// provider decodes locally, `json_schema` response format over HTTP).
    JsonSchema {
        name: String,
        schema: serde_json::Value,
    },
}

/// Sampling settings. Every call carries a seed: callers derive it with
/// [`crate::seed::SeedPath`] so reruns reproduce the same calls and distinct
/// sampled calls never share a cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    pub max_tokens: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.95,
            seed: 0,
            max_tokens: 512,
            stop: Vec::new(),
        }
    }
}

/// A normalized chat request. Its JSON form (field order fixed by this
/// struct) is what the response cache hashes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub sampling: Sampling,
    #[serde(default)]
    pub response_format: ResponseFormat,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.sampling.seed = seed;
        self
    }
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.sampling.max_tokens = max_tokens;
        self
    }
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.sampling.temperature = temperature;
        self
    }
    pub fn with_json_schema(mut self, name: impl Into<String>, schema: serde_json::Value) -> Self {
        self.response_format = ResponseFormat::JsonSchema {
            name: name.into(),
            schema,
        };
        self
    }
    pub fn with_tools(mut self, tools: Vec<ToolDefinition>) -> Self {
        self.tools = tools;
        self
    }
}

/// Tokens a call consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens the provider did not compute again: a reused KV-cache
    /// prefix (embedded), a prompt-cache read (OpenAI's `cached_tokens`,
    /// Anthropic's `cache_read_input_tokens`). Part of `input_tokens`.
    #[serde(default)]
    pub cached_input_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
        self.cached_input_tokens += rhs.cached_input_tokens;
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end: end-of-generation token or a stop sequence.
    Stop,
    /// `max_tokens` (or the context) ran out.
    Length,
    ToolCalls,
    ContentFilter,
    Other(String),
}

/// What a provider answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub finish_reason: FinishReason,
    /// Time from sending the request to the complete answer.
    #[serde(with = "duration_millis")]
    pub latency: Duration,
    /// True when the answer came from the response cache, not the provider.
    #[serde(default)]
    pub cache_hit: bool,
    /// Where the provider's time went, for providers that can tell
    /// (the embedded engine); `None` for remote ones and cache hits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<ComputeTiming>,
}

impl ChatResponse {
    /// The text of a reply to a request with a JSON schema, parsed. Text that
    /// is not JSON is [`LlmError::MalformedResponse`] naming `model`, where the
    /// JSON broke (line and column), whether the token limit cut it off, and
    /// the start of the text.
    pub fn json_output(&self, model: &ModelDescriptor) -> Result<serde_json::Value, LlmError> {
        serde_json::from_str(&self.text).map_err(|error| LlmError::MalformedResponse {
            provider: model.provider.clone(),
            model: model.model.clone(),
            message: format!(
                "the output is not the JSON its schema asked for ({error}{}): {}",
                if self.finish_reason == FinishReason::Length {
                    "; the token limit cut it off"
                } else {
                    ""
                },
                quote_start(&self.text, MAX_QUOTED_CHARS)
            ),
        })
    }
}

/// How much of a malformed reply an error quotes.
const MAX_QUOTED_CHARS: usize = 300;

/// The first `max_chars` characters of `text` as a quoted string, `…` marking a cut.
fn quote_start(text: &str, max_chars: usize) -> String {
    let mut quoted: String = text.chars().take(max_chars).collect();
    if text.chars().nth(max_chars).is_some() {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

/// How a request's latency divides inside a provider that computes it
/// locally. Decode steps batch several requests, so a step's time is
/// charged in full to each request it advanced.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ComputeTiming {
    /// Waiting for a sequence slot (other requests held them all, or a
    /// request decoding the same prompt prefix was awaited).
    #[serde(with = "duration_millis_f64")]
    pub queued: Duration,
    /// Decode steps that processed this request's prompt tokens.
    #[serde(with = "duration_millis_f64")]
    pub prompt: Duration,
    /// Decode steps that generated this request's output tokens.
    #[serde(with = "duration_millis_f64")]
    pub generate: Duration,
    /// Waiting for the process-wide compute lock before those steps (other
    /// models decoding).
    #[serde(with = "duration_millis_f64")]
    pub lock_wait: Duration,
}

/// What a provider can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub tools: bool,
    pub json_schema: bool,
    pub streaming: bool,
}

/// Names a provider and model: both appear in every error and cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDescriptor {
    /// `openai`, `anthropic`, `embedded`, …
    pub provider: String,
    /// The provider's model name, or for embedded models the catalog name.
    pub model: String,
    /// Identifies the exact weights where known (the GGUF's sha256).
    pub fingerprint: Option<String>,
    pub capabilities: Capabilities,
}

/// Milliseconds with fractions: per-request compute times are often
/// below a millisecond.
mod duration_millis_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or_default())
    }
}

mod duration_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
