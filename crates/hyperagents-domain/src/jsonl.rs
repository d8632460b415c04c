//! JSONL task suites: one task per line,
//! `{"id": "...", "input": "...", "expected": "...", "scorer": "exact"}`.
//!
//! `scorer` is `exact` (default), `contains`, `regex`, `numeric`, `judge`,
//! or an object with options (`{"type": "numeric", "tolerance": 0.01,
//! "relative": true}`, `{"type": "contains", "max_len": 100}`,
//! `{"type": "command", "command": ["python3", "check.py"],
//! "timeout_secs": 10}` — see [`crate::scorer`]). Blank lines and lines
//! starting with `#` are skipped. Errors name the file and line. An
//! optional `"split": "test"` marks a held-out task (default `train`).
//!
//! Tasks scored by `judge` need a judge supplied with
//! [`JsonlSuite::with_judge`]; without one their scoring fails with a clear
//! error. `command` scorers run in the suite file's directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::judge::Judge;
use crate::scorer::{Scorer, ScorerSpec, ScoringContext};
use crate::{
    ActionOutcome, ActionSpec, Domain, DomainError, Environment, Score, answer_action,
    calculator_tool, record_answer, run_calculator,
};

/// One task of a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonlTask {
    pub id: String,
    pub input: String,
    /// Kept on the host side: never part of an observation.
    expected: String,
    scorer: Scorer,
    /// `train` (the default) or `test`: which split the task belongs to.
    pub split: Split,
}

impl JsonlTask {
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }
}

/// The split a task belongs to. Test tasks are for held-out scoring only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    #[default]
    Train,
    Test,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: serde_json::Value,
    input: String,
    expected: serde_json::Value,
    #[serde(default)]
    scorer: Option<ScorerSpec>,
    #[serde(default)]
    split: Split,
}

/// A suite read from a JSONL file.
#[derive(Clone)]
pub struct JsonlSuite {
    name: String,
    tasks: Vec<JsonlTask>,
    scoring: Arc<ScoringSetup>,
}

/// What episodes of a suite need to score beyond the task itself.
#[derive(Default)]
struct ScoringSetup {
    judge: Option<Arc<dyn Judge>>,
    /// The suite file's directory, where `command` scorers run.
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for JsonlSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSuite")
            .field("name", &self.name)
            .field("tasks", &self.tasks.len())
            .field("judge", &self.scoring.judge.is_some())
            .field("dir", &self.scoring.dir)
            .finish()
    }
}

impl JsonlSuite {
    /// Reads and validates a suite file; every error names `file:line`.
    pub fn load(path: &Path) -> Result<Self, DomainError> {
        let text = crate::read_task_file(path)?;
        let file = path.display().to_string();
        let name = format!(
            "jsonl:{}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.clone())
        );
        let mut suite = Self::parse(&name, &file, &text)?;
        // Absolute, so `command` scorers find their files whatever the
        // current directory is when they run.
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).map_err(|source| DomainError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        suite.scoring = Arc::new(ScoringSetup {
            judge: None,
            dir: Some(dir),
        });
        Ok(suite)
    }

    /// Parses suite text; `file` is used in error messages and its directory
    /// (if it has one) is where `command` scorers run.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<Self, DomainError> {
        let mut tasks: Vec<JsonlTask> = Vec::new();
        // A set, so a suite of many tasks is not checked in quadratic time.
        let mut ids = HashSet::new();
        let error = |line: usize, message: String| DomainError::Parse {
            file: file.to_string(),
            line,
            message,
        };
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let line: Line =
                serde_json::from_str(trimmed).map_err(|e| error(line_no, e.to_string()))?;
            let id = match line.id {
                serde_json::Value::String(s) if !s.is_empty() => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(error(
                        line_no,
                        format!("`id` must be a non-empty string or a number, got {other}"),
                    ));
                }
            };
            if !ids.insert(id.clone()) {
                return Err(error(line_no, format!("duplicate task id `{id}`")));
            }
            let expected = match line.expected {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(error(
                        line_no,
                        format!("`expected` must be a string, number or boolean, got {other}"),
                    ));
                }
            };
            let scorer = line
                .scorer
                .unwrap_or_else(|| ScorerSpec::Name("exact".into()))
                .resolve()
                .map_err(|e| error(line_no, e))?;
            scorer
                .validate(&expected)
                .map_err(|e| error(line_no, format!("task `{id}`: {e}")))?;
            tasks.push(JsonlTask {
                id,
                input: line.input,
                expected,
                scorer,
                split: line.split,
            });
        }
        if tasks.is_empty() {
            return Err(error(1, "the suite holds no tasks".into()));
        }
        let dir = Path::new(file)
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(Path::to_path_buf);
        Ok(Self {
            name: name.to_string(),
            tasks,
            scoring: Arc::new(ScoringSetup { judge: None, dir }),
        })
    }

    /// Supplies the judge for tasks scored by `judge`.
    pub fn with_judge(mut self, judge: Arc<dyn Judge>) -> Self {
        self.scoring = Arc::new(ScoringSetup {
            judge: Some(judge),
            dir: self.scoring.dir.clone(),
        });
        self
    }

    /// Whether any task is scored by a judge (so a caller can insist on one
    /// before running anything).
    pub fn needs_judge(&self) -> bool {
        self.tasks.iter().any(|t| t.scorer.needs_judge())
    }

    /// Scores `answer` to `task` as an episode would.
    pub async fn score_answer(&self, task: &str, answer: &str) -> Result<Score, DomainError> {
        let task = self.task(task)?;
        score_task(task, &self.scoring, answer).await
    }

    /// The ids of the tasks in `split`, in file order.
    pub fn split_ids(&self, split: Split) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|t| t.split == split)
            .map(|t| t.id.clone())
            .collect()
    }

    pub fn tasks(&self) -> &[JsonlTask] {
        &self.tasks
    }

    pub fn task(&self, id: &str) -> Result<&JsonlTask, DomainError> {
        self.tasks
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| DomainError::UnknownTask(id.to_string()))
    }
}

#[async_trait]
impl Domain for JsonlSuite {
    fn name(&self) -> &str {
        &self.name
    }

    fn task_ids(&self) -> Vec<String> {
        self.tasks.iter().map(|t| t.id.clone()).collect()
    }

    async fn reset(&self, task: &str, _seed: u64) -> Result<Box<dyn Environment>, DomainError> {
        let task = self.task(task)?.clone();
        Ok(Box::new(QaEnvironment {
            task,
            scoring: self.scoring.clone(),
            answer: None,
        }))
    }
}

async fn score_task(
    task: &JsonlTask,
    scoring: &ScoringSetup,
    answer: &str,
) -> Result<Score, DomainError> {
    let context = ScoringContext {
        task_id: &task.id,
        question: &task.input,
        judge: scoring.judge.as_deref(),
        working_dir: scoring.dir.as_deref(),
    };
    task.scorer.score(answer, &task.expected, &context).await
}

/// A question: observe it, answer once.
struct QaEnvironment {
    task: JsonlTask,
    scoring: Arc<ScoringSetup>,
    answer: Option<String>,
}

#[async_trait]
impl Environment for QaEnvironment {
    fn instruction(&self) -> String {
        self.task.input.clone()
    }

    async fn observe(&mut self) -> Result<String, DomainError> {
        Ok(match &self.answer {
            None => format!("Question: {}", self.task.input),
            Some(_) => "The answer has been given.".into(),
        })
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![answer_action()]
    }

    async fn act(
        &mut self,
        name: &str,
        args: &serde_json::Value,
    ) -> Result<ActionOutcome, DomainError> {
        record_answer(&mut self.answer, name, args)
    }

    fn is_done(&self) -> bool {
        self.answer.is_some()
    }

    fn tools(&self) -> Vec<ActionSpec> {
        vec![calculator_tool()]
    }

    async fn call_tool(
        &mut self,
        name: &str,
        args: &serde_json::Value,
    ) -> Result<String, DomainError> {
        match name {
            "calculator" => run_calculator(args),
            other => Err(DomainError::UnknownAction {
                name: other.to_string(),
                available: "calculator".into(),
            }),
        }
    }

    async fn score(&mut self) -> Result<Score, DomainError> {
        match &self.answer {
            None => Ok(Score {
                value: 0.0,
                success: false,
                reason: "no answer was given".into(),
            }),
            Some(answer) => score_task(&self.task, &self.scoring, answer).await,
        }
    }
}
