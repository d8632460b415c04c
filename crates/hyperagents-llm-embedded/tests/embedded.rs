//! The embedded provider on the real SmolLM2 model (pulled by
//! `hyperagents models pull`, or pointed to by `HYPERAGENTS_TEST_MODEL`).

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

use std::path::PathBuf;
use std::sync::Arc;

use hyperagents_llm::{ChatModel, ChatRequest, FinishReason, LlmError, Message, ToolDefinition};
use hyperagents_llm_embedded::{EmbeddedError, EmbeddedModel, EngineConfig};

fn model_path() -> PathBuf {
    hyperagents_testkit::smollm2_path()
}

async fn smollm2() -> EmbeddedModel {
    EmbeddedModel::load("smollm2-135m", &model_path(), None, EngineConfig::default())
        .await
        .expect("the real model loads")
}

fn ask(question: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(question)])
        .with_temperature(0.0)
        .with_max_tokens(48)
}

#[tokio::test]
async fn answers_through_the_real_model() {
    let model = smollm2().await;
    // SmolLM2-135M is weak (it garbles capitals) but gets this one right.
    let response = model.chat(&ask("What is 2+2?")).await.unwrap();
    assert!(response.text.contains('4'), "{:?}", response.text);
    assert!(response.usage.input_tokens > 5);
    assert!(response.usage.output_tokens > 0);
    assert!(matches!(
        response.finish_reason,
        FinishReason::Stop | FinishReason::Length
    ));
    assert_eq!(model.descriptor().provider, "embedded");
}

#[tokio::test]
async fn the_same_seed_gives_the_same_text() {
    let model = smollm2().await;
    let request = ChatRequest::new(vec![Message::user("Write a short poem about rivers.")])
        .with_temperature(1.0)
        .with_max_tokens(24)
        .with_seed(1234);
    let a = model.chat(&request).await.unwrap();
    let b = model.chat(&request).await.unwrap();
    assert_eq!(a.text, b.text);
    let others: Vec<String> = futures::future::join_all((0..3).map(|s| {
        let r = request.clone().with_seed(99 + s);
        let model = &model;
        async move { model.chat(&r).await.unwrap().text }
    }))
    .await;
    assert!(
        others.iter().any(|t| *t != a.text),
        "three other seeds all reproduced {:?}",
        a.text
    );
}

#[tokio::test]
async fn json_schema_output_is_grammar_constrained() {
    let model = smollm2().await;
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 24},
            "population_millions": {"type": "integer", "minimum": 0, "maximum": 100}
        },
        "required": ["city", "population_millions"]
    });
    let before = model.stats();
    // Sampled at the default temperature with three seeds, then greedily.
    for (seed, temperature) in [(0, None), (1, None), (2, None), (0, Some(0.0))] {
        let mut request =
            ChatRequest::new(vec![Message::user("Name a large city and its population.")])
                .with_json_schema("city", schema.clone())
                .with_max_tokens(96)
                .with_seed(seed);
        if let Some(t) = temperature {
            request = request.with_temperature(t);
        }
        let response = model.chat(&request).await.unwrap();
        let value: serde_json::Value = serde_json::from_str(&response.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", response.text));
        assert!(value["city"].is_string(), "{value}");
        assert!(value["population_millions"].is_i64(), "{value}");
    }
    // Every token went through the grammar: most as a single candidate the
    // grammar allowed, some (the model wants prose before the JSON) drawn
    // again from the masked vocabulary.
    let after = model.stats();
    let checked = after.grammar_tokens_checked - before.grammar_tokens_checked;
    let resampled = after.grammar_tokens_resampled - before.grammar_tokens_resampled;
    let generated = after.generated_tokens - before.generated_tokens;
    assert!(checked + resampled >= generated, "{after:?}");
    assert!(checked > 0 && resampled > 0, "{after:?}");
}

#[tokio::test]
async fn properties_are_generated_in_the_order_the_schema_lists_them() {
    // Not alphabetical: a reason first, then the decision it leads to.
    let model = smollm2().await;
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 40},
            "choice": {"type": "string", "enum": ["yes", "no"]}
        },
        "required": ["reason", "choice"]
    });
    let request = ChatRequest::new(vec![Message::user("Is water wet? Explain, then choose.")])
        .with_json_schema("decision", schema)
        .with_max_tokens(64)
        .with_seed(0);
    let response = model.chat(&request).await.unwrap();
    let text = response.text.as_str();
    let reason = text.find("\"reason\"").unwrap();
    let choice = text.find("\"choice\"").unwrap();
    assert!(reason < choice, "{text}");
}

#[tokio::test]
async fn a_shared_prompt_prefix_is_not_recomputed() {
    let model = smollm2().await;
    let system = "You are a careful assistant. ".repeat(40);
    let first = ChatRequest::new(vec![Message::system(&system), Message::user("Say hello.")])
        .with_temperature(0.0)
        .with_max_tokens(8);
    let a = model.chat(&first).await.unwrap();
    let before = model.stats();
    assert_eq!(before.prompt_tokens_evaluated, a.usage.input_tokens);
    assert_eq!(a.usage.cached_input_tokens, 0, "nothing was cached yet");
    let timing = a.timing.expect("the engine reports where its time went");
    assert!(timing.prompt > std::time::Duration::ZERO, "{timing:?}");
    assert!(timing.generate > std::time::Duration::ZERO, "{timing:?}");
    assert!(
        timing.prompt + timing.generate <= a.latency,
        "{timing:?} vs {:?}",
        a.latency
    );

    let second = ChatRequest::new(vec![
        Message::system(&system),
        Message::user("Say goodbye."),
    ])
    .with_temperature(0.0)
    .with_max_tokens(8);
    let b = model.chat(&second).await.unwrap();
    let after = model.stats();
    let evaluated = after.prompt_tokens_evaluated - before.prompt_tokens_evaluated;
    let reused = after.prompt_tokens_reused - before.prompt_tokens_reused;
    assert_eq!(evaluated + reused, b.usage.input_tokens);
    assert_eq!(
        b.usage.cached_input_tokens, reused,
        "each response reports the prefix it reused"
    );
    assert!(
        reused >= 200,
        "only {reused} of {} prompt tokens reused",
        b.usage.input_tokens
    );
    assert!(evaluated < 20, "{evaluated} prompt tokens recomputed");
}

#[tokio::test]
async fn requests_arriving_together_decode_their_shared_prefix_once() {
    let model = Arc::new(smollm2().await);
    let system = "You review programs and propose one careful edit at a time. ".repeat(30);
    let requests: Vec<ChatRequest> = ["Fix the prompt.", "Fix the script."]
        .iter()
        .map(|q| {
            ChatRequest::new(vec![Message::system(&system), Message::user(*q)])
                .with_temperature(0.0)
                .with_max_tokens(8)
        })
        .collect();
    let replies = futures::future::join_all(requests.iter().map(|r| model.chat(r))).await;
    let inputs: u64 = replies
        .into_iter()
        .map(|r| r.unwrap().usage.input_tokens)
        .sum();
    let stats = model.stats();
    assert_eq!(
        stats.prompt_tokens_evaluated + stats.prompt_tokens_reused,
        inputs
    );
    // The system prompt (~400 tokens) was decoded once and copied once.
    assert!(
        stats.prompt_tokens_reused >= 300,
        "only {} of {inputs} prompt tokens reused: {stats:?}",
        stats.prompt_tokens_reused
    );
    assert!(stats.prompt_tokens_evaluated < inputs - 300, "{stats:?}");
}

#[tokio::test]
async fn concurrent_requests_share_decode_steps() {
    let model = Arc::new(smollm2().await);
    let questions = [
        "Count to ten.",
        "Name five fruits.",
        "Describe the sea.",
        "List three colours.",
    ];
    let tasks: Vec<_> = questions
        .iter()
        .map(|q| {
            let model = model.clone();
            let request = ChatRequest::new(vec![Message::user(*q)])
                .with_temperature(0.0)
                .with_max_tokens(32);
            tokio::spawn(async move { model.chat(&request).await })
        })
        .collect();
    let mut generated = 0;
    for task in tasks {
        let response = task.await.unwrap().unwrap();
        generated += response.usage.output_tokens;
    }
    let stats = model.stats();
    assert!(stats.max_sequences_per_decode >= 3, "{stats:?}");
    assert!(
        stats.decode_calls < generated,
        "{} decode calls for {generated} tokens",
        stats.decode_calls
    );
}

#[tokio::test]
async fn max_tokens_and_stop_sequences_end_generation() {
    let model = smollm2().await;
    let response = model
        .chat(&ask("Tell me a long story about a dragon.").with_max_tokens(5))
        .await
        .unwrap();
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert_eq!(response.usage.output_tokens, 5);

    let mut request = ask("Count from 1 to 20, separated by commas.");
    request.sampling.max_tokens = 80;
    let full = model.chat(&request).await.unwrap();
    let stop = full.text.chars().skip(4).take(2).collect::<String>();
    request.sampling.stop = vec![stop.clone()];
    let cut = model.chat(&request).await.unwrap();
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    assert!(
        !cut.text.contains(&stop),
        "{:?} still contains {stop:?}",
        cut.text
    );
    assert!(full.text.starts_with(&cut.text));
}

#[tokio::test]
async fn streaming_deltas_add_up_to_the_answer() {
    let model = smollm2().await;
    let mut deltas = Vec::new();
    let response = model
        .chat_streaming(&ask("Name three planets."), &mut |d| {
            deltas.push(d.to_string())
        })
        .await
        .unwrap();
    assert!(deltas.len() > 1, "{deltas:?}");
    assert_eq!(deltas.concat(), response.text);
}

#[tokio::test]
async fn tool_definitions_are_refused_clearly() {
    let model = smollm2().await;
    let request = ask("hi").with_tools(vec![ToolDefinition {
        name: "calc".into(),
        description: "adds".into(),
        parameters: serde_json::json!({"type": "object"}),
    }]);
    let err = model.chat(&request).await.unwrap_err();
    assert!(matches!(err, LlmError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("smollm2-135m"), "{err}");
}

#[tokio::test]
async fn a_model_without_a_chat_template_is_refused() {
    let bytes = std::fs::read(model_path()).unwrap();
    let key = b"tokenizer.chat_template";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("SmolLM2 has a template");
    let mut patched = bytes;
    patched[at + key.len() - 1] = b'X'; // same length, different key
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-template.gguf");
    std::fs::write(&path, patched).unwrap();
    let err = EmbeddedModel::load("patched", &path, None, EngineConfig::default())
        .await
        .err()
        .expect("loading must fail");
    assert!(matches!(err, EmbeddedError::Template { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.chat_template"), "{err}");
}

#[tokio::test]
async fn a_missing_file_names_the_path() {
    let err = EmbeddedModel::load(
        "x",
        std::path::Path::new("/nonexistent/m.gguf"),
        None,
        EngineConfig::default(),
    )
    .await
    .err()
    .expect("loading must fail");
    assert!(err.to_string().contains("/nonexistent/m.gguf"), "{err}");
}

#[tokio::test]
async fn a_busy_sequence_lends_its_prefix_to_a_new_request() {
    let model = Arc::new(smollm2().await);
    let system = "You answer questions about geography in great detail. ".repeat(30);
    let long = ChatRequest::new(vec![
        Message::system(&system),
        Message::user("Describe the Alps."),
    ])
    .with_temperature(0.0)
    .with_max_tokens(96);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let runner = {
        let model = model.clone();
        tokio::spawn(async move {
            let mut started = Some(started_tx);
            model
                .chat_streaming(&long, &mut |_| {
                    if let Some(tx) = started.take() {
                        let _ = tx.send(());
                    }
                })
                .await
        })
    };
    started_rx
        .await
        .expect("the first request starts generating");
    let before = model.stats();
    let second = ChatRequest::new(vec![
        Message::system(&system),
        Message::user("Name a river."),
    ])
    .with_temperature(0.0)
    .with_max_tokens(8);
    let b = model.chat(&second).await.unwrap();
    let after = model.stats();
    let first = runner.await.unwrap().unwrap();
    assert!(
        first.usage.output_tokens > 8,
        "the first request must still have been running"
    );
    let reused = after.prompt_tokens_reused - before.prompt_tokens_reused;
    assert!(
        reused >= 200,
        "only {reused} of {} prompt tokens reused",
        b.usage.input_tokens
    );
    assert!(!b.text.is_empty());
}
