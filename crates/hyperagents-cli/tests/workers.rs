//! `hyperagents eval --nats` with `hyperagents worker` processes and a real
//! nats-server: the episodes run in the workers and are stored by the
//! coordinator; a worker killed with SIGKILL in the middle of an episode
//! loses nothing — another worker takes its job — and every episode is
//! stored exactly once.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyperagents_testkit::nats::NatsServer;
use support::{answer_chat, bin, fake_openai, read_request, repo, text};

const SUITE: &str = r#"{"id": "four", "input": "What is 2+2?", "expected": "4"}
{"id": "six", "input": "What is 3+3?", "expected": "6"}
"#;

/// An OpenAI-compatible server that answers "4" after `delay`, counting
/// the requests it has begun.
fn slow_openai(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let begun = Arc::new(AtomicUsize::new(0));
    let count = begun.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let _ = read_request(&mut stream);
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                answer_chat(&mut stream, "4");
            });
        }
    });
    (url, begun)
}

fn settings(work: &Path, url: &str) {
    std::fs::write(
        work.join("hyperagents.toml"),
        format!(
            "[openai]\nbase_url = \"{url}\"\napi_key = \"sk-test\"\n\
             [cache]\nmode = \"off\"\n\
             [models.fake]\nprovider = \"openai\"\nmodel = \"fake-model\"\n\
             [roles]\ntask = \"fake\"\nmeta = \"fake\"\njudge = \"fake\"\n"
        ),
    )
    .unwrap();
}

/// A worker binding `models` (the roles the coordinator binds: `evolve`
/// binds the meta role too, and the jobs' keys name every bound role).
/// A child process killed when the test ends, passing or not (a failed
/// assertion must not leave workers and coordinators running).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(work: &Path, cache: &Path, nats: &str, models: &str) -> Killed {
    bin()
        .current_dir(work)
        .env("HYPERAGENTS_CACHE_DIR", cache)
        .args(["worker", "--nats", nats, "--suite", "qa.jsonl"])
        .args(["--ack-wait-secs", "3", "--models", models])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .unwrap()
}

/// A scratch folder with `work/` holding the suite and settings whose
/// models answer after `delay`; and the count of model requests begun.
fn workspace(delay: Duration) -> (tempfile::TempDir, std::path::PathBuf, Arc<AtomicUsize>) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("qa.jsonl"), SUITE).unwrap();
    let (url, begun) = slow_openai(delay);
    settings(&work, &url);
    (dir, work, begun)
}

#[test]
fn workers_run_the_episodes_and_a_killed_one_loses_nothing() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (dir, work, begun) = workspace(Duration::from_millis(1500));
    let nats = server.url();

    // The first worker dies (SIGKILL) once it is in the middle of an episode.
    let mut first = worker(&work, &dir.path().join("cache-w1"), &nats, "task");
    let jsonl = dir.path().join("results.jsonl");
    let seed = repo().join("programs/seed");
    let coordinator = bin()
        .current_dir(&work)
        .env("HYPERAGENTS_CACHE_DIR", dir.path().join("cache-c"))
        .args(["eval", "--program"])
        .arg(&seed)
        .args(["--suite", "qa.jsonl", "--episodes", "1", "--nats", &nats])
        .args(["--coordinator", "test", "--jsonl"])
        .arg(&jsonl)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while begun.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no episode began on the worker");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap();
    let _ = first.0.wait();
    let second = worker(&work, &dir.path().join("cache-w2"), &nats, "task");

    let out = coordinator.wait_with_output().unwrap();
    drop(second);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("episodes run on workers"), "{stderr}");
    // Every episode once, scored as the model answered.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let by_task = |task: &str| {
        lines
            .iter()
            .find(|l| l["key"]["task"] == task)
            .unwrap()
            .clone()
    };
    assert_eq!(by_task("four")["success"], true);
    assert_eq!(by_task("six")["success"], false);
    assert_eq!(by_task("four")["status"], "ok");
    // The trajectory came back to the coordinator's machine.
    let trajectory = by_task("four")["trajectory"].as_str().unwrap().to_string();
    assert!(Path::new(&trajectory).exists(), "{trajectory}");
}

#[test]
fn an_evolution_runs_its_episodes_on_workers() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (dir, work, begun) = workspace(Duration::ZERO);
    let nats = server.url();
    let worker = worker(&work, &dir.path().join("cache-w"), &nats, "task,meta,judge");
    let cache = dir.path().join("cache-c");
    let seed = repo().join("programs/seed");
    let out = bin()
        .current_dir(&work)
        .env("HYPERAGENTS_CACHE_DIR", &cache)
        .args(["evolve", "--run", "dist", "--program"])
        .arg(&seed)
        .args([
            "--suite",
            "qa.jsonl",
            "--generations",
            "1",
            "--children",
            "1",
        ])
        .args(["--stage1", "1", "--nats", &nats])
        .output()
        .unwrap();
    drop(worker);
    let stderr = text(&out.stderr);
    if !out.status.success() {
        // The run's nodes say which stage went wrong.
        let status = bin()
            .current_dir(&work)
            .env("HYPERAGENTS_CACHE_DIR", &cache)
            .args(["status", "dist"])
            .output()
            .unwrap();
        panic!("{stderr}\n{}", text(&status.stdout));
    }
    assert!(stderr.contains("episodes run on workers"), "{stderr}");
    assert!(begun.load(Ordering::SeqCst) > 0);
    // The seed's stages were scored from the workers' episodes.
    let status = bin()
        .current_dir(&work)
        .env("HYPERAGENTS_CACHE_DIR", &cache)
        .args(["status", "dist"])
        .output()
        .unwrap();
    let shown = text(&status.stdout);
    assert!(shown.contains("seed"), "{shown}");
    assert!(
        shown.contains("1/2"),
        "the seed solves `four` of two tasks: {shown}"
    );
}

#[test]
fn a_coordinator_killed_while_workers_run_finds_their_results_on_restart() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (dir, work, begun) = workspace(Duration::from_millis(700));
    let nats = server.url();
    let worker = worker(&work, &dir.path().join("cache-w"), &nats, "task");
    let cache = dir.path().join("cache-c");
    let seed = repo().join("programs/seed");
    let eval = |jsonl: &Path| {
        let mut cmd = bin();
        cmd.current_dir(&work)
            .env("HYPERAGENTS_CACHE_DIR", &cache)
            .args(["eval", "--program"])
            .arg(&seed)
            .args(["--suite", "qa.jsonl", "--episodes", "1", "--nats", &nats])
            .args(["--coordinator", "restarts", "--jsonl"])
            .arg(jsonl)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    // The coordinator dies (SIGKILL) once its jobs are running.
    let mut first = Killed(eval(&dir.path().join("first.jsonl")).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    while begun.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no episode began");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap();
    let _ = first.0.wait();
    // The worker finishes both episodes with nobody listening.
    let mut settled = begun.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_secs(3));
        let now = begun.load(Ordering::SeqCst);
        if now == settled {
            break;
        }
        settled = now;
    }
    // Restarted under the same name, it takes those results: no episode runs again.
    let jsonl = dir.path().join("second.jsonl");
    let out = eval(&jsonl).output().unwrap();
    drop(worker);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        begun.load(Ordering::SeqCst),
        settled,
        "no model call after the restart"
    );
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(lines.contains("\"success\":true") && lines.contains("\"success\":false"));
}

/// Settings binding the episodes' roles to `fake-model` and the meta role
/// to a model of its own name, on the server at `url`.
fn settings_with_meta(work: &Path, url: &str, meta_model: &str) {
    std::fs::write(
        work.join("hyperagents.toml"),
        format!(
            "[openai]\nbase_url = \"{url}\"\napi_key = \"sk-test\"\n\
             [cache]\nmode = \"off\"\n\
             [models.fake]\nprovider = \"openai\"\nmodel = \"fake-model\"\n\
             [models.thinker]\nprovider = \"openai\"\nmodel = \"{meta_model}\"\n\
             [roles]\ntask = \"fake\"\nmeta = \"thinker\"\njudge = \"fake\"\n"
        ),
    )
    .unwrap();
}

#[test]
fn an_evolution_runs_its_meta_steps_on_workers_with_the_workers_meta_model() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = fake_openai("4");
    // Coordinator and worker in folders of their own: each has its settings
    // (the same task model, different meta models) and the same suite file.
    let work = dir.path().join("work");
    let worker_work = dir.path().join("worker");
    for (folder, meta) in [(&work, "coordinator-meta"), (&worker_work, "worker-meta")] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("qa.jsonl"), SUITE).unwrap();
        settings_with_meta(folder, &url, meta);
    }
    let nats = server.url();
    let worker = worker(
        &worker_work,
        &dir.path().join("cache-w"),
        &nats,
        "task,meta,judge",
    );
    let cache = dir.path().join("cache-c");
    let run_dir = dir.path().join("run");
    let seed = repo().join("programs/seed");
    let out = bin()
        .current_dir(&work)
        .env("HYPERAGENTS_CACHE_DIR", &cache)
        .args(["evolve", "--run", "remote-meta", "--program"])
        .arg(&seed)
        .args(["--suite", "qa.jsonl", "--generations", "1"])
        .args(["--children", "1", "--stage1", "1", "--no-test"])
        .args(["--nats", &nats, "--meta-on-workers", "--dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    drop(worker);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("meta steps run on workers"), "{stderr}");
    let asked = |model: &str| {
        requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(&format!("\"model\":\"{model}\"")))
            .count()
    };
    assert!(
        asked("worker-meta") > 0,
        "the worker's meta model made the child"
    );
    assert_eq!(
        asked("coordinator-meta"),
        0,
        "the coordinator's meta model is never called"
    );
    assert!(asked("fake-model") > 0, "episodes ran");
    // The child's meta trace says where it was made; the child was judged
    // here like any other (the meta model's "4" is no edit).
    let trace = std::fs::read_to_string(run_dir.join("nodes/g1c0.meta.txt")).unwrap();
    assert!(trace.contains("(made on worker "), "{trace}");
    assert!(trace.contains("worker-meta"), "{trace}");
    let status = bin()
        .current_dir(&work)
        .env("HYPERAGENTS_CACHE_DIR", &cache)
        .args(["status", "remote-meta"])
        .output()
        .unwrap();
    let shown = text(&status.stdout);
    assert!(shown.contains("g1c0"), "{shown}");
}

#[test]
fn screenshots_taken_on_a_worker_come_back_beside_the_trajectory() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = server.url();
    // The embedded models and MiniWoB++ from the usual cache; the worker's
    // own settings keep no screenshots: the job asks for them.
    let worker = bin()
        .current_dir(dir.path())
        .env("HYPERAGENTS_RUN__SCREENSHOTS", "false")
        .args([
            "worker", "--nats", &nats, "--suite", "miniwob", "--models", "task",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
        .unwrap();
    let jsonl = dir.path().join("out.jsonl");
    let out = bin()
        .current_dir(dir.path())
        .env("HYPERAGENTS_RUN__SCREENSHOTS", "true")
        .env("HYPERAGENTS_RUN__MAX_STEPS", "2")
        .args(["eval", "--program"])
        .arg(repo().join("programs/seed"))
        .args([
            "--suite",
            "miniwob",
            "--tasks",
            "click-test",
            "--episodes",
            "1",
        ])
        .args([
            "--no-reuse",
            "--nats",
            &nats,
            "--coordinator",
            "shots",
            "--jsonl",
        ])
        .arg(&jsonl)
        .output()
        .unwrap();
    drop(worker);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&jsonl).unwrap().trim()).unwrap();
    let trajectory = row["result"]["trajectory"]
        .as_str()
        .or_else(|| row["trajectory"].as_str())
        .unwrap_or_else(|| panic!("a trajectory path in {row}"))
        .to_string();
    let shots =
        std::path::PathBuf::from(trajectory.trim_end_matches(".jsonl.gz").to_string() + ".shots");
    let pngs: Vec<_> = std::fs::read_dir(&shots)
        .unwrap_or_else(|e| panic!("{}: {e}", shots.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!pngs.is_empty(), "the episode acted and kept screenshots");
    assert!(pngs.iter().all(|bytes| bytes.starts_with(b"\x89PNG")));
    // The trajectory names them where they are now, not on the worker.
    let mut spans = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&trajectory).unwrap()),
        &mut spans,
    )
    .unwrap();
    let here = format!("{}/", shots.display());
    assert!(spans.contains(&here), "{spans}");
    assert_eq!(
        spans.matches(".shots/").count(),
        spans.matches(&here).count(),
        "every screenshot path points here: {spans}"
    );
}
