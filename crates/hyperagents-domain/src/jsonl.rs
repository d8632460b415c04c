//! JSONL task suites: one task per line,
//! `{"id": "...", "input": "...", "expected": "...", "scorer": "exact"}`.
//!
//! `scorer` is `exact` (default), `contains`, `regex`, `numeric`, or an
//! object with options (`{"type": "numeric", "tolerance": 0.01,
//! "relative": true}`, `{"type": "contains", "max_len": 100}`). Blank lines
//! and lines starting with `#` are skipped. Errors name the file and line.

use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

use crate::scorer::{Scorer, ScorerSpec};
use crate::{
    ActionOutcome, ActionSpec, Domain, DomainError, Environment, Score, answer_action,
    calculator_tool, run_calculator,
};

/// One task of a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonlTask {
    pub id: String,
    pub input: String,
    /// Kept on the host side: never part of an observation.
    expected: String,
    scorer: Scorer,
}

impl JsonlTask {
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: serde_json::Value,
    input: String,
    expected: serde_json::Value,
    #[serde(default)]
    scorer: Option<ScorerSpec>,
}

/// A suite read from a JSONL file.
#[derive(Debug, Clone)]
pub struct JsonlSuite {
    name: String,
    tasks: Vec<JsonlTask>,
}

impl JsonlSuite {
    /// Reads and validates a suite file; every error names `file:line`.
    pub fn load(path: &Path) -> Result<Self, DomainError> {
        let text = fs_err::read_to_string(path).map_err(|source| DomainError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let file = path.display().to_string();
        let name = format!(
            "jsonl:{}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.clone())
        );
        Self::parse(&name, &file, &text)
    }

    /// Parses suite text; `file` is used in error messages.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<Self, DomainError> {
        let mut tasks: Vec<JsonlTask> = Vec::new();
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
            if tasks.iter().any(|t| t.id == id) {
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
            });
        }
        if tasks.is_empty() {
            return Err(error(1, "the suite holds no tasks".into()));
        }
        Ok(Self {
            name: name.to_string(),
            tasks,
        })
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
        Ok(Box::new(QaEnvironment { task, answer: None }))
    }
}

/// A question: observe it, answer once.
struct QaEnvironment {
    task: JsonlTask,
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
        if name != "answer" {
            return Err(DomainError::UnknownAction {
                name: name.to_string(),
                available: "answer".into(),
            });
        }
        if self.answer.is_some() {
            return Err(DomainError::EpisodeOver);
        }
        let text = match args {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(map) => match map.get("text") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => {
                    return Err(DomainError::BadArguments {
                        action: "answer".into(),
                        message: "missing `text`".into(),
                    });
                }
            },
            other => other.to_string(),
        };
        self.answer = Some(text);
        Ok(ActionOutcome {
            message: "answer recorded".into(),
            done: true,
        })
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
        Ok(match &self.answer {
            None => Score {
                value: 0.0,
                success: false,
                reason: "no answer was given".into(),
            },
            Some(answer) => self.task.scorer.score(answer, &self.task.expected),
        })
    }
}
