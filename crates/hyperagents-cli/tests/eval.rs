//! End-to-end tests of `hyperagents eval` on real parts: the seed program,
//! sandbox workers, the embedded model and a real SQLite results store.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;

use support::{repo, run, run_with, text};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "capital", "input": "What is the capital of France?", "expected": "Paris", "scorer": {"type": "contains", "max_len": 60}}
{"id": "held-out", "input": "What is 5+5?", "expected": 10, "scorer": "numeric", "split": "test"}
"#;

#[test]
fn eval_tables_stores_and_reuses_results() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("qa.jsonl");
    std::fs::write(&suite, SUITE).unwrap();
    let store = dir.path().join("results.sqlite");
    let jsonl = dir.path().join("out.jsonl");
    let seed = repo().join("programs/seed");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "eval",
            "--program",
            seed.to_str().unwrap(),
            "--suite",
            suite.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--jsonl",
            jsonl.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let call = |extra: &[&str]| {
        let a = args(extra);
        run(
            dir.path(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    let out = call(&["--episodes", "2", "--concurrency", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(rows[0].starts_with("task"), "{stdout}");
    assert!(rows.iter().any(|l| l.starts_with("add ")), "{stdout}");
    assert!(rows.iter().any(|l| l.starts_with("capital ")), "{stdout}");
    assert!(
        !stdout.contains("held-out"),
        "the train split excludes test tasks: {stdout}"
    );
    assert!(stdout.contains("/4 succeeded"), "{stdout}");
    assert!(stdout.contains("95% CI"), "{stdout}");
    assert!(store.is_file());
    let exported = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(exported.lines().count(), 4, "{exported}");

    // The same evaluation again comes from the store.
    let out = call(&["--episodes", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("4 reused from the store"),
        "{}",
        text(&out.stdout)
    );

    // The test split holds only the held-out task.
    let out = call(&["--split", "test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("held-out"),
        "{}",
        text(&out.stdout)
    );

    // A train-split evaluation cannot name a test task.
    let out = call(&["--tasks", "held-out"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not in the train split"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn eval_names_bad_suites_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"input\": \"q\", \"expected\": \"x\"}\n{oops\n",
    )
    .unwrap();
    let seed = repo().join("programs/seed");
    let out = run(
        dir.path(),
        &[
            "eval",
            "--program",
            seed.to_str().unwrap(),
            "--suite",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.jsonl:2"), "{stderr}");

    let out = run(
        dir.path(),
        &[
            "eval",
            "--program",
            seed.to_str().unwrap(),
            "--suite",
            "nonexistent.jsonl",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown suite"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        dir.path(),
        &[
            "eval",
            "--program",
            seed.to_str().unwrap(),
            "--suite",
            "gaia",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("benchmarks.gaia.dir"),
        "{}",
        text(&out.stderr)
    );
}

/// MiniWoB in real Chromium with the embedded model, screenshots kept.
#[test]
fn eval_runs_miniwob_in_chromium_and_keeps_screenshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("results.sqlite");
    let jsonl = dir.path().join("out.jsonl");
    let seed = repo().join("programs/seed");
    let out = run_with(
        dir.path(),
        &[
            "eval",
            "--program",
            seed.to_str().unwrap(),
            "--suite",
            "miniwob",
            "--tasks",
            "click-test,focus-text",
            "--store",
            store.to_str().unwrap(),
            "--jsonl",
            jsonl.to_str().unwrap(),
            "--no-reuse",
        ],
        &[
            ("HYPERAGENTS_RUN__SCREENSHOTS", "true"),
            ("HYPERAGENTS_RUN__MAX_STEPS", "2"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("click-test ")),
        "{stdout}"
    );
    assert!(stdout.contains("/2 succeeded"), "{stdout}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    let mut shots = 0;
    for row in &rows {
        let text_row = row.to_string();
        assert!(
            !text_row.contains("WOB_"),
            "no reward globals in results: {text_row}"
        );
        let trajectory = row["result"]["trajectory"]
            .as_str()
            .or_else(|| row["trajectory"].as_str())
            .unwrap_or_else(|| panic!("a trajectory path in {text_row}"));
        let shots_dir =
            PathBuf::from(trajectory.trim_end_matches(".jsonl.gz").to_string() + ".shots");
        if let Ok(entries) = std::fs::read_dir(&shots_dir) {
            for entry in entries {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                assert!(bytes.starts_with(b"\x89PNG"), "screenshots are PNGs");
                shots += 1;
            }
        }
    }
    assert!(shots > 0, "an episode that acted kept screenshots");
}
