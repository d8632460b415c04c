//! `hyperagents bench miniwob`: the browser environment's own speed, with
//! scripted reference policies (no model), written to BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, ensure};
use hyperagents_miniwob::MiniWobConfig;
use hyperagents_miniwob::bench::{ThroughputReport, throughput};
use hyperagents_models::{MINIWOB, ModelStore};

use super::bench::write_section;
use crate::settings::Settings;

pub async fn run(
    settings: &Settings,
    episodes: usize,
    windows: &[usize],
    reuse_pages: bool,
    out: &Path,
) -> Result<ExitCode> {
    ensure!(episodes >= 1, "--episodes must be at least 1");
    ensure!(
        !windows.is_empty() && windows.iter().all(|w| *w >= 1),
        "--windows needs counts of at least 1"
    );
    let dir = match &settings.benchmarks.miniwob.dir {
        Some(dir) => dir.clone(),
        None => ModelStore::new(settings.cache_dir())
            .installed_dataset(&MINIWOB)
            .context("MiniWoB's pages are not installed: run `hyperagents data pull miniwob`")?,
    };
    let mut config = MiniWobConfig::new(dir);
    config.launch.executable = settings.benchmarks.browser.chromium.clone();
    let modes: &[bool] = if reuse_pages { &[true, false] } else { &[true] };
    let mut reports = Vec::new();
    for &reload in modes {
        config.reload_each_episode = reload;
        let mode = if reload { "reload" } else { "reuse" };
        for &count in windows {
            eprintln!("measuring {episodes} episodes on {count} window(s), pages {mode}…");
            let report = throughput(&config, count, episodes)
                .await
                .with_context(|| format!("the MiniWoB benchmark on {count} window(s)"))?;
            eprintln!("{report}");
            reports.push((mode, report));
        }
    }
    write_section(out, "miniwob", &render(&reports))?;
    println!("wrote the miniwob section of {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn render(reports: &[(&str, ThroughputReport)]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "## MiniWoB++ in headless Chromium (`hyperagents bench miniwob`)\n\n\
         Scripted reference policies (no model), in runs of {run} seeds of one task per \
         worker, cycling through their tasks; one window per concurrent episode. `reload`: the task page is loaded afresh for every \
         episode (the default, so no state leaks between episodes); `reuse`: MiniWoB's reset \
         protocol runs in the already loaded page. Latencies are p50 / p95 in milliseconds.\n",
        run = hyperagents_miniwob::bench::EPISODES_PER_TASK_RUN
    );
    let _ = writeln!(
        text,
        "| pages | windows | episodes | ok | episodes/s | browser start ms | episode | reset | observe | click | type |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (mode, r) in reports {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {:.1} | {:.0} | {} / {} | {} / {} | {} / {} | {} / {} | {} / {} |",
            mode,
            r.windows,
            r.episodes,
            r.successes,
            r.episodes_per_second,
            r.browser_start.total().as_secs_f64() * 1e3,
            ms(r.episode.p50),
            ms(r.episode.p95),
            ms(r.reset.p50),
            ms(r.reset.p95),
            ms(r.observe.p50),
            ms(r.observe.p95),
            ms(r.click.p50),
            ms(r.click.p95),
            ms(r.type_text.p50),
            ms(r.type_text.p95),
        );
    }
    let _ = writeln!(
        text,
        "\nA prototype measured 47 episodes/s at 4 windows on this kind of machine (one task, \
         pages reused). On 2 cores Chromium's browser process, its renderers and our process \
         share the CPU, so more windows add little once both cores are busy."
    );
    text
}
