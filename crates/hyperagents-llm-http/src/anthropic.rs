//! Anthropic's Messages API (`POST {base_url}/v1/messages`).
//!
//! How the normalized request maps onto it:
//! - system messages, wherever they are, become the top-level `system`;
//!   tool results become `tool_result` blocks in a user turn, and
//!   consecutive turns of one role are merged, as the API expects;
//! - `temperature` is clamped to the API's range, 0 to 1 (OpenAI's goes to
//!   2), so that one sampling setting works with every provider;
//! - the seed is dropped: the API has none (the seed still keys the
//!   response cache upstream, so distinct sampled calls stay distinct);
//! - `top_p` is sent only when [`AnthropicConfig::send_top_p`] is set,
//!   because recent Claude models reject requests that set both
//!   `temperature` and `top_p`;
//! - a JSON-schema response format becomes one forced tool whose
//!   `input_schema` is the schema; the tool's input is returned as the text.
//!   With other tools present the choice is `any`, so the model either calls
//!   a real tool or answers through the schema tool.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hyperagents_llm::retry::RetryPolicy;
use hyperagents_llm::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, FinishReason, LlmError, Message,
    ModelDescriptor, ResponseFormat, Role, ToolCall, Usage,
};
use reqwest::header::{HeaderName, HeaderValue};
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

const PROVIDER: &str = "anthropic";
const API_VERSION: &str = "2023-06-01";

/// How to reach Anthropic's Messages API (or a proxy that speaks it).
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// Everything before `/v1/messages`.
    pub base_url: String,
    /// Sent as `x-api-key`.
    pub api_key: Option<SecretString>,
    pub model: String,
    /// Bounds each attempt as a whole: connecting, sending and reading the
    /// complete answer (a stream included).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Most requests in flight at once, shared by all clones of the provider.
    pub max_concurrency: usize,
    /// Whether `chat` also uses SSE; `chat_streaming` always streams.
    pub stream: bool,
    /// Whether to send `top_p` next to `temperature` (off by default: recent
    /// models refuse requests with both).
    pub send_top_p: bool,
}

impl AnthropicConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";

    /// Anthropic's endpoint, no key, default timeouts, retries and limits.
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
            send_top_p: false,
        }
    }

    pub fn with_send_top_p(mut self, send_top_p: bool) -> Self {
        self.send_top_p = send_top_p;
        self
    }
}

common_builders!(AnthropicConfig);

/// A Claude model behind the Messages API. Clones share connections and the
/// concurrency limit.
#[derive(Clone)]
pub struct AnthropicChat {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    descriptor: ModelDescriptor,
    stream: bool,
    send_top_p: bool,
}

impl fmt::Debug for AnthropicChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicChat")
            .field("model", &self.inner.descriptor.model)
            .field("url", &self.inner.transport.url())
            .field("stream", &self.inner.stream)
            .finish_non_exhaustive()
    }
}

impl AnthropicChat {
    pub fn new(config: AnthropicConfig) -> Result<Self, ConfigError> {
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        let transport = Transport::new(Settings {
            provider: PROVIDER,
            model: config.model.clone(),
            url,
            fixed_headers: vec![(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(API_VERSION),
            )],
            auth: config
                .api_key
                .map(|key| (key, HeaderName::from_static("x-api-key"), "")),
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
                send_top_p: config.send_top_p,
            }),
        })
    }

    /// The encoded body and, in JSON-schema mode, the answer tool's name.
    fn body(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<(Bytes, Option<String>), LlmError> {
        let transport = &self.inner.transport;
        let (wire, answer_tool) = wire_request(
            &self.inner.descriptor.model,
            request,
            stream,
            self.inner.send_top_p,
        )
        .map_err(|fault| transport.fault(fault))?;
        let body = serde_json::to_vec(&wire).map_err(|err| {
            transport.fault(Fault::Unsupported(format!(
                "request cannot be encoded: {err}"
            )))
        })?;
        Ok((Bytes::from(body), answer_tool))
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        sink: Option<&mut DeltaSink<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let (body, answer_tool) = self.body(request, true)?;
        let make = || StreamState::new(answer_tool.clone());
        self.inner.transport.call_stream(body, make, sink).await
    }
}

#[async_trait]
impl ChatModel for AnthropicChat {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.inner.descriptor
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if self.inner.stream {
            return self.stream(request, None).await;
        }
        let (body, answer_tool) = self.body(request, false)?;
        let parse = |bytes: &[u8]| parse_response(bytes, answer_tool.as_deref());
        self.inner.transport.call_json(body, parse).await
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
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
    },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: Cow<'a, str>,
    description: &'a str,
    input_schema: &'a Value,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireToolChoice {
    Any,
    Tool { name: String },
}

const ANSWER_TOOL_DESCRIPTION: &str =
    "Give your final answer by calling this tool; its input is the answer.";

fn wire_request<'a>(
    model: &'a str,
    request: &'a ChatRequest,
    stream: bool,
    send_top_p: bool,
) -> Result<(WireRequest<'a>, Option<String>), Fault> {
    let (system, messages) = wire_messages(&request.messages)?;
    let mut tools: Vec<WireTool<'a>> = request
        .tools
        .iter()
        .map(|tool| WireTool {
            name: Cow::Borrowed(tool.name.as_str()),
            description: &tool.description,
            input_schema: &tool.parameters,
        })
        .collect();
    let mut tool_choice = None;
    let mut answer_tool = None;
    if let ResponseFormat::JsonSchema { name, schema } = &request.response_format {
        if let Some(kind) = schema
            .get("type")
            .filter(|kind| kind.as_str() != Some("object"))
        {
            return Err(Fault::Unsupported(format!(
                "structured output needs an object schema on Anthropic (the schema's type is {kind})"
            )));
        }
        let tool_name = tool_name(name);
        if request.tools.iter().any(|tool| tool.name == tool_name) {
            return Err(Fault::Unsupported(format!(
                "the response schema's tool name `{tool_name}` clashes with a tool of the request"
            )));
        }
        tool_choice = Some(if tools.is_empty() {
            WireToolChoice::Tool {
                name: tool_name.clone(),
            }
        } else {
            WireToolChoice::Any
        });
        tools.push(WireTool {
            name: Cow::Owned(tool_name.clone()),
            description: ANSWER_TOOL_DESCRIPTION,
            input_schema: schema,
        });
        answer_tool = Some(tool_name);
    }
    let sampling = &request.sampling;
    let wire = WireRequest {
        model,
        max_tokens: sampling.max_tokens,
        system,
        messages,
        temperature: sampling.temperature.clamp(0.0, 1.0),
        top_p: send_top_p.then_some(sampling.top_p),
        stop_sequences: &sampling.stop,
        tools,
        tool_choice,
        stream,
    };
    Ok((wire, answer_tool))
}

/// A tool name the API accepts (`[a-zA-Z0-9_-]{1,64}`) made from a schema
/// name.
fn tool_name(schema_name: &str) -> String {
    let name: String = schema_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "answer".to_string()
    } else {
        name
    }
}

/// The top-level system prompt and the turns, merged by role.
fn wire_messages(messages: &[Message]) -> Result<(Option<String>, Vec<WireMessage<'_>>), Fault> {
    let mut system: Vec<&str> = Vec::new();
    let mut turns: Vec<WireMessage<'_>> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let mut blocks = Vec::new();
        let role = match message.role {
            Role::System => {
                system.push(&message.content);
                continue;
            }
            Role::User => {
                push_text(&mut blocks, &message.content);
                "user"
            }
            Role::Assistant => {
                push_text(&mut blocks, &message.content);
                for call in &message.tool_calls {
                    blocks.push(Block::ToolUse {
                        id: &call.id,
                        name: &call.name,
                        input: tool_input(&call.arguments).map_err(|err| {
                            Fault::Unsupported(format!(
                                "message {index}: arguments of tool call `{}` are not JSON: {err}",
                                call.id
                            ))
                        })?,
                    });
                }
                "assistant"
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    Fault::Unsupported(format!("message {index}: tool result without tool_call_id"))
                })?;
                blocks.push(Block::ToolResult {
                    tool_use_id: id,
                    content: &message.content,
                });
                "user"
            }
        };
        if blocks.is_empty() {
            // Let the server say what it thinks of an empty turn.
            blocks.push(Block::Text {
                text: &message.content,
            });
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(WireMessage {
                role,
                content: blocks,
            }),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, turns))
}

/// The API rejects empty text blocks, so empty text is left out.
fn push_text<'a>(blocks: &mut Vec<Block<'a>>, text: &'a str) {
    if !text.is_empty() {
        blocks.push(Block::Text { text });
    }
}

fn tool_input(arguments: &str) -> Result<Value, serde_json::Error> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(arguments)
}

// ---- response ----

#[derive(Deserialize)]
struct WireResponse {
    content: Option<Vec<WireBlock>>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking blocks and whatever comes next: not part of the answer.
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// All input tokens, cached or not: they all filled the context.
    fn input(&self) -> Option<u64> {
        let parts = [
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().flatten().sum())
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_string()),
        None => FinishReason::Other("none".to_string()),
    }
}

/// Builds the answer from its text and tool calls; in JSON-schema mode the
/// answer tool's input becomes the text and the call itself disappears.
fn answer(
    text: String,
    mut tool_calls: Vec<ToolCall>,
    stop_reason: Option<&str>,
    usage: Usage,
    answer_tool: Option<&str>,
) -> ChatResponse {
    let mut finish = finish_reason(stop_reason);
    let mut text = text;
    if let Some(tool) = answer_tool
        && let Some(position) = tool_calls.iter().position(|call| call.name == tool)
    {
        text = tool_calls.remove(position).arguments;
        if finish == FinishReason::ToolCalls && tool_calls.is_empty() {
            finish = FinishReason::Stop;
        }
    }
    ChatResponse {
        text,
        tool_calls,
        usage,
        finish_reason: finish,
        latency: Duration::ZERO,
        cache_hit: false,
        timing: None,
    }
}

fn parse_response(body: &[u8], answer_tool: Option<&str>) -> Result<ChatResponse, Fault> {
    let wire: WireResponse = serde_json::from_slice(body).map_err(|err| {
        Fault::Malformed(format!(
            "invalid JSON ({err}): {}",
            excerpt(&String::from_utf8_lossy(body), EXCERPT_CHARS)
        ))
    })?;
    let content = wire
        .content
        .ok_or_else(|| Fault::Malformed("the answer has no content".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block {
            WireBlock::Text { text: part } => text.push_str(&part),
            WireBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: input.to_string(),
            }),
            WireBlock::Other => {}
        }
    }
    let usage = wire.usage.unwrap_or_default();
    let usage = Usage {
        input_tokens: usage.input().unwrap_or(0),
        output_tokens: usage.output_tokens.unwrap_or(0),
        cached_input_tokens: usage.cache_read_input_tokens.unwrap_or(0),
    };
    Ok(answer(
        text,
        tool_calls,
        wire.stop_reason.as_deref(),
        usage,
        answer_tool,
    ))
}

// ---- streaming ----

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    /// `ping`, `content_block_stop` and event types added later.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        text: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    r#type: Option<String>,
    message: Option<String>,
}

enum BlockState {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
}

/// Collects a streamed answer block by block.
struct StreamState {
    answer_tool: Option<String>,
    blocks: BTreeMap<usize, BlockState>,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    stop_reason: Option<String>,
    done: bool,
}

impl StreamState {
    fn new(answer_tool: Option<String>) -> Self {
        Self {
            answer_tool,
            blocks: BTreeMap::new(),
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            stop_reason: None,
            done: false,
        }
    }

    fn take_usage(&mut self, usage: Option<WireUsage>) {
        if let Some(usage) = usage {
            if let Some(input) = usage.input() {
                self.input_tokens = input;
            }
            if let Some(cached) = usage.cache_read_input_tokens {
                self.cached_input_tokens = cached;
            }
            if let Some(output) = usage.output_tokens {
                self.output_tokens = output;
            }
        }
    }
}

impl StreamAssembler for StreamState {
    fn on_event(
        &mut self,
        _event: &str,
        data: &str,
        emit: &mut dyn FnMut(&str),
    ) -> Result<Flow, Fault> {
        if data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        let event: Event = serde_json::from_str(data).map_err(|err| {
            Fault::Malformed(format!(
                "invalid stream event ({err}): {}",
                excerpt(data, EXCERPT_CHARS)
            ))
        })?;
        match event {
            Event::MessageStart { message } => self.take_usage(message.usage),
            Event::ContentBlockStart {
                index,
                content_block,
            } => {
                let block = match content_block {
                    StartBlock::Text { text } => {
                        let text = text.unwrap_or_default();
                        if self.answer_tool.is_none() && !text.is_empty() {
                            emit(&text);
                        }
                        BlockState::Text(text)
                    }
                    StartBlock::ToolUse { id, name } => BlockState::Tool {
                        id,
                        name,
                        json: String::new(),
                    },
                    StartBlock::Other => return Ok(Flow::Continue),
                };
                self.blocks.insert(index, block);
            }
            Event::ContentBlockDelta { index, delta } => {
                let answer_tool = self.answer_tool.as_deref();
                let json_mode = answer_tool.is_some();
                match (self.blocks.get_mut(&index), delta) {
                    (Some(BlockState::Text(text)), BlockDelta::TextDelta { text: part }) => {
                        if !json_mode {
                            emit(&part);
                        }
                        text.push_str(&part);
                    }
                    (
                        Some(BlockState::Tool { name, json, .. }),
                        BlockDelta::InputJsonDelta { partial_json },
                    ) => {
                        if answer_tool == Some(name.as_str()) {
                            emit(&partial_json);
                        }
                        json.push_str(&partial_json);
                    }
                    (None, BlockDelta::TextDelta { .. } | BlockDelta::InputJsonDelta { .. }) => {
                        return Err(Fault::Malformed(format!(
                            "delta for content block {index}, which never started"
                        )));
                    }
                    _ => {}
                }
            }
            Event::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.take_usage(usage);
            }
            Event::MessageStop => {
                self.done = true;
                return Ok(Flow::Done);
            }
            Event::Error { error } => return Err(stream_error(error)),
            Event::Other => {}
        }
        Ok(Flow::Continue)
    }

    fn finish(self) -> Result<ChatResponse, Fault> {
        if !self.done {
            return Err(Fault::Malformed(
                "the stream ended before message_stop".into(),
            ));
        }
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                BlockState::Text(part) => text.push_str(&part),
                BlockState::Tool { id, name, json } => tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: if json.trim().is_empty() {
                        "{}".to_string()
                    } else {
                        json
                    },
                }),
            }
        }
        let usage = Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_input_tokens: self.cached_input_tokens,
        };
        Ok(answer(
            text,
            tool_calls,
            self.stop_reason.as_deref(),
            usage,
            self.answer_tool.as_deref(),
        ))
    }
}

/// An `error` event: the status its type stands for, so that overload and
/// rate-limit errors mid-stream are retried like their HTTP counterparts.
fn stream_error(error: ErrorBody) -> Fault {
    let kind = error.r#type.unwrap_or_else(|| "error".to_string());
    let message = format!(
        "error in stream: {kind}: {}",
        error.message.unwrap_or_default()
    );
    let status = match kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "overloaded_error" => 529,
        _ => return Fault::Engine(excerpt(&message, EXCERPT_CHARS)),
    };
    Fault::Status { status, message }
}
