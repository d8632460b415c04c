//! `report.md`: one run's report as Markdown that reads on its own (tables
//! for every number) and links the SVG plots beside it.

use std::fmt::Write as _;

use hyperagents_store::NodeStatus;

use crate::escape::{code_block_text, code_fence, markdown};
use crate::format::{NONE, approx_count, cost, count, duration, points, rate};
use crate::summary::RunReport;

/// Longest cell text for ids and kinds.
const CELL_CHARS: usize = 80;
/// Longest validation error shown in the node table.
const ERROR_CHARS: usize = 160;
/// Diff lines shown inline; the whole diff is in its own file.
const DIFF_LINES: usize = 400;

/// The plot files written beside the report (file names, relative).
#[derive(Debug, Default)]
pub(crate) struct RunPlots {
    pub train: Option<String>,
    pub test: Option<String>,
    pub improvement_by_generation: Option<String>,
    pub improvement_by_meta_tokens: Option<String>,
    pub lineage: Option<String>,
}

/// What became of the best node's diff against the seed.
#[derive(Debug)]
pub(crate) enum BestDiff {
    /// No run directory was given, so there are no programs to compare.
    NoRunDir,
    /// The best node is the seed itself.
    BestIsSeed,
    /// The programs are identical.
    Empty,
    /// The diff, and the file holding all of it.
    Diff { text: String, file: String },
    /// The diff could not be computed (missing directory, unsafe id, …).
    Unavailable { reason: String },
}

pub(crate) fn render_report(report: &RunReport, plots: &RunPlots, best_diff: &BestDiff) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Evolution run {}\n", markdown(&report.run_id, 200));
    let _ = writeln!(md, "| field | value |\n|---|---|");
    let _ = writeln!(md, "| mode | {} |", report.mode.as_str());
    let _ = writeln!(md, "| run seed | {} |", report.run_seed);
    let _ = writeln!(md, "| status | {} |", report.status.as_str());
    let _ = writeln!(md, "| generations done | {} |", report.generations_done());
    let _ = writeln!(md, "| nodes | {} |", report.nodes.len());
    let _ = writeln!(md, "| wall time | {} |", duration(report.wall_ms));
    let _ = writeln!(md, "| seed train success | {} |", rate(report.seed_train));
    let _ = writeln!(md, "| seed test success | {} |", rate(report.seed_test));
    let _ = writeln!(
        md,
        "| best train success | {} ({}) |",
        rate(report.best_train()),
        markdown(&report.best_node, CELL_CHARS)
    );
    let _ = writeln!(
        md,
        "| test success of the best node | {} |",
        rate(report.final_test())
    );
    if let Some(paired) = &report.test_against_seed {
        let _ = writeln!(
            md,
            "| held out: {} against the seed on the test split | {} [{:+.1}, {:+.1}] over {} paired episodes ({} against {} succeeded) |",
            markdown(&paired.node, CELL_CHARS),
            points(Some(paired.mean)),
            paired.lower * 100.0,
            paired.upper * 100.0,
            paired.pairs,
            paired.node_successes,
            paired.seed_successes
        );
    }
    let _ = writeln!(
        md,
        "| imp@k (best so far − seed, train) | {} |",
        points(report.final_improvement())
    );
    let _ = writeln!(
        md,
        "| accepted improvements | {} of {} comparisons |",
        report.accepted_improvements, report.comparisons
    );
    let _ = writeln!(
        md,
        "| tokens per accepted improvement (meta + train episodes) | {} |",
        approx_count(report.tokens_per_accepted_improvement)
    );
    let _ = writeln!(
        md,
        "| meta tokens per accepted improvement | {} |",
        approx_count(report.meta_tokens_per_accepted_improvement)
    );
    md.push('\n');
    if !report.unreadable_events.is_empty() {
        let _ = writeln!(
            md,
            "> {} event(s) could not be read and were left out: {}.\n",
            report.unreadable_events.len(),
            markdown(&report.unreadable_events.join(", "), 400)
        );
    }

    if report.generations_done() == 0 {
        let _ = writeln!(
            md,
            "**No generation has finished yet**: there is no train curve, test curve or \
             improvement rate to show. The seed and any children made so far are listed below.\n"
        );
    } else {
        train_section(&mut md, report, plots);
        test_section(&mut md, report, plots);
        improvement_section(&mut md, report, plots);
    }

    let _ = writeln!(md, "## Lineage\n");
    if let Some(file) = &plots.lineage {
        let _ = writeln!(md, "![Lineage tree of the archive]({file})\n");
    }
    let _ = writeln!(
        md,
        "Rows are generations; edges run parent → child (green: an accepted improvement). \
         Colour is train success; grey squares are invalid attempts; the best node is ringed in \
         gold. Hover a node for its details.\n"
    );

    tokens_section(&mut md, report);
    kinds_section(&mut md, report);
    judgements_section(&mut md, report);
    best_diff_section(&mut md, report, best_diff);
    nodes_section(&mut md, report);
    md
}

fn train_section(md: &mut String, report: &RunReport, plots: &RunPlots) {
    let _ = writeln!(md, "## Success on the train split\n");
    if let Some(file) = &plots.train {
        let _ = writeln!(md, "![Train success per generation]({file})\n");
    }
    let _ = writeln!(
        md,
        "Best and mean over the valid archive after each generation; generation 0 is the seed.\n"
    );
    let _ = writeln!(
        md,
        "| gen | best | mean | best so far | best node | valid children | failed attempts | archive |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---|---:|---:|---:|");
    for point in &report.generations {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            point.generation,
            rate(Some(point.best_train)),
            rate(Some(point.mean_train)),
            rate(Some(point.best_so_far_train)),
            markdown(&point.best_node, CELL_CHARS),
            point.valid_children,
            point.failed_attempts,
            point.archive_size
        );
    }
    md.push('\n');
}

fn test_section(md: &mut String, report: &RunReport, plots: &RunPlots) {
    let _ = writeln!(md, "## Success on the test split\n");
    if let Some(file) = &plots.test {
        let _ = writeln!(
            md,
            "![Test success of the best node per generation]({file})\n"
        );
    }
    let _ = writeln!(
        md,
        "The test score of each generation's best node as chosen on train (no meta agent sees \
         these results, and nothing is selected on them).\n"
    );
    let _ = writeln!(md, "| gen | best node | test success |");
    let _ = writeln!(md, "|---:|---|---:|");
    for point in &report.generations {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            point.generation,
            markdown(&point.best_node, CELL_CHARS),
            rate(point.test_of_best)
        );
    }
    md.push('\n');
}

fn improvement_section(md: &mut String, report: &RunReport, plots: &RunPlots) {
    let _ = writeln!(md, "## Improvement rate\n");
    for (file, alt) in [
        (&plots.improvement_by_generation, "imp@k per generation"),
        (
            &plots.improvement_by_meta_tokens,
            "imp@k per cumulative meta tokens",
        ),
    ] {
        if let Some(file) = file {
            let _ = writeln!(md, "![{alt}]({file})\n");
        }
    }
    let _ = writeln!(
        md,
        "imp@k is the best train success so far minus the seed's; meta tokens are those of every \
         node made up to the generation, invalid attempts included; total tokens add the train \
         episodes (each evaluation counted once).\n"
    );
    let _ = writeln!(
        md,
        "| gen | imp@k | meta tokens (cumulative) | imp@k per M meta tokens | total tokens (cumulative) |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    for point in &report.generations {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            point.generation,
            points(point.improvement),
            count(point.meta_tokens),
            points(point.improvement_per_million_meta_tokens),
            count(point.total_tokens)
        );
    }
    md.push('\n');
}

fn tokens_section(md: &mut String, report: &RunReport) {
    let t = &report.tokens;
    let _ = writeln!(md, "## Tokens and cost per role\n");
    let _ = writeln!(md, "| role | tokens in | tokens out | tokens | cost |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        md,
        "| meta (making nodes) | {NONE} | {NONE} | {} | {} |",
        count(t.meta_tokens),
        t.meta_cost
            .map_or_else(|| "not recorded".to_owned(), |c| format!("{c:.4}"))
    );
    let _ = writeln!(
        md,
        "| task, train split (judge included) | {} | {} | {} | {} |",
        count(t.task_tokens_in),
        count(t.task_tokens_out),
        count(t.task_tokens()),
        cost(t.task_cost)
    );
    let _ = writeln!(
        md,
        "| task, test stage (judge included) | {} | {} | {} | {} |",
        count(t.test_tokens_in),
        count(t.test_tokens_out),
        count(t.test_tokens()),
        cost(t.test_cost)
    );
    let _ = writeln!(
        md,
        "| **all** | | | {} | {} |\n",
        count(t.meta_tokens + t.task_tokens() + t.test_tokens()),
        cost(t.task_cost + t.test_cost + t.meta_cost.unwrap_or(0.0))
    );
    let _ = writeln!(
        md,
        "{} distinct evaluations ({} as linked by the stages and events: reuses are counted \
         once); train episodes include smoke tests and the meta agents' quick evaluations. \
         Episodes took {} in all; the run's wall time was {}.\n",
        count(t.evaluations),
        count(t.evaluation_links),
        duration(t.episode_ms),
        duration(report.wall_ms)
    );
    if t.meta_steps_with_prompts > 0 {
        let steps = t.meta_steps_with_prompts;
        let computed = t.meta_prompt_tokens.saturating_sub(t.meta_prompt_reused);
        let _ = writeln!(
            md,
            "Meta steps' prompts: {} steps read {} prompt tokens; {} ({:.0}%) were reused from \
             the meta model's cache and {} computed, {} per step.\n",
            count(steps),
            count(t.meta_prompt_tokens),
            count(t.meta_prompt_reused),
            100.0 * t.meta_prompt_reused as f64 / t.meta_prompt_tokens.max(1) as f64,
            count(computed),
            count(computed / steps)
        );
    }
}

fn kinds_section(md: &mut String, report: &RunReport) {
    let _ = writeln!(md, "## What each kind of change did\n");
    let _ = writeln!(
        md,
        "Valid children whose diff had the kind (a diff may have several); the mean of child − \
         parent train success on the same stage (full when the child reached it, else stage 1); \
         and the accepted improvements among them.\n"
    );
    let _ = writeln!(
        md,
        "| kind | valid children | scored | mean Δ vs parent | accepted |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for effect in &report.kind_effects {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            effect.kind.as_str(),
            effect.valid_children,
            effect.scored_children,
            points(effect.mean_delta),
            effect.accepted
        );
    }
    md.push('\n');
}

fn best_diff_section(md: &mut String, report: &RunReport, best_diff: &BestDiff) {
    let _ = writeln!(
        md,
        "## The best node ({}) against the seed\n",
        markdown(&report.best_node, CELL_CHARS)
    );
    match best_diff {
        BestDiff::NoRunDir => {
            let _ = writeln!(
                md,
                "No run directory was given, so the programs could not be compared.\n"
            );
        }
        BestDiff::BestIsSeed => {
            let _ = writeln!(
                md,
                "The best node is the seed: there is nothing to compare.\n"
            );
        }
        BestDiff::Empty => {
            let _ = writeln!(md, "The best node's files are identical to the seed's.\n");
        }
        BestDiff::Unavailable { reason } => {
            let _ = writeln!(
                md,
                "The diff could not be computed: {}\n",
                markdown(reason, 400)
            );
        }
        BestDiff::Diff { text, file } => {
            let lines: Vec<&str> = text.lines().collect();
            let shown = lines
                .iter()
                .take(DIFF_LINES)
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
            let shown = code_block_text(&shown);
            let fence = code_fence(&shown);
            let _ = writeln!(md, "The whole diff is in [{file}]({file}).\n");
            let _ = writeln!(md, "{fence}diff\n{shown}\n{fence}\n");
            if lines.len() > DIFF_LINES {
                let _ = writeln!(
                    md,
                    "({} more lines in the file.)\n",
                    lines.len() - DIFF_LINES
                );
            }
        }
    }
}

/// Where people's judgements changed the fitness a generation drew its
/// parents by: that fitness beside the node's automated train score.
fn judgements_section(md: &mut String, report: &RunReport) {
    if report.fitness_draws.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## People's judgements in parent selection
"
    );
    let _ = writeln!(
        md,
        "Fitness is the automated train score unless people judged a node's episodes (a success \
         rated bad counts as a failure; preferences move it): where they did, each generation's \
         parents were drawn by this fitness.\n"
    );
    let _ = writeln!(md, "| generation | node | automated (train) | fitness |");
    let _ = writeln!(md, "|---:|---|---:|---:|");
    for (generation, nodes) in &report.fitness_draws {
        for (node, fitness) in nodes {
            let automated = report
                .nodes
                .iter()
                .find(|n| n.node_id == *node)
                .and_then(|n| n.train_score());
            let _ = writeln!(
                md,
                "| {generation} | {} | {} | {} |",
                markdown(node, CELL_CHARS),
                rate(automated),
                rate(Some(*fitness))
            );
        }
    }
    let _ = writeln!(md);
}

fn nodes_section(md: &mut String, report: &RunReport) {
    let _ = writeln!(md, "## Nodes\n");
    let _ = writeln!(
        md,
        "| node | parent | gen | kinds | status | stage1 | full | test | vs parent | meta tokens | errors |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---|---:|---:|---:|---:|---:|---|");
    for node in &report.nodes {
        let kinds: Vec<&str> = node.diff_kinds.iter().map(|k| k.as_str()).collect();
        let comparison = node.comparison.as_ref().map_or_else(
            || NONE.to_owned(),
            |c| {
                format!(
                    "{}{}",
                    points(Some(c.mean_difference)),
                    if c.accepted { " ✓" } else { "" }
                )
            },
        );
        let errors = if node.status == NodeStatus::Valid || node.errors.is_empty() {
            String::new()
        } else {
            markdown(&node.errors.join("; "), ERROR_CHARS)
        };
        let best = if node.node_id == report.best_node {
            " (best)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {}{best} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            markdown(&node.node_id, CELL_CHARS),
            node.parent_id
                .as_deref()
                .map_or_else(|| NONE.to_owned(), |p| markdown(p, CELL_CHARS)),
            node.generation,
            if kinds.is_empty() {
                NONE.to_owned()
            } else {
                kinds.join(", ")
            },
            node.status.as_str(),
            rate(node.stage1),
            rate(node.full),
            rate(node.test),
            comparison,
            count(node.meta_tokens),
            errors
        );
    }
    md.push('\n');
}
