//! End-to-end tests of the `hyperagents` binary on real parts: the real
//! embedded model, a real SQLite cache, and a loopback HTTP server speaking
//! the OpenAI wire format.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{bin, fake_openai, text};

const KEY: &str = "sk-planted-4b1d7c9e";

/// Runs in `dir` with the response cache in `dir` (models stay in the shared cache).
fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .env("HYPERAGENTS_CACHE__PATH", dir.join("llm-cache.sqlite"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn version_and_help_on_every_subcommand() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("hyperagents "),
        "{}",
        text(&out.stdout)
    );
    for args in [
        vec!["--help"],
        vec!["chat", "--help"],
        vec!["models", "--help"],
        vec!["models", "pull", "--help"],
        vec!["models", "list", "--help"],
        vec!["models", "verify", "--help"],
        vec!["config", "--help"],
        vec!["config", "show", "--help"],
        vec!["bench", "--help"],
        vec!["bench", "embedded", "--help"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            text(&out.stdout).contains("Usage: hyperagents"),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
    let out = bin().args(["chat"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing PROMPT is a usage error"
    );
}

#[test]
fn chat_answers_with_the_embedded_model_then_replays_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["chat", "What is 2+2?"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = text(&out.stdout);
    assert!(answer.contains('4'), "{answer}");
    assert!(
        text(&out.stderr).contains("[embedded/smollm2-135m]"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        dir.path(),
        &["--cache-mode", "replay-only", "chat", "What is 2+2?"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), answer);
    assert!(text(&out.stderr).contains("(cached)"));

    let out = run(
        dir.path(),
        &[
            "--cache-mode",
            "replay-only",
            "chat",
            "A question never asked",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no cached response"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn chat_json_output_follows_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schema = r#"{"type":"object","properties":{"answer":{"type":"integer","minimum":0,"maximum":99}},"required":["answer"]}"#;
    let out = run(
        dir.path(),
        &[
            "--cache-mode",
            "off",
            "chat",
            "--json",
            schema,
            "What is 2+2?",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("JSON answer");
    assert!(value["answer"].is_i64(), "{value}");

    let out = run(dir.path(), &["chat", "--json", "{not json", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--json: not valid JSON"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_spent_budget_stops_with_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hyperagents.toml"),
        "[budgets.task]\nmax_tokens = 0\n",
    )
    .unwrap();
    let out = run(dir.path(), &["chat", "hi"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("budget for role `task` is spent"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_settings_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hyperagents.toml"),
        "[embedded]\nthreds = 2\n",
    )
    .unwrap();
    let out = run(dir.path(), &["chat", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("threds") && err.contains("hyperagents.toml"),
        "{err}"
    );
}

#[test]
fn openai_compatible_server_from_the_environment_and_no_key_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = fake_openai("forty-two");
    let out = bin()
        .current_dir(dir.path())
        .env(
            "HYPERAGENTS_CACHE__PATH",
            dir.path().join("llm-cache.sqlite"),
        )
        .env("OPENAI_BASE_URL", &url)
        .env("OPENAI_API_KEY", KEY)
        .args([
            "-vvv",
            "chat",
            "--model",
            "openai:fake-model",
            "--seed",
            "7",
            "What is six times seven?",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "forty-two");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].contains("\"seed\":7"), "{}", requests[0]);
    assert!(requests[0].contains("fake-model"));
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains(&format!("authorization: bearer {KEY}").to_ascii_lowercase())
    );

    // The key reached the server, and nothing else: not the logs (at
    // trace level), not stdout, not the cache database, not `config show`.
    assert!(!text(&out.stderr).contains(KEY));
    assert!(!text(&out.stdout).contains(KEY));
    let db: PathBuf = dir.path().join("llm-cache.sqlite");
    for file in [db.clone(), db.with_extension("sqlite-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                "{} holds the key",
                file.display()
            );
        }
    }
    let shown = bin()
        .env("OPENAI_API_KEY", KEY)
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(shown.status.success());
    assert!(!text(&shown.stdout).contains(KEY));
    assert!(text(&shown.stdout).contains("openai API key: set (hidden)"));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // The reader is gone before the binary writes: every write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(["config", "show"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
