//! `hyperagents eval`: a program on a suite's split, tasks × seeds, with a
//! progress bar, a per-task table and a summary; results go to the SQLite
//! results store (and are reused from it) and to a JSONL file.
//!
//! A spent run-level budget stops the evaluation at its next safe point
//! (exit code 3), SIGINT or SIGTERM at once (exit code 130 or 143); either
//! way only episodes that ended on their own are stored, so the same
//! command run again computes only the rest. The run's ledger is kept in
//! the store (here and in `evolve`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyperagents_eval::ledger::{LedgerKeeper, eval_scope};
use hyperagents_eval::{
    EpisodeRecord, EvalPlan, EvalTarget, Interruption, evaluate, evaluate_with, table,
};
use hyperagents_llm::accounting::Ledger;
use hyperagents_store::{EvalStatus, NewEvalRun, ResultsStore};
use indicatif::{ProgressBar, ProgressStyle};

use super::programs::{episode_aliases, load_program, run_context};
use super::suites::{parse_split, plan_suite};
use crate::cli::EvalArgs;
use crate::settings::Settings;

pub async fn run(settings: Settings, args: EvalArgs) -> Result<ExitCode> {
    if args.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    let args = EvalArgs {
        program: crate::builtin::resolve_program(&args.program, &settings)?,
        ..args
    };
    let program = Arc::new(load_program(&args.program)?);
    let suite = plan_suite(&settings, &args.suite, parse_split(&args.split)?)?;
    let identity = suite.identity.clone();
    let split_tasks = suite.split_tasks.clone();
    let mut aliases = suite.aliases.clone();
    let tasks = if args.tasks.is_empty() {
        split_tasks
    } else {
        // Named tasks must belong to the split: the test split stays test.
        if let Some(stray) = args.tasks.iter().find(|t| !split_tasks.contains(t)) {
            bail!(
                "task `{stray}` is not in the {} split of {}",
                args.split,
                identity.name
            );
        }
        args.tasks.clone()
    };
    if tasks.is_empty() {
        bail!("the {} split of {} has no tasks", args.split, identity.name);
    }
    let seeds: Vec<u64> = (0..args.episodes).map(|i| args.first_seed + i).collect();

    let (store, store_path) = open_store(&settings, args.store.as_deref())?;
    let program_hash = program.episode_hash().to_hex();
    let run = store.create_run(&NewEvalRun {
        program_hash: program_hash.clone(),
        suite: identity.name.clone(),
        split: args.split.clone(),
        config: serde_json::json!({
            "program": args.program.display().to_string(),
            "suite_version": identity.version,
            "tasks": tasks,
            "seeds": seeds,
            "concurrency": args.concurrency,
            "run_seed": settings.run.seed,
        }),
    })?;
    let traces = settings
        .cache_dir()
        .join("traces")
        .join(&program_hash[..16]);
    aliases.extend(episode_aliases(&program).into_iter().map(str::to_string));
    let ctx = run_context(
        &settings,
        aliases.iter().map(String::as_str).collect(),
        traces,
    )
    .await?;
    let keeper = LedgerKeeper::resume(store.clone(), eval_scope(run), ctx.router.ledger().clone())?;
    let signals = SignalStop::install(ctx.router.ledger().clone())?;
    let domain = suite.open(&ctx).await?;
    let plan = EvalPlan {
        tasks: tasks.clone(),
        seeds,
        concurrency: args.concurrency,
        reuse_cached: !args.no_reuse,
    };

    let bar = ProgressBar::new((tasks.len() * plan.seeds.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let successes = AtomicU64::new(0);
    let on_episode = |record: &EpisodeRecord| {
        if record.success {
            successes.fetch_add(1, Ordering::Relaxed);
        }
        bar.inc(1);
        bar.set_message(format!(
            "{} succeeded; last {} s{}: {}{}",
            successes.load(Ordering::Relaxed),
            record.task,
            record.seed,
            status_word(record),
            if record.cached { " (stored)" } else { "" }
        ));
    };
    eprintln!(
        "eval run {}: {} on {} ({} split), {} tasks × {} seeds",
        run.0,
        args.program.display(),
        identity.name,
        args.split,
        tasks.len(),
        plan.seeds.len()
    );
    let target = EvalTarget {
        program,
        domain,
        suite: identity.clone(),
    };
    let saving = keep_saving(keeper.clone());
    let outcome = match nats_runner(&settings, &args, &identity).await? {
        Some(runner) => {
            evaluate_with(&ctx, &target, &plan, &store, run, &on_episode, &runner).await
        }
        None => evaluate(&ctx, &target, &plan, &store, run, &on_episode).await,
    };
    stop_saving(saving).await;
    bar.finish_and_clear();
    keeper.save().context("saving the run's ledger")?;
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            let stored = store.run_evaluations(run).map(|r| r.len()).unwrap_or(0);
            eprintln!(
                "eval run {}: stopped early; the {stored} episodes that finished are stored, \
                 and the same command again computes only the rest",
                run.0
            );
            if let Some(Interruption::Stop(_)) = error.interruption() {
                return Ok(signals.exit_code());
            }
            // A spent budget reaches `main` as `BudgetExhausted`: exit code 3.
            return Err(error).with_context(|| format!("eval run {}", run.0));
        }
    };

    print!("{}", table::task_table(&report.tasks));
    println!("{}", table::summary_line(&report.summary, Some(&report)));
    let errors: Vec<&EpisodeRecord> = report
        .records
        .iter()
        .filter(|r| r.status == EvalStatus::Error)
        .collect();
    for record in errors.iter().take(5) {
        eprintln!(
            "error: {} seed {}: {}",
            record.task, record.seed, record.reason
        );
    }
    // Beside the store: run ids are per store.
    let jsonl = args.jsonl.clone().unwrap_or_else(|| {
        store_path
            .with_extension("")
            .with_file_name(format!(
                "{}-evals",
                store_path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "results".into())
            ))
            .join(format!("run-{}.jsonl", run.0))
    });
    if let Some(dir) = jsonl.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rows = store.export_jsonl(run, &jsonl)?;
    println!(
        "results: {} (run {}), {rows} rows in {}",
        store_path.display(),
        run.0,
        jsonl.display()
    );
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The results store at `path`, else `<cache dir>/results.sqlite`, and its path.
pub(super) fn open_store(
    settings: &Settings,
    path: Option<&std::path::Path>,
) -> Result<(ResultsStore, std::path::PathBuf)> {
    let path = path
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| settings.cache_dir().join("results.sqlite"));
    let store = ResultsStore::open(&path)
        .with_context(|| format!("opening the results store {}", path.display()))?;
    Ok((store, path))
}

/// SIGINT and SIGTERM ask the run to stop at its next safe point (through
/// its ledger, which every part of the run watches); a second signal ends
/// the process at once.
pub(super) struct SignalStop {
    /// The number of the first signal received.
    received: Arc<OnceLock<u8>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl SignalStop {
    pub(super) fn install(ledger: Ledger) -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let received = Arc::new(OnceLock::new());
        let first = received.clone();
        let watcher = tokio::spawn(async move {
            loop {
                // Linux's numbers; the exit code is 128 + the number, as a
                // shell reports a process the signal ended.
                let (name, number) = tokio::select! {
                    Some(()) = interrupt.recv() => ("SIGINT", 2u8),
                    Some(()) = terminate.recv() => ("SIGTERM", 15u8),
                    else => return,
                };
                if first.set(number).is_err() {
                    eprintln!("{name} again: quitting at once");
                    std::process::exit(128 + i32::from(number));
                }
                eprintln!(
                    "{name}: stopping at the next safe point; work cut short is not stored \
                     ({name} again quits at once)"
                );
                ledger.request_stop(name);
            }
        });
        Ok(Self { received, watcher })
    }

    /// 128 + the number of the signal that stopped the run (130 for SIGINT,
    /// 143 for SIGTERM); 130 if none did.
    pub(super) fn exit_code(&self) -> ExitCode {
        ExitCode::from(128 + self.received.get().copied().unwrap_or(2))
    }
}

impl Drop for SignalStop {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Saves the run's ledger every few seconds until [`stop_saving`] (callers
/// save it once more at the end): a killed process loses at most those
/// seconds of spend and wall time.
pub(super) fn keep_saving(keeper: LedgerKeeper) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticker.tick().await;
            // Saved inline (a small transaction), so the task is only ever
            // cancelled between saves, never during one.
            if let Err(error) = keeper.save() {
                tracing::warn!(%error, "cannot save the run's ledger");
            }
        }
    })
}

/// Ends [`keep_saving`]'s task and waits until it has.
pub(super) async fn stop_saving(saving: tokio::task::JoinHandle<()>) {
    saving.abort();
    let _ = saving.await;
}

fn status_word(record: &EpisodeRecord) -> &'static str {
    match record.status {
        EvalStatus::Ok if record.success => "success",
        EvalStatus::Ok => "failure",
        EvalStatus::Unsupported => "unsupported",
        EvalStatus::Error => "error",
    }
}

/// The runner that hands episodes to workers, when `--nats` (or `[nats]`
/// with `--coordinator`) asks for one.
async fn nats_runner(
    settings: &Settings,
    args: &EvalArgs,
    identity: &hyperagents_eval::SuiteIdentity,
) -> Result<Option<hyperagents_distributed::episodes::NatsRunner>> {
    let Some(url) = args.nats.clone() else {
        return Ok(None);
    };
    let nats = hyperagents_distributed::NatsSettings {
        url,
        ..settings.nats.clone()
    };
    let jets = hyperagents_distributed::Jets::open(&nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", nats.url))?;
    let coordinator = args.coordinator.clone().unwrap_or_else(host_name);
    let runner =
        hyperagents_distributed::episodes::NatsRunner::start(jets, &coordinator, &identity.name)
            .await
            .context("reading this coordinator's results")?;
    eprintln!(
        "episodes run on workers through {} (coordinator `{coordinator}`)",
        nats.url
    );
    Ok(Some(runner))
}

/// This machine's name, for names that must be the same after a restart.
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "coordinator".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
