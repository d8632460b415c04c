//! Benchmark of evaluation across worker processes: the wall time of one
//! evolution generation whose episodes (stages, smoke episodes, meta
//! agents' quick evaluations) run on 1, 4 and 16 `hyperagents worker`
//! processes through a real nats-server on loopback. Writes its section of
//! BENCHMARKS.md.
//!
//! Real parts: the `hyperagents` binary (coordinator and workers), the seed
//! program with its own meta agent, a JSONL suite, nats-server with
//! JetStream. The models are an OpenAI-compatible double on loopback that
//! answers every call after a fixed latency (the task model "4"; the meta
//! model a new reasoning prompt per call, so every child is valid and is
//! evaluated), with a thread per call, so nothing queues for it: what the
//! worker count changes is how many episodes are in flight.
//!
//! Run with `cargo bench -p hyperagents-cli --bench workers` (or, without an
//! optimised build, `cargo test --workspace --bench workers -- --bench`; the
//! section says which profile measured it).

#![allow(clippy::unwrap_used)]

// The CLI tests' helpers (the loopback HTTP request reader).
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyperagents_testkit::nats::NatsServer;

/// Latency of every model call.
const LATENCY: Duration = Duration::from_millis(200);
/// Worker processes of the configurations compared; the first is the
/// baseline of the speed-up.
const WORKERS: [usize; 3] = [1, 4, 16];
const TASKS: usize = 16;
const STAGE1: usize = 4;
const CHILDREN: usize = 4;
/// Episodes in flight per evaluation: enough for the most workers.
const CONCURRENCY: usize = 16;
/// The large generation: children, and meta steps in flight.
const LARGE_CHILDREN: usize = 1_000;
const LARGE_PARALLEL: usize = 16;
const SECTION: &str = "workers";
const COMMAND: &str = "cargo bench -p hyperagents-cli --bench workers";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("skipped: run it with `{COMMAND}`");
        return Ok(());
    }
    let server =
        NatsServer::start().ok_or("nats-server is not installed (scripts/lib.sh installs it)")?;
    let calls = Arc::new(AtomicUsize::new(0));
    let url = model_double(calls.clone());
    let mut rows = Vec::new();
    for workers in WORKERS {
        let run = generation(&server, &url, &calls, workers, &Shape::measured())?;
        eprintln!(
            "{workers} workers: {:.1} s, {} model calls, {} valid children",
            run.wall.as_secs_f64(),
            run.model_calls,
            run.valid
        );
        rows.push((workers, run));
    }
    // One generation of many children, each made by the seed's meta agent
    // and run on stage 1 only (no smoke episode, no quick evaluation).
    let large = Shape::large();
    let workers = *WORKERS.last().unwrap_or(&1);
    let run = generation(&server, &url, &calls, workers, &large)?;
    eprintln!(
        "{} children on {workers} workers: {:.1} s, {} model calls, {} valid children",
        large.children,
        run.wall.as_secs_f64(),
        run.model_calls,
        run.valid
    );
    let large_row = (large, workers, run);
    let body = render(&rows, &large_row);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md");
    hyperagents_eval::benchmarks_file::write_section(&path, SECTION, &body)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    print!("{body}");
    Ok(())
}

/// What one measured generation makes.
struct Shape {
    children: usize,
    /// Children made at once (meta steps in flight).
    parallel: usize,
    stage1: usize,
    /// Smoke episodes and quick evaluations, or neither.
    checks: bool,
}

impl Shape {
    fn measured() -> Self {
        Self {
            children: CHILDREN,
            parallel: CHILDREN,
            stage1: STAGE1,
            checks: true,
        }
    }

    fn large() -> Self {
        Self {
            children: std::env::var("WORKERS_BENCH_CHILDREN")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(LARGE_CHILDREN),
            parallel: LARGE_PARALLEL,
            stage1: 1,
            checks: false,
        }
    }
}

struct GenerationRun {
    wall: Duration,
    model_calls: usize,
    valid: String,
}

/// One `evolve` generation of `shape` with `workers` worker processes.
fn generation(
    server: &NatsServer,
    url: &str,
    calls: &AtomicUsize,
    workers: usize,
    shape: &Shape,
) -> Result<GenerationRun, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("qa.jsonl"), suite())?;
    write_settings(&work, url)?;
    let started: Vec<Killed> = (0..workers)
        .map(|i| {
            worker(
                &work,
                &dir.path().join(format!("cache-w{i}")),
                &server.url(),
            )
        })
        .collect::<Result<_, _>>()?;
    // Every worker has its consumer before the first job goes out.
    std::thread::sleep(Duration::from_secs(3));
    let before = calls.load(Ordering::SeqCst);
    let name = format!("w{workers}c{}", shape.children);
    let mut command = Command::new(env!("CARGO_BIN_EXE_hyperagents"));
    command
        .current_dir(&work)
        .env("HYPERAGENTS_CACHE_DIR", dir.path().join("cache-c"))
        .args(["evolve", "--run", &name, "--program"])
        .arg(seed())
        .args(["--suite", "qa.jsonl", "--generations", "1"])
        .args(["--children", &shape.children.to_string()])
        .args(["--parallel", &shape.parallel.to_string()])
        .args(["--stage1", &shape.stage1.to_string()])
        .args([
            "--episodes",
            "1",
            "--no-test",
            "--concurrency",
            &CONCURRENCY.to_string(),
        ])
        .args([
            "--nats",
            &server.url(),
            "--coordinator",
            &format!("bench-{name}"),
        ]);
    if !shape.checks {
        command.args(["--no-smoke", "--no-repair", "--quick-eval-calls", "0"]);
    }
    let start = Instant::now();
    let out = command.output()?;
    let wall = start.elapsed();
    drop(started);
    if !out.status.success() {
        return Err(format!(
            "evolve with {workers} workers failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let valid = table
        .lines()
        .find(|l| l.trim_start().starts_with('1'))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    Ok(GenerationRun {
        wall,
        model_calls: calls.load(Ordering::SeqCst) - before,
        valid,
    })
}

fn seed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../programs/seed")
}

/// Arithmetic questions; the task double's "4" is right for a quarter.
fn suite() -> String {
    (0..TASKS)
        .map(|i| {
            let (a, b) = (i % 4, 4 - i % 4);
            let expected = if i % 4 == 0 { 4 } else { a + b + i };
            format!(
                "{{\"id\": \"t{i:02}\", \"input\": \"What is {a}+{b}?\", \"expected\": \"{expected}\"}}\n"
            )
        })
        .collect()
}

fn write_settings(work: &Path, url: &str) -> std::io::Result<()> {
    std::fs::write(
        work.join("hyperagents.toml"),
        format!(
            "[openai]\nbase_url = \"{url}\"\napi_key = \"sk-bench\"\n\
             [cache]\nmode = \"off\"\n\
             [sandbox]\nworkers = 1\n\
             [models.fake]\nprovider = \"openai\"\nmodel = \"task-model\"\n\
             [models.thinker]\nprovider = \"openai\"\nmodel = \"meta-model\"\n\
             [roles]\ntask = \"fake\"\nmeta = \"thinker\"\njudge = \"fake\"\n"
        ),
    )
}

/// A worker process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(work: &Path, cache: &Path, nats: &str) -> std::io::Result<Killed> {
    Command::new(env!("CARGO_BIN_EXE_hyperagents"))
        .current_dir(work)
        .env("HYPERAGENTS_CACHE_DIR", cache)
        .args([
            "worker",
            "--nats",
            nats,
            "--suite",
            "qa.jsonl",
            "--no-meta-steps",
        ])
        .args(["--models", "task,meta,judge"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Killed)
}

/// The fixed-latency model double: a thread per call, counted in `calls`.
fn model_double(calls: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let calls = calls.clone();
            std::thread::spawn(move || answer(stream, &calls));
        }
    });
    url
}

fn answer(mut stream: TcpStream, calls: &AtomicUsize) {
    let request = support::read_request(&mut stream);
    let n = calls.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(LATENCY);
    let content = if request.contains("\"model\":\"meta-model\"") {
        format!(
            "Here is the new file.\n\nskills/reason/prompt.md\n```\nQuestion: {{{{ question }}}}\nAnswer with the number only (v{n}).\n```\n"
        )
    } else {
        "4".to_string()
    };
    support::answer_chat(&mut stream, &content);
}

fn render(rows: &[(usize, GenerationRun)], large: &(Shape, usize, GenerationRun)) -> String {
    let profile = if cfg!(debug_assertions) {
        "the test profile (our crates unoptimised)"
    } else {
        "the bench profile (optimised)"
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Evaluation on worker processes (`{COMMAND}`)\n\n\
         One `hyperagents evolve --nats` generation ({CHILDREN} children of the seed, stage 1 on \
         {STAGE1} of {TASKS} JSONL tasks, the full stage on all, 1 episode seed, smoke episodes and \
         the meta agents' quick evaluations, {CONCURRENCY} episodes in flight per evaluation; the \
         seed's own two stages included) with its episodes on N `hyperagents worker` processes \
         (one sandbox worker each, one job at a time each) through nats-server on loopback; meta \
         steps on the coordinator. Models: an OpenAI-compatible double answering every call after \
         {} ms, a thread per call. Built with {profile}. Machine: 2 cores shared by the \
         coordinator, the workers, their sandbox processes and nats-server.\n",
        LATENCY.as_millis()
    );
    let _ = writeln!(
        out,
        "| workers | wall time (s) | speed-up | model calls | valid children |\n|---:|---:|---:|---:|---:|"
    );
    let base = rows.first().map(|r| r.1.wall.as_secs_f64()).unwrap_or(1.0);
    for (workers, run) in rows {
        let _ = writeln!(
            out,
            "| {workers} | {:.1} | {:.2}x | {} | {} |",
            run.wall.as_secs_f64(),
            base / run.wall.as_secs_f64(),
            run.model_calls,
            run.valid
        );
    }
    let (shape, workers, run) = large;
    let _ = writeln!(
        out,
        "\nA simulated generation of **{} children** ({} meta steps in flight on the \
         coordinator, each child on stage 1 only — one task, one episode — no smoke episode, no \
         quick evaluation, no repair round; {workers} workers): **{:.1} s**, {:.0} ms per child, \
         {} model calls, {} valid children.",
        shape.children,
        shape.parallel,
        run.wall.as_secs_f64(),
        run.wall.as_secs_f64() * 1000.0 / shape.children.max(1) as f64,
        run.model_calls,
        run.valid
    );
    out
}
