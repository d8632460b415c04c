//! OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`):
//! OpenAI itself and the local servers that copy its API (llama.cpp's
//! `llama-server`, vLLM, Ollama), which is why the API key is optional.
//!
//! Requests carry `max_tokens` rather than OpenAI's newer
//! `max_completion_tokens`, because that is what the local servers read.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hyperagents_llm::retry::RetryPolicy;
use hyperagents_llm::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, FinishReason, LlmError, ModelDescriptor,
    ResponseFormat, Role, ToolCall, Usage,
};
use reqwest::header::AUTHORIZATION;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ConfigError;
use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT, common_builders,
};
use crate::transport::{
    DeltaSink, EXCERPT_CHARS, Fault, Flow, Settings, StreamAssembler, Transport, excerpt,
};

const PROVIDER: &str = "openai";

/// How to reach an OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Everything before `/chat/completions`, e.g. `https://api.openai.com/v1`
    /// or `http://127.0.0.1:8080/v1` for a local llama.cpp server.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`; `None` for servers that need none.
    pub api_key: Option<SecretString>,
    pub model: String,
    /// Bounds each attempt as a whole: connecting, sending and reading the
    /// complete answer (a stream included).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Most requests in flight at once, shared by all clones of the provider.
    pub max_concurrency: usize,
    /// Whether `chat` also uses SSE (for servers or proxies that drop long
    /// silent requests); `chat_streaming` always streams.
    pub stream: bool,
}

impl OpenAiConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";

    /// OpenAI's endpoint, no key, default timeouts, retries and limits.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            base_url: Self::DEFAULT_BASE_URL.to_string(),
            api_key: None,
            model: model.into(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            stream: false,
        }
    }
}

common_builders!(OpenAiConfig);

/// A model behind an OpenAI-compatible endpoint. Clones share connections
/// and the concurrency limit.
#[derive(Clone)]
pub struct OpenAiChat {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    descriptor: ModelDescriptor,
    stream: bool,
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("model", &self.inner.descriptor.model)
            .field("url", &self.inner.transport.url())
            .field("stream", &self.inner.stream)
            .finish_non_exhaustive()
    }
}

impl OpenAiChat {
    pub fn new(config: OpenAiConfig) -> Result<Self, ConfigError> {
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let transport = Transport::new(Settings {
            provider: PROVIDER,
            model: config.model.clone(),
            url,
            fixed_headers: Vec::new(),
            auth: config.api_key.map(|key| (key, AUTHORIZATION, "Bearer ")),
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            retry: config.retry,
            max_concurrency: config.max_concurrency,
        })?;
        let descriptor = ModelDescriptor {
            provider: PROVIDER.to_string(),
            model: config.model,
            fingerprint: None,
            capabilities: Capabilities {
                tools: true,
                json_schema: true,
                streaming: true,
            },
        };
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                descriptor,
                stream: config.stream,
            }),
        })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, LlmError> {
        let wire = wire_request(&self.inner.descriptor.model, request, stream)
            .map_err(|fault| self.inner.transport.fault(fault))?;
        serde_json::to_vec(&wire).map(Bytes::from).map_err(|err| {
            self.inner.transport.fault(Fault::Unsupported(format!(
                "request cannot be encoded: {err}"
            )))
        })
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        sink: Option<&mut DeltaSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let body = self.body(request, true)?;
        self.inner
            .transport
            .call_stream(body, StreamState::default, sink)
            .await
    }
}

#[async_trait]
impl ChatModel for OpenAiChat {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.inner.descriptor
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if self.inner.stream {
            return self.stream(request, None).await;
        }
        let body = self.body(request, false)?;
        self.inner.transport.call_json(body, parse_response).await
    }

    async fn chat_streaming(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn for<'d> FnMut(&'d str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        self.stream(request, Some(on_delta)).await
    }
}

// ---- request ----

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    temperature: f32,
    top_p: f32,
    seed: u64,
    max_tokens: u32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// `null` for an assistant turn that only calls tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireResponseFormat<'a> {
    r#type: &'static str,
    json_schema: WireJsonSchema<'a>,
}

#[derive(Serialize)]
struct WireJsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

#[derive(Serialize)]
struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

fn wire_request<'a>(
    model: &'a str,
    request: &'a ChatRequest,
    stream: bool,
) -> Result<WireRequest<'a>, Fault> {
    let messages = request
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let tool_call_id = match message.role {
                Role::Tool => Some(message.tool_call_id.as_deref().ok_or_else(|| {
                    Fault::Unsupported(format!("message {index}: tool result without tool_call_id"))
                })?),
                _ => None,
            };
            let tool_calls: Vec<_> = message
                .tool_calls
                .iter()
                .map(|call| WireToolCall {
                    id: &call.id,
                    r#type: "function",
                    function: WireFunctionCall {
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                })
                .collect();
            let content = if message.content.is_empty() && !tool_calls.is_empty() {
                None
            } else {
                Some(message.content.as_str())
            };
            Ok(WireMessage {
                role: message.role.as_str(),
                content,
                tool_calls,
                tool_call_id,
            })
        })
        .collect::<Result<Vec<_>, Fault>>()?;
    let response_format = match &request.response_format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonSchema { name, schema } => Some(WireResponseFormat {
            r#type: "json_schema",
            json_schema: WireJsonSchema {
                name,
                schema,
                strict: true,
            },
        }),
    };
    let tools = request
        .tools
        .iter()
        .map(|tool| WireTool {
            r#type: "function",
            function: WireFunction {
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
            },
        })
        .collect();
    let sampling = &request.sampling;
    Ok(WireRequest {
        model,
        messages,
        temperature: sampling.temperature,
        top_p: sampling.top_p,
        seed: sampling.seed,
        max_tokens: sampling.max_tokens,
        stop: &sampling.stop,
        response_format,
        tools,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    })
}

// ---- response ----

#[derive(Deserialize)]
struct WireResponse {
    choices: Option<Vec<WireChoice>>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireAnswer,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireAnswer {
    content: Option<String>,
    tool_calls: Option<Vec<WireAnswerToolCall>>,
}

#[derive(Deserialize)]
struct WireAnswerToolCall {
    id: Option<String>,
    function: WireAnswerFunction,
}

#[derive(Deserialize)]
struct WireAnswerFunction {
    name: String,
    /// A JSON string per the API; some servers send the object itself.
    arguments: Option<Value>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<WirePromptDetails>,
}

/// Servers with prompt caching report the prompt tokens they reused.
#[derive(Deserialize, Clone, Copy)]
struct WirePromptDetails {
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Self {
        Usage {
            input_tokens: usage.prompt_tokens.unwrap_or(0),
            output_tokens: usage.completion_tokens.unwrap_or(0),
            cached_input_tokens: usage
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        }
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_string()),
        None => FinishReason::Other("none".to_string()),
    }
}

fn call_id(id: Option<String>, index: usize) -> String {
    id.filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("call_{index}"))
}

fn parse_response(body: &[u8]) -> Result<ChatResponse, Fault> {
    let wire: WireResponse = serde_json::from_slice(body).map_err(|err| {
        Fault::Malformed(format!(
            "invalid JSON ({err}): {}",
            excerpt(&String::from_utf8_lossy(body), EXCERPT_CHARS)
        ))
    })?;
    let choice = wire
        .choices
        .and_then(|choices| choices.into_iter().next())
        .ok_or_else(|| Fault::Malformed("the answer has no choices".into()))?;
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, call)| ToolCall {
            id: call_id(call.id, index),
            name: call.function.name,
            arguments: match call.function.arguments {
                Some(Value::String(text)) => text,
                Some(other) => other.to_string(),
                None => "{}".to_string(),
            },
        })
        .collect();
    Ok(ChatResponse {
        text: choice.message.content.unwrap_or_default(),
        tool_calls,
        usage: wire.usage.map(Usage::from).unwrap_or_default(),
        finish_reason: finish_reason(choice.finish_reason.as_deref()),
        latency: Duration::ZERO,
        cache_hit: false,
        timing: None,
    })
}

// ---- streaming ----

#[derive(Deserialize)]
struct Chunk {
    choices: Option<Vec<ChunkChoice>>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    index: Option<u32>,
    delta: Option<ChunkDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    content: Option<String>,
    tool_calls: Option<Vec<ChunkToolCall>>,
}

#[derive(Deserialize)]
struct ChunkToolCall {
    index: Option<usize>,
    id: Option<String>,
    function: Option<ChunkFunction>,
}

#[derive(Deserialize)]
struct ChunkFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Collects a streamed answer: text, tool-call fragments keyed by their
/// index, the usage chunk and the finish reason.
#[derive(Default)]
struct StreamState {
    text: String,
    calls: BTreeMap<usize, PartialCall>,
    usage: Option<Usage>,
    finish: Option<String>,
    done: bool,
}

impl StreamAssembler for StreamState {
    fn on_event(
        &mut self,
        _event: &str,
        data: &str,
        emit: &mut dyn FnMut(&str),
    ) -> Result<Flow, Fault> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(Flow::Done);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|err| {
            Fault::Malformed(format!(
                "invalid stream chunk ({err}): {}",
                excerpt(data, EXCERPT_CHARS)
            ))
        })?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&error));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                    emit(&text);
                    self.text.push_str(&text);
                }
                for (position, fragment) in
                    delta.tool_calls.unwrap_or_default().into_iter().enumerate()
                {
                    let slot = self
                        .calls
                        .entry(fragment.index.unwrap_or(position))
                        .or_default();
                    if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
                        slot.id = Some(id);
                    }
                    if let Some(function) = fragment.function {
                        if let Some(name) = function.name.filter(|name| !name.is_empty())
                            && slot.name.is_empty()
                        {
                            slot.name = name;
                        }
                        if let Some(arguments) = function.arguments {
                            slot.arguments.push_str(&arguments);
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(reason);
            }
        }
        Ok(Flow::Continue)
    }

    fn finish(self) -> Result<ChatResponse, Fault> {
        // Some servers close without `[DONE]`; a finish reason is proof
        // enough that the answer is complete.
        if !self.done && self.finish.is_none() {
            return Err(Fault::Malformed(
                "the stream ended before the answer was complete".into(),
            ));
        }
        let tool_calls = self
            .calls
            .into_values()
            .enumerate()
            .map(|(index, call)| {
                if call.name.is_empty() {
                    return Err(Fault::Malformed(format!(
                        "streamed tool call {index} has no name"
                    )));
                }
                Ok(ToolCall {
                    id: call_id(call.id, index),
                    name: call.name,
                    arguments: call.arguments,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChatResponse {
            text: self.text,
            tool_calls,
            usage: self.usage.unwrap_or_default(),
            finish_reason: finish_reason(self.finish.as_deref()),
            latency: Duration::ZERO,
            cache_hit: false,
            timing: None,
        })
    }
}

/// An `{"error": …}` chunk inside a stream (vLLM and llama.cpp send these):
/// a numeric HTTP-like code is treated as that status, so that overload
/// errors are retried.
fn stream_error(error: &Value) -> Fault {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| error.to_string());
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..=599).contains(code));
    match status {
        Some(status) => Fault::Status {
            status,
            message: format!("error in stream: {message}"),
        },
        None => Fault::Engine(format!(
            "error in stream: {}",
            excerpt(&message, EXCERPT_CHARS)
        )),
    }
}
