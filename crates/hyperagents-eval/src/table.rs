//! Plain-text renderings of an evaluation for terminals and logs: the
//! per-task table and the summary line.

use std::fmt::Write as _;

use hyperagents_store::{RunSummary, TaskStats};

use crate::EvalReport;

/// One row per task: episodes, successes, rate with its 95% Wilson interval,
/// and counts of unsupported and errored episodes.
pub fn task_table(tasks: &[TaskStats]) -> String {
    let width = tasks
        .iter()
        .map(|t| t.task.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>4} {:>4} {:>7}  {:<15} {:>5} {:>5}",
        "task", "eps", "ok", "rate", "95% CI", "unsup", "err"
    );
    for t in tasks {
        let rate = t
            .success_rate()
            .map(|r| format!("{:.1}%", 100.0 * r))
            .unwrap_or_else(|| "-".into());
        let ci = t
            .interval_95()
            .map(|i| format!("[{:.0}%, {:.0}%]", 100.0 * i.low, 100.0 * i.high))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<width$}  {:>4} {:>4} {:>7}  {:<15} {:>5} {:>5}",
            t.task, t.episodes, t.successes, rate, ci, t.unsupported, t.errors
        );
    }
    out
}

/// The summary: success rate with its interval, then effort.
pub fn summary_line(summary: &RunSummary, report: Option<&EvalReport>) -> String {
    let rate = match (summary.success_rate(), summary.interval_95()) {
        (Some(r), Some(i)) => format!(
            "{}/{} succeeded ({:.1}%, 95% CI {:.1}–{:.1}%)",
            summary.successes,
            summary.episodes,
            100.0 * r,
            100.0 * i.low,
            100.0 * i.high
        ),
        _ => "no scored episodes".to_string(),
    };
    let mut line = rate;
    if summary.unsupported > 0 {
        let _ = write!(line, "; {} unsupported", summary.unsupported);
    }
    if summary.errors > 0 {
        let _ = write!(line, "; {} failed to run", summary.errors);
    }
    let _ = write!(
        line,
        "; {}+{} tokens, ${:.4}",
        summary.tokens_in, summary.tokens_out, summary.cost
    );
    if summary.reused > 0 {
        let _ = write!(line, "; {} reused from the store", summary.reused);
    }
    if let Some(report) = report {
        let _ = write!(line, "; wall {:.1}s", report.wall.as_secs_f64());
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperagents_store::EvalRunId;

    #[test]
    fn table_shows_rates_intervals_and_dashes() {
        let rows = vec![
            TaskStats {
                task: "click-button".into(),
                episodes: 4,
                successes: 3,
                unsupported: 0,
                errors: 0,
                mean_score: Some(0.75),
            },
            TaskStats {
                task: "t".into(),
                episodes: 0,
                successes: 0,
                unsupported: 2,
                errors: 1,
                mean_score: None,
            },
        ];
        let text = task_table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("click-button"), "{text}");
        assert!(lines[1].contains("75.0%"), "{text}");
        assert!(lines[1].contains("[30%, 95%]"), "{text}");
        assert!(lines[2].contains(" -"), "{text}");
    }

    #[test]
    fn summary_mentions_unsupported_and_reuse() {
        let summary = RunSummary {
            run: EvalRunId(1),
            evaluations: 10,
            reused: 4,
            episodes: 8,
            successes: 2,
            unsupported: 2,
            errors: 0,
            mean_score: Some(0.25),
            tokens_in: 100,
            tokens_out: 20,
            cost: 0.0,
            duration_ms: 10,
        };
        let line = summary_line(&summary, None);
        assert!(line.starts_with("2/8 succeeded (25.0%"), "{line}");
        assert!(line.contains("2 unsupported"), "{line}");
        assert!(line.contains("4 reused"), "{line}");
    }
}
