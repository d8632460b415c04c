//! `hyperagents evolve` (run or resume an evolution run) and
//! `hyperagents status` (its nodes, scores and latest events).
//!
//! A spent run-level budget stops a run at its next safe point (exit code
//! 3), SIGINT or SIGTERM at once (exit code 130 or 143); the run is left
//! stopped and resumable, with nothing cut short stored. Its ledger (spend
//! per role, wall time) is kept in the store under the run's id, so
//! `resume` continues counting where the run left off.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use hyperagents_domain::Split;
use hyperagents_eval::ledger::{LedgerKeeper, evolution_scope};
use hyperagents_eval::{Interruption, LocalEvaluator};
use hyperagents_evolve::origin::{resolve_node, sample_tasks, transplant_meta};
use hyperagents_evolve::{Evolution, EvolveSettings, LocalMetaSteps, SelectionPolicy};
use hyperagents_runtime::improve::{ImproveConfig, MetaStepper};
use hyperagents_store::{EvolutionEvent, FeedbackStore, LaunchRecord, NodeStatus, RunMode};
use indicatif::{ProgressBar, ProgressStyle};

use super::eval::{SignalStop, keep_saving, open_store, stop_saving};
use super::programs::{episode_aliases, load_program, run_context};
use super::suites::plan_suite;
use crate::cli::{CompareArgs, EvolveArgs, ReportArgs, ResumeArgs, StatusArgs};
use crate::settings::Settings;

/// `hyperagents resume RUN`: the run's own arguments, as its config keeps
/// them, run again; the engine skips everything already committed.
pub async fn resume(settings: Settings, args: ResumeArgs) -> Result<ExitCode> {
    let (store, store_path) = open_store(&settings, args.store.as_deref())?;
    let Some(run) = store.evolution_run(&args.run)? else {
        bail!(
            "no evolution run `{}` in {}",
            args.run,
            store_path.display()
        );
    };
    let launch = match store.last_event(&run.id, "launch")?.map(|e| e.event()) {
        Some(Ok(EvolutionEvent::Launch(args))) => Some(args),
        Some(Err(error)) => return Err(error.into()),
        _ => None,
    };
    let Some(launch) = launch else {
        bail!(
            "run `{}` does not record the arguments it was started with (it predates `resume`); \
             run `hyperagents evolve` with the same arguments instead",
            args.run
        );
    };
    let mut evolve_args = args_of(*launch);
    if args.store.is_some() {
        evolve_args.store = args.store;
    }
    eprintln!(
        "resuming `{}` ({}, {})",
        run.id,
        run.mode.as_str(),
        run.status.as_str()
    );
    run_evolution(settings, evolve_args).await
}

pub async fn run(settings: Settings, args: EvolveArgs) -> Result<ExitCode> {
    let args = EvolveArgs {
        program: crate::builtin::resolve_program(&args.program, &settings)?,
        ..args
    };
    run_evolution(settings, args).await
}

async fn run_evolution(settings: Settings, args: EvolveArgs) -> Result<ExitCode> {
    let Some(mode) = RunMode::parse(&args.mode) else {
        bail!(
            "unknown mode `{}`: use hyper, fixed-meta, prompt-only or none",
            args.mode
        );
    };
    if args.children == 0 || args.episodes == 0 || args.stage1 == 0 {
        bail!("--children, --episodes and --stage1 must be at least 1");
    }
    let selection = match &args.selection {
        Some(text) => serde_json::from_str::<SelectionPolicy>(text)
            .with_context(|| format!("--selection `{text}`"))?,
        None => SelectionPolicy::dgm_default(),
    };
    let run_dir = args
        .dir
        .clone()
        .unwrap_or_else(|| settings.cache_dir().join("runs").join(&args.run));
    let runs = settings.cache_dir().join("runs");
    let seed_program = match (&args.from, &args.meta_from) {
        (Some(from), _) => resolve_node(&runs, from)?,
        (None, Some(meta_from)) => {
            let origin = run_dir.join("origin");
            transplant_meta(&args.program, &resolve_node(&runs, meta_from)?, &origin)?;
            origin
        }
        (None, None) => args.program.clone(),
    };
    let program = load_program(&seed_program)?;
    let suite = plan_suite(&settings, &args.suite, Split::Train)?;
    let full_tasks = if args.tasks.is_empty() {
        suite.split_tasks.clone()
    } else {
        if let Some(stray) = args.tasks.iter().find(|t| !suite.split_tasks.contains(t)) {
            bail!(
                "task `{stray}` is not in the train split of {}",
                suite.identity.name
            );
        }
        args.tasks.clone()
    };
    let stage1_tasks = sample_tasks(&full_tasks, args.stage1, settings.run.seed);
    // Only the engine sees these, after the last generation.
    let test_tasks = if args.no_test {
        Vec::new()
    } else {
        plan_suite(&settings, &args.suite, Split::Test)?.split_tasks
    };

    // One context serves episodes and meta agents: the models are loaded once.
    let mut aliases: BTreeSet<String> = suite.aliases.clone();
    aliases.extend(episode_aliases(&program).into_iter().map(str::to_string));
    // Meta steps on workers use the workers' meta model: none is loaded here.
    if !args.meta_on_workers {
        aliases.insert(program.meta().model.as_str().to_string());
    }
    let ctx = run_context(
        &settings,
        aliases.iter().map(String::as_str).collect(),
        run_dir.join("traces"),
    )
    .await?;
    let identity = suite.identity.clone();
    let domain = suite.open(&ctx).await?;
    let (store, store_path) = open_store(&settings, args.store.as_deref())?;
    ensure!(
        (0.0..=1.0).contains(&args.feedback_weight),
        "--feedback-weight must be between 0 and 1"
    );
    // People's judgements, beside the store (written by `hyperagents serve`).
    let feedback_path = store_path.with_file_name("feedback.sqlite");
    let feedback = FeedbackStore::open(&feedback_path)
        .with_context(|| format!("opening the feedback file {}", feedback_path.display()))?;
    // Before the run's first model call: a resumed run's budgets count what
    // its earlier sessions spent, and its wall time goes on from theirs.
    let keeper = LedgerKeeper::resume(
        store.clone(),
        evolution_scope(&args.run),
        ctx.router.ledger().clone(),
    )?;
    let signals = SignalStop::install(ctx.router.ledger().clone())?;
    let coordinator = args
        .coordinator
        .clone()
        .unwrap_or_else(|| format!("{}-{}", super::eval::host_name(), args.run));
    let jets = match &args.nats {
        None => None,
        Some(url) => {
            let nats = hyperagents_distributed::NatsSettings {
                url: url.clone(),
                ..settings.nats.clone()
            };
            Some(
                hyperagents_distributed::Jets::open(&nats)
                    .await
                    .with_context(|| format!("connecting to NATS at {url}"))?,
            )
        }
    };
    let meta_steps: Arc<dyn MetaStepper> = match &jets {
        Some(jets) if args.meta_on_workers => {
            let steps = hyperagents_distributed::meta::NatsMetaSteps::start(
                jets.clone(),
                &coordinator,
                ctx.run_seed,
                run_dir.join("work").join("quick-eval"),
            )
            .await
            .context("reading this coordinator's meta-step results")?;
            eprintln!("meta steps run on workers (coordinator `{coordinator}`)");
            Arc::new(steps)
        }
        _ => Arc::new(LocalMetaSteps(ctx.clone())),
    };
    let evaluator: Arc<dyn hyperagents_eval::Evaluator> = match jets {
        None => Arc::new(LocalEvaluator {
            ctx: ctx.clone(),
            store: store.clone(),
        }),
        Some(jets) => {
            let runner = hyperagents_distributed::episodes::NatsRunner::start(
                jets,
                &coordinator,
                &identity.name,
            )
            .await
            .context("reading this coordinator's results")?;
            eprintln!(
                "episodes run on workers through {} (coordinator `{coordinator}`)",
                args.nats.as_deref().unwrap_or_default()
            );
            Arc::new(hyperagents_distributed::episodes::NatsEvaluator {
                ctx: ctx.clone(),
                store: store.clone(),
                runner,
            })
        }
    };
    let evolution = Evolution {
        episodes: ctx.clone(),
        meta: ctx,
        meta_steps,
        archive: Arc::new(store.clone()),
        evaluator,
        feedback: Some(Arc::new(feedback)),
        domain,
        suite: identity,
        settings: EvolveSettings {
            run_id: args.run.clone(),
            mode,
            generations: args.generations,
            children: args.children,
            selection,
            stage1_tasks,
            full_tasks,
            test_tasks,
            seeds: (0..args.episodes).collect(),
            concurrency: args.concurrency,
            improve: ImproveConfig::default(),
            parallel_children: args.parallel.unwrap_or(args.children).max(1),
            token_budget: args.token_budget,
            feedback_weight: args.feedback_weight,
            program_selection: args.program_selection,
            smoke: !args.no_smoke,
            repair: !args.no_repair,
            quick_eval_calls: args.quick_eval_calls,
            quick_eval_tasks: args.quick_eval_tasks,
            launch: Some(launch_record(&args, &run_dir)),
        },
        dir: run_dir.clone(),
    };
    eprintln!(
        "evolution run `{}` ({} mode) in {}: {} generations × {} children",
        args.run,
        mode.as_str(),
        run_dir.display(),
        args.generations,
        args.children
    );
    let progress = watch_progress(
        store,
        args.run.clone(),
        args.generations * args.children as u64,
    );
    let saving = keep_saving(keeper.clone());
    let outcome = evolution.run(&seed_program).await;
    stop_saving(saving).await;
    progress.abort();
    keeper.save().context("saving the run's ledger")?;
    if let Err(error) = &outcome
        && let Some(cause) = error.interruption()
    {
        eprintln!(
            "run `{}` stopped early; nothing cut short was stored. `hyperagents resume {}` \
             continues it{}",
            args.run,
            args.run,
            if matches!(cause, Interruption::Budget(_)) {
                " once the budget allows"
            } else {
                ""
            }
        );
        if matches!(cause, Interruption::Stop(_)) {
            return Ok(signals.exit_code());
        }
    }
    // A spent budget reaches `main` as `BudgetExhausted`: exit code 3.
    let stats = outcome.with_context(|| format!("evolution run `{}`", args.run))?;
    println!("generation  valid  failed   best   mean  improvement  archive  best node  test");
    for g in &stats {
        println!(
            "{:>10} {:>6} {:>7} {:>6.3} {:>6.3} {:>12.3} {:>8}  {:<9}  {}",
            g.generation,
            g.valid_children,
            g.failed_attempts,
            g.best,
            g.mean,
            g.improvement,
            g.archive_size,
            g.best_node,
            g.best_test
                .map(|t| format!("{t:.3}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!("`hyperagents status {}` shows the archive", args.run);
    Ok(ExitCode::SUCCESS)
}

pub fn status(settings: &Settings, args: &StatusArgs) -> Result<ExitCode> {
    let (store, store_path) = open_store(settings, args.store.as_deref())?;
    let Some(run) = store.evolution_run(&args.run)? else {
        bail!(
            "no evolution run `{}` in {}",
            args.run,
            store_path.display()
        );
    };
    if args.best {
        let summary = hyperagents_report::run_summary(&store, &run.id)?;
        let dir = recorded_run_dir(settings, &store, &run.id)?;
        println!("{}", dir.join("nodes").join(&summary.best_node).display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "run `{}`: {} mode, {}",
        run.id,
        run.mode.as_str(),
        run.status.as_str()
    );
    println!(
        "{:<10} {:<10} {:>3} {:<8} {:>12} {:>12}  changed",
        "node", "parent", "gen", "status", "stage1", "full"
    );
    for node in store.nodes(&run.id)? {
        let rate = |stage: &str| -> Result<String> {
            Ok(
                match store.node_stage_summary(&run.id, &node.node_id, stage)? {
                    Some(s) => format!("{}/{}", s.successes, s.episodes),
                    None => "-".into(),
                },
            )
        };
        let kinds: Vec<&str> = node.diff_kinds.iter().map(|k| k.as_str()).collect();
        println!(
            "{:<10} {:<10} {:>3} {:<8} {:>12} {:>12}  {}",
            node.node_id,
            node.parent_id.as_deref().unwrap_or("-"),
            node.generation,
            node.status.as_str(),
            rate("stage1")?,
            rate("full")?,
            kinds.join(",")
        );
        if node.status != NodeStatus::Valid
            && let Some(first) = node
                .validation_errors
                .as_array()
                .and_then(|a| a.first())
                .and_then(|e| e.as_str())
        {
            println!(
                "{:>14} {}",
                "↳",
                first.chars().take(160).collect::<String>()
            );
        }
    }
    let events = store.events(&run.id, 0)?;
    for event in events.iter().skip(events.len().saturating_sub(args.events)) {
        println!("event {} {}: {}", event.seq, event.kind, event.payload);
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar over the run's attempts, fed by its events in the store
/// (the engine writes them as it goes; events of earlier sessions count
/// toward the position but are not printed again).
fn watch_progress(
    store: hyperagents_store::ResultsStore,
    run: String,
    attempts: u64,
) -> tokio::task::JoinHandle<()> {
    let bar = ProgressBar::new(attempts);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} children {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    tokio::spawn(async move {
        let mut last = 0;
        let mut first = true;
        let mut children = std::collections::BTreeSet::new();
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            ticker.tick().await;
            bar.tick();
            let Ok(events) = store.events(&run, last) else {
                continue;
            };
            for record in events {
                last = record.seq;
                let line = match record.event() {
                    Ok(EvolutionEvent::Child(c)) => {
                        let line = format!("child {} of {}: {}", c.node, c.parent, c.status);
                        children.insert(c.node);
                        bar.set_position(children.len() as u64);
                        Some(line)
                    }
                    Ok(EvolutionEvent::Comparison(c)) => Some(format!(
                        "  {} vs {} on {}: {:+.3}{}",
                        c.node,
                        c.parent,
                        c.stage,
                        c.mean_difference,
                        if c.accepted {
                            " (accepted improvement)"
                        } else {
                            ""
                        }
                    )),
                    Ok(EvolutionEvent::Generation(g)) => Some(format!(
                        "generation {}: best {:.3} ({}), mean {:.3}",
                        g.generation, g.best, g.best_node, g.mean
                    )),
                    Ok(EvolutionEvent::Repair(r)) => {
                        Some(format!("  {} rejected; one repair round", r.node))
                    }
                    Ok(EvolutionEvent::Budget(_)) => Some("the token budget is spent".to_string()),
                    _ => None,
                };
                bar.set_message(record.kind.clone());
                if let Some(line) = line
                    && !first
                {
                    bar.println(line);
                }
            }
            first = false;
        }
    })
}

/// The arguments as `resume` will need them: paths made absolute, so a
/// resume from another directory finds the same files.
fn launch_record(args: &EvolveArgs, run_dir: &Path) -> LaunchRecord {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let suite = if Path::new(&args.suite).is_file() {
        absolute(Path::new(&args.suite))
            .to_string_lossy()
            .into_owned()
    } else {
        args.suite.clone()
    };
    LaunchRecord {
        run: args.run.clone(),
        program: absolute(&args.program),
        from: args.from.clone(),
        meta_from: args.meta_from.clone(),
        suite,
        mode: args.mode.clone(),
        generations: args.generations,
        children: args.children,
        tasks: args.tasks.clone(),
        stage1: args.stage1,
        episodes: args.episodes,
        concurrency: args.concurrency,
        no_test: args.no_test,
        dir: Some(absolute(run_dir)),
        selection: args.selection.clone(),
        program_selection: args.program_selection,
        parallel: args.parallel,
        token_budget: args.token_budget,
        no_smoke: args.no_smoke,
        no_repair: args.no_repair,
        quick_eval_calls: args.quick_eval_calls,
        quick_eval_tasks: args.quick_eval_tasks,
        store: args.store.as_deref().map(absolute),
        feedback_weight: args.feedback_weight,
        nats: args.nats.clone(),
        coordinator: args.coordinator.clone(),
        meta_on_workers: args.meta_on_workers,
    }
}

/// The arguments a recorded launch stands for.
fn args_of(record: LaunchRecord) -> EvolveArgs {
    EvolveArgs {
        run: record.run,
        program: record.program,
        from: record.from,
        meta_from: record.meta_from,
        suite: record.suite,
        mode: record.mode,
        generations: record.generations,
        children: record.children,
        tasks: record.tasks,
        stage1: record.stage1,
        episodes: record.episodes,
        concurrency: record.concurrency,
        no_test: record.no_test,
        dir: record.dir,
        selection: record.selection,
        program_selection: record.program_selection,
        parallel: record.parallel,
        token_budget: record.token_budget,
        no_smoke: record.no_smoke,
        no_repair: record.no_repair,
        quick_eval_calls: record.quick_eval_calls,
        quick_eval_tasks: record.quick_eval_tasks,
        store: record.store,
        feedback_weight: record.feedback_weight,
        nats: record.nats,
        coordinator: record.coordinator,
        meta_on_workers: record.meta_on_workers,
    }
}

/// `hyperagents report RUN`: report.md and its plots, by default in the
/// run directory's `report/`.
pub fn report(settings: &Settings, args: &ReportArgs) -> Result<ExitCode> {
    let (store, _) = open_store(settings, args.store.as_deref())?;
    let run_dir = recorded_run_dir(settings, &store, &args.run)?;
    let out = args.out.clone().unwrap_or_else(|| run_dir.join("report"));
    let files = hyperagents_report::write_report(
        &store,
        &args.run,
        run_dir.is_dir().then_some(run_dir.as_path()),
        &out,
    )
    .with_context(|| format!("writing the report of run `{}`", args.run))?;
    let summary = hyperagents_report::run_summary(&store, &args.run)?;
    let rate = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0));
    let best = summary.generations.last();
    println!(
        "run `{}` ({} mode): seed train {}, best train {} ({}), accepted improvements {}/{}",
        summary.run_id,
        summary.mode.as_str(),
        rate(summary.seed_train),
        rate(best.map(|g| g.best_so_far_train)),
        summary.best_node,
        summary.accepted_improvements,
        summary.comparisons,
    );
    println!("report: {}", files.markdown.display());
    for plot in &files.plots {
        println!("plot:   {}", plot.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `hyperagents compare RUN...`: compare.md and overlay plots.
pub fn compare(settings: &Settings, args: &CompareArgs) -> Result<ExitCode> {
    let (store, _) = open_store(settings, args.store.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| {
        settings
            .cache_dir()
            .join("compare")
            .join(args.runs.join("+").replace(['/', '\\'], "_"))
    });
    let files = hyperagents_report::write_comparison(&store, &args.runs, &out)
        .with_context(|| format!("comparing runs {}", args.runs.join(", ")))?;
    println!("comparison: {}", files.markdown.display());
    for plot in &files.plots {
        println!("plot:       {}", plot.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a run keeps its nodes: the `--dir` it was launched with, else the
/// default under the cache directory.
fn recorded_run_dir(
    settings: &Settings,
    store: &hyperagents_store::ResultsStore,
    run: &str,
) -> Result<PathBuf> {
    let launched = match store.last_event(run, "launch")?.map(|e| e.event()) {
        Some(Ok(EvolutionEvent::Launch(record))) => record.dir,
        _ => None,
    };
    Ok(launched.unwrap_or_else(|| settings.cache_dir().join("runs").join(run)))
}
