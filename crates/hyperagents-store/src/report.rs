//! Reports over stored evaluations: per-task aggregates and run summaries,
//! Wilson score intervals for success rates, and a JSONL export.
//!
//! Success rates count only scored (`ok`) evaluations: `unsupported` and
//! `error` evaluations are reported beside them, never as failures, so a
//! missing site or a crashed worker does not read as a weak agent.

use std::io::Write;
use std::path::Path;

use rusqlite::params;
use serde::Serialize;

use crate::{EvalRunId, ResultsStore, StoreError};

/// z for a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A confidence interval for a proportion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The Wilson score interval for `successes` out of `trials` at normal
/// quantile `z`; `None` when there are no trials. Unlike the normal
/// approximation it stays inside [0, 1] and is honest for small samples and
/// rates near 0 or 1.
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> Option<Interval> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Some(Interval {
        low: (center - half).max(0.0),
        high: (center + half).min(1.0),
    })
}

/// The 95% Wilson score interval.
pub fn wilson_95(successes: u64, trials: u64) -> Option<Interval> {
    wilson_interval(successes, trials, Z_95)
}

/// How one task went in a run (over its seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStats {
    pub task: String,
    /// Scored evaluations (`ok`).
    pub episodes: u64,
    pub successes: u64,
    pub unsupported: u64,
    pub errors: u64,
    /// Mean score of the scored evaluations.
    pub mean_score: Option<f64>,
}

impl TaskStats {
    pub fn success_rate(&self) -> Option<f64> {
        rate(self.successes, self.episodes)
    }

    pub fn interval_95(&self) -> Option<Interval> {
        wilson_95(self.successes, self.episodes)
    }
}

/// How a whole run went.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run: EvalRunId,
    /// Every evaluation the run used.
    pub evaluations: u64,
    /// Of those, the ones found in the store instead of computed.
    pub reused: u64,
    /// Scored evaluations (`ok`).
    pub episodes: u64,
    pub successes: u64,
    pub unsupported: u64,
    pub errors: u64,
    pub mean_score: Option<f64>,
    /// Totals over all the run's evaluations, as recorded when each was
    /// computed (a reused evaluation cost this run nothing).
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost: f64,
    pub duration_ms: u64,
}

impl RunSummary {
    pub fn success_rate(&self) -> Option<f64> {
        rate(self.successes, self.episodes)
    }

    pub fn interval_95(&self) -> Option<Interval> {
        wilson_95(self.successes, self.episodes)
    }
}

/// The aggregate columns shared by the task and run queries, over
/// `eval_run_members m JOIN evaluations e`.
const AGGREGATES: &str = "COUNT(*), \
     TOTAL(e.status = 'ok'), \
     TOTAL(e.status = 'ok' AND e.success), \
     TOTAL(e.status = 'unsupported'), \
     TOTAL(e.status = 'error'), \
     AVG(CASE WHEN e.status = 'ok' THEN e.score END), \
     TOTAL(e.tokens_in), TOTAL(e.tokens_out), TOTAL(e.cost), TOTAL(e.duration_ms), \
     TOTAL(NOT m.computed)";

struct Aggregates {
    evaluations: u64,
    episodes: u64,
    successes: u64,
    unsupported: u64,
    errors: u64,
    mean_score: Option<f64>,
    tokens_in: u64,
    tokens_out: u64,
    cost: f64,
    duration_ms: u64,
    reused: u64,
}

impl Aggregates {
    /// Reads the [`AGGREGATES`] columns starting at `first`.
    fn read(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
        // TOTAL() is always a float; the sums here are exact integers.
        let count = |i: usize| -> rusqlite::Result<u64> {
            Ok(row.get::<_, f64>(first + i)?.max(0.0) as u64)
        };
        Ok(Self {
            evaluations: u64::try_from(row.get::<_, i64>(first)?).unwrap_or(0),
            episodes: count(1)?,
            successes: count(2)?,
            unsupported: count(3)?,
            errors: count(4)?,
            mean_score: row.get(first + 5)?,
            tokens_in: count(6)?,
            tokens_out: count(7)?,
            cost: row.get(first + 8)?,
            duration_ms: count(9)?,
            reused: count(10)?,
        })
    }
}

/// One line of [`ResultsStore::export_jsonl`].
#[derive(Serialize)]
struct ExportLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    run: i64,
    key_hash: &'a str,
    key: serde_json::Value,
    status: &'static str,
    success: bool,
    score: f64,
    reason: &'a str,
    tokens_in: u64,
    tokens_out: u64,
    cost: f64,
    duration_ms: u64,
    trajectory: Option<String>,
    finished_at_ms: i64,
    reused: bool,
}

impl ResultsStore {
    /// Successes over scored episodes for each task of `run`, by task id.
    pub fn task_stats(&self, run: EvalRunId) -> Result<Vec<TaskStats>, StoreError> {
        self.ensure_run(run)?;
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT e.task, {AGGREGATES} FROM eval_run_members m \
                 JOIN evaluations e ON e.key_hash = m.key_hash \
                 WHERE m.run_id = ?1 GROUP BY e.task ORDER BY e.task"
            ))
            .map_err(|source| self.sqlite_error("aggregating tasks", source))?;
        statement
            .query_map(params![run.0], |row| {
                let a = Aggregates::read(row, 1)?;
                Ok(TaskStats {
                    task: row.get(0)?,
                    episodes: a.episodes,
                    successes: a.successes,
                    unsupported: a.unsupported,
                    errors: a.errors,
                    mean_score: a.mean_score,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|source| self.sqlite_error("aggregating tasks", source))
    }

    /// Per-task results of every stage linked to every node of the
    /// evolution run `run`, by (node, stage), in one query: what
    /// [`ResultsStore::node_task_stats`] gives for one node, for the whole
    /// archive (a stage linked to an evaluation with no results yet maps to
    /// an empty list). Choosing parents reads the archive this way, so it
    /// costs one query, not three per node.
    pub fn archive_task_stats(
        &self,
        run: &str,
    ) -> Result<std::collections::BTreeMap<(String, String), Vec<TaskStats>>, StoreError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT ne.node_id, ne.stage, e.task, {AGGREGATES} FROM node_evaluations ne \
                 LEFT JOIN eval_run_members m ON m.run_id = ne.eval_run_id \
                 LEFT JOIN evaluations e ON e.key_hash = m.key_hash \
                 WHERE ne.run_id = ?1 GROUP BY ne.node_id, ne.stage, e.task \
                 ORDER BY ne.node_id, ne.stage, e.task"
            ))
            .map_err(|source| self.sqlite_error("aggregating the archive's tasks", source))?;
        let rows = statement
            .query_map(params![run], |row| {
                let node: String = row.get(0)?;
                let stage: String = row.get(1)?;
                let task: Option<String> = row.get(2)?;
                let a = Aggregates::read(row, 3)?;
                Ok((
                    (node, stage),
                    task.map(|task| TaskStats {
                        task,
                        episodes: a.episodes,
                        successes: a.successes,
                        unsupported: a.unsupported,
                        errors: a.errors,
                        mean_score: a.mean_score,
                    }),
                ))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(|source| self.sqlite_error("aggregating the archive's tasks", source))?;
        let mut stats: std::collections::BTreeMap<(String, String), Vec<TaskStats>> =
            std::collections::BTreeMap::new();
        for (place, task) in rows {
            let tasks = stats.entry(place).or_default();
            tasks.extend(task);
        }
        Ok(stats)
    }

    /// The totals of `run`.
    pub fn run_summary(&self, run: EvalRunId) -> Result<RunSummary, StoreError> {
        self.ensure_run(run)?;
        let a = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {AGGREGATES} FROM eval_run_members m \
                     JOIN evaluations e ON e.key_hash = m.key_hash WHERE m.run_id = ?1"
                ),
                params![run.0],
                |row| Aggregates::read(row, 0),
            )
            .map_err(|source| self.sqlite_error("summarising a run", source))?;
        Ok(RunSummary {
            run,
            evaluations: a.evaluations,
            reused: a.reused,
            episodes: a.episodes,
            successes: a.successes,
            unsupported: a.unsupported,
            errors: a.errors,
            mean_score: a.mean_score,
            tokens_in: a.tokens_in,
            tokens_out: a.tokens_out,
            cost: a.cost,
            duration_ms: a.duration_ms,
        })
    }

    /// Appends `run`'s evaluations to `path` as JSONL (one
    /// `{"type":"evaluation",…}` object per line, ordered by task and seed),
    /// creating the file and its directory if needed; never rewrites what
    /// is there. Returns the number of lines written.
    pub fn export_jsonl(&self, run: EvalRunId, path: &Path) -> Result<u64, StoreError> {
        let members = self.run_members(run)?;
        let mut text = String::new();
        for (record, computed) in &members {
            let line = ExportLine {
                kind: "evaluation",
                run: run.0,
                key_hash: record.key_hash.as_str(),
                key: record.key.to_value(),
                status: record.result.status.as_str(),
                success: record.result.success,
                score: record.result.score,
                reason: &record.result.reason,
                tokens_in: record.result.tokens_in,
                tokens_out: record.result.tokens_out,
                cost: record.result.cost,
                duration_ms: record.result.duration_ms,
                trajectory: record
                    .result
                    .trajectory
                    .as_ref()
                    .map(|p| p.display().to_string()),
                finished_at_ms: record.result.finished_at_ms,
                reused: !computed,
            };
            // Plain data with string keys: serialization cannot fail.
            if let Ok(json) = serde_json::to_string(&line) {
                text.push_str(&json);
                text.push('\n');
            }
        }
        let export_error = |source| StoreError::Export {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(export_error)?;
        }
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(export_error)?;
        // One write: a reader never sees this export's lines interleaved
        // with another writer's.
        file.write_all(text.as_bytes()).map_err(export_error)?;
        file.flush().map_err(export_error)?;
        Ok(members.len() as u64)
    }

    fn ensure_run(&self, run: EvalRunId) -> Result<(), StoreError> {
        match self.run(run)? {
            Some(_) => Ok(()),
            None => Err(self.unknown_run(run)),
        }
    }
}

fn rate(successes: u64, trials: u64) -> Option<f64> {
    (trials > 0).then(|| successes as f64 / trials as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 5e-5,
            "{actual} is not {expected}"
        );
    }

    /// Reference values from the closed form, computed independently in
    /// Python to four places (8/10 → [0.490, 0.943] is the textbook case).
    #[test]
    fn wilson_interval_matches_known_values() {
        let cases = [
            (8, 10, 0.4902, 0.9433),
            (0, 10, 0.0, 0.2775),
            (10, 10, 0.7225, 1.0),
            (50, 100, 0.4038, 0.5962),
            (1, 2, 0.0945, 0.9055),
            (81, 263, 0.2553, 0.3662),
        ];
        for (successes, trials, low, high) in cases {
            let interval = wilson_95(successes, trials).expect("trials > 0");
            close(interval.low, low);
            close(interval.high, high);
        }
        assert_eq!(wilson_95(0, 0), None);
    }

    #[test]
    fn wilson_interval_narrows_with_more_trials_and_contains_the_rate() {
        let small = wilson_95(7, 10).expect("trials");
        let large = wilson_95(700, 1000).expect("trials");
        assert!(large.high - large.low < small.high - small.low);
        assert!(large.low < 0.7 && 0.7 < large.high);
        let z1 = wilson_interval(7, 10, 1.0).expect("trials");
        assert!(z1.high - z1.low < small.high - small.low);
    }
}
