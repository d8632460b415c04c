//! The API key never leaks: not into logs (captured at TRACE level, our own
//! and our dependencies'), not into errors, not into `Debug` output — even
//! when the server echoes the key back. It is its own test binary because it
//! installs the process-wide tracing subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyperagents_llm::{ChatModel, ChatRequest, LlmError, Message};
use hyperagents_llm_http::{AnthropicChat, AnthropicConfig, OpenAiChat, OpenAiConfig};
use serde_json::json;
use support::{FakeServer, Reply, closed_port_url, fast_retry, sse_data, sse_event};
use tracing_subscriber::fmt::MakeWriter;

const KEY: &str = "sk-hyperagents-SECRET-7f3a9c2e41";
/// The distinctive part: no prefix or suffix of the key may show either.
const KEY_CORE: &str = "SECRET-7f3a9c2e41";

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

fn echo_error(status: u16) -> Reply {
    let message = format!("Incorrect API key provided: {KEY}.");
    Reply::json(
        status,
        json!({"error": {"type": "authentication_error", "message": message}}),
    )
}

/// Runs `calls` chat calls and `streams` streaming calls in that order,
/// recording each outcome's `Display` and `Debug`.
async fn exercise(model: &dyn ChatModel, calls: usize, streams: usize, seen: &mut Vec<String>) {
    let request = ChatRequest::new(vec![Message::user("hi")]);
    let mut outcomes: Vec<Result<_, LlmError>> = Vec::new();
    for _ in 0..calls {
        outcomes.push(model.chat(&request).await);
    }
    for _ in 0..streams {
        let mut on_delta = |_: &str| {};
        outcomes.push(model.chat_streaming(&request, &mut on_delta).await);
    }
    for outcome in outcomes {
        match outcome {
            Ok(response) => seen.push(format!("{response:?}")),
            Err(err) => seen.push(format!("{err} / {err:?}")),
        }
    }
}

#[tokio::test]
async fn the_api_key_never_appears_in_logs_errors_or_debug_output() {
    let logs = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .try_init()
        .expect("the only subscriber in this binary");
    let mut seen = Vec::new();

    let openai_server = FakeServer::start([
        echo_error(401),
        Reply::json(500, json!({"error": {"message": "hiccup"}})),
        Reply::json(
            200,
            json!({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}),
        ),
        Reply::text(200, "application/json", &format!("not json, but {KEY}")),
        Reply::hang(),
        Reply::hang(),
        Reply::sse(&[
            sse_data(&json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]})),
            sse_data(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
            "data: [DONE]\n\n".to_string(),
        ]),
        Reply::sse(&[sse_data(
            &json!({"error": {"message": format!("bad key {KEY}"), "code": 401}}),
        )]),
    ])
    .await;
    let openai_config = OpenAiConfig::new("gpt-secret-test")
        .with_base_url(openai_server.base_url())
        .with_api_key(KEY)
        .with_retry(fast_retry(1))
        .with_request_timeout(Duration::from_millis(300));
    let openai = OpenAiChat::new(openai_config.clone()).expect("config");
    exercise(&openai, 4, 2, &mut seen).await;
    seen.push(format!("{openai_config:?}"));
    seen.push(format!("{openai:?}"));

    let anthropic_server = FakeServer::start([
        echo_error(401),
        Reply::json(529, json!({"error": {"type": "overloaded_error", "message": "Overloaded"}})),
        Reply::json(
            200,
            json!({"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}),
        ),
        Reply::text(200, "application/json", &format!("<html>{KEY}</html>")),
        Reply::hang(),
        Reply::hang(),
        Reply::sse(&[
            sse_event(&json!({"type": "message_start", "message": {"usage": {"input_tokens": 1}}})),
            sse_event(&json!({"type": "message_stop"})),
        ]),
        Reply::sse(&[sse_event(&json!({
            "type": "error", "error": {"type": "authentication_error", "message": format!("bad key {KEY}")}
        }))]),
    ])
    .await;
    let anthropic_config = AnthropicConfig::new("claude-secret-test")
        .with_base_url(anthropic_server.base_url())
        .with_api_key(KEY)
        .with_retry(fast_retry(1))
        .with_request_timeout(Duration::from_millis(300));
    let anthropic = AnthropicChat::new(anthropic_config.clone()).expect("config");
    exercise(&anthropic, 4, 2, &mut seen).await;
    seen.push(format!("{anthropic_config:?}"));
    seen.push(format!("{anthropic:?}"));

    // Nothing listening: a connection error from the network stack.
    let unreachable = OpenAiChat::new(
        OpenAiConfig::new("gpt-secret-test")
            .with_base_url(closed_port_url().await)
            .with_api_key(KEY)
            .with_retry(fast_retry(0)),
    )
    .expect("config");
    exercise(&unreachable, 1, 0, &mut seen).await;

    // The key was really sent, and the servers really echoed it.
    let sent = openai_server.requests();
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        anthropic_server.requests()[0].header("x-api-key"),
        Some(KEY)
    );
    assert_eq!(sent.len(), 8, "every scripted OpenAI reply was used");
    assert_eq!(
        anthropic_server.request_count(),
        8,
        "every scripted Anthropic reply was used"
    );
    let all = seen.join("\n");
    assert!(
        all.contains("[redacted]"),
        "the echoed key should show as redacted:\n{all}"
    );
    assert_eq!(
        seen.iter().filter(|s| s.contains("Timeout")).count(),
        2,
        "{all}"
    );
    assert_eq!(
        seen.iter().filter(|s| s.contains("Connection")).count(),
        1,
        "{all}"
    );

    for text in &seen {
        assert!(
            !text.contains(KEY_CORE),
            "key in error or Debug output: {text}"
        );
    }
    let logs = logs.text();
    for expected in [
        "sending model request",
        "model response status",
        "retrying model call",
    ] {
        assert!(logs.contains(expected), "`{expected}` not logged:\n{logs}");
    }
    assert!(logs.contains("gpt-secret-test") && logs.contains("claude-secret-test"));
    assert!(!logs.contains(KEY_CORE), "key in logs:\n{logs}");
}
