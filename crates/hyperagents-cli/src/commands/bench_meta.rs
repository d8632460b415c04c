//! `hyperagents bench meta`: how often a meta agent's edits land and matter.
//! The parent program runs on a number of small train-task samples (the
//! evidence contexts, recorded once and reused); then each measured meta
//! agent, transplanted onto the parent so only `meta/` differs, makes one
//! child per context with the live meta model. A child *lands* when its diff
//! is not empty and the program loads; it *changes an episode* when one of
//! the parent's failed (task, seed) episodes, run again with the child, takes
//! different actions. Rows are appended per (meta agent, context), so an
//! interrupted bench resumes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use hyperagents_eval::{EvalPlan, EvalTarget, LocalEvaluator, evaluate};
use hyperagents_evolve::origin::transplant_meta;
use hyperagents_evolve::quick::{TrainQuickEval, program_defect};
use hyperagents_runtime::improve::{ImproveConfig, QuickEvalHandle, improve};
use hyperagents_runtime::steps::episode_steps;
use hyperagents_runtime::trace::{EpisodeSummary, read_trajectory};
use hyperagents_runtime::trajectory_file_name;
use hyperagents_store::{NewEvalRun, ResultsStore};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::bench::write_section;
use super::programs::{episode_aliases, load_program, run_context};
use super::suites::{parse_split, plan_suite};
use crate::cli::BenchMetaArgs;
use crate::settings::Settings;

/// One meta step measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaRow {
    /// The program whose `meta/` was measured (its directory's name).
    meta: String,
    /// Content hash of the parent with that `meta/`: what the row measured.
    program_hash: String,
    context: usize,
    tasks: Vec<String>,
    /// The parent's failed (task, seed) episodes in the context.
    failed_pairs: usize,
    lands: bool,
    /// The candidate the meta agent kept, when it says (`exemplars`, `edit 1`, …).
    kept: Option<String>,
    /// Candidates the meta model wrote, and those that passed the meta
    /// agent's guards and validation. A meta agent that does not report its
    /// candidates counts its one edit, landed when the child lands.
    model_candidates: usize,
    model_candidates_landed: usize,
    diff_kinds: Vec<String>,
    files: Vec<String>,
    errors: Vec<String>,
    script_error: Option<String>,
    meta_tokens: u64,
    meta_secs: f64,
    /// The meta model's calls and their prompt tokens, and of those the
    /// ones reused from the engine's cache (rows written before these were
    /// recorded read 0).
    #[serde(default)]
    meta_calls: u64,
    #[serde(default)]
    meta_prompt_tokens: u64,
    #[serde(default)]
    meta_prompt_cached: u64,
    /// Of the failed pairs run again with the child: those whose actions
    /// differ from the parent's and that ran without a code defect, and
    /// those that now succeed.
    changed_pairs: usize,
    fixed_pairs: usize,
    /// Of those reruns, the ones that hit a code defect (the child's script
    /// crashed: changed, but not by working differently). Rows written
    /// before this was recorded read 0 and counted crashes as changes.
    #[serde(default)]
    defect_pairs: usize,
}

pub async fn run(mut settings: Settings, args: BenchMetaArgs) -> Result<ExitCode> {
    ensure!(!args.meta.is_empty(), "name at least one --meta program");
    ensure!(args.contexts >= 1, "--contexts must be at least 1");
    ensure!(
        args.tasks_per_context >= 1,
        "--tasks-per-context must be at least 1"
    );
    ensure!(args.seeds >= 1, "--seeds must be at least 1");
    // Every meta step and episode computed now.
    settings.cache.mode = "off".into();
    settings.run.max_steps = args.max_steps;
    let split = parse_split(&args.split)?;
    let parent = load_program(&args.parent)?;
    let parent_hash = parent.episode_hash().to_hex();
    let plan = plan_suite(&settings, &args.suite, split)?;
    let split_tasks = context_tasks(&plan.split_tasks, &args.tasks, &args.split)?;
    ensure!(
        split_tasks.len() >= args.tasks_per_context,
        "the {} split has only {} tasks",
        args.split,
        split_tasks.len()
    );
    let seeds: Vec<u64> = (0..args.seeds).collect();
    let home = settings.cache_dir().join("bench").join("meta");
    let results = args
        .results
        .clone()
        .unwrap_or_else(|| settings.cache_dir().join("bench").join("meta.jsonl"));
    let mut rows: Vec<MetaRow> = super::bench_episodes::read_rows(&results)?;

    let mut aliases: BTreeSet<String> = plan.aliases.clone();
    aliases.extend(episode_aliases(&parent).into_iter().map(str::to_string));
    aliases.insert("meta".into());
    let ctx = run_context(
        &settings,
        aliases.iter().map(String::as_str).collect(),
        home.join("scratch"),
    )
    .await?;
    let identity = plan.identity.clone();
    let domain = plan.open(&ctx).await?;
    let store = ResultsStore::open(home.join("results.sqlite"))?;

    // The evidence: the parent on each context's tasks, recorded once.
    let mut contexts = Vec::new();
    for index in 0..args.contexts {
        let tasks = sample_tasks(&split_tasks, args.tasks_per_context, index);
        let dir = home
            .join("contexts")
            .join(format!("{}-{index}", &parent_hash[..16]));
        let marker = dir.join(".complete");
        let setup =
            json!({"tasks": tasks, "seeds": seeds, "max_steps": args.max_steps}).to_string();
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(setup.as_str()) {
            eprintln!(
                "recording context {index}: the parent on {}",
                tasks.join(", ")
            );
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("clearing {}", dir.display()))?;
            }
            let mut episodes = ctx.clone();
            episodes.traces_dir = dir.join("traces");
            let run = store.create_run(&NewEvalRun {
                program_hash: parent_hash.clone(),
                suite: identity.name.clone(),
                split: args.split.clone(),
                config: json!({"bench": "meta", "context": index}),
            })?;
            evaluate(
                &episodes,
                &EvalTarget {
                    program: Arc::new(load_program(&args.parent)?),
                    domain: domain.clone(),
                    suite: identity.clone(),
                },
                &EvalPlan {
                    tasks: tasks.clone(),
                    seeds: seeds.clone(),
                    concurrency: args.concurrency,
                    reuse_cached: false,
                },
                &store,
                run,
                &|_| {},
            )
            .await?;
            std::fs::write(&marker, &setup)
                .with_context(|| format!("writing {}", marker.display()))?;
        }
        contexts.push((index, tasks, dir.join("traces")));
    }

    // The parent with each measured `meta/`.
    let mut variants = Vec::new();
    for donor in &args.meta {
        let name = label(donor);
        let variant = home.join("programs").join(&name);
        transplant_meta(&args.parent, donor, &variant)?;
        let program_hash = load_program(&variant)?.content_hash().to_hex();
        variants.push((name, variant, program_hash));
    }
    // Context by context, every meta agent on each, so a run stopped
    // half-way still compares them on the same contexts. They take turns
    // going first: on one engine, the agent going second reuses the first
    // one's cached prompt prefix (the same evidence), which cuts its
    // computed tokens and time by about a quarter.
    for (index, tasks, traces) in &contexts {
        for (name, variant, program_hash) in in_turn(&variants, *index) {
            let (name, variant, program_hash) =
                (name.as_str(), variant.as_path(), program_hash.as_str());
            if rows
                .iter()
                .any(|r| r.program_hash == program_hash && r.context == *index && &r.tasks == tasks)
            {
                continue;
            }
            let failed = failed_pairs(traces)?;
            if failed.is_empty() {
                eprintln!("context {index}: the parent failed nothing; skipped");
                continue;
            }
            eprintln!(
                "{name}, context {index}: a meta step on {} failed episodes…",
                failed.len()
            );
            let row = measure(
                &ctx,
                &args,
                &store,
                &domain,
                &identity,
                (name, variant, program_hash),
                (*index, tasks, traces, &failed),
                &seeds,
                &home,
            )
            .await?;
            eprintln!(
                "  lands: {}; changed {}, crashed {} and fixed {} of {} failed episodes; {} meta tokens in {:.0} s",
                row.lands,
                row.changed_pairs,
                row.defect_pairs,
                row.fixed_pairs,
                row.failed_pairs,
                row.meta_tokens,
                row.meta_secs
            );
            append_row(&results, &row)?;
            rows.push(row);
            // The section so far, so a long run stopped half-way still reads.
            write_section(
                &args.out,
                "meta",
                &render(&args, &rows, &contexts, &variants, &results),
            )
            .with_context(|| format!("writing {}", args.out.display()))?;
        }
    }
    let text = render(&args, &rows, &contexts, &variants, &results);
    print!("{text}");
    write_section(&args.out, "meta", &text)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote the meta section of {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)] // One measurement's inputs, named.
async fn measure(
    ctx: &hyperagents_runtime::RunContext,
    args: &BenchMetaArgs,
    store: &ResultsStore,
    domain: &Arc<dyn hyperagents_domain::Domain>,
    identity: &hyperagents_eval::SuiteIdentity,
    (name, variant, program_hash): (&str, &Path, &str),
    (index, tasks, traces, failed): (usize, &[String], &Path, &[(String, u64)]),
    seeds: &[u64],
    home: &Path,
) -> Result<MetaRow> {
    let child = home.join("children").join(format!("{name}-{index}"));
    if child.exists() {
        std::fs::remove_dir_all(&child).with_context(|| format!("clearing {}", child.display()))?;
    }
    let parent_success = parent_success_by_task(traces)?;
    let first_seed = seeds.first().copied().unwrap_or(0);
    let quick = TrainQuickEval::new(
        Arc::new(LocalEvaluator {
            ctx: ctx.clone(),
            store: store.clone(),
        }),
        Arc::new(store.clone()),
        domain.clone(),
        identity.clone(),
        tasks.iter().cloned().collect(),
        first_seed,
        args.concurrency,
        home.join("quick").join(format!("{name}-{index}")),
        args.quick_eval_tasks,
        args.quick_eval_calls,
    );
    let config = ImproveConfig {
        seed: index as u64,
        context: json!({
            "generation": 1,
            "generations_left": 1,
            "mode": "hyper",
            "parent": "seed",
            "parent_train_success_by_task": parent_success,
            "best_of_archive": [],
            "edit_effects": {},
            "quick_eval": {
                "calls": args.quick_eval_calls,
                "tasks_per_call": args.quick_eval_tasks,
                "seed": first_seed,
            },
        }),
        quick_eval: (args.quick_eval_calls > 0).then(|| QuickEvalHandle(Arc::new(quick))),
        ..ImproveConfig::default()
    };
    let started = Instant::now();
    let outcome = improve(ctx, variant, traces, &child, &config)
        .await
        .with_context(|| format!("the meta step of {name} on context {index}"))?;
    let meta_secs = started.elapsed().as_secs_f64();
    std::fs::write(child.with_extension("meta.txt"), &outcome.trace).ok();
    let lands = !outcome.diff.is_empty() && outcome.errors.is_empty();
    let reported = outcome
        .result
        .as_ref()
        .and_then(|r| r.get("candidates"))
        .and_then(Value::as_array);
    let (model_candidates, model_candidates_landed) = match reported {
        Some(candidates) => {
            let written: Vec<&Value> = candidates
                .iter()
                .filter(|c| c.get("written_by").and_then(Value::as_str) == Some("model"))
                .collect();
            let landed = written
                .iter()
                .filter(|c| c.get("landed").and_then(Value::as_bool) == Some(true))
                .count();
            (written.len(), landed)
        }
        None => (1, usize::from(lands)),
    };
    let kept = outcome
        .result
        .as_ref()
        .and_then(|r| r.get("kept"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let (mut changed_pairs, mut fixed_pairs, mut defect_pairs) = (0, 0, 0);
    if lands {
        let program = Arc::new(load_program(&child)?);
        let mut episodes = ctx.clone();
        episodes.traces_dir = home.join("reruns").join(format!("{name}-{index}"));
        let run = store.create_run(&NewEvalRun {
            program_hash: program.content_hash().to_hex(),
            suite: identity.name.clone(),
            split: args.split.clone(),
            config: json!({"bench": "meta", "context": index, "rerun": name}),
        })?;
        let failed_tasks: Vec<String> = failed
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let report = evaluate(
            &episodes,
            &EvalTarget {
                program,
                domain: domain.clone(),
                suite: identity.clone(),
            },
            &EvalPlan {
                tasks: failed_tasks,
                seeds: seeds.to_vec(),
                concurrency: args.concurrency,
                reuse_cached: false,
            },
            store,
            run,
            &|_| {},
        )
        .await?;
        for record in &report.records {
            if !failed.contains(&(record.task.clone(), record.seed)) {
                continue;
            }
            let before = actions_of(&traces.join(trajectory_file_name(&record.task, record.seed)));
            let after = record.trajectory.as_deref().map(actions_of);
            if program_defect(record).is_some() {
                defect_pairs += 1;
            } else if after.is_some_and(|a| a != before) {
                changed_pairs += 1;
            }
            if record.success {
                fixed_pairs += 1;
            }
        }
    }
    Ok(MetaRow {
        meta: name.to_string(),
        program_hash: program_hash.to_string(),
        context: index,
        tasks: tasks.to_vec(),
        failed_pairs: failed.len(),
        lands,
        kept,
        model_candidates,
        model_candidates_landed,
        diff_kinds: outcome
            .diff
            .kinds()
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
        files: outcome
            .diff
            .files
            .iter()
            .map(|f| f.path.to_string())
            .collect(),
        errors: outcome.errors.clone(),
        script_error: outcome.script_error.clone(),
        meta_tokens: outcome.meta_tokens,
        meta_secs,
        meta_calls: outcome.meta_calls,
        meta_prompt_tokens: outcome.meta_prompt_tokens,
        meta_prompt_cached: outcome.meta_prompt_cached,
        changed_pairs,
        fixed_pairs,
        defect_pairs,
    })
}

/// The tasks contexts are drawn from: `named` (each must be in the split), in
/// the split's order, or the whole split when none is named.
fn context_tasks(split_tasks: &[String], named: &[String], split: &str) -> Result<Vec<String>> {
    if named.is_empty() {
        return Ok(split_tasks.to_vec());
    }
    let unknown: Vec<&str> = named
        .iter()
        .filter(|t| !split_tasks.contains(t))
        .map(String::as_str)
        .collect();
    ensure!(
        unknown.is_empty(),
        "--tasks names tasks the {split} split does not have: {}",
        unknown.join(", ")
    );
    Ok(split_tasks
        .iter()
        .filter(|t| named.contains(t))
        .cloned()
        .collect())
}

/// `count` tasks of `tasks` drawn for context `index`, in suite order (the
/// draw `evolve` makes for stage 1, with its own seeds).
fn sample_tasks(tasks: &[String], count: usize, index: usize) -> Vec<String> {
    hyperagents_evolve::origin::sample_tasks(tasks, count, CONTEXT_SEEDS + index as u64)
}

/// Context `i` draws its tasks with seed `CONTEXT_SEEDS + i`.
const CONTEXT_SEEDS: u64 = 1_000_000;

/// The summaries of the episodes recorded under `traces`.
fn summaries(traces: &Path) -> Result<Vec<EpisodeSummary>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(traces).with_context(|| format!("reading {}", traces.display()))?
    {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".summary.json") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            out.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    out.sort_by(|a: &EpisodeSummary, b| (a.task.as_str(), a.seed).cmp(&(b.task.as_str(), b.seed)));
    Ok(out)
}

fn failed_pairs(traces: &Path) -> Result<Vec<(String, u64)>> {
    Ok(summaries(traces)?
        .into_iter()
        .filter(|s| !s.success)
        .map(|s| (s.task, s.seed))
        .collect())
}

fn parent_success_by_task(traces: &Path) -> Result<BTreeMap<String, f64>> {
    let mut by_task: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for s in summaries(traces)? {
        let entry = by_task.entry(s.task).or_default();
        entry.0 += u32::from(s.success);
        entry.1 += 1;
    }
    Ok(by_task
        .into_iter()
        .map(|(task, (ok, n))| (task, f64::from(ok) / f64::from(n.max(1))))
        .collect())
}

/// The actions an episode took, in order (empty when it cannot be read).
fn actions_of(trajectory: &Path) -> Vec<(String, Value)> {
    read_trajectory(trajectory)
        .map(|t| {
            episode_steps(&t)
                .steps
                .into_iter()
                .map(|s| (s.action, s.args))
                .collect()
        })
        .unwrap_or_default()
}

fn label(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

fn append_row(path: &Path, row: &MetaRow) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(row)?)?;
    Ok(())
}

fn render(
    args: &BenchMetaArgs,
    rows: &[MetaRow],
    contexts: &[(usize, Vec<String>, PathBuf)],
    variants: &[(String, PathBuf, String)],
    results: &Path,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "## Meta agents' edits: do they land, do they matter (`hyperagents bench meta`)\n"
    );
    let _ = writeln!(
        text,
        "Written by `hyperagents bench meta --parent {} --meta {} --contexts {} --tasks-per-context {} --seeds {} --max-steps {} \
         --quick-eval-calls {} --quick-eval-tasks {}{}`. Each context is the parent's episodes on {} train tasks × {} seeds; every \
         meta agent is put on the parent (only `meta/` differs) and makes one child per context with the live meta model, \
         response cache off. *Lands*: a non-empty diff and a program that loads. *Changes an episode*: one of the parent's \
         failed (task, seed) episodes, run again with the child, takes other actions and runs without a code defect (a \
         crash of the child's own script is counted apart). The meta agents take turns going first on a context (the one \
         going second reuses the first one's cached prompt prefix, so its computed tokens and time are lower; rows made \
         before 2026-12-07 always ran them in the order listed). Rows: `{}`.\n",
        args.parent.display(),
        args.meta
            .iter()
            .map(|m| m.display().to_string())
            .collect::<Vec<_>>()
            .join(" --meta "),
        args.contexts,
        args.tasks_per_context,
        args.seeds,
        args.max_steps,
        args.quick_eval_calls,
        args.quick_eval_tasks,
        if args.tasks.is_empty() {
            String::new()
        } else {
            format!(" --tasks {}", args.tasks.join(","))
        },
        args.tasks_per_context,
        args.seeds,
        results.display(),
    );
    let wanted: BTreeSet<(usize, &Vec<String>)> =
        contexts.iter().map(|(i, t, _)| (*i, t)).collect();
    let _ = writeln!(
        text,
        "| meta agent | contexts | child lands | model-written edits landed | changes ≥1 failed episode | failed episodes fixed | reruns with a code defect | mean meta tokens | model calls/step | prompt tokens computed/step | reused/step | mean meta step s | kept | diff kinds |"
    );
    let _ = writeln!(
        text,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    // One line per version of each meta agent: rows of an earlier `meta/`
    // (kept in the results file) are shown apart, never pooled with today's.
    let mut versions: Vec<(&str, &str)> = Vec::new();
    for (name, _, current) in variants {
        if !versions.contains(&(name.as_str(), current.as_str())) {
            versions.push((name, current));
        }
        for r in rows {
            if r.meta == *name
                && r.program_hash != *current
                && !versions.contains(&(name.as_str(), r.program_hash.as_str()))
            {
                versions.push((name, &r.program_hash));
            }
        }
    }
    for (name, hash) in versions {
        let mine: Vec<&MetaRow> = rows
            .iter()
            .filter(|r| {
                r.meta == name && r.program_hash == hash && wanted.contains(&(r.context, &r.tasks))
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let current = variants.iter().any(|(n, _, h)| n == name && h == hash);
        // Two measured programs of one name (two builds' seeds) are told
        // apart by their meta/ hash.
        let shared_name = variants.iter().filter(|(n, _, _)| n == name).count() > 1;
        let name = if current && shared_name {
            format!("{name} (meta/ {})", &hash[..hash.len().min(8)])
        } else if current {
            name.to_string()
        } else {
            format!("{name} (earlier meta/, {})", &hash[..hash.len().min(8)])
        };
        let n = mine.len();
        let lands = mine.iter().filter(|r| r.lands).count();
        let changes = mine.iter().filter(|r| r.changed_pairs > 0).count();
        let fixed: usize = mine.iter().map(|r| r.fixed_pairs).sum();
        let failed: usize = mine.iter().map(|r| r.failed_pairs).sum();
        let defects: usize = mine.iter().map(|r| r.defect_pairs).sum();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        let mut kept: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &mine {
            for k in &r.diff_kinds {
                *kinds.entry(k.as_str()).or_default() += 1;
            }
            if let Some(label) = &r.kept {
                *kept.entry(label.as_str()).or_default() += 1;
            }
        }
        let written: usize = mine.iter().map(|r| r.model_candidates).sum();
        let written_landed: usize = mine.iter().map(|r| r.model_candidates_landed).sum();
        let _ = writeln!(
            text,
            "| {name} | {n} | {lands} ({:.0}%) | {written_landed} of {written} ({:.0}%) | {changes} ({:.0}%) | {fixed} of {failed} | {defects} of {failed} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {} |",
            100.0 * lands as f64 / n as f64,
            100.0 * written_landed as f64 / written.max(1) as f64,
            100.0 * changes as f64 / n as f64,
            mine.iter().map(|r| r.meta_tokens as f64).sum::<f64>() / n as f64,
            mine.iter().map(|r| r.meta_calls as f64).sum::<f64>() / n as f64,
            mine.iter()
                .map(|r| r.meta_prompt_tokens.saturating_sub(r.meta_prompt_cached) as f64)
                .sum::<f64>()
                / n as f64,
            mine.iter()
                .map(|r| r.meta_prompt_cached as f64)
                .sum::<f64>()
                / n as f64,
            mine.iter().map(|r| r.meta_secs).sum::<f64>() / n as f64,
            kept.iter()
                .map(|(k, c)| format!("{k} {c}"))
                .collect::<Vec<_>>()
                .join(", "),
            kinds
                .iter()
                .map(|(k, c)| format!("{k} {c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    text.push('\n');
    text
}

/// `items` starting from the one whose turn it is on context `context`.
fn in_turn<T>(items: &[T], context: usize) -> impl Iterator<Item = &T> {
    let start = if items.is_empty() {
        0
    } else {
        context % items.len()
    };
    items[start..].iter().chain(items[..start].iter())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(meta: &str, hash: &str, context: usize, lands: bool) -> MetaRow {
        serde_json::from_value(serde_json::json!({
            "meta": meta, "program_hash": hash, "context": context, "tasks": ["t"],
            "failed_pairs": 2, "lands": lands, "kept": null, "model_candidates": 1,
            "model_candidates_landed": usize::from(lands), "diff_kinds": [], "files": [],
            "errors": [], "script_error": null, "meta_tokens": 10, "meta_secs": 1.0,
            "changed_pairs": 0, "fixed_pairs": 0,
        }))
        .unwrap()
    }

    #[test]
    fn two_measured_programs_of_one_name_get_a_line_each() {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: BenchMetaArgs,
        }
        let args = <Wrapper as clap::Parser>::parse_from(["bench"]).args;
        let (old, new) = ("a".repeat(64), "b".repeat(64));
        let rows = vec![
            row("seed", &old, 0, false),
            row("seed", &new, 0, true),
            row("seed", &"c".repeat(64), 0, true),
        ];
        let contexts = vec![(0, vec!["t".to_string()], PathBuf::from("c0"))];
        let variants = vec![
            ("seed".to_string(), PathBuf::from("old/seed"), old.clone()),
            ("seed".to_string(), PathBuf::from("new/seed"), new.clone()),
        ];
        let text = render(&args, &rows, &contexts, &variants, Path::new("rows.jsonl"));
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("| seed")).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("| seed (meta/ aaaaaaaa) | 1 | 0 (0%)"),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("| seed (meta/ bbbbbbbb) | 1 | 1 (100%)")),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("| seed (earlier meta/, cccccccc)")),
            "{text}"
        );
    }

    #[test]
    fn meta_agents_take_turns_going_first() {
        let agents = ["a", "b", "c"];
        let order = |context| in_turn(&agents, context).copied().collect::<Vec<_>>();
        assert_eq!(order(0), ["a", "b", "c"]);
        assert_eq!(order(1), ["b", "c", "a"]);
        assert_eq!(order(5), ["c", "a", "b"]);
        assert_eq!(in_turn::<&str>(&[], 3).count(), 0);
    }

    #[test]
    fn contexts_draw_only_from_the_named_tasks_of_the_split() {
        let split: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(context_tasks(&split, &[], "train").unwrap(), split);
        let named = ["d", "b"].map(String::from).to_vec();
        assert_eq!(
            context_tasks(&split, &named, "train").unwrap(),
            ["b", "d"].map(String::from).to_vec()
        );
        let error = context_tasks(&split, &["b".into(), "z".into()], "train")
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not have: z"), "{error}");
    }

    #[test]
    fn contexts_draw_different_samples_in_suite_order() {
        let tasks: Vec<String> = (0..30).map(|i| format!("t{i:02}")).collect();
        let a = sample_tasks(&tasks, 4, 0);
        let b = sample_tasks(&tasks, 4, 1);
        assert_eq!(a.len(), 4);
        assert_ne!(a, b);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            a,
            sample_tasks(&tasks, 4, 0),
            "the same context, the same tasks"
        );
    }
}
