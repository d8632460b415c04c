//! `hyperagents evolve` (run or resume an evolution run) and
//! `hyperagents status` (its nodes, scores and latest events).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hyperagents_domain::Split;
use hyperagents_evolve::{Evolution, EvolveSettings, SelectionPolicy};
use hyperagents_runtime::improve::ImproveConfig;
use hyperagents_store::{NodeStatus, ResultsStore, RunMode};

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
    let program = load_program(&args.program)?;
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
    let run_dir = args
        .dir
        .clone()
        .unwrap_or_else(|| settings.cache_dir().join("runs").join(&args.run));
    let ctx = run_context(
        &settings,
        aliases.iter().map(String::as_str).collect(),
        run_dir.join("traces"),
    )
    .await?;
    let identity = suite.identity.clone();
    let domain = suite.open(&ctx).await?;
    let store_path = args
        .store
        .clone()
        .unwrap_or_else(|| settings.cache_dir().join("results.sqlite"));
    let store = ResultsStore::open(&store_path)
        .with_context(|| format!("opening the results store {}", store_path.display()))?;
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
        .run(&args.program)
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
    let store_path = args
        .store
        .clone()
        .unwrap_or_else(|| settings.cache_dir().join("results.sqlite"));
    let store = ResultsStore::open(&store_path)
        .with_context(|| format!("opening the results store {}", store_path.display()))?;
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

/// `count` tasks drawn from `tasks` in an order fixed by the run seed, kept
/// in their suite order: stage 1's sample is the same on every resume.
fn sample_tasks(tasks: &[String], count: usize, seed: u64) -> Vec<String> {
    let mut keyed: Vec<(u64, usize)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
            for byte in t.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
            (hash, i)
        })
        .collect();
    keyed.sort();
    let mut chosen: Vec<usize> = keyed.into_iter().take(count).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| tasks[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
