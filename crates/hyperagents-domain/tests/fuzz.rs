//! Generated untrusted inputs (issue 14): JSONL suite files and a judge model's verdicts.
//! Parsing never panics or hangs; a suite error names its file and the line at fault, and a
//! malformed verdict says what was expected and quotes the reply.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hyperagents_domain::judge::parse_verdict;
use hyperagents_domain::{DomainError, JsonlSuite};
use hyperagents_llm::{ChatResponse, FinishReason, Usage};
use hyperagents_testkit::fuzz::check;
use proptest::prelude::*;

/// JSON text of `depth` nested arrays or objects around `inner`.
fn nested(depth: usize, object: bool, inner: &str) -> String {
    if object {
        format!("{}{inner}{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// JSON values as a file or a model might hold them: the right types, the wrong ones, huge
/// numbers, escapes, lone surrogates, deep nesting.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("\"\"".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        Just("1e999".to_owned()),
        Just("-0".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        "[a-zA-Z0-9 .,()|*+?\\[\\]{}^$-]{0,24}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
        (1usize..400, any::<bool>()).prop_map(|(depth, object)| nested(depth, object, "1")),
        (0usize..200).prop_map(|n| format!("\"{}\"", "(a*)*".repeat(n))),
    ]
}

// ---------------------------------------------------------------------------
// JSONL suites

const FILE: &str = "suites/fuzz.jsonl";

const SCORERS: &[&str] = &[
    "\"exact\"",
    "\"contains\"",
    "\"regex\"",
    "\"numeric\"",
    "\"judge\"",
    "\"command\"",
    "\"fuzzy\"",
    "{\"type\": \"numeric\", \"tolerance\": 0.5, \"relative\": true}",
    "{\"type\": \"numeric\", \"tolerance\": -1}",
    "{\"type\": \"contains\", \"max_len\": 18446744073709551615}",
    "{\"type\": \"command\", \"command\": [\"python3\", \"check.py\"], \"timeout_secs\": 0}",
    "{\"type\": \"command\", \"command\": []}",
    "{\"type\": \"regex\", \"extra\": 1}",
    "{\"type\": 7}",
];

/// One line of a suite: a task object with fields present, missing, mistyped or extra.
fn task_line() -> impl Strategy<Value = String> {
    let field = |name: &'static str| {
        prop_oneof![
            2 => json_value().prop_map(move |v| Some(format!("\"{name}\": {v}"))),
            1 => Just(None),
        ]
    };
    (
        prop_oneof![
            "[a-c]{1,2}".prop_map(|id| format!("\"id\": \"{id}\"")),
            field("id").prop_map(Option::unwrap_or_default),
        ],
        field("input"),
        prop_oneof![
            "[0-9a-z .*+()|]{0,12}".prop_map(|e| Some(format!("\"expected\": \"{e}\""))),
            field("expected"),
        ],
        prop::option::of(prop::sample::select(SCORERS)),
        prop::option::of(prop::sample::select(vec!["train", "test", "dev"])),
        prop::option::of(json_value()),
    )
        .prop_map(|(id, input, expected, scorer, split, extra)| {
            let mut fields: Vec<String> = vec![id];
            fields.extend(input);
            fields.extend(expected);
            fields.extend(scorer.map(|s| format!("\"scorer\": {s}")));
            fields.extend(split.map(|s| format!("\"split\": \"{s}\"")));
            fields.extend(extra.map(|v| format!("\"extra\": {v}")));
            format!(
                "{{{}}}",
                fields
                    .into_iter()
                    .filter(|f| !f.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn suite_line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => task_line(),
        1 => Just(String::new()),
        1 => Just("# a comment".to_owned()),
        1 => "\\PC{0,60}",
        // A task line cut short.
        1 => (task_line(), 0.0..1.0f64).prop_map(|(line, cut)| {
            let mut at = (line.len() as f64 * cut) as usize;
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            line[..at].to_owned()
        }),
    ]
}

fn suite_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(suite_line(), 0..12),
        prop::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(|(lines, newline)| lines.join(newline))
}

/// The suite parses, or its error is `file:line: …` at a line holding a task (or line 1 when
/// the file holds none).
fn check_suite(text: &str) -> Result<(), TestCaseError> {
    let error = match JsonlSuite::parse("jsonl:fuzz", FILE, text) {
        Ok(suite) => {
            prop_assert!(!suite.tasks().is_empty());
            return Ok(());
        }
        Err(error) => error,
    };
    let shown = error.to_string();
    let DomainError::Parse { file, line, .. } = &error else {
        return Err(TestCaseError::fail(format!("not a parse error: {shown}")));
    };
    prop_assert_eq!(file, FILE);
    prop_assert!(shown.starts_with(&format!("{FILE}:{line}: ")), "{}", shown);
    let lines: Vec<&str> = text.lines().collect();
    let holds_a_task = |l: &str| !l.trim().is_empty() && !l.trim().starts_with('#');
    if lines.iter().any(|l| holds_a_task(l)) {
        prop_assert!(
            *line >= 1 && *line <= lines.len() && holds_a_task(lines[line - 1]),
            "{} points at no task line",
            shown
        );
    } else {
        prop_assert_eq!(*line, 1);
    }
    Ok(())
}

#[test]
fn fuzz_jsonl_suites_parse_or_name_file_and_line() {
    check(384, suite_text(), |text| check_suite(&text));
}

#[test]
fn fuzz_jsonl_suites_of_arbitrary_text_parse_or_name_file_and_line() {
    check(128, "\\PC{0,300}", |text| check_suite(&text));
}

#[test]
fn fuzz_jsonl_suite_files_of_damaged_bytes_load_or_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suite.jsonl");
    let input = (
        suite_text(),
        prop::collection::vec((any::<usize>(), 1..=255u8), 0..3),
    );
    check(128, input, |(text, flips)| {
        let mut bytes = text.into_bytes();
        for (at, mask) in flips {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Err(error) = JsonlSuite::load(&path) {
            let shown = error.to_string();
            let file = path.display().to_string();
            prop_assert!(
                matches!(&error, DomainError::Parse { file: named, line, .. } if *named == file && *line >= 1),
                "{}",
                shown
            );
            prop_assert!(shown.starts_with(&file), "{}", shown);
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// A judge's verdict: a model's reply under the verdict schema

fn response(text: String, cut_off: bool) -> ChatResponse {
    ChatResponse {
        text,
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
    }
}

/// A verdict as a model might write it: fields right, mistyped, missing or extra, cut off.
fn verdict_text() -> impl Strategy<Value = String> {
    let correct = prop_oneof![
        Just("true".to_owned()),
        Just("false".to_owned()),
        json_value()
    ];
    let reason = prop_oneof![
        "\\PC{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        json_value()
    ];
    (
        prop::option::of(correct),
        prop::option::of(reason),
        prop::option::of(json_value()),
        0.0..1.5f64,
        prop::sample::select(vec!["", " ", "```json\n", "\n"]),
    )
        .prop_map(|(correct, reason, extra, cut, wrap)| {
            let mut fields = Vec::new();
            fields.extend(correct.map(|v| format!("\"correct\": {v}")));
            fields.extend(reason.map(|v| format!("\"reason\": {v}")));
            fields.extend(extra.map(|v| format!("\"confidence\": {v}")));
            let text = format!("{wrap}{{{}}}", fields.join(", "));
            if cut < 1.0 {
                text.chars()
                    .take((text.chars().count() as f64 * cut) as usize)
                    .collect()
            } else {
                text
            }
        })
}

/// A verdict parses, or the error states the expected shape and quotes at most the reply's
/// start.
fn check_verdict(text: String, cut_off: bool) -> Result<(), TestCaseError> {
    let Err(malformed) = parse_verdict(&response(text.clone(), cut_off)) else {
        return Ok(());
    };
    let shown = malformed.to_string();
    prop_assert!(
        shown.contains("expected exactly {\"correct\": bool, \"reason\": string}"),
        "{}",
        shown
    );
    prop_assert!(shown.contains("output: \""), "{}", shown);
    prop_assert_eq!(malformed.cut_off, cut_off);
    // 160 characters quoted, each escaped to at most 10.
    prop_assert!(
        shown.chars().count() <= 2500,
        "the message quotes the whole {}-character reply",
        text.chars().count()
    );
    Ok(())
}

#[test]
fn fuzz_judge_verdicts_parse_or_say_what_was_expected() {
    check(384, (verdict_text(), any::<bool>()), |(text, cut_off)| {
        check_verdict(text, cut_off)
    });
}

#[test]
fn fuzz_judge_verdicts_of_arbitrary_text_parse_or_say_what_was_expected() {
    let text = prop_oneof![
        "\\PC{0,300}",
        json_value(),
        (0usize..6000).prop_map(|n| "x".repeat(n))
    ];
    check(128, (text, any::<bool>()), |(text, cut_off)| {
        check_verdict(text, cut_off)
    });
}
