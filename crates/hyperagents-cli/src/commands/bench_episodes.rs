//! `hyperagents bench episodes`: where an episode's time goes. Programs on a
//! suite's split with the configured task model, the response cache off and
//! nothing reused from the results store, at several concurrencies; per
//! episode the model's share (prompt tokens computed and reused, prompt
//! processing, decoding, waiting), the environment's (reset, observe, act,
//! score) and the framework's (sandbox, trajectory write, store). Programs
//! are compared paired by (task, seed) against the first one.
//!
//! Rows are appended to a JSONL file as they are measured, so an interrupted
//! bench resumes: a (program, concurrency) batch counts once its closing row
//! is written, and a rerun skips batches already closed with the same
//! settings.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use hyperagents_eval::{EpisodeRecord, EvalPlan, EvalTarget, evaluate};
use hyperagents_report::{EpisodeOutcomes, PairedTest};
use hyperagents_runtime::trace::{EpisodeSummary, EpisodeTiming, summary_path};
use hyperagents_sandbox::PoolTimes;
use hyperagents_store::{EvalStatus, NewEvalRun, ResultsStore};
use serde::{Deserialize, Serialize};

use super::bench::write_section;
use super::programs::{episode_aliases, load_program, run_context_with_models};
use super::suites::{parse_split, plan_suite};
use crate::cli::BenchEpisodesArgs;
use crate::settings::{ModelSettings, Settings};

/// One line of the results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Row {
    Episode(EpisodeRow),
    Batch(BatchRow),
}

/// One measured episode.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EpisodeRow {
    batch: String,
    task: String,
    seed: u64,
    status: String,
    success: bool,
    /// Environment actions taken, and `skill`/`delegate`/`llm` calls.
    steps: u64,
    calls: u64,
    llm_calls: u64,
    tokens_in: u64,
    tokens_out: u64,
    /// The episode as the runtime timed it, then its trajectory write and
    /// result store.
    episode_ms: f64,
    trace_write_ms: f64,
    store_ms: f64,
    timing: EpisodeTiming,
}

/// A finished batch: one program at one concurrency over every (task, seed).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BatchRow {
    batch: String,
    /// What makes two batches the same measurement.
    setup: BatchSetup,
    episodes: usize,
    wall_ms: f64,
    /// Engine counters over the batch: decode time and prompt tokens.
    model_decode_ms: f64,
    started_at_unix_ms: u64,
    /// The script pool's counters over the batch (batches measured before
    /// the pool kept them have none).
    #[serde(default)]
    pool: Option<PoolTotals>,
}

/// The script pool's time over one batch, summed over its slices (see
/// `hyperagents_sandbox::PoolTimes`), in milliseconds; or per episode, once
/// divided by [`PoolTotals::per_episode`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PoolTotals {
    slices: f64,
    slice_wall_ms: f64,
    queued_ms: f64,
    compile_ms: f64,
    load_ms: f64,
    run_ms: f64,
    dump_ms: f64,
    /// Whole requests in the workers (batches measured before workers
    /// reported it have 0).
    #[serde(default)]
    handled_ms: f64,
}

impl PoolTotals {
    fn of(times: &PoolTimes) -> Self {
        Self {
            slices: times.slices as f64,
            slice_wall_ms: ms(times.slice_wall),
            queued_ms: ms(times.queued),
            compile_ms: ms(times.compile),
            load_ms: ms(times.load),
            run_ms: ms(times.run),
            dump_ms: ms(times.dump),
            handled_ms: ms(times.handled),
        }
    }

    /// Every figure divided by the batch's episodes.
    fn per_episode(&self, episodes: f64) -> Self {
        Self {
            slices: self.slices / episodes,
            slice_wall_ms: self.slice_wall_ms / episodes,
            queued_ms: self.queued_ms / episodes,
            compile_ms: self.compile_ms / episodes,
            load_ms: self.load_ms / episodes,
            run_ms: self.run_ms / episodes,
            dump_ms: self.dump_ms / episodes,
            handled_ms: self.handled_ms / episodes,
        }
    }

    /// The worker's named parts: compile, load, run, dump.
    fn worker_parts_ms(&self) -> f64 {
        self.compile_ms + self.load_ms + self.run_ms + self.dump_ms
    }

    /// The rest of the worker's requests: decoding them, converting
    /// values, freeing runs.
    fn worker_other_ms(&self) -> f64 {
        (self.handled_ms - self.worker_parts_ms()).max(0.0)
    }

    /// What the worker did not account for: pipes, the frames' JSON on the
    /// host and scheduling (with no `handled`, the worker's other work too).
    fn transfer_ms(&self) -> f64 {
        let worker = self.handled_ms.max(self.worker_parts_ms());
        (self.slice_wall_ms - self.queued_ms - worker).max(0.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BatchSetup {
    program: String,
    program_hash: String,
    concurrency: usize,
    suite: String,
    tasks: Vec<String>,
    seeds: Vec<u64>,
    max_steps: u32,
    task_model: String,
    threads: usize,
    /// The embedded engine's sequence slots (KV caches kept side by side).
    #[serde(default)]
    slots: u32,
    /// What else differed in how the process ran (`--variant`: an
    /// environment variable, a process priority), in words.
    #[serde(default)]
    variant: String,
}

impl BatchSetup {
    /// Whether two batches ran the same workload (they may differ in
    /// program, task model, concurrency, threads and slots).
    fn same_workload(&self, other: &BatchSetup) -> bool {
        self.suite == other.suite
            && self.tasks == other.tasks
            && self.seeds == other.seeds
            && self.max_steps == other.max_steps
    }

    /// Whether two batches differ only in their program.
    fn same_machine_setup(&self, other: &BatchSetup) -> bool {
        self.same_workload(other)
            && self.concurrency == other.concurrency
            && self.threads == other.threads
            && self.slots == other.slots
            && self.variant == other.variant
            && self.task_model == other.task_model
    }
}

pub async fn run(mut settings: Settings, args: BenchEpisodesArgs) -> Result<ExitCode> {
    ensure!(!args.programs.is_empty(), "name at least one --program");
    ensure!(args.seeds >= 1, "--seeds must be at least 1");
    ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|c| *c >= 1),
        "--concurrency needs counts of at least 1"
    );
    // Every answer computed now: nothing from the response cache.
    settings.cache.mode = "off".into();
    settings.run.max_steps = args.max_steps;
    let split = parse_split(&args.split)?;
    let plan = plan_suite(&settings, &args.suite, split)?;
    let tasks = if args.tasks.is_empty() {
        plan.split_tasks.clone()
    } else {
        if let Some(stray) = args.tasks.iter().find(|t| !plan.split_tasks.contains(t)) {
            bail!(
                "task `{stray}` is not in the {} split of {}",
                args.split,
                args.suite
            );
        }
        args.tasks.clone()
    };
    let seeds: Vec<u64> = (0..args.seeds).collect();
    let task_model = settings
        .roles
        .get("task")
        .cloned()
        .unwrap_or_else(|| "-".into());
    let results = args
        .results
        .clone()
        .unwrap_or_else(|| settings.cache_dir().join("bench").join("episodes.jsonl"));
    let mut rows = read_rows(&results)?;

    let mut setups = Vec::new();
    for &concurrency in &args.concurrency {
        for dir in &args.programs {
            let program = load_program(dir)?;
            setups.push((
                dir.clone(),
                BatchSetup {
                    program: label(dir),
                    program_hash: program.episode_hash().to_hex(),
                    concurrency,
                    suite: plan.identity.name.clone(),
                    tasks: tasks.clone(),
                    seeds: seeds.clone(),
                    max_steps: args.max_steps,
                    task_model: task_model.clone(),
                    threads: settings.embedded.threads,
                    slots: settings.embedded.n_seq,
                    variant: args.variant.clone(),
                },
            ));
        }
    }
    // Programs alternate within each concurrency, so the batches compared
    // with each other ran close together in time.
    for (dir, setup) in &setups {
        if closed_batch(&rows, setup).is_some() {
            eprintln!(
                "{} at concurrency {}: measured already in {}",
                setup.program,
                setup.concurrency,
                results.display()
            );
            continue;
        }
        let measured = measure(&settings, &args, dir, setup, &results).await?;
        rows.extend(measured);
    }
    // Every setup measured on this workload, the latest batch of each: other
    // thread and slot settings measured by earlier invocations stay listed.
    let mut measured: Vec<BatchSetup> = Vec::new();
    for row in &rows {
        if let Row::Batch(b) = row
            && setups.iter().any(|(_, s)| s.same_workload(&b.setup))
            && !measured.contains(&b.setup)
        {
            measured.push(b.setup.clone());
        }
    }
    measured.sort_by(|a, b| {
        (&a.variant, a.threads, a.slots, a.concurrency).cmp(&(
            &b.variant,
            b.threads,
            b.slots,
            b.concurrency,
        ))
    });
    let batches: Vec<(BatchRow, Vec<EpisodeRow>)> = measured
        .iter()
        .filter_map(|setup| closed_batch(&rows, setup))
        .collect();
    let default_settings = Settings::default();
    let defaults = DefaultSetup {
        threads: default_settings.embedded.threads,
        slots: default_settings.embedded.n_seq,
        task_model: default_settings
            .roles
            .get("task")
            .cloned()
            .unwrap_or_default(),
    };
    let text = render(&args, &defaults, &batches, &results);
    print!("{text}");
    write_section(&args.out, &args.section, &text)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote the {} section of {}",
        args.section,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The directory's name: how a program is called in the tables.
fn label(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// Runs one batch; appends its rows to `results` as they come.
async fn measure(
    settings: &Settings,
    args: &BenchEpisodesArgs,
    dir: &Path,
    setup: &BatchSetup,
    results: &Path,
) -> Result<Vec<Row>> {
    let mut settings = settings.clone();
    // One window per episode in flight.
    settings.benchmarks.browser.windows = setup.concurrency;
    let program = Arc::new(load_program(dir)?);
    // Programs are read when their batch starts: one edited since the bench
    // started would be measured under the wrong name.
    ensure!(
        program.episode_hash().to_hex() == setup.program_hash,
        "{} changed while the bench ran; rerun it to measure the new version",
        dir.display()
    );
    let plan = plan_suite(&settings, &args.suite, parse_split(&args.split)?)?;
    let identity = plan.identity.clone();
    let mut aliases: BTreeSet<String> = plan.aliases.clone();
    aliases.extend(episode_aliases(&program).into_iter().map(str::to_string));
    // Trajectories and results of the batch, kept until the next batch.
    let scratch = settings.cache_dir().join("bench").join("scratch");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("clearing {}", scratch.display()))?;
    }
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let (ctx, mut models) = run_context_with_models(
        &settings,
        aliases.iter().map(String::as_str).collect(),
        scratch.join("traces"),
    )
    .await?;
    let engine = match models.resolve(&setup.task_model) {
        Ok(ModelSettings::Embedded { name, path, sha256 }) => Some(
            models
                .embedded_model(&name, path.as_deref(), sha256.as_deref())
                .await?,
        ),
        _ => None,
    };
    let domain = plan.open(&ctx).await?;
    // A store of its own: nothing is reused, nothing pollutes the user's.
    let store = ResultsStore::open(scratch.join("results.sqlite"))?;
    let run = store.create_run(&NewEvalRun {
        program_hash: setup.program_hash.clone(),
        suite: identity.name.clone(),
        split: args.split.clone(),
        config: serde_json::json!({"bench": "episodes", "concurrency": setup.concurrency}),
    })?;
    let batch = format!("{}-c{}-{}", setup.program, setup.concurrency, now_ms());
    eprintln!(
        "measuring {} on {} tasks × {} seeds at concurrency {} ({batch})…",
        setup.program,
        setup.tasks.len(),
        setup.seeds.len(),
        setup.concurrency
    );
    let out = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ensure_parent(results)?)
            .with_context(|| format!("opening {}", results.display()))?,
    );
    let written = Mutex::new(Vec::new());
    let failed_write = Mutex::new(None);
    let on_episode = |record: &EpisodeRecord| {
        let row = Row::Episode(episode_row(&batch, record));
        let line = serde_json::to_string(&row).unwrap_or_default();
        let mut file = out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) = writeln!(file, "{line}") {
            *failed_write.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
        }
        let done = {
            let mut rows = written.lock().unwrap_or_else(|e| e.into_inner());
            rows.push(row);
            rows.len()
        };
        if done % 10 == 0 {
            eprintln!("  {done} episodes");
        }
    };
    let before = engine.as_ref().map(|e| e.stats());
    let pool_before = ctx.pool.stats().time;
    let target = EvalTarget {
        program,
        domain,
        suite: identity,
    };
    let eval_plan = EvalPlan {
        tasks: setup.tasks.clone(),
        seeds: setup.seeds.clone(),
        concurrency: setup.concurrency,
        reuse_cached: false,
    };
    let started_at_unix_ms = now_ms();
    let report = evaluate(&ctx, &target, &eval_plan, &store, run, &on_episode).await?;
    if let Some(err) = failed_write
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(err).with_context(|| format!("appending to {}", results.display()));
    }
    let decode_ms = match (&engine, before) {
        (Some(engine), Some(before)) => {
            (engine.stats().decode_micros - before.decode_micros) as f64 / 1000.0
        }
        _ => 0.0,
    };
    let pool = PoolTotals::of(&ctx.pool.stats().time.since(&pool_before));
    let closing = Row::Batch(BatchRow {
        batch: batch.clone(),
        setup: setup.clone(),
        episodes: report.records.len(),
        wall_ms: report.wall.as_secs_f64() * 1000.0,
        model_decode_ms: decode_ms,
        started_at_unix_ms,
        pool: Some(pool),
    });
    {
        let mut file = out.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(file, "{}", serde_json::to_string(&closing)?)?;
        file.flush()?;
    }
    let mut rows = written.into_inner().unwrap_or_else(|e| e.into_inner());
    rows.push(closing);
    eprintln!(
        "  {} episodes in {:.1} s",
        report.records.len(),
        report.wall.as_secs_f64()
    );
    Ok(rows)
}

fn ensure_parent(path: &Path) -> Result<&Path> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(path)
}

fn episode_row(batch: &str, record: &EpisodeRecord) -> EpisodeRow {
    // Counts of actions and calls are in the trajectory's summary.
    let summary: Option<EpisodeSummary> = record
        .trajectory
        .as_ref()
        .and_then(|t| std::fs::read_to_string(summary_path(t)).ok())
        .and_then(|text| serde_json::from_str(&text).ok());
    let (steps, calls, llm_calls) = summary
        .map(|s| (s.steps, s.calls, s.llm_calls))
        .unwrap_or_default();
    let b = record.breakdown;
    EpisodeRow {
        batch: batch.to_string(),
        task: record.task.clone(),
        seed: record.seed,
        status: match record.status {
            EvalStatus::Ok => "ok",
            EvalStatus::Unsupported => "unsupported",
            EvalStatus::Error => "error",
        }
        .into(),
        success: record.success,
        steps,
        calls,
        llm_calls,
        tokens_in: record.tokens_in,
        tokens_out: record.tokens_out,
        episode_ms: b.map_or(record.duration_ms as f64, |b| ms(b.episode)),
        trace_write_ms: b.map_or(0.0, |b| ms(b.trace_write)),
        store_ms: b.map_or(0.0, |b| ms(b.store)),
        timing: b.map(|b| b.timing).unwrap_or_default(),
    }
}

/// The program's name, with the task model and variant it ran under when
/// they are not the defaults.
fn program_label(setup: &BatchSetup, defaults: &DefaultSetup) -> String {
    let mut notes = Vec::new();
    if setup.task_model != defaults.task_model {
        notes.push(setup.task_model.as_str());
    }
    if !setup.variant.is_empty() {
        notes.push(setup.variant.as_str());
    }
    if notes.is_empty() {
        setup.program.clone()
    } else {
        format!("{} ({})", setup.program, notes.join(", "))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0)
}

/// Every row of a JSONL results file; a file that does not exist has none,
/// and a last line cut off by a kill is skipped. Shared with `bench meta`.
pub(super) fn read_rows<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(row) => rows.push(row),
            // A line cut off by a kill: the batch it belongs to never closed.
            Err(_) if i + 1 == text.lines().count() => {}
            Err(e) => bail!("{}:{}: {e}", path.display(), i + 1),
        }
    }
    Ok(rows)
}

/// The latest closed batch measured with `setup`, and its episodes.
fn closed_batch(rows: &[Row], setup: &BatchSetup) -> Option<(BatchRow, Vec<EpisodeRow>)> {
    let batch = rows.iter().rev().find_map(|row| match row {
        Row::Batch(b) if &b.setup == setup => Some(b.clone()),
        _ => None,
    })?;
    let episodes = rows
        .iter()
        .filter_map(|row| match row {
            Row::Episode(e) if e.batch == batch.batch => Some(e.clone()),
            _ => None,
        })
        .collect();
    Some((batch, episodes))
}

/// What one batch comes to, per episode.
struct BatchFigures {
    episodes: usize,
    successes: usize,
    errors: usize,
    per_hour: f64,
    wall_s: f64,
    /// Model busy: decode time over wall time.
    model_busy: f64,
    steps: f64,
    llm_calls: f64,
    computed: f64,
    reused: f64,
    generated: f64,
    /// Mean milliseconds per episode.
    total_ms: f64,
    llm_ms: f64,
    model_prompt_ms: f64,
    model_generate_ms: f64,
    model_queued_ms: f64,
    model_lock_wait_ms: f64,
    reset_ms: f64,
    observe_ms: f64,
    act_ms: f64,
    score_ms: f64,
    sandbox_ms: f64,
    trace_write_ms: f64,
    store_ms: f64,
    /// The script pool's totals per episode, when the batch kept them.
    pool: Option<PoolTotals>,
}

impl BatchFigures {
    fn of(batch: &BatchRow, episodes: &[EpisodeRow]) -> Self {
        let n = episodes.len().max(1) as f64;
        let mean = |f: &dyn Fn(&EpisodeRow) -> f64| episodes.iter().map(f).sum::<f64>() / n;
        let sandbox = mean(&|e| (e.episode_ms - e.timing.accounted_ms()).max(0.0));
        Self {
            episodes: episodes.len(),
            successes: episodes.iter().filter(|e| e.success).count(),
            errors: episodes.iter().filter(|e| e.status == "error").count(),
            per_hour: episodes.len() as f64 / (batch.wall_ms / 3_600_000.0).max(f64::MIN_POSITIVE),
            wall_s: batch.wall_ms / 1000.0,
            model_busy: batch.model_decode_ms / batch.wall_ms.max(f64::MIN_POSITIVE),
            steps: mean(&|e| e.steps as f64),
            llm_calls: mean(&|e| e.llm_calls as f64),
            computed: mean(&|e| e.timing.prompt_tokens_computed as f64),
            reused: mean(&|e| e.timing.prompt_tokens_reused as f64),
            generated: mean(&|e| e.tokens_out as f64),
            total_ms: mean(&|e| e.episode_ms + e.trace_write_ms + e.store_ms),
            llm_ms: mean(&|e| e.timing.llm_ms),
            model_prompt_ms: mean(&|e| e.timing.model_prompt_ms),
            model_generate_ms: mean(&|e| e.timing.model_generate_ms),
            model_queued_ms: mean(&|e| e.timing.model_queued_ms),
            model_lock_wait_ms: mean(&|e| e.timing.model_lock_wait_ms),
            reset_ms: mean(&|e| e.timing.reset_ms),
            observe_ms: mean(&|e| e.timing.observe_ms),
            act_ms: mean(&|e| e.timing.act_ms),
            score_ms: mean(&|e| e.timing.score_ms),
            sandbox_ms: sandbox,
            trace_write_ms: mean(&|e| e.trace_write_ms),
            store_ms: mean(&|e| e.store_ms),
            pool: batch.pool.as_ref().map(|p| p.per_episode(n)),
        }
    }

    /// The framework's part of an episode: sandbox, trajectory, store.
    fn framework_ms(&self) -> f64 {
        self.sandbox_ms + self.trace_write_ms + self.store_ms
    }
}

/// Success of `other` minus `base`, paired by (task, seed): the mean
/// difference and its 95% interval (normal approximation), over the pairs
/// both measured.
fn paired_difference(base: &[EpisodeRow], other: &[EpisodeRow]) -> Option<(f64, f64, f64, usize)> {
    let outcomes = |rows: &[EpisodeRow]| -> EpisodeOutcomes {
        rows.iter()
            .map(|e| ((e.task.clone(), e.seed), e.success))
            .collect()
    };
    PairedTest::of("", &outcomes(other), &outcomes(base))
        .map(|p| (p.mean, p.lower, p.upper, p.pairs))
}

/// The setup batches are compared against.
struct DefaultSetup {
    threads: usize,
    slots: u32,
    task_model: String,
}

fn render(
    args: &BenchEpisodesArgs,
    defaults: &DefaultSetup,
    batches: &[(BatchRow, Vec<EpisodeRow>)],
    results: &Path,
) -> String {
    let mut text = String::new();
    let programs: Vec<String> = args
        .programs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(
        text,
        "## Where an episode's time goes (`hyperagents bench episodes`)\n"
    );
    let _ = writeln!(
        text,
        "Written by `hyperagents bench episodes --program {} --suite {} --split {} --seeds {} --concurrency {} --max-steps {}{}`. \
         The response cache is off and every episode runs again (a scratch results store), so every prompt token is either \
         computed or reused from the engine's KV cache. Task model: `{}` unless a row names another; episodes end after {} \
         environment actions; `threads/slots`: the embedded engine's threads and sequence slots. Per-episode rows: `{}`.\n",
        programs.join(" --program "),
        args.suite,
        args.split,
        args.seeds,
        args.concurrency
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.max_steps,
        if args.tasks.is_empty() {
            String::new()
        } else {
            format!(" --tasks {}", args.tasks.join(","))
        },
        defaults.task_model,
        args.max_steps,
        results.display(),
    );
    if batches.is_empty() {
        let _ = writeln!(text, "No batch measured yet.\n");
        return text;
    }
    let figures: Vec<(&BatchRow, &Vec<EpisodeRow>, BatchFigures)> = batches
        .iter()
        .map(|(b, e)| (b, e, BatchFigures::of(b, e)))
        .collect();
    let _ = writeln!(
        text,
        "| program | threads/slots | concurrency | episodes | success | errors | wall s | episodes/hour | model busy | actions/ep | llm calls/ep | prompt tokens computed/ep | reused/ep | generated/ep |"
    );
    let _ = writeln!(
        text,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (b, _, f) in &figures {
        let _ = writeln!(
            text,
            "| {} | {}/{} | {} | {} | {} ({:.1}%) | {} | {:.1} | {:.0} | {:.0}% | {:.1} | {:.1} | {:.0} | {:.0} | {:.1} |",
            program_label(&b.setup, defaults),
            b.setup.threads,
            b.setup.slots,
            b.setup.concurrency,
            f.episodes,
            f.successes,
            100.0 * f.successes as f64 / f.episodes.max(1) as f64,
            f.errors,
            f.wall_s,
            f.per_hour,
            100.0 * f.model_busy,
            f.steps,
            f.llm_calls,
            f.computed,
            f.reused,
            f.generated,
        );
    }
    let _ = writeln!(
        text,
        "\nMean milliseconds per episode. `llm` is the time scripts waited for the model; inside it, decode steps over the prompt \
         and over generated tokens, waiting for a sequence slot and for the compute lock (a batched decode step counts for every \
         request it advanced, so at concurrency above 1 these overlap and can exceed `llm`). `sandbox` is the episode less \
         everything timed on the host (script VM, IPC, prompt rendering, spans); framework = sandbox + trajectory write + store.\n"
    );
    let _ = writeln!(
        text,
        "| program | threads/slots | c | episode | llm | prompt | generate | queued | lock wait | reset | observe | act | score | sandbox | trace write | store | framework share |"
    );
    let _ = writeln!(
        text,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (b, _, f) in &figures {
        let _ = writeln!(
            text,
            "| {} | {}/{} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}% |",
            program_label(&b.setup, defaults),
            b.setup.threads,
            b.setup.slots,
            b.setup.concurrency,
            f.total_ms,
            f.llm_ms,
            f.model_prompt_ms,
            f.model_generate_ms,
            f.model_queued_ms,
            f.model_lock_wait_ms,
            f.reset_ms,
            f.observe_ms,
            f.act_ms,
            f.score_ms,
            f.sandbox_ms,
            f.trace_write_ms,
            f.store_ms,
            100.0 * f.framework_ms() / f.total_ms.max(f64::MIN_POSITIVE),
        );
    }
    render_sandbox(&mut text, defaults, &figures);
    let baseline = args.programs.first().map(|p| label(p));
    let default_setup = |s: &BatchSetup| {
        s.variant.is_empty()
            && s.threads == defaults.threads
            && s.slots == defaults.slots
            && s.task_model == defaults.task_model
    };
    let mut comparisons = String::new();
    for (b, e, f) in &figures {
        // A program is compared with the baseline program, a setup with the
        // same program in the default setup: one difference at a time.
        let reference = if default_setup(&b.setup) {
            if Some(&b.setup.program) == baseline.as_ref() {
                continue;
            }
            figures.iter().find(|(o, _, _)| {
                Some(&o.setup.program) == baseline.as_ref() && o.setup.same_machine_setup(&b.setup)
            })
        } else {
            figures.iter().find(|(o, _, _)| {
                o.setup.program == b.setup.program
                    && default_setup(&o.setup)
                    && o.setup.concurrency == b.setup.concurrency
                    && o.setup.same_workload(&b.setup)
            })
        };
        let Some((base_batch, base_episodes, base)) = reference else {
            continue;
        };
        let Some((mean, low, high, pairs)) = paired_difference(base_episodes, e) else {
            continue;
        };
        let _ = writeln!(
            comparisons,
            "| {} ({}/{}) vs {} ({}/{}) | {} | {:.2}x | {:.2}x | {:+.1} pp [{:+.1}, {:+.1}] ({pairs} pairs) |",
            program_label(&b.setup, defaults),
            b.setup.threads,
            b.setup.slots,
            program_label(&base_batch.setup, defaults),
            base_batch.setup.threads,
            base_batch.setup.slots,
            b.setup.concurrency,
            f.per_hour / base.per_hour.max(f64::MIN_POSITIVE),
            f.computed / base.computed.max(f64::MIN_POSITIVE),
            100.0 * mean,
            100.0 * low,
            100.0 * high,
        );
    }
    if !comparisons.is_empty() {
        let _ = writeln!(
            text,
            "\nEach program against the first one in the same setup, each other setup (threads/slots, variant) against the \
             same program in the default one, at the same concurrency; success paired by (task, seed), 95% interval of the \
             mean difference (normal approximation).\n"
        );
        let _ = writeln!(
            text,
            "| comparison | concurrency | episodes/hour | prompt tokens computed/ep | success difference |"
        );
        let _ = writeln!(text, "|---|---:|---:|---:|---|");
        text.push_str(&comparisons);
    }
    text.push('\n');
    text
}

/// The `sandbox` column split by the script pool's counters, for the
/// batches that kept them.
fn render_sandbox(
    text: &mut String,
    defaults: &DefaultSetup,
    figures: &[(&BatchRow, &Vec<EpisodeRow>, BatchFigures)],
) {
    let rows: Vec<_> = figures
        .iter()
        .filter_map(|(b, _, f)| f.pool.as_ref().map(|p| (b, f, p)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        text,
        "\nInside `sandbox`: the script pool's time, in mean milliseconds per episode summed over its slices (a slice runs a \
         script from its start or a host call's answer to the next host call, its end or its failure). In the worker: \
         `compile` (parsing the source; nothing when the worker has it compiled), `load` and `dump` (restoring the paused \
         run from its snapshot, writing the next one), `run` (the interpreter), `other` (the rest of the request in the \
         worker: decoding it, converting values, freeing the run); `transfer` is the rest of a slice (pipes, the frames' \
         JSON on the host, scheduling) and `queued` its wait for a free worker. `outside slices` is `sandbox` less the slices: \
         the host's side of the scripts (dispatching host calls, rendering prompts, converting values, spans). Slices \
         of episodes in flight together overlap, so above concurrency 1 the parts can exceed `sandbox`.\n"
    );
    let _ = writeln!(
        text,
        "| program | threads/slots | c | sandbox | slices/ep | compile | load | run | dump | other | transfer | queued | outside slices |"
    );
    let _ = writeln!(
        text,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (b, f, p) in rows {
        let _ = writeln!(
            text,
            "| {} | {}/{} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            program_label(&b.setup, defaults),
            b.setup.threads,
            b.setup.slots,
            b.setup.concurrency,
            f.sandbox_ms,
            p.slices,
            p.compile_ms,
            p.load_ms,
            p.run_ms,
            p.dump_ms,
            p.worker_other_ms(),
            p.transfer_ms(),
            p.queued_ms,
            f.sandbox_ms - p.slice_wall_ms,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode(task: &str, seed: u64, success: bool) -> EpisodeRow {
        EpisodeRow {
            batch: "b".into(),
            task: task.into(),
            seed,
            status: "ok".into(),
            success,
            steps: 2,
            calls: 4,
            llm_calls: 2,
            tokens_in: 100,
            tokens_out: 10,
            episode_ms: 1000.0,
            trace_write_ms: 5.0,
            store_ms: 5.0,
            timing: EpisodeTiming {
                llm_ms: 900.0,
                reset_ms: 50.0,
                prompt_tokens_computed: 60,
                prompt_tokens_reused: 40,
                ..EpisodeTiming::default()
            },
        }
    }

    #[test]
    fn the_paired_difference_counts_only_pairs_both_measured() {
        let base = vec![
            episode("a", 0, false),
            episode("a", 1, true),
            episode("b", 0, false),
        ];
        let other = vec![
            episode("a", 0, true),
            episode("a", 1, true),
            episode("c", 0, true),
        ];
        let (mean, low, high, pairs) = paired_difference(&base, &other).unwrap();
        assert_eq!(pairs, 2);
        assert!((mean - 0.5).abs() < 1e-9);
        assert!(low < mean && mean < high);
    }

    #[test]
    fn only_closed_batches_count_and_the_latest_wins() {
        let setup = BatchSetup {
            program: "seed".into(),
            program_hash: "h".into(),
            concurrency: 2,
            suite: "miniwob".into(),
            tasks: vec!["a".into()],
            seeds: vec![0],
            max_steps: 4,
            task_model: "smollm2-135m".into(),
            threads: 2,
            slots: 4,
            variant: String::new(),
        };
        let closing = |batch: &str| {
            Row::Batch(BatchRow {
                batch: batch.into(),
                setup: setup.clone(),
                episodes: 1,
                wall_ms: 1000.0,
                model_decode_ms: 500.0,
                started_at_unix_ms: 0,
                pool: Some(PoolTotals {
                    slices: 8.0,
                    slice_wall_ms: 40.0,
                    queued_ms: 1.0,
                    compile_ms: 4.0,
                    load_ms: 5.0,
                    run_ms: 10.0,
                    dump_ms: 6.0,
                    handled_ms: 30.0,
                }),
            })
        };
        let mut open = episode("a", 0, true);
        open.batch = "killed".into();
        let mut first = episode("a", 0, false);
        first.batch = "one".into();
        let mut second = episode("a", 0, true);
        second.batch = "two".into();
        let rows = vec![
            Row::Episode(open),
            Row::Episode(first),
            closing("one"),
            Row::Episode(second),
            closing("two"),
        ];
        let (batch, episodes) = closed_batch(&rows, &setup).unwrap();
        assert_eq!(batch.batch, "two");
        assert_eq!(episodes.len(), 1);
        assert!(episodes[0].success);
        let other = BatchSetup {
            concurrency: 4,
            ..setup.clone()
        };
        assert!(closed_batch(&rows, &other).is_none());
        let figures = BatchFigures::of(&batch, &episodes);
        assert!((figures.per_hour - 3600.0).abs() < 1e-6);
        assert!((figures.sandbox_ms - 50.0).abs() < 1e-9);
        assert!((figures.framework_ms() - 60.0).abs() < 1e-9);
        // One episode: the pool's totals are its own; what the worker did
        // not account for is transfer, the rest of `sandbox` outside slices.
        let pool = figures.pool.as_ref().unwrap();
        assert!((pool.worker_other_ms() - 5.0).abs() < 1e-9);
        assert!((pool.transfer_ms() - 9.0).abs() < 1e-9);
        let mut text = String::new();
        let defaults = DefaultSetup {
            threads: 2,
            slots: 4,
            task_model: "smollm2-135m".into(),
        };
        render_sandbox(&mut text, &defaults, &[(&batch, &episodes, figures)]);
        let row = text.lines().last().unwrap();
        assert_eq!(
            row,
            "| seed | 2/4 | 2 | 50.0 | 8.0 | 4.0 | 5.0 | 10.0 | 6.0 | 5.0 | 9.0 | 1.0 | 10.0 |"
        );
        // A batch measured before the pool kept counters reads without them.
        let old = r#"{"batch":"b","setup":{"program":"p","program_hash":"h","concurrency":1,"suite":"s","tasks":[],"seeds":[0],"max_steps":4,"task_model":"m","threads":2},"episodes":1,"wall_ms":1.0,"model_decode_ms":0.0,"started_at_unix_ms":0}"#;
        let old: BatchRow = serde_json::from_str(old).unwrap();
        assert!(old.pool.is_none());
    }

    #[test]
    fn a_line_cut_off_at_the_end_is_ignored_and_others_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let row = serde_json::to_string(&Row::Episode(episode("a", 0, true))).unwrap();
        std::fs::write(&path, format!("{row}\n{{\"kind\":\"epis")).unwrap();
        assert_eq!(read_rows::<Row>(&path).unwrap().len(), 1);
        std::fs::write(&path, format!("nonsense\n{row}\n")).unwrap();
        let err = read_rows::<Row>(&path).unwrap_err().to_string();
        assert!(err.contains("rows.jsonl:1"), "{err}");
    }
}
