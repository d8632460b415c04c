//! Real crashes of a local run: the `hyperagents evolve` process is killed
//! with SIGKILL at 20 points of a run, each followed by `resume`, and the
//! archive, the stage results per task and the record of finished work equal
//! an uninterrupted run's; the same for a coordinator whose episodes run on
//! a worker process through a real nats-server, killed at pseudo-random points. Two processes writing one store at once lose
//! nothing. Every role is served by a loopback server speaking the OpenAI
//! wire format whose answers depend only on the request (the meta model's
//! edit on the request's seed), so runs are reproducible.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyperagents_testkit::nats::NatsServer;
use support::archive::{archive, deterministic_models, finished_work, progress};
use support::{bin, repo, text};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "sub", "input": "What is 10 minus 3?", "expected": 7, "scorer": "numeric"}
{"id": "mul", "input": "What is 3 times 3?", "expected": 9, "scorer": "numeric"}
"#;

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

    /// `evolve` with its episodes sent to workers through `nats`.
    fn evolve_on(&self, run: &str, nats: &str) -> Command {
        let mut cmd = self.evolve(run);
        cmd.args(["--nats", nats, "--coordinator", "crash-test"]);
        cmd
    }

    /// A worker process serving this workspace's suite with every role the
    /// coordinator binds; killed when dropped.
    fn worker(&self, nats: &str) -> Reaped {
        let child = bin()
            .current_dir(&self.root)
            .env("HYPERAGENTS_CACHE_DIR", self.root.join("cache-worker"))
            .args(["worker", "--nats", nats, "--suite", "qa.jsonl"])
            .args(["--ack-wait-secs", "3", "--models", "task,meta,judge", "-vv"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.root.join("worker.log")).unwrap())
            .spawn()
            .unwrap();
        Reaped(child)
    }

    fn resume(&self, run: &str) -> Command {
        let store = self.store();
        self.command(&["resume", run, "--store", store.to_str().unwrap()])
    }
}

/// Runs `cmd` to success within `limit`, its stderr in `log` (a file, not
/// a pipe nobody reads while it runs); a process still running then is
/// killed and its log shown (a hang fails the test, naming where).
fn finish_within(cmd: &mut Command, what: &str, log: &std::path::Path, limit: Duration) {
    let mut child = Reaped(
        cmd.stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let err = std::fs::read_to_string(log).unwrap_or_default();
            assert!(status.success(), "{what}: {err}");
            return;
        }
        if Instant::now() > deadline {
            kill(&mut child.0);
            let err = std::fs::read_to_string(log).unwrap_or_default();
            let worker =
                std::fs::read_to_string(log.with_file_name("worker.log")).unwrap_or_default();
            panic!("{what} did not end within {limit:?}:\n{err}\nthe worker said:\n{worker}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
}

/// A process killed when the test ends, passing or not.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGKILL, and reap.
fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_killed_at_20_points_resumes_to_the_archive_of_an_uninterrupted_run() {
    let url = deterministic_models();
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
    let url = deterministic_models();
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

/// xorshift64*: kill points that look random and are the same every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn a_coordinator_killed_at_random_points_with_remote_workers_resumes_to_the_same_archive() {
    let Some(reference_server) = NatsServer::start() else {
        return;
    };
    let url = deterministic_models();
    let reference = Workspace::new(&url);
    {
        let _worker = reference.worker(&reference_server.url());
        finish_within(
            &mut reference.evolve_on("dist", &reference_server.url()),
            "the uninterrupted run",
            &reference.root.join("coordinator.log"),
            Duration::from_secs(120),
        );
    }
    let expected = archive(&reference.store(), "dist");
    assert!(expected.len() >= 4, "{expected:#?}");

    // A server of its own, so no result of the reference run is about.
    let Some(server) = NatsServer::start() else {
        return;
    };
    let killed = Workspace::new(&url);
    let _worker = killed.worker(&server.url());
    let mut state = 0x5eed_1234_abcd_0001_u64;
    let mut kills = Vec::new();
    loop {
        let mut cmd = if kills.is_empty() {
            killed.evolve_on("dist", &server.url())
        } else {
            killed.resume("dist")
        };
        let at_start = progress(&killed.store(), "dist");
        let log = killed.root.join(format!("coordinator-{}.log", kills.len()));
        let mut child = cmd
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // After the next recorded progress, a pause of up to 400 ms: the
        // kill lands between events, often with jobs on the worker.
        let pause = Duration::from_millis(next(&mut state) % 400);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut progressed_at = None;
        let ended = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(status.success(), "after kills at {kills:?}: {err}");
                break true;
            }
            match progressed_at {
                None if progress(&killed.store(), "dist") > at_start => {
                    progressed_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() >= pause => {
                    kill(&mut child);
                    kills.push(pause.as_millis());
                    break false;
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "no progress after kills at {kills:?}; coordinator:\n{}\nworker:\n{}",
                tail(&log),
                tail(&killed.root.join("worker.log"))
            );
            std::thread::sleep(Duration::from_millis(3));
        };
        if ended || kills.len() == 8 {
            break;
        }
    }
    assert!(
        kills.len() >= 3,
        "the run ended after only {} kills",
        kills.len()
    );
    finish_within(
        &mut killed.resume("dist"),
        "the last resume",
        &killed.root.join("last.log"),
        Duration::from_secs(120),
    );
    assert_eq!(
        archive(&killed.store(), "dist"),
        expected,
        "kills at {kills:?} (ms after progress)"
    );
    assert_eq!(
        finished_work(&killed.store(), "dist"),
        finished_work(&reference.store(), "dist")
    );
}

/// The last lines of a log, for a failure message.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
