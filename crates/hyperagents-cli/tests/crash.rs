//! Real crashes of a local run: the `hyperagents evolve` process is killed
//! with SIGKILL at 20 points of a run, each followed by `resume`, and the
//! archive, the stage results per task and the record of finished work equal
//! an uninterrupted run's. Two processes writing one store at once lose
//! nothing. Every role is served by a loopback server speaking the OpenAI
//! wire format whose answers depend only on the request (the meta model's
//! edit on the request's seed), so runs are reproducible.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyperagents_store::ResultsStore;
use support::{bin, read_request, repo, text};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "sub", "input": "What is 10 minus 3?", "expected": 7, "scorer": "numeric"}
{"id": "mul", "input": "What is 3 times 3?", "expected": 9, "scorer": "numeric"}
"#;

/// A loopback Chat Completions server: `task-model` always answers `4`;
/// `meta-model` rewrites the reasoning prompt with a line that depends only
/// on the request's seed.
fn fake_models() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let request = read_request(&mut stream);
                let body = request.split_once("\r\n\r\n").map_or("", |(_, body)| body);
                let request: serde_json::Value =
                    serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
                let content = if request["model"] == "meta-model" {
                    let n = request["seed"].as_u64().unwrap_or(0) % 1000;
                    format!(
                        "Here is the new file.\n\nskills/reason/prompt.md\n```\nQuestion: {{{{ question }}}}\nAnswer with the number only (v{n}).\n```\n"
                    )
                } else {
                    "4".to_string()
                };
                let reply = serde_json::json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
                })
                .to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    url
}

/// A working directory whose settings bind every role to the fake server,
/// with its own cache directory (trajectories, runs) and results store.
struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Workspace {
    fn new(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(
            root.join("hyperagents.toml"),
            format!(
                "[openai]\nbase_url = \"{url}\"\napi_key = \"test-key\"\n\
                 [cache]\nmode = \"off\"\n\
                 [models.task]\nprovider = \"openai\"\nmodel = \"task-model\"\n\
                 [models.meta]\nprovider = \"openai\"\nmodel = \"meta-model\"\n\
                 [roles]\ntask = \"task\"\nmeta = \"meta\"\njudge = \"task\"\n"
            ),
        )
        .unwrap();
        std::fs::write(root.join("qa.jsonl"), SUITE).unwrap();
        Self { _dir: dir, root }
    }

    fn store(&self) -> PathBuf {
        self.root.join("results.sqlite")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.current_dir(&self.root)
            .env("HYPERAGENTS_CACHE_DIR", self.root.join("cache"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    fn evolve(&self, run: &str) -> Command {
        let seed = repo().join("programs/seed");
        let store = self.store();
        self.command(&[
            "evolve",
            "--run",
            run,
            "--program",
            seed.to_str().unwrap(),
            "--suite",
            "qa.jsonl",
            "--generations",
            "2",
            "--children",
            "2",
            "--stage1",
            "1",
            "--episodes",
            "2",
            "--store",
            store.to_str().unwrap(),
        ])
    }

    fn resume(&self, run: &str) -> Command {
        let store = self.store();
        self.command(&["resume", run, "--store", store.to_str().unwrap()])
    }
}

fn finish(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
}

/// Events that record progress (not the launch, stop and budget notes a
/// restart adds).
fn progress(store: &Path, run: &str) -> usize {
    let Ok(store) = ResultsStore::open(store) else {
        return 0;
    };
    store.events(run, 0).map_or(0, |events| {
        events
            .iter()
            .filter(|e| !matches!(e.kind.as_str(), "launch" | "stopped" | "budget"))
            .count()
    })
}

type NodeRow = (
    String,
    Option<String>,
    String,
    String,
    Vec<(String, String, u64, u64)>,
);

/// The archive as a comparable value: each node's parent, status, program,
/// and per stage and task its episodes and successes.
fn archive(store: &Path, run: &str) -> Vec<NodeRow> {
    let store = ResultsStore::open(store).unwrap();
    let mut rows: Vec<NodeRow> = store
        .nodes(run)
        .unwrap()
        .into_iter()
        .map(|n| {
            let mut stages = Vec::new();
            for stage in ["stage1", "full"] {
                for t in store.node_task_stats(run, &n.node_id, stage).unwrap() {
                    stages.push((stage.to_string(), t.task, t.episodes, t.successes));
                }
            }
            (
                n.node_id,
                n.parent_id,
                format!("{:?}", n.status),
                n.program_hash,
                stages,
            )
        })
        .collect();
    rows.sort();
    rows
}

/// How many events of each finished-work kind the run recorded.
fn finished_work(store: &Path, run: &str) -> Vec<(&'static str, usize)> {
    let events = ResultsStore::open(store).unwrap().events(run, 0).unwrap();
    ["parents", "generation", "comparison", "test"]
        .into_iter()
        .map(|kind| (kind, events.iter().filter(|e| e.kind == kind).count()))
        .collect()
}

/// SIGKILL, and reap.
fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_killed_at_20_points_resumes_to_the_archive_of_an_uninterrupted_run() {
    let url = fake_models();
    let reference = Workspace::new(&url);
    finish(reference.evolve("crash"), "the uninterrupted run");
    let expected = archive(&reference.store(), "crash");
    assert!(expected.len() >= 4, "{expected:#?}");
    let total = progress(&reference.store(), "crash");
    assert!(total >= 21, "{total} events to spread 20 kills over");
    let step = total / 21;

    let killed = Workspace::new(&url);
    let mut kills = 0;
    let mut finished = false;
    while kills < 20 {
        let mut cmd = if kills == 0 {
            killed.evolve("crash")
        } else {
            killed.resume("crash")
        };
        let at_start = progress(&killed.store(), "crash");
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                assert!(status.success(), "after {kills} kills: {err}");
                finished = true;
                break;
            }
            if progress(&killed.store(), "crash") >= at_start + step {
                kill(&mut child);
                kills += 1;
                break;
            }
            assert!(Instant::now() < deadline, "no progress after {kills} kills");
            std::thread::sleep(Duration::from_millis(3));
        }
        if finished {
            break;
        }
    }
    assert_eq!(kills, 20, "the run finished after only {kills} kills");
    finish(killed.resume("crash"), "the last resume");
    assert_eq!(archive(&killed.store(), "crash"), expected);
    assert_eq!(
        finished_work(&killed.store(), "crash"),
        finished_work(&reference.store(), "crash")
    );
}

#[test]
fn two_processes_writing_one_store_at_once_lose_nothing() {
    let url = fake_models();
    let reference = Workspace::new(&url);
    finish(reference.evolve("alone"), "the run alone");
    let expected = archive(&reference.store(), "alone");

    let shared = Workspace::new(&url);
    let first = shared.evolve("first").spawn().unwrap();
    let second = shared.evolve("second").spawn().unwrap();
    for (name, child) in [("first", first), ("second", second)] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    }
    for run in ["first", "second"] {
        assert_eq!(archive(&shared.store(), run), expected, "{run}");
        assert_eq!(
            finished_work(&shared.store(), run),
            finished_work(&reference.store(), "alone"),
            "{run}"
        );
    }
}
