//! `hyperagents worker`: runs episode jobs, and meta-step jobs when it binds
//! the `meta` role, from a NATS server until stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use hyperagents_distributed::episodes::{ServedSuite, WorkerTiming, serve_episode_jobs};
use hyperagents_distributed::meta::serve_meta_jobs;
use hyperagents_distributed::{Jets, NatsSettings};

use super::programs::run_context;
use hyperagents_domain::Split;

use super::suites::plan_suite;
use crate::cli::WorkerArgs;
use crate::settings::Settings;

pub async fn run(settings: Settings, args: WorkerArgs) -> Result<ExitCode> {
    let nats = NatsSettings {
        url: args
            .nats
            .clone()
            .unwrap_or_else(|| settings.nats.url.clone()),
        ..settings.nats.clone()
    };
    anyhow::ensure!(
        !nats.url.is_empty(),
        "name the NATS server: --nats nats://host:4222 (or [nats] url in the settings)"
    );
    let worker = format!("{}-{}", super::eval::host_name(), std::process::id());
    let workdir = settings.cache_dir().join("worker").join(&worker);
    // The suites' own models (a judge) and the programs' (`--models`).
    let plans = args
        .suites
        .iter()
        .map(|suite| plan_suite(&settings, suite, Split::Train))
        .collect::<Result<Vec<_>>>()?;
    let mut aliases: BTreeSet<String> = if args.models.is_empty() {
        settings.roles.keys().cloned().collect()
    } else {
        args.models.iter().cloned().collect()
    };
    for plan in &plans {
        aliases.extend(plan.aliases.iter().cloned());
    }
    let ctx = run_context(
        &settings,
        aliases.iter().map(String::as_str).collect(),
        workdir.join("traces"),
    )
    .await?;
    // Each suite with its data version: a job keyed to other data is left
    // to another worker.
    let mut domains = BTreeMap::new();
    for plan in plans {
        let identity = plan.identity.clone();
        domains.insert(
            identity.name,
            ServedSuite {
                domain: plan.open(&ctx).await?,
                version: identity.version,
            },
        );
    }
    let jets = Jets::open(&nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", nats.url))?;
    let meta_steps = !args.no_meta_steps && ctx.router.roles().any(|role| role == "meta");
    eprintln!(
        "worker {worker} taking episode jobs{} from {} for {}",
        if meta_steps { " and meta steps" } else { "" },
        nats.url,
        domains.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    let timing = WorkerTiming {
        ack_wait: Duration::from_secs(args.ack_wait_secs.max(3)),
        ..WorkerTiming::default()
    };
    let meta = async {
        if !meta_steps {
            return std::future::pending().await;
        }
        keep_serving("meta-step", || {
            serve_meta_jobs(
                jets.clone(),
                ctx.clone(),
                worker.clone(),
                workdir.join("meta"),
                timing,
            )
        })
        .await
    };
    let episodes = keep_serving("episode", || {
        serve_episode_jobs(
            jets.clone(),
            ctx.clone(),
            domains.clone(),
            worker.clone(),
            workdir.clone(),
            timing,
        )
    });
    tokio::select! {
        served = episodes => {
            served.context("serving episode jobs")?;
        }
        served = meta => {
            served.context("serving meta-step jobs")?;
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a job loop until it ends; one that cannot start (a consumer not
/// created on a server still starting) is tried again each second rather
/// than ending the worker, which would leave its jobs waiting for another.
async fn keep_serving<F, Fut>(kind: &str, mut serve: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), hyperagents_distributed::NatsError>>,
{
    loop {
        match serve().await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, "serving {kind} jobs; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
