//! No key reaches an artifact. With fake API keys in the settings file and
//! the environment, every role bound to a loopback OpenAI-compatible server
//! and the response cache on, the commands that write artifacts run (chat,
//! eval, evolve, status, report, compare); then every file they left under
//! the cache directory (results store, response cache, trajectories, run
//! directories, meta traces, reports, plots; gzip members decompressed) and
//! everything they printed at trace level is scanned for the keys. A command
//! that starts writing artifacts belongs in this list.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Output;

use support::{bin, contents, fake_openai, files_under, repo, text};

const OPENAI_KEY: &str = "sk-planted-openai-5e8a13c7d2";
const ANTHROPIC_KEY: &str = "sk-ant-planted-9d2f64b0e1";
/// The distinctive middles: no fragment of a key may show either.
const CORES: [&str; 2] = ["openai-5e8a13c7", "planted-9d2f64b0"];

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "sub", "input": "What is 10 minus 3?", "expected": 7, "scorer": "numeric"}
"#;

fn holds_a_key(bytes: &[u8]) -> Option<&'static str> {
    let keys = [OPENAI_KEY, ANTHROPIC_KEY];
    keys.into_iter()
        .chain(CORES)
        .find(|k| bytes.windows(k.len()).any(|w| w == k.as_bytes()))
}

#[test]
fn no_key_reaches_a_store_cache_trajectory_run_report_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&work).unwrap();
    let (url, seen) = fake_openai("4");
    let settings = work.join("hyperagents.toml");
    std::fs::write(
        &settings,
        format!(
            "[openai]\nbase_url = \"{url}\"\napi_key = \"{OPENAI_KEY}\"\n\
             [cache]\nmode = \"read-write\"\n\
             [models.fake]\nprovider = \"openai\"\nmodel = \"fake-model\"\n\
             [roles]\ntask = \"fake\"\nmeta = \"fake\"\njudge = \"fake\"\n"
        ),
    )
    .unwrap();
    let suite = work.join("qa.jsonl");
    std::fs::write(&suite, SUITE).unwrap();
    let seed = repo().join("programs/seed");
    let (seed, suite) = (seed.to_str().unwrap(), suite.to_str().unwrap());
    let report = dir.path().join("cache/report-out");
    let compare = dir.path().join("cache/compare-out");

    let commands: Vec<Vec<&str>> = vec![
        vec!["chat", "--model", "fake", "What is 2+2?"],
        vec![
            "eval",
            "--program",
            seed,
            "--suite",
            suite,
            "--episodes",
            "1",
        ],
        vec![
            "evolve",
            "--run",
            "secrets",
            "--program",
            seed,
            "--suite",
            suite,
            "--generations",
            "1",
            "--children",
            "1",
            "--stage1",
            "1",
        ],
        vec!["status", "secrets"],
        vec!["report", "secrets", "--out", report.to_str().unwrap()],
        vec!["compare", "secrets", "--out", compare.to_str().unwrap()],
        vec!["config", "show"],
    ];
    let mut outputs: Vec<(String, Output)> = Vec::new();
    for args in &commands {
        let out = bin()
            .current_dir(&work)
            .env("HYPERAGENTS_CACHE_DIR", &cache)
            .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
            .arg("-vvv")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            text(&out.stderr)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        outputs.push((args.join(" "), out));
    }

    // The commands really ran against the server, with the key.
    let requests = seen.lock().unwrap().clone();
    assert!(requests.len() >= 3, "{} requests", requests.len());
    assert!(requests.iter().all(|r| r.contains(OPENAI_KEY)));
    let mut files = Vec::new();
    files_under(&cache, &mut files);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    for expected in [
        "results.sqlite",
        "llm-cache.sqlite",
        ".jsonl.gz",
        "report.md",
        ".meta.txt",
    ] {
        assert!(
            names.iter().any(|n| n.contains(expected)),
            "no {expected} among the artifacts: {names:#?}"
        );
    }

    for (command, out) in &outputs {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert_eq!(
                holds_a_key(bytes),
                None,
                "`{command}` printed a key on {stream}"
            );
        }
    }
    for file in &files {
        assert_eq!(
            holds_a_key(&contents(file)),
            None,
            "{} holds a key",
            file.display()
        );
    }
}
