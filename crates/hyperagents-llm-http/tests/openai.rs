//! The OpenAI-compatible provider against a scripted loopback server.

mod support;

use std::time::{Duration, Instant};

use hyperagents_llm::{
    ChatModel, ChatRequest, FinishReason, LlmError, Message, Role, Sampling, ToolCall,
    ToolDefinition, Usage,
};
use hyperagents_llm_http::{OpenAiChat, OpenAiConfig};
use serde_json::{Value, json};
use support::{FakeServer, Reply, closed_port_url, fast_retry, gap, sse_data};

const MODEL: &str = "gpt-test";

fn config(server: &FakeServer) -> OpenAiConfig {
    OpenAiConfig::new(MODEL)
        .with_base_url(format!("{}/v1/", server.base_url()))
        .with_api_key("sk-test-key")
        .with_retry(fast_retry(2))
        .with_request_timeout(Duration::from_secs(5))
}

fn provider(server: &FakeServer) -> OpenAiChat {
    OpenAiChat::new(config(server)).expect("valid config")
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::system("be brief"), Message::user("hi")]).with_sampling(
        Sampling {
            temperature: 0.25,
            top_p: 0.5,
            seed: 4242,
            max_tokens: 77,
            stop: vec!["END".into()],
        },
    )
}

fn answer(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    })
}

fn lookup_tool() -> ToolDefinition {
    ToolDefinition {
        name: "lookup".into(),
        description: "Looks a word up.".into(),
        parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    }
}

fn close(actual: &Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|value| (value - expected).abs() < 1e-6)
}

#[tokio::test]
async fn success_maps_the_request_and_parses_the_answer() {
    let server = FakeServer::start([Reply::json(200, answer(r#"{"ok":true}"#))]).await;
    let model = provider(&server);
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
    let request = request()
        .with_json_schema("verdict", schema.clone())
        .with_tools(vec![lookup_tool()]);

    let response = model.chat(&request).await.expect("success");

    assert_eq!(response.text, r#"{"ok":true}"#);
    assert!(response.tool_calls.is_empty());
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 12,
            output_tokens: 5,
            cached_input_tokens: 0
        }
    );
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.latency > Duration::ZERO);
    assert!(!response.cache_hit);

    let descriptor = model.descriptor();
    assert_eq!(descriptor.provider, "openai");
    assert_eq!(descriptor.model, MODEL);
    assert!(descriptor.capabilities.tools);
    assert!(descriptor.capabilities.json_schema);
    assert!(descriptor.capabilities.streaming);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json();
    assert_eq!(body["model"], MODEL);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"}
        ])
    );
    assert!(close(&body["temperature"], 0.25), "{body}");
    assert!(close(&body["top_p"], 0.5), "{body}");
    assert_eq!(body["seed"], 4242);
    assert_eq!(body["max_tokens"], 77);
    assert_eq!(body["stop"], json!(["END"]));
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": true}})
    );
    assert_eq!(
        body["tools"],
        json!([{
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Looks a word up.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}
            }
        }])
    );
    assert!(body.get("stream").is_none(), "{body}");
}

#[tokio::test]
async fn a_keyless_server_gets_no_authorization_and_plain_requests_omit_optional_fields() {
    let server = FakeServer::start([Reply::json(200, answer("hello"))]).await;
    let model = OpenAiChat::new(OpenAiConfig {
        api_key: None,
        ..config(&server)
    })
    .expect("valid config");

    let response = model
        .chat(&ChatRequest::new(vec![Message::user("hi")]))
        .await
        .expect("success");

    assert_eq!(response.text, "hello");
    let sent = &server.requests()[0];
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    for absent in [
        "stop",
        "response_format",
        "tools",
        "stream",
        "stream_options",
    ] {
        assert!(body.get(absent).is_none(), "{absent} in {body}");
    }
}

fn stream_events() -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        sse_data(&json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
    };
    vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "lookup", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"rust\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        sse_data(&json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}})),
        "data: [DONE]\n\n".to_string(),
    ]
}

#[tokio::test]
async fn streaming_reports_deltas_and_assembles_tool_calls_and_usage() {
    let server = FakeServer::start([Reply::sse(&stream_events())]).await;
    let model = provider(&server);
    let mut deltas = Vec::new();
    let mut on_delta = |text: &str| deltas.push(text.to_string());

    let response = model
        .chat_streaming(&request().with_tools(vec![lookup_tool()]), &mut on_delta)
        .await
        .expect("success");

    assert_eq!(deltas, ["Hel", "lo"]);
    assert_eq!(response.text, "Hello");
    assert_eq!(
        response.tool_calls,
        [ToolCall {
            id: "call_1".into(),
            name: "lookup".into(),
            arguments: r#"{"q":"rust"}"#.into(),
        }]
    );
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 9,
            output_tokens: 4,
            cached_input_tokens: 0
        }
    );
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);

    let sent = &server.requests()[0];
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    let body = sent.json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_streaming_config_makes_chat_stream_too() {
    let server = FakeServer::start([Reply::sse(&stream_events())]).await;
    let model = OpenAiChat::new(config(&server).with_stream(true)).expect("valid config");

    let response = model.chat(&request()).await.expect("success");

    assert_eq!(response.text, "Hello");
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 9,
            output_tokens: 4,
            cached_input_tokens: 0
        }
    );
    assert_eq!(server.requests()[0].json()["stream"], true);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_then_succeeds() {
    let limited = json!({"error": {"message": "slow down", "type": "rate_limit_error"}});
    let server = FakeServer::start([
        Reply::json(429, limited).with_header("retry-after", "1"),
        Reply::json(200, answer("finally")),
    ])
    .await;

    let response = provider(&server).chat(&request()).await.expect("success");

    assert_eq!(response.text, "finally");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = gap(&requests, 0, 1);
    assert!(
        waited >= Duration::from_millis(1000),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_millis(2500), "waited {waited:?}");
    // Latency runs from the first send, so it includes the wait.
    assert!(
        response.latency >= Duration::from_millis(1000),
        "{:?}",
        response.latency
    );
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let server = FakeServer::start([
        Reply::json(500, json!({"error": {"message": "hiccup"}})),
        Reply::json(200, answer("recovered")),
    ])
    .await;

    let response = provider(&server).chat(&request()).await.expect("success");

    assert_eq!(response.text, "recovered");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn repeated_server_errors_give_up_with_provider_model_status_and_an_excerpt() {
    let message = format!("upstream exploded {}", "x".repeat(1000));
    let failure = Reply::json(
        500,
        json!({"error": {"message": message, "type": "server_error"}}),
    );
    let server = FakeServer::start(vec![failure; 3]).await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert_eq!(server.request_count(), 3, "one try and two retries");
    let LlmError::Http {
        provider,
        model,
        status,
        message,
        ..
    } = &err
    else {
        panic!("expected an HTTP error, got {err:?}");
    };
    assert_eq!(
        (provider.as_str(), model.as_str(), *status),
        ("openai", MODEL, 500)
    );
    assert!(
        message.starts_with("server_error: upstream exploded"),
        "{message}"
    );
    assert!(
        message.chars().count() <= 301,
        "not truncated: {} chars",
        message.len()
    );
    let shown = err.to_string();
    for part in ["openai", MODEL, "500", "upstream exploded"] {
        assert!(shown.contains(part), "`{part}` missing from {shown}");
    }
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let bad = json!({"error": {"message": "unknown model", "type": "invalid_request_error"}});
    let server = FakeServer::start([Reply::json(400, bad), Reply::json(200, answer("no"))]).await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert_eq!(server.request_count(), 1);
    assert!(
        matches!(&err, LlmError::Http { status: 400, message, .. } if message == "invalid_request_error: unknown model"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = FakeServer::start([Reply::hang(), Reply::hang()]).await;
    let model = OpenAiChat::new(
        config(&server)
            .with_request_timeout(Duration::from_millis(300))
            .with_retry(fast_retry(1)),
    )
    .expect("valid config");
    let started = Instant::now();

    let err = model.chat(&request()).await.expect_err("times out");

    let elapsed = started.elapsed();
    assert!(
        matches!(&err, LlmError::Timeout { provider, after, .. }
            if provider == "openai" && *after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 2, "timeouts are retried");
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_stream_that_stalls_after_text_times_out_without_a_retry() {
    let events = stream_events();
    let server =
        FakeServer::start([Reply::sse_then_stall(&events[..2]), Reply::sse(&events)]).await;
    let model = OpenAiChat::new(config(&server).with_request_timeout(Duration::from_millis(300)))
        .expect("valid config");
    let mut deltas = Vec::new();
    let mut on_delta = |text: &str| deltas.push(text.to_string());

    let err = model
        .chat_streaming(&request(), &mut on_delta)
        .await
        .expect_err("times out");

    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    assert_eq!(deltas, ["Hel"]);
    assert_eq!(server.request_count(), 1, "no retry once text was reported");
}

#[tokio::test]
async fn malformed_json_is_reported_and_not_retried() {
    let server = FakeServer::start([
        Reply::text(200, "application/json", r#"{"choices": [oops"#),
        Reply::json(200, answer("unused")),
    ])
    .await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert_eq!(server.request_count(), 1);
    assert!(
        matches!(&err, LlmError::MalformedResponse { provider, message, .. }
            if provider == "openai" && message.contains("invalid JSON")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_answer_without_choices_is_malformed() {
    let server = FakeServer::start([Reply::json(200, json!({"object": "chat.completion"}))]).await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert!(matches!(err, LlmError::MalformedResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_cut_short_of_its_length_is_a_retried_connection_error() {
    let cut = &answer("this answer is cut").to_string()[..40];
    let server = FakeServer::start([
        Reply::truncated(200, 400, cut),
        Reply::truncated(200, 400, cut),
        Reply::truncated(200, 400, cut),
    ])
    .await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert!(
        matches!(&err, LlmError::Connection { provider, .. } if provider == "openai"),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 3, "connection errors are retried");
}

#[tokio::test]
async fn a_close_delimited_body_cut_short_is_malformed() {
    let cut = &answer("this answer is cut").to_string()[..40];
    let server = FakeServer::start([Reply::close_delimited(200, cut)]).await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert!(matches!(err, LlmError::MalformedResponse { .. }), "{err:?}");
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn a_stream_that_ends_early_is_malformed() {
    let events = stream_events();
    let server = FakeServer::start([Reply::sse(&events[..3])]).await;
    let mut deltas = Vec::new();
    let mut on_delta = |text: &str| deltas.push(text.to_string());

    let err = provider(&server)
        .chat_streaming(&request(), &mut on_delta)
        .await
        .expect_err("fails");

    assert!(
        matches!(&err, LlmError::MalformedResponse { message, .. } if message.contains("ended")),
        "{err:?}"
    );
    assert_eq!(deltas, ["Hel", "lo"]);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    let model = OpenAiChat::new(
        OpenAiConfig::new(MODEL)
            .with_base_url(closed_port_url().await)
            .with_retry(fast_retry(1)),
    )
    .expect("valid config");

    let err = model.chat(&request()).await.expect_err("fails");

    assert!(
        matches!(&err, LlmError::Connection { provider, model, .. } if provider == "openai" && model == MODEL),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let call = json!({
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "add", "arguments": "{\"a\":1,\"b\":2}"}
                }]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 20, "completion_tokens": 8}
    });
    let server =
        FakeServer::start([Reply::json(200, call), Reply::json(200, answer("It is 3."))]).await;
    let model = provider(&server);
    let add = ToolDefinition {
        name: "add".into(),
        description: "Adds two numbers.".into(),
        parameters: json!({"type": "object"}),
    };
    let first = ChatRequest::new(vec![Message::user("1+2?")]).with_tools(vec![add.clone()]);

    let response = model.chat(&first).await.expect("tool call");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text, "");
    assert_eq!(
        response.tool_calls,
        [ToolCall {
            id: "call_abc".into(),
            name: "add".into(),
            arguments: r#"{"a":1,"b":2}"#.into()
        }]
    );

    let mut messages = first.messages.clone();
    messages.push(Message {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: response.tool_calls.clone(),
        tool_call_id: None,
    });
    messages.push(Message::tool_result("call_abc", "3"));
    let second = ChatRequest::new(messages).with_tools(vec![add]);
    let response = model.chat(&second).await.expect("final answer");
    assert_eq!(response.text, "It is 3.");

    let body = server.requests()[1].json();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "1+2?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_abc", "type": "function",
                "function": {"name": "add", "arguments": "{\"a\":1,\"b\":2}"}
            }]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "3"}
        ])
    );
}

#[tokio::test]
async fn a_tool_result_without_a_call_id_is_refused_before_sending() {
    let server = FakeServer::start([]).await;
    let mut result = Message::tool_result("x", "3");
    result.tool_call_id = None;

    let err = provider(&server)
        .chat(&ChatRequest::new(vec![Message::user("hi"), result]))
        .await
        .expect_err("refused");

    assert!(matches!(err, LlmError::Unsupported { .. }), "{err:?}");
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn clones_share_the_concurrency_limit() {
    async fn peak(limit: usize) -> usize {
        let replies =
            (0..3).map(|_| Reply::json(200, answer("ok")).with_delay(Duration::from_millis(150)));
        let server = FakeServer::start(replies).await;
        let model = OpenAiChat::new(config(&server).with_max_concurrency(limit)).expect("config");
        let request = request();
        let calls = (0..3).map(|_| {
            let model = model.clone();
            let request = request.clone();
            async move { model.chat(&request).await }
        });
        for result in futures::future::join_all(calls).await {
            result.expect("success");
        }
        server.max_in_flight()
    }
    assert_eq!(peak(1).await, 1);
    assert_eq!(peak(3).await, 3);
}
