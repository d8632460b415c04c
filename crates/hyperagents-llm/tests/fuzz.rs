//! Generated replies to requests under a JSON schema (issue 14): whatever text a model sends,
//! reading it as JSON never panics, and a reply that is not JSON is an error naming the provider
//! and model, with no more than the reply's start quoted.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hyperagents_llm::{Capabilities, ChatResponse, FinishReason, LlmError, ModelDescriptor, Usage};
use hyperagents_testkit::fuzz::check;
use proptest::prelude::*;

fn model() -> ModelDescriptor {
    ModelDescriptor {
        provider: "embedded".into(),
        model: "fuzz-model".into(),
        fingerprint: None,
        capabilities: Capabilities::default(),
    }
}

/// A reply as a model under a schema writes one: JSON objects with the asked-for fields, then
/// cut short, wrapped in prose or fences, nested absurdly deep, or not JSON at all.
fn reply() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::String),
    ];
    let json = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        4 => (json, 0.0..1.5f64).prop_map(|(value, cut)| {
            let text = value.to_string();
            if cut < 1.0 {
                text.chars().take((text.chars().count() as f64 * cut) as usize).collect()
            } else {
                text
            }
        }),
        1 => (1usize..2000, any::<bool>()).prop_map(|(depth, object)| if object {
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
        } else {
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        }),
        1 => "```json\n\\{\"answer\": [0-9]{1,3}\\}\n```",
        1 => "Sure! \\{\"answer\": \"\\PC{0,20}\"\\}",
        1 => "\\PC{0,400}",
        1 => (0usize..6000).prop_map(|n| format!("\"{}", "x".repeat(n))),
    ]
}

#[test]
fn fuzz_schema_replies_parse_or_name_the_model() {
    check(512, (reply(), any::<bool>()), |(text, cut_off)| {
        let response = ChatResponse {
            text: text.clone(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            finish_reason: if cut_off {
                FinishReason::Length
            } else {
                FinishReason::Stop
            },
            latency: Duration::ZERO,
            cache_hit: false,
            timing: None,
        };
        let is_json = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        match response.json_output(&model()) {
            Ok(value) => {
                prop_assert!(is_json);
                prop_assert_eq!(
                    value,
                    serde_json::from_str::<serde_json::Value>(&text).unwrap()
                );
            }
            Err(error) => {
                prop_assert!(!is_json);
                prop_assert!(
                    matches!(error, LlmError::MalformedResponse { .. }),
                    "{:?}",
                    error
                );
                let shown = error.to_string();
                prop_assert!(
                    shown.starts_with("embedded model fuzz-model: malformed response: "),
                    "{}",
                    shown
                );
                prop_assert_eq!(shown.contains("token limit"), cut_off, "{}", shown);
                // 300 characters quoted, each escaped to at most 10.
                prop_assert!(
                    shown.chars().count() <= 3500,
                    "the error quotes the whole {}-character reply",
                    text.chars().count()
                );
            }
        }
        Ok(())
    });
}
