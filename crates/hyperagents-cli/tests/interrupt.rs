//! `eval` and `evolve` stopped from outside, end to end: a spent run-level
//! budget (exit code 3), SIGINT and SIGTERM (130, 143). What they cut short
//! is never stored, and the run goes on from where it stopped. Every role
//! is served by a loopback server speaking the OpenAI wire format.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{answer_chat, bin, read_request, repo, text};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "capital", "input": "What is the capital of France?", "expected": "Paris", "scorer": {"type": "contains", "max_len": 60}}
"#;

/// A loopback Chat Completions server: every answer is `4` and costs 12
/// tokens (9 in, 3 out), after `delay_ms`.
struct FakeModel {
    url: String,
    requests: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

fn fake_model() -> FakeModel {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let (seen, delay) = (requests.clone(), delay_ms.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (seen, delay) = (seen.clone(), delay.clone());
            std::thread::spawn(move || {
                read_request(&mut stream);
                seen.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
                answer_chat(&mut stream, "4");
            });
        }
    });
    FakeModel {
        url,
        requests,
        delay_ms,
    }
}

/// Settings in `dir` binding every role to `model`, the task role under a
/// run-level token budget if one is given.
fn write_settings(dir: &Path, model: &FakeModel, task_tokens: Option<u64>) {
    let mut toml = format!(
        "[models.fake]\nprovider = \"openai\"\nmodel = \"fake-model\"\nbase_url = \"{}\"\n\n\
         [roles]\ntask = \"fake\"\nmeta = \"fake\"\njudge = \"fake\"\n",
        model.url
    );
    if let Some(tokens) = task_tokens {
        toml.push_str(&format!("\n[budgets.task]\nmax_tokens = {tokens}\n"));
    }
    std::fs::write(dir.join("hyperagents.toml"), toml).unwrap();
}

/// The binary in `dir`, its cache (traces, runs) there too, no response cache.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.current_dir(dir)
        .env("HYPERAGENTS_CACHE_DIR", dir.join("cache"))
        .env("HYPERAGENTS_CACHE__MODE", "off")
        .args(args);
    cmd
}

fn eval_args(dir: &Path) -> Vec<String> {
    let suite = dir.join("qa.jsonl");
    std::fs::write(&suite, SUITE).unwrap();
    let seed = repo().join("programs/seed");
    [
        "eval",
        "--program",
        seed.to_str().unwrap(),
        "--suite",
        suite.to_str().unwrap(),
        "--store",
        dir.join("results.sqlite").to_str().unwrap(),
        "--concurrency",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn a_spent_budget_stops_eval_with_exit_code_3_and_stores_no_cut_episode() {
    let dir = tempfile::tempdir().unwrap();
    let model = fake_model();
    // An episode of the seed on a question is two calls of 12 tokens: the
    // first episode fits, the second is refused its second call.
    write_settings(dir.path(), &model, Some(30));
    let args = eval_args(dir.path());
    let out = command(dir.path(), &strs(&args)).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("budget for role `task` is spent"),
        "{stderr}"
    );
    assert!(stderr.contains("limit 30"), "{stderr}");
    assert_eq!(model.requests.load(Ordering::SeqCst), 3);

    // With budget to spare, the finished episode is reused and the cut one
    // computed: it was not stored as a result.
    write_settings(dir.path(), &model, Some(1000));
    let out = command(dir.path(), &strs(&args)).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 reused from the store"), "{stdout}");
    assert!(stdout.contains("/2 succeeded"), "{stdout}");
}

/// Starts `args`, sends `signal` once the fake model has a request in hand,
/// and returns the exit code and stderr.
fn signalled(
    dir: &Path,
    args: &[String],
    model: &FakeModel,
    signal: &str,
) -> (Option<i32>, String) {
    let before = model.requests.load(Ordering::SeqCst);
    let mut child = command(dir, &strs(args))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while model.requests.load(Ordering::SeqCst) == before {
        assert!(Instant::now() < deadline, "no model request");
        assert!(child.try_wait().unwrap().is_none(), "ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // The answer in hand takes a minute: waiting for it would fail here.
        assert!(sent.elapsed() < Duration::from_secs(30), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

#[test]
fn sigint_and_sigterm_stop_eval_and_store_no_interrupted_episode() {
    let dir = tempfile::tempdir().unwrap();
    let model = fake_model();
    write_settings(dir.path(), &model, None);
    let args = eval_args(dir.path());
    model.delay_ms.store(60_000, Ordering::SeqCst);

    let (code, stderr) = signalled(dir.path(), &args, &model, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT: stopping"), "{stderr}");
    let (code, stderr) = signalled(dir.path(), &args, &model, "-TERM");
    assert_eq!(code, Some(143), "{stderr}");

    // Nothing was stored for the interrupted episodes: all are computed now.
    model.delay_ms.store(0, Ordering::SeqCst);
    let out = command(dir.path(), &strs(&args)).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("reused from the store"), "{stdout}");
    assert!(stdout.contains("/2 succeeded"), "{stdout}");
}

#[test]
fn an_evolution_run_keeps_its_spent_budget_across_resume() {
    let dir = tempfile::tempdir().unwrap();
    let model = fake_model();
    let suite = dir.path().join("qa.jsonl");
    std::fs::write(&suite, SUITE).unwrap();
    let store = dir.path().join("results.sqlite");
    let seed = repo().join("programs/seed");
    // The seed's stage 1 (one task) fits in the budget; its full stage does not.
    write_settings(dir.path(), &model, Some(30));
    let out = command(
        dir.path(),
        &[
            "evolve",
            "--run",
            "r1",
            "--program",
            seed.to_str().unwrap(),
            "--suite",
            suite.to_str().unwrap(),
            "--generations",
            "1",
            "--children",
            "1",
            "--stage1",
            "1",
            "--no-test",
            "--store",
            store.to_str().unwrap(),
            "--dir",
            dir.path().join("run").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("budget for role `task` is spent"),
        "{stderr}"
    );
    assert!(stderr.contains("hyperagents resume r1"), "{stderr}");
    let status = |dir: &Path| {
        let out = command(dir, &["status", "r1", "--store", store.to_str().unwrap()])
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert!(status(dir.path()).contains("hyper mode, stopped"));

    // Resumed under the same budget: the stored ledger says it is spent, so
    // the run stops again before any model call.
    let calls = model.requests.load(Ordering::SeqCst);
    let resume = ["resume", "r1", "--store", store.to_str().unwrap()];
    let out = command(dir.path(), &resume).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(model.requests.load(Ordering::SeqCst), calls);

    // A larger budget lets it finish.
    write_settings(dir.path(), &model, Some(1_000_000));
    let out = command(dir.path(), &resume).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(model.requests.load(Ordering::SeqCst) > calls);
    assert!(status(dir.path()).contains("hyper mode, finished"));
}
