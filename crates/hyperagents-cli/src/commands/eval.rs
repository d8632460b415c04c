//! `hyperagents eval`: a program on a suite's split, tasks × seeds, with a
//! progress bar, a per-task table and a summary; results go to the SQLite
//! results store (and are reused from it) and to a JSONL file.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use hyperagents_eval::{EpisodeRecord, EvalPlan, EvalTarget, evaluate, table};
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
    let report = evaluate(&ctx, &target, &plan, &store, run, &on_episode).await?;
    bar.finish_and_clear();

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

fn status_word(record: &EpisodeRecord) -> &'static str {
    match record.status {
        EvalStatus::Ok if record.success => "success",
        EvalStatus::Ok => "failure",
        EvalStatus::Unsupported => "unsupported",
        EvalStatus::Error => "error",
    }
}
