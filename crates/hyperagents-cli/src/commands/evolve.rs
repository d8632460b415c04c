//! `hyperagents evolve` (run or resume an evolution run) and
//! `hyperagents status` (its nodes, scores and latest events).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hyperagents_domain::Split;
use hyperagents_evolve::{Evolution, EvolveSettings, SelectionPolicy};
use hyperagents_miniwob::split::fnv1a64;
use hyperagents_program::copy_program;
use hyperagents_runtime::improve::ImproveConfig;
use hyperagents_store::{NodeStatus, RunMode};

use super::eval::open_store;
use super::programs::{episode_aliases, load_program, run_context};
use super::suites::plan_suite;
use crate::cli::{EvolveArgs, StatusArgs};
use crate::settings::Settings;

pub async fn run(settings: Settings, args: EvolveArgs) -> Result<ExitCode> {
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
    aliases.insert(program.meta().model.as_str().to_string());
    let ctx = run_context(
        &settings,
        aliases.iter().map(String::as_str).collect(),
        run_dir.join("traces"),
    )
    .await?;
    let identity = suite.identity.clone();
    let domain = suite.open(&ctx).await?;
    let (store, _) = open_store(&settings, args.store.as_deref())?;
    let evolution = Evolution {
        episodes: ctx.clone(),
        meta: ctx,
        store,
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
    let stats = evolution
        .run(&seed_program)
        .await
        .with_context(|| format!("evolution run `{}`", args.run))?;
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

/// A node's program directory: `RUN/NODE` under `runs`, or a directory.
fn resolve_node(runs: &Path, spec: &str) -> Result<PathBuf> {
    let direct = PathBuf::from(spec);
    if direct.join("hyperagent.toml").is_file() {
        return Ok(direct);
    }
    let Some((run, node)) = spec.split_once('/') else {
        bail!("`{spec}` is neither RUN/NODE nor a program directory");
    };
    let dir = runs.join(run).join("nodes").join(node);
    if !dir.join("hyperagent.toml").is_file() {
        bail!("no node `{node}` of run `{run}` at {}", dir.display());
    }
    Ok(dir)
}

/// Writes to `out` the program `base` with its `meta/` replaced by the one of
/// `donor` (meta-level transfer). An `out` left by an earlier start of the
/// same run is rebuilt, so a resume composes the same program.
fn transplant_meta(base: &Path, donor: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    copy_program(base, out).with_context(|| format!("copying {}", base.display()))?;
    let meta = out.join("meta");
    std::fs::remove_dir_all(&meta).with_context(|| format!("removing {}", meta.display()))?;
    copy_program(&donor.join("meta"), &meta)
        .with_context(|| format!("copying {}/meta", donor.display()))?;
    load_program(out).map(|_| ()).with_context(|| {
        format!(
            "{} with the meta agent of {} is not a valid program",
            base.display(),
            donor.display()
        )
    })
}

/// `count` tasks drawn from `tasks` in an order fixed by the run seed, kept
/// in their suite order: stage 1's sample is the same on every resume.
fn sample_tasks(tasks: &[String], count: usize, seed: u64) -> Vec<String> {
    let mut keyed: Vec<(u64, usize)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (fnv1a64(format!("{seed}:{t}").as_bytes()), i))
        .collect();
    keyed.sort();
    let mut chosen: Vec<usize> = keyed.into_iter().take(count).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| tasks[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../programs/seed")
    }

    #[test]
    fn meta_transfer_puts_only_the_donors_meta_on_the_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let donor = dir.path().join("runs/r1/nodes/g2c0");
        copy_program(&seed(), &donor).expect("copy");
        std::fs::write(
            donor.join("meta/prompt.md"),
            "Evolved meta prompt {{ failures }}",
        )
        .expect("write");
        std::fs::write(donor.join("skills/reason/prompt.md"), "Evolved task prompt")
            .expect("write");
        let found = resolve_node(&dir.path().join("runs"), "r1/g2c0").expect("resolves");
        assert_eq!(found, donor);
        let out = dir.path().join("origin");
        transplant_meta(&seed(), &found, &out).expect("transplant");
        let meta = std::fs::read_to_string(out.join("meta/prompt.md")).expect("read");
        assert!(meta.starts_with("Evolved meta prompt"));
        let task = std::fs::read_to_string(out.join("skills/reason/prompt.md")).expect("read");
        let original =
            std::fs::read_to_string(seed().join("skills/reason/prompt.md")).expect("read");
        assert_eq!(task, original, "only meta/ is transferred");
        // Again (a resume): rebuilt, same result.
        transplant_meta(&seed(), &found, &out).expect("again");
        assert!(resolve_node(&dir.path().join("runs"), "r1/nope").is_err());
        assert!(resolve_node(&dir.path().join("runs"), "nonsense").is_err());
    }

    #[test]
    fn stage1_samples_are_fixed_by_the_seed_and_keep_suite_order() {
        let tasks: Vec<String> = (0..20).map(|i| format!("task-{i}")).collect();
        let a = sample_tasks(&tasks, 5, 7);
        assert_eq!(a, sample_tasks(&tasks, 5, 7));
        assert_eq!(a.len(), 5);
        let positions: Vec<usize> = a
            .iter()
            .map(|t| tasks.iter().position(|x| x == t).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_ne!(a, sample_tasks(&tasks, 5, 8));
        assert_eq!(sample_tasks(&tasks, 50, 7), tasks);
    }
}
