//! The MiniWoB throughput benchmark: scripted episodes on N windows.
//!
//! Numbers belong in BENCHMARKS.md (written by `hyperagents bench miniwob`),
//! never in timed tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyperagents_browser::StartTiming;
use hyperagents_domain::Environment;

use crate::scripted::{SCRIPTED_TASKS, StepTimings, solve};
use crate::{MiniWob, MiniWobConfig, MiniWobError};

/// Median and 95th percentile of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
}

impl LatencySummary {
    pub fn of(samples: &[Duration]) -> LatencySummary {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |q: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            // Nearest-rank percentile.
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        LatencySummary {
            count: sorted.len(),
            p50: at(0.50),
            p95: at(0.95),
        }
    }
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p95 {:.1} ms (n={})",
            self.p50.as_secs_f64() * 1e3,
            self.p95.as_secs_f64() * 1e3,
            self.count
        )
    }
}

/// What one throughput run measured.
#[derive(Debug, Clone)]
pub struct ThroughputReport {
    pub windows: usize,
    pub episodes: usize,
    pub successes: usize,
    /// The first few failures, for diagnosis.
    pub failures: Vec<String>,
    pub browser_start: StartTiming,
    /// Wall time of the timed episodes (after start-up and warm-up).
    pub elapsed: Duration,
    pub episodes_per_second: f64,
    /// Reset: lease a window, load the page, run MiniWoB's reset protocol.
    pub reset: LatencySummary,
    /// A whole episode: reset, policy, score.
    pub episode: LatencySummary,
    pub observe: LatencySummary,
    pub click: LatencySummary,
    pub type_text: LatencySummary,
}

impl std::fmt::Display for ThroughputReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} window(s): {} episodes in {:.2} s = {:.1} episodes/s ({} succeeded)",
            self.windows,
            self.episodes,
            self.elapsed.as_secs_f64(),
            self.episodes_per_second,
            self.successes
        )?;
        writeln!(
            f,
            "  browser start {:.0} ms (process {:.0} ms + windows {:.0} ms)",
            self.browser_start.total().as_secs_f64() * 1e3,
            self.browser_start.browser.as_secs_f64() * 1e3,
            self.browser_start.windows.as_secs_f64() * 1e3
        )?;
        writeln!(f, "  episode  {}", self.episode)?;
        writeln!(f, "  reset    {}", self.reset)?;
        writeln!(f, "  observe  {}", self.observe)?;
        writeln!(f, "  click    {}", self.click)?;
        write!(f, "  type     {}", self.type_text)?;
        for failure in &self.failures {
            write!(f, "\n  failed: {failure}")?;
        }
        Ok(())
    }
}

/// How many consecutive episodes (seeds) of one task a benchmark worker runs
/// before the next task: with pages reused, a window then shows its task's
/// page again most of the time, as it would in a run of many seeds per task;
/// cycling tasks every episode would reload every page in both modes.
pub const EPISODES_PER_TASK_RUN: usize = 10;

/// Runs `episodes` scripted episodes (runs of [`EPISODES_PER_TASK_RUN`]
/// seeds per task, cycling through [`SCRIPTED_TASKS`]; seeds 0, 1, 2, …) on
/// `windows` windows at once, after one untimed warm-up episode per task.
pub async fn throughput(
    config: &MiniWobConfig,
    windows: usize,
    episodes: usize,
) -> Result<ThroughputReport, MiniWobError> {
    let mut config = config.clone();
    config.windows = windows.max(1);
    let miniwob = Arc::new(MiniWob::start(config).await?);
    let browser_start = miniwob.pool().start_timing();

    // Warm-up: the first load of each page fills Chromium's caches.
    for (index, task) in SCRIPTED_TASKS.iter().enumerate() {
        let _ = run_one(&miniwob, task, 1_000_000 + index as u64).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..windows.max(1) {
        let miniwob = Arc::clone(&miniwob);
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut outcome = WorkerOutcome::default();
            loop {
                // A worker takes a whole run of one task's seeds at a time.
                let first = next.fetch_add(EPISODES_PER_TASK_RUN, Ordering::Relaxed);
                if first >= episodes {
                    return outcome;
                }
                for index in first..(first + EPISODES_PER_TASK_RUN).min(episodes) {
                    let task = task_of(index);
                    let begun = Instant::now();
                    match run_one(&miniwob, task, index as u64).await {
                        Ok(run) => {
                            outcome.timings.extend(run.timings);
                            outcome.resets.push(run.reset);
                            if run.success {
                                outcome.successes += 1;
                            } else {
                                outcome
                                    .failures
                                    .push(format!("{task} seed {index}: {}", run.reason));
                            }
                        }
                        Err(error) => outcome
                            .failures
                            .push(format!("{task} seed {index}: {error}")),
                    }
                    outcome.episodes.push(begun.elapsed());
                }
            }
        }));
    }
    let mut total = WorkerOutcome::default();
    for worker in workers {
        let outcome = worker
            .await
            .map_err(|e| MiniWobError::Data(format!("benchmark worker failed: {e}")))?;
        total.successes += outcome.successes;
        total.failures.extend(outcome.failures);
        total.resets.extend(outcome.resets);
        total.episodes.extend(outcome.episodes);
        total.timings.extend(outcome.timings);
    }
    let elapsed = started.elapsed();
    if let Ok(miniwob) = Arc::try_unwrap(miniwob) {
        miniwob.close().await;
    }
    total.failures.truncate(5);
    Ok(ThroughputReport {
        windows: windows.max(1),
        episodes,
        successes: total.successes,
        failures: total.failures,
        browser_start,
        elapsed,
        episodes_per_second: episodes as f64 / elapsed.as_secs_f64().max(1e-9),
        reset: LatencySummary::of(&total.resets),
        episode: LatencySummary::of(&total.episodes),
        observe: LatencySummary::of(&total.timings.observe),
        click: LatencySummary::of(&total.timings.click),
        type_text: LatencySummary::of(&total.timings.type_text),
    })
}

#[derive(Default)]
struct WorkerOutcome {
    successes: usize,
    failures: Vec<String>,
    resets: Vec<Duration>,
    episodes: Vec<Duration>,
    timings: StepTimings,
}

/// The task of the `index`-th episode.
fn task_of(index: usize) -> &'static str {
    SCRIPTED_TASKS[(index / EPISODES_PER_TASK_RUN) % SCRIPTED_TASKS.len()]
}

struct EpisodeRun {
    success: bool,
    reason: String,
    reset: Duration,
    timings: StepTimings,
}

async fn run_one(miniwob: &MiniWob, task: &str, seed: u64) -> Result<EpisodeRun, String> {
    let started = Instant::now();
    let mut env = miniwob
        .start_episode(task, seed)
        .await
        .map_err(|e| e.to_string())?;
    let reset = started.elapsed();
    let mut timings = StepTimings::default();
    solve(&mut env, task, &mut timings)
        .await
        .map_err(|e| e.to_string())?;
    let score = env.score().await.map_err(|e| e.to_string())?;
    Ok(EpisodeRun {
        success: score.success,
        reason: score.reason,
        reset,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_come_in_runs_of_seeds_and_cycle() {
        assert!(
            (0..EPISODES_PER_TASK_RUN).all(|i| task_of(i) == SCRIPTED_TASKS[0]),
            "a run holds one task"
        );
        assert_eq!(task_of(EPISODES_PER_TASK_RUN), SCRIPTED_TASKS[1]);
        assert_eq!(
            task_of(EPISODES_PER_TASK_RUN * SCRIPTED_TASKS.len()),
            SCRIPTED_TASKS[0]
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let summary = LatencySummary::of(&samples);
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p95, Duration::from_millis(95));
        let empty = LatencySummary::of(&[]);
        assert_eq!(empty.p50, Duration::ZERO);
        let one = LatencySummary::of(&[Duration::from_millis(7)]);
        assert_eq!(
            (one.p50, one.p95),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
    }
}
