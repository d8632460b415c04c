//! GAIA-style assistant tasks: questions with an optional attached file, answered with tools and
//! scored by GAIA's normalised exact match.
//!
//! - [`GaiaSuite`] reads a split in GAIA's layout (`metadata.jsonl` and the attachments beside
//!   it);
//! - [`GaiaDomain`] starts a [`GaiaEnvironment`] per episode: a fresh temporary folder holding
//!   only that task's attachment, the `answer` action, and the tools `calculator`, `read_file`,
//!   `python` (monty sandbox), `search_documents` (BM25 over a configured folder) and
//!   `web_search` (a pluggable [`WebSearch`] provider; none offline);
//! - [`scorer`] is GAIA's `question_scorer`, written from its published algorithm.
//!
//! Answers stay on the host: the metadata file never enters an episode's folder, tool paths are
//! confined to that folder, and a document folder holding the metadata is refused.

pub mod environment;
pub mod files;
pub mod loader;
pub mod python;
pub mod scorer;
pub mod search;
pub mod web;
mod workspace;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hyperagents_domain::{Domain, DomainError, Environment};
use hyperagents_sandbox::ScriptPool;

use crate::environment::Toolbox;
use crate::workspace::Workspace;

pub use environment::GaiaEnvironment;
pub use files::ToolLimits;
pub use loader::{GaiaSuite, GaiaTask, METADATA_FILE};
pub use python::{python_pool_config, python_tool_limits};
pub use scorer::{question_scorer, score_answer};
pub use search::{DocumentHit, DocumentIndex};
pub use web::{NO_WEB_SEARCH_PROVIDER, WebSearch, WebSearchHit};

/// What a [`GaiaDomain`]'s tools may use. Everything is optional: a default config offers the
/// calculator and `read_file` only.
#[derive(Clone, Default)]
pub struct GaiaConfig {
    /// A folder of documents for `search_documents` (indexed once, when the domain is built).
    pub documents: Option<PathBuf>,
    /// The pool the `python` tool runs code on (see [`python_pool_config`] for fitting limits).
    pub python: Option<ScriptPool>,
    /// The `web_search` provider.
    pub web_search: Option<Arc<dyn WebSearch>>,
    /// Where episode folders are made (the system temporary folder when `None`).
    pub workspace_root: Option<PathBuf>,
    pub limits: ToolLimits,
}

impl std::fmt::Debug for GaiaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaiaConfig")
            .field("documents", &self.documents)
            .field("python", &self.python.is_some())
            .field(
                "web_search",
                &self.web_search.as_ref().map(|w| w.name().to_string()),
            )
            .field("workspace_root", &self.workspace_root)
            .field("limits", &self.limits)
            .finish()
    }
}

/// A GAIA split as a [`Domain`].
pub struct GaiaDomain {
    suite: GaiaSuite,
    tools: Arc<Toolbox>,
    workspace_root: Option<PathBuf>,
}

impl std::fmt::Debug for GaiaDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaiaDomain")
            .field("suite", &self.suite.name())
            .field("tasks", &self.suite.tasks().len())
            .finish_non_exhaustive()
    }
}

impl GaiaDomain {
    /// Builds the domain; indexes the document folder if one is configured. A document folder
    /// that holds the split's metadata file is refused, since searching it would reveal answers.
    pub fn new(suite: GaiaSuite, config: GaiaConfig) -> Result<Self, DomainError> {
        let documents = match &config.documents {
            Some(folder) => {
                refuse_folder_holding(folder, suite.metadata_path())?;
                Some(DocumentIndex::build(folder, &config.limits)?)
            }
            None => None,
        };
        Ok(Self {
            suite,
            tools: Arc::new(Toolbox {
                limits: config.limits,
                python: config.python,
                documents,
                web_search: config.web_search,
            }),
            workspace_root: config.workspace_root,
        })
    }

    pub fn suite(&self) -> &GaiaSuite {
        &self.suite
    }

    /// The document index, when a folder is configured.
    pub fn documents(&self) -> Option<&DocumentIndex> {
        self.tools.documents.as_ref()
    }

    /// Starts an episode of `task_id`: a fresh folder with only its attachment copied in.
    pub fn start(&self, task_id: &str) -> Result<GaiaEnvironment, DomainError> {
        let task = self.suite.task(task_id)?.clone();
        start_episode(task, self.workspace_root.as_deref(), self.tools.clone())
    }
}

fn start_episode(
    task: GaiaTask,
    workspace_root: Option<&Path>,
    tools: Arc<Toolbox>,
) -> Result<GaiaEnvironment, DomainError> {
    let attachment = match (&task.file_name, task.attachment_path()) {
        (Some(name), Some(path)) => Some((name.as_str(), path)),
        _ => None,
    };
    let workspace = Workspace::create(workspace_root, attachment)?;
    Ok(GaiaEnvironment::new(task, workspace, tools))
}

#[async_trait]
impl Domain for GaiaDomain {
    fn name(&self) -> &str {
        self.suite.name()
    }

    fn task_ids(&self) -> Vec<String> {
        self.suite
            .tasks()
            .iter()
            .map(|t| t.task_id.clone())
            .collect()
    }

    async fn reset(&self, task: &str, _seed: u64) -> Result<Box<dyn Environment>, DomainError> {
        // Copying an attachment is file IO: keep it off the async threads.
        let task = self.suite.task(task)?.clone();
        let root = self.workspace_root.clone();
        let tools = self.tools.clone();
        let environment =
            tokio::task::spawn_blocking(move || start_episode(task, root.as_deref(), tools))
                .await
                .map_err(|e| {
                    DomainError::Environment(format!("starting the episode failed: {e}"))
                })??;
        Ok(Box::new(environment))
    }
}

fn refuse_folder_holding(folder: &Path, metadata: &Path) -> Result<(), DomainError> {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).map_err(|source| DomainError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let (folder_c, metadata_c) = (canonical(folder)?, canonical(metadata)?);
    if metadata_c.starts_with(&folder_c) {
        return Err(DomainError::Environment(format!(
            "the document folder {} holds the task metadata {}: searching it would reveal the \
             answers; point it at a folder of reference documents only",
            folder.display(),
            metadata.display()
        )));
    }
    Ok(())
}
