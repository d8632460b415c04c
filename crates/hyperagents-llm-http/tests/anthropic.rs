//! The Anthropic Messages provider against a scripted loopback server.

mod support;

use std::time::{Duration, Instant, SystemTime};

use hyperagents_llm::{
    ChatModel, ChatRequest, FinishReason, LlmError, Message, Role, Sampling, ToolCall,
    ToolDefinition, Usage,
};
use hyperagents_llm_http::{AnthropicChat, AnthropicConfig};
use serde_json::{Value, json};
use support::{FakeServer, Reply, closed_port_url, fast_retry, gap, sse_event};

const MODEL: &str = "claude-test";

fn config(server: &FakeServer) -> AnthropicConfig {
    AnthropicConfig::new(MODEL)
        .with_base_url(server.base_url())
        .with_api_key("sk-ant-test-key")
        .with_retry(fast_retry(2))
        .with_request_timeout(Duration::from_secs(5))
}

fn provider(server: &FakeServer) -> AnthropicChat {
    AnthropicChat::new(config(server)).expect("valid config")
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("be brief"),
        Message::user("hi"),
        Message::system("and kind"),
    ])
    .with_sampling(Sampling {
        temperature: 0.25,
        top_p: 0.5,
        seed: 4242,
        max_tokens: 77,
        stop: vec!["END".into()],
    })
}

fn answer(text: &str) -> Value {
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 5}
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
    let server = FakeServer::start([Reply::json(200, answer("Hello"))]).await;
    let model = provider(&server);

    let response = model
        .chat(&request().with_tools(vec![lookup_tool()]))
        .await
        .expect("success");

    assert_eq!(response.text, "Hello");
    assert!(response.tool_calls.is_empty());
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 15,
            output_tokens: 3,
            cached_input_tokens: 5
        },
        "cache reads count, and are reported as cached"
    );
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert!(response.latency > Duration::ZERO);

    let descriptor = model.descriptor();
    assert_eq!(
        (descriptor.provider.as_str(), descriptor.model.as_str()),
        ("anthropic", MODEL)
    );
    let caps = descriptor.capabilities;
    assert!(caps.tools && caps.json_schema && caps.streaming);

    let sent = &server.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test-key"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["system"], "be brief\n\nand kind");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
    assert_eq!(body["max_tokens"], 77);
    assert!(close(&body["temperature"], 0.25), "{body}");
    assert!(body.get("top_p").is_none(), "top_p is opt-in: {body}");
    assert!(body.get("seed").is_none(), "Anthropic has no seed: {body}");
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(
        body["tools"],
        json!([{
            "name": "lookup",
            "description": "Looks a word up.",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}
        }])
    );
    assert!(body.get("tool_choice").is_none(), "{body}");
    assert!(body.get("stream").is_none(), "{body}");
}

#[tokio::test]
async fn top_p_is_sent_when_asked_for_and_temperature_is_clamped() {
    let server = FakeServer::start([Reply::json(200, answer("Hello"))]).await;
    let model = AnthropicChat::new(config(&server).with_send_top_p(true)).expect("config");

    model
        .chat(&request().with_temperature(1.5))
        .await
        .expect("success");

    let body = server.requests()[0].json();
    assert!(close(&body["top_p"], 0.5), "{body}");
    assert!(
        close(&body["temperature"], 1.0),
        "Anthropic's range ends at 1: {body}"
    );
}

#[tokio::test]
async fn a_json_schema_is_a_forced_tool_whose_input_is_the_text() {
    let tool_answer = json!({
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "verdict", "input": {"ok": true}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 30, "output_tokens": 6}
    });
    let server = FakeServer::start([Reply::json(200, tool_answer)]).await;
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});

    let response = provider(&server)
        .chat(&request().with_json_schema("verdict", schema.clone()))
        .await
        .expect("success");

    let parsed: Value = serde_json::from_str(&response.text).expect("text is JSON");
    assert_eq!(parsed, json!({"ok": true}));
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.finish_reason, FinishReason::Stop);
    let body = server.requests()[0].json();
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "verdict"})
    );
    assert_eq!(body["tools"][0]["name"], "verdict");
    assert_eq!(body["tools"][0]["input_schema"], schema);
}

#[tokio::test]
async fn a_json_schema_next_to_tools_lets_the_model_pick_any_tool() {
    let tool_answer = json!({
        "content": [{"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"q": "x"}}],
        "stop_reason": "tool_use"
    });
    let server = FakeServer::start([Reply::json(200, tool_answer)]).await;
    let request = request()
        .with_tools(vec![lookup_tool()])
        .with_json_schema("final answer!", json!({"type": "object"}));

    let response = provider(&server).chat(&request).await.expect("success");

    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.tool_calls[0].name, "lookup");
    assert_eq!(response.text, "");
    let body = server.requests()[0].json();
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    let names: Vec<_> = body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("lookup"), json!("final_answer_")]);
}

#[tokio::test]
async fn a_non_object_schema_is_refused_before_sending() {
    let server = FakeServer::start([]).await;

    let err = provider(&server)
        .chat(&request().with_json_schema("list", json!({"type": "array"})))
        .await
        .expect_err("refused");

    assert!(matches!(err, LlmError::Unsupported { .. }), "{err:?}");
    assert_eq!(server.request_count(), 0);
}

fn stream_events() -> Vec<String> {
    [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
               "content": [], "model": MODEL, "stop_reason": null,
               "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1,
               "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
        json!({"type": "content_block_delta", "index": 1,
               "delta": {"type": "input_json_delta", "partial_json": "\"rust\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"output_tokens": 17}}),
        json!({"type": "message_stop"}),
    ]
    .iter()
    .map(sse_event)
    .collect()
}

#[tokio::test]
async fn streaming_reports_deltas_and_assembles_tool_calls_and_usage() {
    let server = FakeServer::start([Reply::sse(&stream_events())]).await;
    let mut deltas = Vec::new();
    let mut on_delta = |text: &str| deltas.push(text.to_string());

    let response = provider(&server)
        .chat_streaming(&request().with_tools(vec![lookup_tool()]), &mut on_delta)
        .await
        .expect("success");

    assert_eq!(deltas, ["Hel", "lo"]);
    assert_eq!(response.text, "Hello");
    assert_eq!(
        response.tool_calls,
        [ToolCall {
            id: "toolu_1".into(),
            name: "lookup".into(),
            arguments: r#"{"q":"rust"}"#.into()
        }]
    );
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 25,
            output_tokens: 17,
            cached_input_tokens: 0
        }
    );
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let sent = &server.requests()[0];
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    assert_eq!(sent.json()["stream"], true);
}

#[tokio::test]
async fn streaming_in_json_mode_reports_the_answer_json() {
    let events: Vec<String> = [
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 40, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "tool_use", "id": "toolu_2", "name": "verdict", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "input_json_delta", "partial_json": "{\"ok\":"}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "input_json_delta", "partial_json": " true}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ]
    .iter()
    .map(sse_event)
    .collect();
    let server = FakeServer::start([Reply::sse(&events)]).await;
    let mut deltas = Vec::new();
    let mut on_delta = |text: &str| deltas.push(text.to_string());

    let response = provider(&server)
        .chat_streaming(
            &request().with_json_schema("verdict", json!({"type": "object"})),
            &mut on_delta,
        )
        .await
        .expect("success");

    assert_eq!(deltas, ["{\"ok\":", " true}"]);
    assert_eq!(response.text, "{\"ok\": true}");
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 40,
            output_tokens: 9,
            cached_input_tokens: 0
        }
    );
}

#[tokio::test]
async fn an_overloaded_event_before_any_text_is_retried() {
    let overloaded = vec![sse_event(&json!({
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}
    }))];
    let server = FakeServer::start([Reply::sse(&overloaded), Reply::sse(&stream_events())]).await;
    let mut deltas = Vec::new();
    let mut on_delta = |text: &str| deltas.push(text.to_string());

    let response = provider(&server)
        .chat_streaming(&request(), &mut on_delta)
        .await
        .expect("success");

    assert_eq!(response.text, "Hello");
    assert_eq!(deltas, ["Hel", "lo"], "nothing reported twice");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn an_error_event_after_text_fails_without_a_retry() {
    let mut events = stream_events()[..4].to_vec();
    events.push(sse_event(&json!({
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}
    })));
    let server = FakeServer::start([Reply::sse(&events), Reply::sse(&stream_events())]).await;
    let mut deltas = Vec::new();
    let mut on_delta = |text: &str| deltas.push(text.to_string());

    let err = provider(&server)
        .chat_streaming(&request(), &mut on_delta)
        .await
        .expect_err("fails");

    assert!(
        matches!(&err, LlmError::Http { status: 529, message, .. } if message.contains("Overloaded")),
        "{err:?}"
    );
    assert_eq!(deltas, ["Hel"]);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_seconds() {
    let limited =
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}});
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
}

#[tokio::test]
async fn too_many_requests_waits_for_a_retry_after_date() {
    // HTTP-dates have whole seconds: two seconds ahead is at least one.
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let limited =
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}});
    let server = FakeServer::start([
        Reply::json(429, limited).with_header("retry-after", &at),
        Reply::json(200, answer("finally")),
    ])
    .await;

    provider(&server).chat(&request()).await.expect("success");

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = gap(&requests, 0, 1);
    assert!(
        waited >= Duration::from_millis(900),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_millis(2500), "waited {waited:?}");
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let server = FakeServer::start([
        Reply::json(
            500,
            json!({"type": "error", "error": {"type": "api_error", "message": "hiccup"}}),
        ),
        Reply::json(200, answer("recovered")),
    ])
    .await;

    let response = provider(&server).chat(&request()).await.expect("success");

    assert_eq!(response.text, "recovered");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn repeated_server_errors_give_up_with_provider_model_status_and_an_excerpt() {
    let failure = Reply::json(
        500,
        json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}),
    );
    let server = FakeServer::start(vec![failure; 3]).await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert_eq!(server.request_count(), 3);
    assert!(matches!(err, LlmError::Http { status: 500, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "anthropic model claude-test: HTTP 500: api_error: Internal server error"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = FakeServer::start([Reply::hang(), Reply::hang()]).await;
    let model = AnthropicChat::new(
        config(&server)
            .with_request_timeout(Duration::from_millis(300))
            .with_retry(fast_retry(1)),
    )
    .expect("valid config");
    let started = Instant::now();

    let err = model.chat(&request()).await.expect_err("times out");

    let elapsed = started.elapsed();
    assert!(
        matches!(&err, LlmError::Timeout { provider, model, .. } if provider == "anthropic" && model == MODEL),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 2);
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn malformed_json_is_reported_and_not_retried() {
    let server = FakeServer::start([
        Reply::text(200, "application/json", "<html>gateway</html>"),
        Reply::json(200, answer("unused")),
    ])
    .await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert_eq!(server.request_count(), 1);
    assert!(
        matches!(&err, LlmError::MalformedResponse { provider, message, .. }
            if provider == "anthropic" && message.contains("<html>gateway</html>")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_cut_short_of_its_length_is_a_retried_connection_error() {
    let cut = &answer("this answer is cut").to_string()[..40];
    let server = FakeServer::start(vec![Reply::truncated(200, 400, cut); 3]).await;

    let err = provider(&server).chat(&request()).await.expect_err("fails");

    assert!(matches!(err, LlmError::Connection { .. }), "{err:?}");
    assert_eq!(server.request_count(), 3);
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_is_malformed() {
    let events = stream_events();
    let server = FakeServer::start([Reply::sse(&events[..events.len() - 1])]).await;
    let mut on_delta = |_: &str| {};

    let err = provider(&server)
        .chat_streaming(&request(), &mut on_delta)
        .await
        .expect_err("fails");

    assert!(
        matches!(&err, LlmError::MalformedResponse { message, .. } if message.contains("message_stop")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    let model = AnthropicChat::new(
        AnthropicConfig::new(MODEL)
            .with_base_url(closed_port_url().await)
            .with_retry(fast_retry(0)),
    )
    .expect("valid config");

    let err = model.chat(&request()).await.expect_err("fails");

    assert!(
        matches!(&err, LlmError::Connection { provider, .. } if provider == "anthropic"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let call = json!({
        "content": [
            {"type": "text", "text": "Let me add."},
            {"type": "tool_use", "id": "toolu_abc", "name": "add", "input": {"a": 1, "b": 2}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 20, "output_tokens": 8}
    });
    let server =
        FakeServer::start([Reply::json(200, call), Reply::json(200, answer("It is 3."))]).await;
    let model = provider(&server);
    let add = ToolDefinition {
        name: "add".into(),
        description: "Adds two numbers.".into(),
        parameters: json!({"type": "object"}),
    };
    let first = ChatRequest::new(vec![Message::system("math"), Message::user("1+2?")])
        .with_tools(vec![add.clone()]);

    let response = model.chat(&first).await.expect("tool call");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.text, "Let me add.");
    assert_eq!(response.tool_calls.len(), 1);
    let call = &response.tool_calls[0];
    assert_eq!((call.id.as_str(), call.name.as_str()), ("toolu_abc", "add"));
    let arguments: Value = serde_json::from_str(&call.arguments).expect("JSON arguments");
    assert_eq!(arguments, json!({"a": 1, "b": 2}));

    let mut messages = first.messages.clone();
    messages.push(Message {
        role: Role::Assistant,
        content: response.text.clone(),
        tool_calls: response.tool_calls.clone(),
        tool_call_id: None,
    });
    messages.push(Message::tool_result("toolu_abc", "3"));
    messages.push(Message::user("and now?"));
    let response = model
        .chat(&ChatRequest::new(messages).with_tools(vec![add]))
        .await
        .expect("final answer");
    assert_eq!(response.text, "It is 3.");

    let body = server.requests()[1].json();
    assert_eq!(body["system"], "math");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "1+2?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me add."},
                {"type": "tool_use", "id": "toolu_abc", "name": "add", "input": {"a": 1, "b": 2}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_abc", "content": "3"},
                {"type": "text", "text": "and now?"}
            ]}
        ])
    );
}

#[tokio::test]
async fn tool_call_arguments_that_are_not_json_are_refused_before_sending() {
    let server = FakeServer::start([]).await;
    let mut assistant = Message::assistant("");
    assistant.tool_calls = vec![ToolCall {
        id: "t1".into(),
        name: "add".into(),
        arguments: "{oops".into(),
    }];
    let request = ChatRequest::new(vec![Message::user("hi"), assistant]);

    let err = provider(&server).chat(&request).await.expect_err("refused");

    assert!(matches!(err, LlmError::Unsupported { .. }), "{err:?}");
    assert_eq!(server.request_count(), 0);
}
