//! Benchmark of the evolution loop: generation wall time and model
//! utilisation with children made in parallel vs one at a time, and tokens
//! per accepted improvement. Writes its section of BENCHMARKS.md.
//!
//! Everything but the models is real: the repository's seed program with its
//! own meta agent in sandbox workers, a JSONL suite, a SQLite store in a fresh
//! temporary directory per run. The models are scripted doubles that answer
//! after a fixed latency, so the time a generation takes beyond its critical
//! path of model calls is the loop's own, and running children side by side
//! can only win by overlapping model calls.
//!
//! Run with `cargo bench -p hyperagents-evolve --bench loop`.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hyperagents_domain::{Domain, JsonlSuite};
use hyperagents_eval::{LocalEvaluator, SuiteIdentity};
use hyperagents_evolve::{Evolution, EvolveSettings, LocalMetaSteps};
use hyperagents_llm::accounting::{Budget, PriceTable};
use hyperagents_llm::router::ModelRouter;
use hyperagents_llm::{
    ChatModel, ChatRequest, ChatResponse, LlmError, ModelDescriptor, ResponseFormat,
};
use hyperagents_runtime::RunContext;
use hyperagents_sandbox::{PoolConfig, ScriptPool, locate_worker};
use hyperagents_store::ResultsStore;
use hyperagents_testkit::{ScriptedModel, caps, seed_dir};

/// Latency of every task-model call (two per episode: reason, extract).
const TASK_LATENCY: Duration = Duration::from_millis(40);
/// Latency of every meta-model call (one per meta step here).
const META_LATENCY: Duration = Duration::from_millis(250);
const GENERATIONS: u64 = 3;
const CHILDREN: usize = 4;
/// `parallel_children` of the configurations compared; the first is the
/// baseline of the speed-up.
const PARALLEL: [usize; 2] = [1, 4];
/// Runs per configuration; the median run is reported.
const REPEATS: usize = 3;
/// Episodes in flight per evaluation.
const EPISODE_CONCURRENCY: usize = 2;
/// Sandbox worker processes (the machine's cores).
const WORKERS: usize = 2;
/// Train tasks of the suite; the first two form stage 1.
const TRAIN_TASKS: usize = 12;
/// Tasks the task double answers correctly before any edit...
const BASE_KNOWN: usize = 2;
/// ...and how many more each level of the reasoning prompt adds.
const LEVEL_STEP: usize = 4;
/// Where the reasoning states its answer; the extract step copies it.
const ANSWER_PREFIX: &str = "The answer is ";
/// The section's marker in BENCHMARKS.md.
const SECTION: &str = "evolve-loop";
const COMMAND: &str = "cargo bench -p hyperagents-evolve --bench loop";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and a
    // test run must neither take a minute nor rewrite BENCHMARKS.md.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("skipped: run it with `{COMMAND}`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let worker = worker_exe()?;
    let mut configurations = Vec::new();
    for parallel in PARALLEL {
        let mut runs = Vec::new();
        for repeat in 1..=REPEATS {
            let run = runtime.block_on(run_once(parallel, &worker.path))?;
            eprintln!(
                "parallel_children={parallel} run {repeat}/{REPEATS}: generations {:.2} s ({}), \
                 whole run {:.2} s, meta in flight {:.2}, task in flight {:.2}, tokens {}, accepted {}",
                run.generations_total_s(),
                run.per_generation_text(),
                run.whole_run.as_secs_f64(),
                run.meta.mean_in_flight,
                run.task.mean_in_flight,
                run.tokens_meta + run.tokens_episodes,
                run.accepted,
            );
            runs.push(run);
        }
        configurations.push(Configuration { parallel, runs });
    }
    let body = render(&configurations, worker.origin);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md");
    hyperagents_eval::benchmarks_file::write_section(&path, SECTION, &body)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    print!("{body}");
    eprintln!("wrote the `{SECTION}` section of {}", path.display());
    Ok(())
}

/// A scripted model that answers after a fixed latency and records when
/// each call was in flight.
struct FixedLatency {
    inner: Arc<ScriptedModel>,
    latency: Duration,
    /// (start, end) of every call, in milliseconds since the Unix epoch: the
    /// clock the store's events use, so calls can be placed in generations.
    calls: Mutex<Vec<(f64, f64)>>,
}

impl FixedLatency {
    fn new(inner: Arc<ScriptedModel>, latency: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            latency,
            calls: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl ChatModel for FixedLatency {
    fn descriptor(&self) -> &ModelDescriptor {
        self.inner.descriptor()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let start = epoch_ms();
        tokio::time::sleep(self.latency).await;
        let mut response = self.inner.chat(request).await?;
        response.latency = self.latency;
        self.calls.lock().unwrap().push((start, epoch_ms()));
        Ok(response)
    }
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The suite: `Task i: what is i+(i+3)?`, all train tasks.
fn suite() -> String {
    (0..TRAIN_TASKS)
        .map(|i| {
            format!(
                "{{\"id\": \"t{i:02}\", \"input\": \"Task {i}: what is {i}+{}?\", \"expected\": \"{}\"}}\n",
                i + 3,
                2 * i + 3
            )
        })
        .collect()
}

fn prompt_text(request: &ChatRequest) -> String {
    request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first number after each occurrence of `marker`, largest first.
fn numbers_after(text: &str, marker: &str) -> Vec<usize> {
    let mut found: Vec<usize> = text
        .match_indices(marker)
        .filter_map(|(at, _)| {
            let digits: String = text[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    found
}

/// The task double. The reasoning step (the `reason` skill's prompt) knows
/// the answer of task `i` when `i < BASE_KNOWN + LEVEL_STEP × level`, where
/// `level` is the `(level N` marker an edited prompt carries; the extract
/// step copies the answer the reasoning stated.
fn task_model() -> Arc<ScriptedModel> {
    ScriptedModel::new(|request: &ChatRequest| {
        let prompt = prompt_text(request);
        let text = if let Some(at) = prompt.find("Reasoning:") {
            numbers_after(&prompt[at..], ANSWER_PREFIX)
                .first()
                .map_or_else(|| "unknown".to_string(), ToString::to_string)
        } else {
            let task = numbers_after(&prompt, "Task ").first().copied();
            let level = numbers_after(&prompt, "(level ")
                .first()
                .copied()
                .unwrap_or(0);
            match task {
                Some(i) if i < BASE_KNOWN + LEVEL_STEP * level => {
                    format!(
                        "{i} plus {} makes {}. {ANSWER_PREFIX}{}.",
                        i + 3,
                        2 * i + 3,
                        2 * i + 3
                    )
                }
                _ => "I cannot work this out.".to_string(),
            }
        };
        match &request.response_format {
            ResponseFormat::JsonSchema { .. } => serde_json::json!({ "answer": text }).to_string(),
            ResponseFormat::Text => text,
        }
    })
}

/// The highest level the task double can reach: every task known.
fn max_level() -> usize {
    (TRAIN_TASKS - BASE_KNOWN).div_ceil(LEVEL_STEP)
}

/// The meta double: rewrites the reasoning prompt, each call with a distinct
/// variant (its sampling seed, derived from the child's id, so every
/// configuration makes the same children). Half of the edits (even seeds)
/// raise the parent's level by one, a real improvement; the others keep it.
/// The parent's level is read from its prompt, which the seed's meta agent
/// shows the model among the program's files.
fn meta_model() -> Arc<ScriptedModel> {
    ScriptedModel::new(|request: &ChatRequest| {
        let prompt = prompt_text(request);
        let parent_level = numbers_after(&prompt, "(level ")
            .first()
            .copied()
            .unwrap_or(0);
        let variant = request.sampling.seed;
        let level = if variant.is_multiple_of(2) && parent_level < max_level() {
            parent_level + 1
        } else {
            parent_level
        };
        serde_json::json!({
            "reason": "reason more carefully",
            "path": "skills/reason/prompt.md",
            "operation": "write",
            "old": "",
            "new": format!(
                "Question: {{{{ question }}}}\nThink step by step (level {level}, variant {variant:016x}), then state the answer."
            ),
        })
        .to_string()
    })
}

/// A run context whose aliases reach the two doubles.
fn context(
    task: &Arc<FixedLatency>,
    meta: &Arc<FixedLatency>,
    pool: Arc<ScriptPool>,
    traces: PathBuf,
) -> RunContext {
    let mut router = ModelRouter::new(PriceTable::default());
    router.bind("task", task.clone(), Budget::default());
    router.bind("judge", task.clone(), Budget::default());
    router.bind("meta", meta.clone(), Budget::default());
    RunContext {
        router,
        pool,
        caps: caps(40),
        run_seed: 7,
        traces_dir: traces,
        screenshots: false,
        external_tools: None,
    }
}

struct Worker {
    path: PathBuf,
    origin: &'static str,
}

/// The sandbox worker: `HYPERAGENTS_WORKER` if set, else the dev build's.
/// `cargo bench` builds no binary of another package, so a worker beside the
/// bench may be missing or older than the sandbox it talks to; the dev build
/// is the one `cargo build --workspace` (and so every test run) keeps current.
fn worker_exe() -> Result<Worker, Box<dyn std::error::Error>> {
    if std::env::var_os(hyperagents_sandbox::locate::WORKER_ENV).is_some() {
        return Ok(Worker {
            path: locate_worker()?,
            origin: "set by HYPERAGENTS_WORKER",
        });
    }
    let exe = std::env::current_exe()?;
    // <target>/<profile>/deps/<bench>
    if let Some(target) = exe.ancestors().nth(3) {
        let dev = target.join("debug").join(format!(
            "hyperagents-worker{}",
            std::env::consts::EXE_SUFFIX
        ));
        if dev.is_file() {
            return Ok(Worker {
                path: dev,
                origin: "dev build",
            });
        }
    }
    Ok(Worker {
        path: locate_worker()?,
        origin: "found beside the bench",
    })
}

/// How one model was used during the generations.
struct Usage {
    calls: usize,
    /// Total call time inside generations ÷ the generations' wall time.
    mean_in_flight: f64,
    /// The most calls in flight at once during a generation.
    peak_in_flight: usize,
}

struct Run {
    /// Each generation's wall time, from its `parents` event to its
    /// `generation` event.
    generations: Vec<Duration>,
    /// Seed evaluation and every generation.
    whole_run: Duration,
    meta: Usage,
    task: Usage,
    tokens_meta: u64,
    tokens_episodes: u64,
    comparisons: usize,
    accepted: usize,
    valid_children: usize,
    /// Each generation's parents, as its `parents` event lists them.
    parents: Vec<serde_json::Value>,
}

impl Run {
    fn generations_total_s(&self) -> f64 {
        self.generations.iter().map(Duration::as_secs_f64).sum()
    }

    fn per_generation_text(&self) -> String {
        self.generations
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" / ")
    }

    fn tokens_per_accepted(&self) -> String {
        match self.accepted {
            0 => "none accepted".to_string(),
            n => format!(
                "{:.0}",
                (self.tokens_meta + self.tokens_episodes) as f64 / n as f64
            ),
        }
    }
}

async fn run_once(parallel: usize, worker: &Path) -> Result<Run, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let task = FixedLatency::new(task_model(), TASK_LATENCY);
    let meta = FixedLatency::new(meta_model(), META_LATENCY);
    let pool = Arc::new(ScriptPool::start(PoolConfig::new(WORKERS, worker.to_path_buf())).await?);
    let domain: Arc<dyn Domain> =
        Arc::new(JsonlSuite::parse("jsonl:bench", "bench.jsonl", &suite())?);
    let train: Vec<String> = (0..TRAIN_TASKS).map(|i| format!("t{i:02}")).collect();
    let episodes = context(&task, &meta, pool.clone(), dir.path().join("traces"));
    let store = ResultsStore::open(dir.path().join("results.sqlite"))?;
    let meta_ctx = context(&task, &meta, pool, dir.path().join("meta-traces"));
    let evolution = Evolution {
        episodes: episodes.clone(),
        meta: meta_ctx.clone(),
        meta_steps: Arc::new(LocalMetaSteps(meta_ctx)),
        archive: Arc::new(store.clone()),
        evaluator: Arc::new(LocalEvaluator {
            ctx: episodes,
            store,
        }),
        feedback: None,
        domain,
        suite: SuiteIdentity {
            name: "jsonl:bench".into(),
            version: "v1".into(),
        },
        settings: EvolveSettings {
            run_id: "bench".into(),
            generations: GENERATIONS,
            children: CHILDREN,
            parallel_children: parallel,
            stage1_tasks: train[..BASE_KNOWN].to_vec(),
            full_tasks: train,
            concurrency: EPISODE_CONCURRENCY,
            ..EvolveSettings::default()
        },
        dir: dir.path().join("run"),
    };
    let started = Instant::now();
    let stats = evolution.run(&seed_dir()).await?;
    let whole_run = started.elapsed();
    if stats.len() as u64 != GENERATIONS {
        return Err(format!("the run stopped after {} generations", stats.len()).into());
    }
    let events = evolution.archive.events("bench", 0)?;
    let at = |kind: &str, generation: u64| {
        events
            .iter()
            .find(|e| e.kind == kind && e.payload["generation"].as_u64() == Some(generation))
            .map(|e| e.at_ms as f64)
            .ok_or_else(|| format!("no `{kind}` event for generation {generation}"))
    };
    let mut windows = Vec::new();
    for generation in 1..=GENERATIONS {
        windows.push((at("parents", generation)?, at("generation", generation)?));
    }
    let comparisons: Vec<_> = events.iter().filter(|e| e.kind == "comparison").collect();
    let spent = evolution.tokens_spent()?;
    Ok(Run {
        generations: windows
            .iter()
            .map(|(a, b)| Duration::from_secs_f64((b - a).max(0.0) / 1000.0))
            .collect(),
        whole_run,
        meta: usage(&meta.calls.lock().unwrap(), &windows),
        task: usage(&task.calls.lock().unwrap(), &windows),
        tokens_meta: spent.meta,
        tokens_episodes: spent.episodes,
        comparisons: comparisons.len(),
        accepted: comparisons
            .iter()
            .filter(|e| e.payload["accepted"].as_bool() == Some(true))
            .count(),
        valid_children: stats.iter().map(|g| g.valid_children).sum(),
        parents: events
            .iter()
            .filter(|e| e.kind == "parents")
            .map(|e| e.payload["parents"].clone())
            .collect(),
    })
}

/// Calls clipped to the generation windows: mean and peak in flight.
fn usage(calls: &[(f64, f64)], windows: &[(f64, f64)]) -> Usage {
    let window_time: f64 = windows.iter().map(|(a, b)| b - a).sum();
    let mut clipped = Vec::new();
    for &(start, end) in calls {
        for &(a, b) in windows {
            let (s, e) = (start.max(a), end.min(b));
            if e > s {
                clipped.push((s, e));
            }
        }
    }
    let busy: f64 = clipped.iter().map(|(s, e)| e - s).sum();
    // Sweep: ends sort before starts at the same instant, so back-to-back
    // calls do not count as overlapping.
    let mut edges: Vec<(f64, i32)> = clipped
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        peak = peak.max(now);
    }
    Usage {
        calls: calls.len(),
        mean_in_flight: if window_time > 0.0 {
            busy / window_time
        } else {
            0.0
        },
        peak_in_flight: usize::try_from(peak).unwrap_or(0),
    }
}

struct Configuration {
    parallel: usize,
    runs: Vec<Run>,
}

impl Configuration {
    /// The run with the median total generation time.
    fn median(&self) -> &Run {
        let mut order: Vec<&Run> = self.runs.iter().collect();
        order.sort_by(|a, b| a.generations_total_s().total_cmp(&b.generations_total_s()));
        order[order.len() / 2]
    }
}

fn render(configurations: &[Configuration], worker: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Evolution loop (`{COMMAND}`)\n");
    let _ = writeln!(
        s,
        "Written by `{COMMAND}` (bench profile; sandbox worker: {worker}). Real parts: the seed \
         program with its own meta agent in {WORKERS} sandbox workers, a JSONL suite of \
         {TRAIN_TASKS} train tasks ({BASE_KNOWN} in stage 1), a SQLite store in a fresh temporary \
         directory per run; {GENERATIONS} generations × {CHILDREN} children, {EPISODE_CONCURRENCY} \
         episodes in flight per evaluation, the same run seed everywhere. The models are doubles \
         that answer after a fixed latency — **task model {} ms, meta model {} ms per call** — \
         with a slot for every caller, so nothing queues for them. The meta double rewrites the \
         reasoning prompt on every call; for the children whose call seed is even (the seed \
         derives from the child's id, so every run makes the same children) the edit also raises \
         a level with which the task double answers {LEVEL_STEP} more tasks correctly. Machine: \
         2 cores. {REPEATS} runs per configuration; the run with the median generation time is \
         shown.\n",
        TASK_LATENCY.as_millis(),
        META_LATENCY.as_millis(),
    );
    s.push_str(
        "| children in flight | wall per generation, mean (each) | all generations | whole run | \
         meta calls in flight, mean / peak | task calls in flight, mean / peak | meta calls | \
         task calls | tokens, meta + episodes | valid children | accepted improvements (every run) | \
         tokens per accepted improvement (every run) |\n",
    );
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for configuration in configurations {
        let run = configuration.median();
        let every = |f: fn(&Run) -> String| {
            configuration
                .runs
                .iter()
                .map(f)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "| {} | {:.2} s ({}) | {:.2} s | {:.2} s | {:.2} / {} | {:.2} / {} | {} | {} | {} + {} | {} | {} of {} ({}) | {} ({}) |",
            configuration.parallel,
            run.generations_total_s() / run.generations.len().max(1) as f64,
            run.per_generation_text(),
            run.generations_total_s(),
            run.whole_run.as_secs_f64(),
            run.meta.mean_in_flight,
            run.meta.peak_in_flight,
            run.task.mean_in_flight,
            run.task.peak_in_flight,
            run.meta.calls,
            run.task.calls,
            run.tokens_meta,
            run.tokens_episodes,
            run.valid_children,
            run.accepted,
            run.comparisons,
            every(|r| r.accepted.to_string()),
            run.tokens_per_accepted(),
            every(Run::tokens_per_accepted),
        );
    }
    let _ = writeln!(
        s,
        "\nA generation's wall time runs from its `parents` event to its `generation` event; \
         \"whole run\" adds the seed's evaluation. Calls in flight: a model's total call time \
         inside generations ÷ the generations' wall time (its utilisation in slots; 1.00 = one \
         call always running); peak: the most at once. Tokens: `Evolution::tokens_spent()` (meta \
         steps, and each distinct episode of smoke runs, quick and staged evaluations once); the doubles count 20 \
         input tokens per call and one output token per 4 characters. An accepted improvement \
         is a `comparison` event with `accepted: true` (95% lower bound of the paired per-task \
         difference above 0).\n"
    );
    if let (Some(first), Some(last)) = (configurations.first(), configurations.last()) {
        let (base, best) = (first.median(), last.median());
        let speedup = base.generations_total_s() / best.generations_total_s().max(f64::EPSILON);
        let _ = writeln!(
            s,
            "**Speed-up of {} children in flight over {}: {speedup:.2}×** (all generations, median runs).\n",
            last.parallel, first.parallel,
        );
        let (base_tokens, best_tokens) = (
            base.tokens_meta + base.tokens_episodes,
            best.tokens_meta + best.tokens_episodes,
        );
        let work = match first_difference(base, best) {
            None if base_tokens != best_tokens => format!(
                "The median runs chose the same parents but spent {base_tokens} vs {best_tokens} \
                 tokens."
            ),
            None => format!(
                "Both chose the same parents and spent the same {} tokens ({} per accepted \
                 improvement), so parallel children buy wall time, not model work.",
                best_tokens,
                best.tokens_per_accepted(),
            ),
            Some(generation) => format!(
                "The median runs chose different parents from generation {generation} on, so \
                 they did different work ({} vs {} tokens, {} vs {} accepted improvements); \
                 runs of one configuration {}.",
                base_tokens,
                best_tokens,
                base.accepted,
                best.accepted,
                reproducibility(configurations),
            ),
        };
        let _ = writeln!(
            s,
            "With {} children in flight a generation took {:.2} s instead of {:.2} s: the meta \
             model's calls of different children overlap (meta calls in flight {:.2} vs {:.2}) and \
             so do their evaluations (task calls in flight {:.2} vs {:.2}). {work}",
            last.parallel,
            best.generations_total_s() / best.generations.len().max(1) as f64,
            base.generations_total_s() / base.generations.len().max(1) as f64,
            best.meta.mean_in_flight,
            base.meta.mean_in_flight,
            best.task.mean_in_flight,
            base.task.mean_in_flight,
        );
    }
    s
}

/// The first generation whose parents differ between two runs.
fn first_difference(a: &Run, b: &Run) -> Option<usize> {
    (0..a.parents.len().max(b.parents.len()))
        .find(|&g| a.parents.get(g) != b.parents.get(g))
        .map(|g| g + 1)
}

/// Which configurations chose the same parents in every run.
fn reproducibility(configurations: &[Configuration]) -> String {
    configurations
        .iter()
        .map(|c| {
            let varied = c
                .runs
                .iter()
                .filter(|r| first_difference(r, &c.runs[0]).is_some())
                .count();
            if varied == 0 {
                format!(
                    "with {} in flight chose the same parents every time",
                    c.parallel
                )
            } else {
                format!(
                    "with {} in flight chose parents unlike the first run's in {varied} of {}",
                    c.parallel,
                    c.runs.len()
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
