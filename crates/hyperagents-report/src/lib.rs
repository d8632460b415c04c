//! Human reports of evolution runs, read from the results store.
//!
//! - [`run_summary`] computes one run's numbers ([`RunReport`]): train
//!   success per generation, the test score of each generation's best node,
//!   imp@k per generation and per million meta tokens, tokens and cost per
//!   role (each evaluation counted once however often it was reused), what
//!   each kind of diff did for the children that had it, and one row per
//!   node.
//! - [`write_report`] writes `report.md` and its SVG plots (train, test,
//!   improvement rates, the lineage tree), plus `best.diff`, the best node's
//!   diff against the seed, when the run directory is given.
//! - [`compare_summary`] and [`write_comparison`] overlay several runs
//!   (`compare.md` with a row per run and an aggregate per mode, and plots
//!   against generations and against tokens spent).
//!
//! Everything from the store (run and node ids, validation errors, diffs) is
//! untrusted text and is escaped for Markdown or XML where it is written.
//! Line charts come from plotters' SVG backend (no font library: SVG text is
//! left to the viewer); the lineage tree is written by hand.

mod compare;
mod error;
mod escape;
mod format;
mod lineage;
mod markdown;
mod plots;
mod summary;

use std::path::{Path, PathBuf};

use hyperagents_program::{ChildProgram, EditLimits};
use hyperagents_store::ResultsStore;

pub use compare::{ModeAggregate, RunComparison, Spread, compare_summary};
pub use error::ReportError;
pub use escape::xml as escape_markup;
pub use summary::{
    ALL_KINDS, Comparison, EpisodeOutcomes, FULL, GenerationPoint, KindEffect, NodeSummary,
    PairedTest, RunReport, STAGE1, TEST, TokenUsage, run_summary,
};

use crate::markdown::{BestDiff, RunPlots};
use crate::plots::{BEST_COLOR, LineChart, MEAN_COLOR, Series, TEST_COLOR, XAxis, YAxis};

/// The report's name in its directory.
pub const REPORT_FILE: &str = "report.md";
/// The comparison's name in its directory.
pub const COMPARISON_FILE: &str = "compare.md";
/// The best node's whole diff against the seed.
pub const BEST_DIFF_FILE: &str = "best.diff";

/// What a report wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md` or `compare.md`.
    pub markdown: PathBuf,
    /// The SVG plots it links, in the order it links them.
    pub plots: Vec<PathBuf>,
    /// Other files it links (`best.diff`).
    pub others: Vec<PathBuf>,
}

/// Writes run `run_id`'s report into `out_dir` (created if needed):
/// `report.md`, its SVG plots and, when `run_dir` (the run's directory,
/// holding `nodes/<node>/`) is given, `best.diff`. A run with no finished
/// generation gets a report that says so.
pub fn write_report(
    store: &ResultsStore,
    run_id: &str,
    run_dir: Option<&Path>,
    out_dir: &Path,
) -> Result<ReportFiles, ReportError> {
    let report = run_summary(store, run_id)?;
    if let Some(dir) = run_dir
        && !dir.is_dir()
    {
        return Err(ReportError::MissingRunDir {
            run: run_id.to_owned(),
            path: dir.to_path_buf(),
        });
    }
    create_dir(out_dir)?;
    let mut files = ReportFiles {
        markdown: out_dir.join(REPORT_FILE),
        plots: Vec::new(),
        others: Vec::new(),
    };
    let mut plots = RunPlots::default();
    if report.generations_done() > 0 {
        for (slot, name, chart) in run_charts(&report) {
            if chart.series.iter().all(|s| s.points.is_empty()) {
                continue;
            }
            *slot(&mut plots) = Some(name.to_owned());
            files.plots.push(write_chart(out_dir, name, &chart)?);
        }
    }
    let lineage = out_dir.join("lineage.svg");
    write_file(&lineage, &lineage::lineage_svg(&report))?;
    plots.lineage = Some("lineage.svg".to_owned());
    files.plots.push(lineage);

    let best_diff = best_diff(&report, run_dir);
    if let BestDiff::Diff { text, file } = &best_diff {
        let path = out_dir.join(file);
        write_file(&path, text)?;
        files.others.push(path);
    }
    write_file(
        &files.markdown,
        &markdown::render_report(&report, &plots, &best_diff),
    )?;
    Ok(files)
}

/// A run's charts as SVG text, by file name (`train.svg`, …), for pages that
/// embed them (the dashboard); the same charts [`write_report`] writes.
/// Charts with no point yet are left out.
pub fn run_chart_svgs(report: &RunReport) -> Result<Vec<(String, String)>, ReportError> {
    if report.generations_done() == 0 {
        return Ok(Vec::new());
    }
    charts_as_svg(
        run_charts(report)
            .into_iter()
            .map(|(_, name, chart)| (name, chart)),
    )
}

/// Each chart with a point as `(file name, SVG text)`.
fn charts_as_svg<'a>(
    charts: impl IntoIterator<Item = (&'static str, LineChart<'a>)>,
) -> Result<Vec<(String, String)>, ReportError> {
    let mut out = Vec::new();
    for (name, chart) in charts {
        if chart.series.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        let svg = plots::line_chart_svg(&chart).map_err(|message| ReportError::Plot {
            path: PathBuf::from(name),
            message,
        })?;
        out.push((name.to_owned(), svg));
    }
    Ok(out)
}

/// A comparison's overlay charts as SVG text, by file name, for pages that
/// embed them; the same charts [`write_comparison`] writes.
pub fn comparison_chart_svgs(
    comparison: &RunComparison,
) -> Result<Vec<(String, String)>, ReportError> {
    charts_as_svg(compare::comparison_charts(comparison))
}

/// The run's lineage tree as SVG text (every text escaped).
pub fn run_lineage_svg(report: &RunReport) -> String {
    lineage::lineage_svg(report)
}

/// Writes the comparison of `run_ids` into `out_dir` (created if needed):
/// `compare.md` and three overlay plots.
pub fn write_comparison(
    store: &ResultsStore,
    run_ids: &[String],
    out_dir: &Path,
) -> Result<ReportFiles, ReportError> {
    let comparison = compare_summary(store, run_ids)?;
    create_dir(out_dir)?;
    let mut files = ReportFiles {
        markdown: out_dir.join(COMPARISON_FILE),
        plots: Vec::new(),
        others: Vec::new(),
    };
    let mut linked = Vec::new();
    for (name, chart) in compare::comparison_charts(&comparison) {
        if chart.series.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        files.plots.push(write_chart(out_dir, name, &chart)?);
        linked.push(name);
    }
    write_file(
        &files.markdown,
        &compare::render_comparison(&comparison, &linked),
    )?;
    Ok(files)
}

type PlotSlot = fn(&mut RunPlots) -> &mut Option<String>;

/// The line charts of one run: where the report links each, its file name
/// and the chart.
fn run_charts(report: &RunReport) -> Vec<(PlotSlot, &'static str, LineChart<'static>)> {
    let by_generation = |value: &dyn Fn(&GenerationPoint) -> Option<f64>| {
        report
            .generations
            .iter()
            .filter_map(|p| value(p).map(|v| (p.generation as f64, v)))
            .collect::<Vec<_>>()
    };
    vec![
        (
            |p| &mut p.train,
            "train.svg",
            LineChart {
                title: "Train success per generation",
                x_desc: "generation",
                y_desc: "train success",
                x_axis: XAxis::Generation,
                y_axis: YAxis::Rate,
                series: vec![
                    Series {
                        label: "best of the archive".into(),
                        color: BEST_COLOR,
                        points: by_generation(&|p| Some(p.best_train)),
                    },
                    Series {
                        label: "mean of the archive".into(),
                        color: MEAN_COLOR,
                        points: by_generation(&|p| Some(p.mean_train)),
                    },
                ],
            },
        ),
        (
            |p| &mut p.test,
            "test.svg",
            LineChart {
                title: "Test success of the best node (chosen on train)",
                x_desc: "generation",
                y_desc: "test success",
                x_axis: XAxis::Generation,
                y_axis: YAxis::Rate,
                series: vec![Series {
                    label: "best node on test".into(),
                    color: TEST_COLOR,
                    points: by_generation(&|p| p.test_of_best),
                }],
            },
        ),
        (
            |p| &mut p.improvement_by_generation,
            "improvement_by_generation.svg",
            LineChart {
                title: "imp@k: best so far minus the seed (train)",
                x_desc: "generation",
                y_desc: "imp@k",
                x_axis: XAxis::Generation,
                y_axis: YAxis::Points,
                series: vec![Series {
                    label: "imp@k".into(),
                    color: BEST_COLOR,
                    points: by_generation(&|p| p.improvement),
                }],
            },
        ),
        (
            |p| &mut p.improvement_by_meta_tokens,
            "improvement_by_meta_tokens.svg",
            LineChart {
                title: "imp@k per cumulative meta tokens",
                x_desc: "meta tokens spent (cumulative)",
                y_desc: "imp@k",
                x_axis: XAxis::Tokens,
                y_axis: YAxis::Points,
                series: vec![Series {
                    label: "imp@k".into(),
                    color: BEST_COLOR,
                    points: improvement_by_meta_tokens(report),
                }],
            },
        ),
    ]
}

/// imp@k against cumulative meta tokens; empty while no meta tokens were
/// spent (a `none` run has no such curve).
fn improvement_by_meta_tokens(report: &RunReport) -> Vec<(f64, f64)> {
    if report.generations.iter().all(|p| p.meta_tokens == 0) {
        return Vec::new();
    }
    report
        .generations
        .iter()
        .filter(|p| p.generation == 0 || p.meta_tokens > 0)
        .filter_map(|p| p.improvement.map(|imp| (p.meta_tokens as f64, imp)))
        .collect()
}

/// The best node's diff against the seed, from their program directories.
fn best_diff(report: &RunReport, run_dir: Option<&Path>) -> BestDiff {
    let Some(run_dir) = run_dir else {
        return BestDiff::NoRunDir;
    };
    let Some(seed) = report.seed_node() else {
        return BestDiff::Unavailable {
            reason: "the run has no seed node".to_owned(),
        };
    };
    if report.best_node == seed.node_id {
        return BestDiff::BestIsSeed;
    }
    for id in [&report.best_node, &seed.node_id] {
        if !escape::is_safe_component(id) {
            return BestDiff::Unavailable {
                reason: format!("node id {id:?} cannot name a directory"),
            };
        }
    }
    let nodes = run_dir.join("nodes");
    let best_dir = nodes.join(&report.best_node);
    let seed_dir = nodes.join(&seed.node_id);
    let diff = ChildProgram::open(&best_dir, EditLimits::default())
        .and_then(|best| best.diff_against(&seed_dir));
    match diff {
        Ok(diff) if diff.is_empty() => BestDiff::Empty,
        Ok(diff) => BestDiff::Diff {
            text: diff.unified(),
            file: BEST_DIFF_FILE.to_owned(),
        },
        Err(error) => {
            tracing::warn!(best = %best_dir.display(), seed = %seed_dir.display(), %error, "cannot diff the best node");
            BestDiff::Unavailable {
                reason: format!(
                    "comparing {} with {}: {error}",
                    best_dir.display(),
                    seed_dir.display()
                ),
            }
        }
    }
}

fn write_chart(out_dir: &Path, name: &str, chart: &LineChart<'_>) -> Result<PathBuf, ReportError> {
    let path = out_dir.join(name);
    let svg = plots::line_chart_svg(chart).map_err(|message| ReportError::Plot {
        path: path.clone(),
        message,
    })?;
    write_file(&path, &svg)?;
    Ok(path)
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, content: &str) -> Result<(), ReportError> {
    std::fs::write(path, content).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
