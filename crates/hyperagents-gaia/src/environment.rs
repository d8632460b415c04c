//! One GAIA episode: the question, the `answer` action, and the tools (calculator, read_file,
//! python, search_documents, web_search) confined to the episode's own folder.
//!
//! Tools that are not configured (no python pool, no document folder, no web provider) are left
//! out of [`Environment::tools`]; calling one anyway returns a message saying so, not an error.

use std::sync::Arc;

use async_trait::async_trait;
use hyperagents_domain::{
    ActionOutcome, ActionSpec, DomainError, Environment, Score, answer_action, calculator_tool,
    record_answer, run_calculator,
};
use hyperagents_sandbox::ScriptPool;
use serde_json::json;

use crate::files::{ToolLimits, render, truncate};
use crate::loader::GaiaTask;
use crate::search::DocumentIndex;
use crate::web::{NO_WEB_SEARCH_PROVIDER, WebSearch, render_hits};
use crate::workspace::Workspace;
use crate::{python, scorer};

/// The tools every episode of a domain shares.
pub(crate) struct Toolbox {
    pub(crate) limits: ToolLimits,
    pub(crate) python: Option<ScriptPool>,
    pub(crate) documents: Option<DocumentIndex>,
    pub(crate) web_search: Option<Arc<dyn WebSearch>>,
}

/// One episode of a GAIA task.
pub struct GaiaEnvironment {
    task: GaiaTask,
    workspace: Arc<Workspace>,
    tools: Arc<Toolbox>,
    answer: Option<String>,
}

impl GaiaEnvironment {
    pub(crate) fn new(task: GaiaTask, workspace: Workspace, tools: Arc<Toolbox>) -> Self {
        Self {
            task,
            workspace: Arc::new(workspace),
            tools,
            answer: None,
        }
    }

    /// The episode's folder on the host (holding only the attachment). Host side only.
    pub fn workspace_path(&self) -> &std::path::Path {
        self.workspace.path()
    }

    /// The task this episode runs.
    pub fn task(&self) -> &GaiaTask {
        &self.task
    }
}

impl std::fmt::Debug for GaiaEnvironment {
    // By hand so a debug print never shows the expected answer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaiaEnvironment")
            .field("task_id", &self.task.task_id)
            .field("workspace", &self.workspace.path())
            .field("answered", &self.answer.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Environment for GaiaEnvironment {
    fn instruction(&self) -> String {
        match &self.task.file_name {
            Some(name) => format!(
                "{}\n\nAttached file: `{name}` (read it with the read_file tool).",
                self.task.question
            ),
            None => self.task.question.clone(),
        }
    }

    async fn observe(&mut self) -> Result<String, DomainError> {
        Ok(match &self.answer {
            Some(_) => "The answer has been given.".into(),
            None => format!("Question: {}", self.instruction()),
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
        let mut tools = vec![calculator_tool(), read_file_tool()];
        if self.tools.python.is_some() {
            tools.push(python_tool());
        }
        if self.tools.documents.is_some() {
            tools.push(search_documents_tool());
        }
        if self.tools.web_search.is_some() {
            tools.push(web_search_tool());
        }
        tools
    }

    async fn call_tool(
        &mut self,
        name: &str,
        args: &serde_json::Value,
    ) -> Result<String, DomainError> {
        match name {
            "calculator" => run_calculator(args),
            "read_file" => self.read_file(args).await,
            "python" => self.python(args).await,
            "search_documents" => self.search_documents(args),
            "web_search" => self.web_search(args).await,
            other => Err(DomainError::UnknownAction {
                name: other.to_string(),
                available: self
                    .tools()
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    async fn score(&mut self) -> Result<Score, DomainError> {
        let Some(expected) = self.task.final_answer() else {
            return Err(DomainError::Unsupported(format!(
                "task `{}` has no public answer (GAIA's test split is scored by its \
                 leaderboard)",
                self.task.task_id
            )));
        };
        Ok(match &self.answer {
            None => Score {
                value: 0.0,
                success: false,
                reason: "no answer was given".into(),
            },
            Some(answer) => scorer::score_answer(answer, expected),
        })
    }
}

impl GaiaEnvironment {
    async fn read_file(&self, args: &serde_json::Value) -> Result<String, DomainError> {
        let path = string_arg(args, "read_file", "path")?;
        let workspace = self.workspace.clone();
        let limits = self.tools.limits.clone();
        tokio::task::spawn_blocking(move || {
            let resolved = workspace.resolve(&path)?;
            render(&resolved, &path, &limits)
        })
        .await
        .map_err(|e| DomainError::Environment(format!("read_file failed: {e}")))?
        .map_err(|message| DomainError::BadArguments {
            action: "read_file".into(),
            message,
        })
    }

    async fn python(&self, args: &serde_json::Value) -> Result<String, DomainError> {
        let code = string_arg(args, "python", "code")?;
        let Some(pool) = &self.tools.python else {
            return Ok("the python tool is not configured in this run".into());
        };
        python::run_python(pool, &code, self.workspace.clone(), &self.tools.limits).await
    }

    fn search_documents(&self, args: &serde_json::Value) -> Result<String, DomainError> {
        let query = string_arg(args, "search_documents", "query")?;
        let Some(index) = &self.tools.documents else {
            return Ok("no document folder is configured in this run".into());
        };
        let hits = index.search(&query, self.tools.limits.search_results);
        if hits.is_empty() {
            return Ok(format!("no passages match `{query}`"));
        }
        let mut out = String::new();
        for hit in hits {
            out.push_str(&format!(
                "[{} · passage {}]\n{}\n\n",
                hit.file, hit.passage, hit.text
            ));
        }
        Ok(truncate(out.trim_end(), self.tools.limits.max_chars))
    }

    async fn web_search(&self, args: &serde_json::Value) -> Result<String, DomainError> {
        let query = string_arg(args, "web_search", "query")?;
        let Some(provider) = &self.tools.web_search else {
            return Ok(NO_WEB_SEARCH_PROVIDER.into());
        };
        let hits = provider
            .search(&query, self.tools.limits.web_results)
            .await?;
        Ok(truncate(
            render_hits(&query, &hits).trim_end(),
            self.tools.limits.max_chars,
        ))
    }
}

/// `{"<key>": "..."}` or a bare string.
fn string_arg(args: &serde_json::Value, action: &str, key: &str) -> Result<String, DomainError> {
    match args {
        serde_json::Value::String(s) => Ok(s.clone()),
        other => other
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| DomainError::BadArguments {
                action: action.into(),
                message: format!("missing `{key}`"),
            }),
    }
}

fn one_string_parameter(name: &str, description: &str) -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "required": [name]
    })
}

/// The `read_file` tool's description.
pub fn read_file_tool() -> ActionSpec {
    ActionSpec {
        name: "read_file".into(),
        description: "Reads a file attached to the task: text as is, CSV/TSV and spreadsheets \
                      (xlsx, xls, ods) as tables, JSON pretty-printed, PDF and Word (docx) as \
                      text. Only the task's own files can be read."
            .into(),
        parameters: one_string_parameter("path", "the file's name, e.g. `data.csv`"),
    }
}

/// The `python` tool's description.
pub fn python_tool() -> ActionSpec {
    ActionSpec {
        name: "python".into(),
        description: "Runs Python code in a sandboxed subset of Python (modules json, re, math, \
                      collections, itertools; no third-party packages, no open()) and returns \
                      what it prints and the value of its last expression. Inside the code, \
                      `read_file(name)` returns an attached file's raw text."
            .into(),
        parameters: one_string_parameter("code", "the Python source"),
    }
}

/// The `search_documents` tool's description.
pub fn search_documents_tool() -> ActionSpec {
    ActionSpec {
        name: "search_documents".into(),
        description: "Searches the local document collection and returns the best-matching \
                      passages with their file names."
            .into(),
        parameters: one_string_parameter("query", "keywords to search for"),
    }
}

/// The `web_search` tool's description.
pub fn web_search_tool() -> ActionSpec {
    ActionSpec {
        name: "web_search".into(),
        description: "Searches the web and returns titles, addresses and snippets.".into(),
        parameters: one_string_parameter("query", "the search query"),
    }
}
