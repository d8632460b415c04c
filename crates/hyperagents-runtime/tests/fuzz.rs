//! Generated untrusted inputs (issue 14): trajectory files (`.jsonl.gz`) as written, then with
//! lines dropped, repeated, retyped or cut, the gzip stream truncated or bit-flipped, or no gzip
//! at all; and the JSONL files `recall()` reads from a program. Reading never panics or hangs,
//! every error names the file (and the line, for anything inside it), and whatever is read can
//! be rendered and turned into steps.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use hyperagents_runtime::recall::{MAX_RECALL, recall};
use hyperagents_runtime::steps::episode_steps;
use hyperagents_runtime::trace::{TraceError, read_trajectory, render_tree};
use hyperagents_testkit::fuzz::check;
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Trajectories

const KINDS: &[&str] = &[
    "episode",
    "hyper",
    "task",
    "skill",
    "llm",
    "action",
    "observe",
    "tool",
    "log",
    "memory",
    "screenshot",
];

fn header_line() -> Value {
    json!({"type": "episode", "domain": "miniwob", "task": "click-button", "seed": 3,
           "program": "ab12", "started_at_unix_ms": 1_700_000_000_000_u64})
}

fn summary_line() -> Value {
    json!({"type": "summary", "domain": "miniwob", "task": "click-button", "seed": 3,
           "program": "ab12", "success": false, "score": 0.0, "reason": "wrong button",
           "failure": {"path": "hyper/web/click", "kind": "action", "error": "no such ref"},
           "stopped": null, "steps": 2, "calls": 3, "llm_calls": 1, "tokens_in": 10,
           "tokens_out": 5, "cost": 0.0, "duration_ms": 120,
           "files_used": ["hyper/main.py"], "timing": {"reset_ms": 1.5}})
}

/// A span line as the runtime writes one, with ids and parents that may point anywhere.
fn span_line() -> impl Strategy<Value = Value> {
    (
        0u64..12,
        prop::option::of(0u64..14),
        prop::sample::select(KINDS),
        prop_oneof![
            Just(json!({"goal": "Click OK"})),
            Just(json!({"args": {"ref": 2}})),
            Just(json!({"ref": 18_446_744_073_709_551_615_u64})),
            "\\PC{0,30}".prop_map(Value::String),
        ],
        prop_oneof![
            Just(None),
            Just(Some(json!("url: x\n[1] div \"Pick\"\n[2] button \"OK\""))),
            Just(Some(json!({"message": "clicked [2]", "done": false}))),
            "\\PC{0,30}".prop_map(|s| Some(Value::String(s))),
        ],
        prop::option::of("\\PC{0,20}"),
        (any::<u64>(), prop::option::of(any::<u64>())),
    )
        .prop_map(|(id, parent, kind, input, output, error, (start, end))| {
            let mut span = json!({"type": "span", "id": id, "parent": parent, "kind": kind,
                                  "name": "click", "input": input, "tokens_in": 1,
                                  "tokens_out": 2, "cost": 0.001, "start_ms": start,
                                  "end_ms": end});
            if let Some(output) = output {
                span["output"] = output;
            }
            if let Some(error) = error {
                span["error"] = json!(error);
            }
            span
        })
}

/// Values to put in a field: wrong types, out-of-range numbers, unknown kinds, deep nesting.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!("teleport")),
        Just(json!([])),
        Just(json!({})),
        "\\PC{0,20}".prop_map(Value::String),
        (1usize..120).prop_map(|depth| (0..depth).fold(json!(0), |inner, _| json!([inner]))),
    ]
}

#[derive(Debug, Clone)]
enum LineEdit {
    Drop(usize),
    Repeat(usize),
    /// Set the `n`th field of the line to the value.
    Retype(usize, usize, Value),
    /// Cut the line's text at this fraction.
    Cut(usize, f64),
    /// A line of arbitrary bytes (possibly not UTF-8).
    Garbage(usize, Vec<u8>),
    /// A line of nested arrays far deeper than JSON parsers recurse.
    Deep(usize, usize),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        any::<usize>().prop_map(LineEdit::Drop),
        any::<usize>().prop_map(LineEdit::Repeat),
        (any::<usize>(), any::<usize>(), replacement())
            .prop_map(|(l, f, v)| LineEdit::Retype(l, f, v)),
        (any::<usize>(), 0.0..1.0f64).prop_map(|(l, c)| LineEdit::Cut(l, c)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(l, b)| LineEdit::Garbage(l, b)),
        (any::<usize>(), 100usize..5000).prop_map(|(l, d)| LineEdit::Deep(l, d)),
    ]
}

#[derive(Debug, Clone)]
enum StreamEdit {
    None,
    Truncate(f64),
    Flip(usize, u8),
    /// Bytes after the gzip stream's end.
    Trailer(Vec<u8>),
}

fn stream_edit() -> impl Strategy<Value = StreamEdit> {
    prop_oneof![
        4 => Just(StreamEdit::None),
        1 => (0.0..1.0f64).prop_map(StreamEdit::Truncate),
        1 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| StreamEdit::Flip(at, mask)),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(StreamEdit::Trailer),
    ]
}

/// The lines of a trajectory (header, spans, summary), edited, gzipped, the stream edited.
fn trajectory_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(span_line(), 0..10),
        prop::collection::vec(line_edit(), 0..4),
        stream_edit(),
    )
        .prop_map(|(spans, edits, stream_edit)| {
            let mut values = vec![header_line()];
            values.extend(spans);
            values.push(summary_line());
            let mut lines: Vec<Vec<u8>> = values
                .iter()
                .map(|v| serde_json::to_vec(v).unwrap())
                .collect();
            for edit in edits {
                let pick = |i: usize| i % lines.len().max(1);
                match edit {
                    LineEdit::Drop(i) if !lines.is_empty() => {
                        lines.remove(pick(i));
                    }
                    LineEdit::Repeat(i) if !lines.is_empty() => {
                        let line = lines[pick(i)].clone();
                        lines.insert(pick(i), line);
                    }
                    LineEdit::Retype(i, field, value) if !lines.is_empty() => {
                        let i = pick(i);
                        let mut parsed: Value = match serde_json::from_slice(&lines[i]) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        if let Some(map) = parsed.as_object_mut() {
                            let key = map.keys().nth(field % map.len().max(1)).cloned();
                            if let Some(key) = key {
                                map.insert(key, value);
                            }
                        }
                        lines[i] = serde_json::to_vec(&parsed).unwrap();
                    }
                    LineEdit::Cut(i, cut) if !lines.is_empty() => {
                        let i = pick(i);
                        let at = (lines[i].len() as f64 * cut) as usize;
                        lines[i].truncate(at);
                    }
                    LineEdit::Garbage(i, bytes) => {
                        let at = i % (lines.len() + 1);
                        lines.insert(at, bytes.into_iter().filter(|&b| b != b'\n').collect());
                    }
                    LineEdit::Deep(i, depth) => {
                        let at = i % (lines.len() + 1);
                        lines.insert(
                            at,
                            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
                        );
                    }
                    _ => {}
                }
            }
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            for line in &lines {
                gz.write_all(line).unwrap();
                gz.write_all(b"\n").unwrap();
            }
            let mut bytes = gz.finish().unwrap();
            match stream_edit {
                StreamEdit::None => {}
                StreamEdit::Truncate(f) => bytes.truncate((bytes.len() as f64 * f) as usize),
                StreamEdit::Flip(at, mask) => {
                    let at = at % bytes.len();
                    bytes[at] ^= mask;
                }
                StreamEdit::Trailer(tail) => bytes.extend(tail),
            }
            bytes
        })
}

/// Reads `bytes` as the trajectory file `path`: what is read renders and yields steps; an
/// error names the file, and a line within it when it is about one.
fn check_trajectory(path: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    std::fs::write(path, bytes).unwrap();
    match read_trajectory(path) {
        Ok(trajectory) => {
            let tree = render_tree(&trajectory, 40);
            prop_assert!(tree.starts_with("episode "), "{}", tree);
            let steps = episode_steps(&trajectory);
            prop_assert!(steps.steps.len() <= trajectory.spans.len());
        }
        Err(error) => {
            let shown = error.to_string();
            let named = path.display().to_string();
            prop_assert!(shown.starts_with(&named), "{}", shown);
            if let TraceError::Format { line, .. } = error {
                prop_assert!(line >= 1);
                prop_assert!(shown.starts_with(&format!("{named}:{line}: ")), "{}", shown);
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_trajectories_read_or_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("click-button-s3.jsonl.gz");
    check(384, trajectory_file(), |bytes| {
        check_trajectory(&path, &bytes)
    });
}

#[test]
fn fuzz_trajectories_of_arbitrary_bytes_read_or_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("click-button-s3.jsonl.gz");
    // Half of them start with gzip's magic number, so the decoder reads on.
    let input = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300));
    check(128, input, |(magic, tail)| {
        let mut bytes = if magic {
            vec![0x1f, 0x8b, 8, 0]
        } else {
            Vec::new()
        };
        bytes.extend(tail);
        check_trajectory(&path, &bytes)
    });
}

// ---------------------------------------------------------------------------
// recall(): a program's JSONL files, written by its meta agent

fn recall_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ("[a-z ]{0,30}", "\\PC{0,30}").prop_map(|(key, value)| {
            json!({"key": key, "demo": value}).to_string()
        }),
        1 => "[a-z ]{0,30}".prop_map(|goal| json!({"goal": goal, "steps": [1, 2]}).to_string()),
        1 => replacement().prop_map(|v| v.to_string()),
        1 => Just(String::new()),
        1 => "\\PC{0,40}",
        1 => (100usize..3000).prop_map(|d| format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d))),
    ]
}

#[test]
fn fuzz_recall_files_rank_or_name_file_and_line() {
    const FILE: &str = "demos/exemplars.jsonl";
    let input = (
        prop::collection::vec(recall_line(), 0..12),
        "[a-z ]{0,30}",
        0usize..20,
    );
    check(256, input, |(lines, query, k)| {
        let text = lines.join("\n");
        match recall(FILE, &text, &query, k) {
            Ok(entries) => prop_assert!(entries.len() <= k.min(MAX_RECALL)),
            Err(error) => {
                let shown = error.to_string();
                prop_assert!(
                    shown.starts_with(&format!("{FILE}:{}: ", error.line)),
                    "{}",
                    shown
                );
                let at = text.lines().nth(error.line - 1);
                prop_assert!(at.is_some_and(|l| !l.trim().is_empty()), "{}", shown);
            }
        }
        Ok(())
    });
}
