//! Several runs side by side (e.g. four modes × a few run seeds): one row
//! per run, an aggregate per mode (mean and min–max over its runs), and the
//! data of the overlay plots, one line per run coloured by its mode.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use hyperagents_store::{ResultsStore, RunMode};
use plotters::style::RGBColor;

use crate::ReportError;
use crate::escape::markdown;
use crate::format::{NONE, count, duration, points, rate};
use crate::plots::{LineChart, Series, XAxis, YAxis};
use crate::summary::{RunReport, run_summary};

/// The runs of a comparison and their per-mode aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct RunComparison {
    /// In the order they were asked for.
    pub runs: Vec<RunReport>,
    /// One per mode present, in the order hyper, fixed-meta, prompt-only, none.
    pub modes: Vec<ModeAggregate>,
}

/// The runs of one mode, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeAggregate {
    pub mode: RunMode,
    pub runs: u64,
    pub seed_train: Option<Spread>,
    pub best_train: Option<Spread>,
    pub final_test: Option<Spread>,
    pub final_improvement: Option<Spread>,
    /// Meta plus train-stage task tokens.
    pub search_tokens: Option<Spread>,
    pub wall_ms: Option<Spread>,
}

/// Mean and range of a number over the runs that have it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Runs that had the number.
    pub count: u64,
}

impl Spread {
    /// `None` when no value is present.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        Some(Spread {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            count: values.len() as u64,
        })
    }
}

/// The modes in the order reports list them.
const MODES: [RunMode; 4] = [
    RunMode::Hyper,
    RunMode::FixedMeta,
    RunMode::PromptOnly,
    RunMode::None,
];

/// Reads every run of `run_ids` and aggregates them per mode.
pub fn compare_summary(
    store: &ResultsStore,
    run_ids: &[String],
) -> Result<RunComparison, ReportError> {
    if run_ids.is_empty() {
        return Err(ReportError::NoRuns);
    }
    let mut seen = HashSet::new();
    for id in run_ids {
        if !seen.insert(id.as_str()) {
            return Err(ReportError::DuplicateRun { run: id.clone() });
        }
    }
    let runs = run_ids
        .iter()
        .map(|id| run_summary(store, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut by_mode: BTreeMap<usize, Vec<&RunReport>> = BTreeMap::new();
    for run in &runs {
        let order = MODES.iter().position(|m| *m == run.mode).unwrap_or(0);
        by_mode.entry(order).or_default().push(run);
    }
    let modes = by_mode
        .values()
        .map(|group| ModeAggregate {
            mode: group[0].mode,
            runs: group.len() as u64,
            seed_train: Spread::of(group.iter().filter_map(|r| r.seed_train)),
            best_train: Spread::of(group.iter().filter_map(|r| r.best_train())),
            final_test: Spread::of(group.iter().filter_map(|r| r.final_test())),
            final_improvement: Spread::of(group.iter().filter_map(|r| r.final_improvement())),
            search_tokens: Spread::of(group.iter().map(|r| r.tokens.search_tokens() as f64)),
            wall_ms: Spread::of(group.iter().map(|r| r.wall_ms as f64)),
        })
        .collect();
    Ok(RunComparison { runs, modes })
}

/// A mode's colour in every overlay plot.
pub(crate) fn mode_color(mode: RunMode) -> RGBColor {
    match mode {
        RunMode::Hyper => RGBColor(31, 119, 180),
        RunMode::FixedMeta => RGBColor(255, 127, 14),
        RunMode::PromptOnly => RGBColor(44, 160, 44),
        RunMode::None => RGBColor(127, 127, 127),
    }
}

/// The overlay charts: (file name, chart).
pub(crate) fn comparison_charts(
    comparison: &RunComparison,
) -> Vec<(&'static str, LineChart<'static>)> {
    let series = |point: &dyn Fn(&crate::summary::GenerationPoint) -> Option<(f64, f64)>| {
        comparison
            .runs
            .iter()
            .map(|run| Series {
                label: format!("{} ({})", run.run_id, run.mode.as_str()),
                color: mode_color(run.mode),
                points: run.generations.iter().filter_map(point).collect(),
            })
            .collect::<Vec<_>>()
    };
    vec![
        (
            "compare_train.svg",
            LineChart {
                title: "Best-so-far train success per generation",
                x_desc: "generation",
                y_desc: "train success (best so far)",
                x_axis: XAxis::Generation,
                y_axis: YAxis::Rate,
                series: series(&|p| Some((p.generation as f64, p.best_so_far_train))),
            },
        ),
        (
            "compare_budget.svg",
            LineChart {
                title: "Best-so-far train success per token spent",
                x_desc: "cumulative tokens (meta + train episodes)",
                y_desc: "train success (best so far)",
                x_axis: XAxis::Tokens,
                y_axis: YAxis::Rate,
                series: series(&|p| Some((p.total_tokens as f64, p.best_so_far_train))),
            },
        ),
        (
            "compare_test.svg",
            LineChart {
                title: "Test success of the best node per generation",
                x_desc: "generation",
                y_desc: "test success",
                x_axis: XAxis::Generation,
                y_axis: YAxis::Rate,
                series: series(&|p| p.test_of_best.map(|t| (p.generation as f64, t))),
            },
        ),
    ]
}

/// `compare.md`; `plots` are the chart files written beside it.
pub(crate) fn render_comparison(comparison: &RunComparison, plots: &[&str]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Comparison of {} evolution runs\n",
        comparison.runs.len()
    );
    let _ = writeln!(md, "## Runs\n");
    let _ = writeln!(
        md,
        "imp@k is the best train success so far minus the seed's, at the last generation; the \
         test column is the test success of the final best node (chosen on train).\n"
    );
    let _ = writeln!(
        md,
        "| run | mode | run seed | generations | seed train | best train | test (best node) | imp@k | meta tokens | task tokens | wall time |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in &comparison.runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            markdown(&run.run_id, 80),
            run.mode.as_str(),
            run.run_seed,
            run.generations_done(),
            rate(run.seed_train),
            rate(run.best_train()),
            rate(run.final_test()),
            points(run.final_improvement()),
            count(run.tokens.meta_tokens),
            count(run.tokens.task_tokens()),
            duration(run.wall_ms)
        );
    }
    md.push('\n');
    let _ = writeln!(md, "## Per mode\n");
    let _ = writeln!(
        md,
        "Mean (min–max) over the runs of each mode; the count in brackets is how many runs had \
         the number.\n"
    );
    let _ = writeln!(
        md,
        "| mode | runs | seed train | best train | test (best node) | imp@k | tokens (meta + train) | wall time |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for mode in &comparison.modes {
        let rates = |s: &Option<Spread>| spread(s, |v| rate(Some(v)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            mode.mode.as_str(),
            mode.runs,
            rates(&mode.seed_train),
            rates(&mode.best_train),
            rates(&mode.final_test),
            spread(&mode.final_improvement, |v| points(Some(v))),
            spread(&mode.search_tokens, |v| count(v.round() as u64)),
            spread(&mode.wall_ms, |v| duration(v.round() as u64)),
        );
    }
    md.push('\n');
    let _ = writeln!(md, "## Plots\n");
    let _ = writeln!(
        md,
        "One line per run, coloured by mode: hyper blue, fixed-meta orange, prompt-only green, \
         none grey.\n"
    );
    for file in plots {
        let _ = writeln!(md, "![{file}]({file})\n");
    }
    md
}

fn spread(value: &Option<Spread>, show: impl Fn(f64) -> String) -> String {
    match value {
        None => NONE.to_owned(),
        Some(s) if s.count == 1 => format!("{} [1]", show(s.mean)),
        Some(s) => format!(
            "{} ({} – {}) [{}]",
            show(s.mean),
            show(s.min),
            show(s.max),
            s.count
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_cover_present_values_only() {
        assert_eq!(Spread::of([]), None);
        let s = Spread::of([0.5, 0.25, 0.75, f64::NAN]).expect("values");
        assert_eq!((s.mean, s.min, s.max, s.count), (0.5, 0.25, 0.75, 3));
        assert_eq!(
            spread(&Some(s), |v| rate(Some(v))),
            "50.0% (25.0% – 75.0%) [3]"
        );
    }
}
