//! `hyperagents program check`, `run`, `trace` and `improve`: agent
//! programs on single tasks.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyperagents_domain::JsonlSuite;
use hyperagents_program::{Program, RunCaps};
use hyperagents_runtime::improve::{ImproveConfig, improve as run_improve};
use hyperagents_runtime::trace::{read_trajectory, render_tree};
use hyperagents_runtime::{RunContext, SandboxChecker, run_episode};
use hyperagents_sandbox::{PoolConfig, ScriptLimits, ScriptPool, locate_worker};

use crate::cli::{ImproveArgs, ProgramCommand, RunArgs, TraceArgs};
use crate::model_factory::ModelFactory;
use crate::settings::Settings;

pub fn check(command: ProgramCommand) -> Result<ExitCode> {
    let ProgramCommand::Check { dir } = command;
    match Program::load(&dir, &SandboxChecker) {
        Ok(program) => {
            let m = program.manifest();
            println!(
                "{}: ok — program `{}`, {} task agents, {} skills, content {}",
                dir.display(),
                m.program.name,
                m.agents.len(),
                m.skills.len(),
                &program.content_hash().to_hex()[..12]
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("{}", error.in_dir(&dir));
            }
            eprintln!("{}: {} error(s)", dir.display(), errors.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(super) fn load_program(dir: &std::path::Path) -> Result<Program> {
    Program::load(dir, &SandboxChecker).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("  {}", e.in_dir(dir)))
            .collect();
        anyhow::anyhow!(
            "the program {} is invalid:\n{}",
            dir.display(),
            lines.join("\n")
        )
    })
}

/// The script pool the settings describe.
pub(super) async fn start_pool(settings: &Settings) -> Result<ScriptPool> {
    let s = &settings.sandbox;
    let worker = locate_worker().context("finding the sandbox worker")?;
    // `with_limits` also sizes the OS memory cap above the allocator's own.
    let mut config = PoolConfig::new(s.workers, worker).with_limits(ScriptLimits {
        vm_time_per_call: Duration::from_secs_f64(s.vm_secs_per_call),
        vm_time_total: Duration::from_secs_f64(s.vm_secs_total),
        max_recursion_depth: s.max_recursion_depth,
        max_host_calls: s.max_host_calls,
        max_memory_bytes: s.memory_mb * 1024 * 1024,
    });
    config.compiled_script_bytes = s.compiled_scripts_kib.saturating_mul(1024);
    let pool = ScriptPool::start(config)
        .await
        .context("starting the sandbox workers")?;
    // Say once, in plain words, which OS layer this kernel cannot give the workers.
    let report = pool
        .probe_confinement()
        .await
        .context("checking the sandbox workers' confinement")?;
    for shortfall in report.confinement.shortfalls() {
        tracing::warn!("{shortfall}");
    }
    Ok(pool)
}

fn caps(settings: &Settings) -> RunCaps {
    RunCaps {
        max_steps: settings.run.max_steps,
        max_calls: settings.run.max_calls,
        max_tokens: settings.run.max_tokens,
        max_wall: Duration::from_secs_f64(settings.run.max_wall_secs),
    }
}

/// Sandbox workers plus a router with the given aliases bound to the
/// models the settings name for them.
pub(super) async fn run_context(
    settings: &Settings,
    aliases: BTreeSet<&str>,
    traces_dir: std::path::PathBuf,
) -> Result<RunContext> {
    Ok(run_context_with_models(settings, aliases, traces_dir)
        .await?
        .0)
}

/// [`run_context`], and the factory that built its models (benchmarks read
/// the embedded engines' counters through it).
pub(super) async fn run_context_with_models(
    settings: &Settings,
    aliases: BTreeSet<&str>,
    traces_dir: std::path::PathBuf,
) -> Result<(RunContext, ModelFactory)> {
    let pool = Arc::new(start_pool(settings).await?);
    let mut factory = ModelFactory::new(settings.clone())?;
    let mut router = factory.router();
    for alias in aliases {
        factory.bind(&mut router, alias, alias).await?;
    }
    // Servers start on a program's first use of their tools, not here.
    let external_tools: Option<Arc<dyn hyperagents_domain::ExternalTools>> =
        if settings.mcp.servers.is_empty() {
            None
        } else {
            Some(Arc::new(
                hyperagents_mcp::McpTools::new(&settings.mcp).context("the [mcp] settings")?,
            ))
        };
    let ctx = RunContext {
        router,
        pool,
        caps: caps(settings),
        run_seed: settings.run.seed,
        traces_dir,
        screenshots: settings.run.screenshots,
        external_tools,
    };
    Ok((ctx, factory))
}

pub async fn run(settings: Settings, args: RunArgs) -> Result<ExitCode> {
    let program = Arc::new(load_program(&args.program)?);
    let suite = JsonlSuite::load(&args.suite)?;
    suite.task(&args.task)?;
    let traces = args.traces.clone().unwrap_or_else(|| {
        settings
            .cache_dir()
            .join("traces")
            .join(&program.content_hash().to_hex()[..16])
    });
    // Bind only the aliases this program uses: loading a model is not free.
    let ctx = run_context(&settings, episode_aliases(&program), traces).await?;
    let outcome = run_episode(&ctx, program, &suite, &args.task, args.seed).await?;
    let s = &outcome.summary;
    println!(
        "{} task {} (seed {}): score {:.2} — {}",
        if s.success { "SUCCESS" } else { "FAILURE" },
        s.task,
        s.seed,
        s.score,
        s.reason
    );
    if let Some(failure) = &s.failure {
        println!(
            "first failure at {}: {}",
            failure.path,
            failure.error.lines().next().unwrap_or("")
        );
    }
    if let Some(stopped) = &s.stopped {
        println!("stopped early: {stopped}");
    }
    println!(
        "{} steps, {} llm calls, {}+{} tokens, ${:.4}, {} ms",
        s.steps, s.llm_calls, s.tokens_in, s.tokens_out, s.cost, s.duration_ms
    );
    println!("trajectory: {}", outcome.trajectory.display());
    Ok(ExitCode::SUCCESS)
}

/// The model aliases an episode of `program` may call (not the meta
/// agent's): binding a model is not free, so only these are bound.
pub(super) fn episode_aliases(program: &Program) -> BTreeSet<&str> {
    let m = program.manifest();
    std::iter::once(m.hyper.model.as_str())
        .chain(m.agents.iter().map(|a| a.model.as_str()))
        .chain(m.skills.iter().map(|s| s.model.as_str()))
        .collect()
}

pub fn trace(args: &TraceArgs) -> Result<ExitCode> {
    let trajectory = read_trajectory(&args.file)?;
    print!("{}", render_tree(&trajectory, args.width));
    Ok(ExitCode::SUCCESS)
}

pub async fn improve(settings: Settings, args: ImproveArgs) -> Result<ExitCode> {
    if args.out.exists() {
        bail!(
            "{} already exists; choose a new directory for the child",
            args.out.display()
        );
    }
    let parent = load_program(&args.program)?;
    let aliases = BTreeSet::from([parent.meta().model.as_str()]);
    let ctx = run_context(&settings, aliases, settings.cache_dir().join("traces")).await?;
    let config = ImproveConfig {
        seed: args.seed,
        ..ImproveConfig::default()
    };
    let outcome = run_improve(&ctx, &args.program, &args.failures, &args.out, &config).await?;
    eprint!("{}", outcome.trace);
    if let Some(error) = &outcome.script_error {
        eprintln!("the meta agent failed: {error}");
    }
    if outcome.diff.is_empty() {
        eprintln!("the meta agent changed nothing; no child was produced");
        let _ = std::fs::remove_dir_all(&outcome.child);
        let _ = std::fs::remove_file(&outcome.diff_path);
        return Ok(ExitCode::FAILURE);
    }
    let kinds: Vec<&str> = outcome.diff.kinds().iter().map(|k| k.as_str()).collect();
    println!(
        "child: {} ({} files changed: {})",
        outcome.child.display(),
        outcome.diff.files.len(),
        kinds.join(", ")
    );
    println!("diff: {}", outcome.diff_path.display());
    if outcome.errors.is_empty() {
        println!("validation: ok");
        Ok(ExitCode::SUCCESS)
    } else {
        for error in &outcome.errors {
            println!("validation: {error}");
        }
        Ok(ExitCode::FAILURE)
    }
}
