//! The seed on a GAIA-layout task with an attachment, end to end through the
//! CLI with the real embedded model: the answerer reads the attachment by code
//! (the `read_file` tool), and the attachment's text reaches the model's prompt.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;

use support::{bin, text};

#[test]
fn the_seed_reads_a_gaia_attachment_and_the_model_sees_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let validation = dir.path().join("gaia/2023/validation");
    std::fs::create_dir_all(&validation).unwrap();
    std::fs::write(
        validation.join("ferry.txt"),
        "Timetable\nThe harbour ferry leaves at 7:15 from pier 4.\n",
    )
    .unwrap();
    std::fs::write(
        validation.join("metadata.jsonl"),
        serde_json::json!({"task_id": "ferry", "Question": "At what time does the harbour ferry leave?",
            "Level": 1, "Final answer": "7:15", "file_name": "ferry.txt"})
        .to_string()
            + "\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let model = hyperagents_testkit::smollm2_path();
    let out = bin()
        .current_dir(dir.path())
        .env("HYPERAGENTS_CACHE_DIR", &cache)
        .env("HYPERAGENTS_CACHE__MODE", "off")
        .env(
            "HYPERAGENTS_ROLES__TASK",
            format!("embedded:{}", model.display()),
        )
        .env("HYPERAGENTS_BENCHMARKS__GAIA__DIR", dir.path().join("gaia"))
        .args(["eval", "--suite", "gaia", "--episodes", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The one trajectory: a read_file tool call by the answerer, and a model
    // request whose prompt holds the attachment's text.
    let mut found = Vec::new();
    let mut stack = vec![cache.join("traces")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".jsonl.gz") {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let mut lines = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&found[0]).unwrap())
        .read_to_string(&mut lines)
        .unwrap();
    let spans: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "span")
        .collect();
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "read_file" && s["input"]["path"] == "ferry.txt"),
        "no read_file span: {lines}"
    );
    assert!(
        spans.iter().any(|s| s["kind"] == "llm"
            && s["input"]
                .to_string()
                .contains("leaves at 7:15 from pier 4")),
        "the attachment's text reached no model prompt: {lines}"
    );
}
