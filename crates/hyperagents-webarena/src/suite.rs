//! Loading a task file and resolving tasks against the user's sites.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyperagents_domain::DomainError;
use serde::de::DeserializeOwned;

use crate::helpers;
use crate::site::{SiteConfig, missing_site, origin_of};
use crate::task::{
    Dataset, ProgramHtmlCheck, RawOriginalTask, RawVerifiedTask, TaskEval, WebArenaTask,
};

/// The tasks of one published file, with the sites they may use.
#[derive(Debug, Clone)]
pub struct WebArenaSuite {
    dataset: Dataset,
    file: PathBuf,
    tasks: Vec<Arc<WebArenaTask>>,
    by_id: HashMap<u32, usize>,
    sites: Arc<SiteConfig>,
}

impl WebArenaSuite {
    /// Loads `dataset` from `dir`: the package's `assets/dataset` directory,
    /// or the unpacked package root holding `webarena_verified/assets/dataset`.
    pub fn load(dir: &Path, dataset: Dataset, sites: SiteConfig) -> Result<Self, DomainError> {
        let nested = dir.join("webarena_verified/assets/dataset");
        let dir = if nested.is_dir() {
            nested
        } else {
            dir.to_path_buf()
        };
        Self::from_file(&dir.join(dataset.file_name()), dataset, sites)
    }

    /// Loads a task file in `dataset`'s format from `path`.
    pub fn from_file(
        path: &Path,
        dataset: Dataset,
        sites: SiteConfig,
    ) -> Result<Self, DomainError> {
        let tasks = load_tasks(path, dataset)?;
        let mut by_id = HashMap::new();
        for (index, task) in tasks.iter().enumerate() {
            if by_id.insert(task.id, index).is_some() {
                return Err(DomainError::Parse {
                    file: path.display().to_string(),
                    line: 0,
                    message: format!("task at index {index}: duplicate task_id {}", task.id),
                });
            }
        }
        Ok(Self {
            dataset,
            file: path.to_path_buf(),
            tasks: tasks.into_iter().map(Arc::new).collect(),
            by_id,
            sites: Arc::new(sites),
        })
    }

    pub fn dataset(&self) -> Dataset {
        self.dataset
    }

    /// The file the tasks came from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every task, templated, in file order.
    pub fn tasks(&self) -> &[Arc<WebArenaTask>] {
        &self.tasks
    }

    /// Task ids as strings, in file order.
    pub fn task_ids(&self) -> Vec<String> {
        self.tasks.iter().map(|task| task.id.to_string()).collect()
    }

    pub fn sites(&self) -> &SiteConfig {
        &self.sites
    }

    /// The task `id` with its URLs filled in. [`DomainError::UnknownTask`]
    /// for an id not in the file; [`DomainError::Unsupported`] naming the
    /// site when one it needs is not configured.
    pub fn task(&self, id: u32) -> Result<ResolvedTask, DomainError> {
        let index = self
            .by_id
            .get(&id)
            .ok_or_else(|| DomainError::UnknownTask(id.to_string()))?;
        ResolvedTask::resolve(self.tasks[*index].clone(), self.sites.clone())
    }

    /// How many tasks use each `func:` helper (tasks, not occurrences).
    pub fn func_helper_usage(&self) -> BTreeMap<String, usize> {
        helpers::usage(&self.tasks)
    }

    /// The `func:` helpers this crate does not implement, with how many
    /// tasks use each; those tasks evaluate to [`DomainError::Unsupported`].
    pub fn unsupported_func_helpers(&self) -> BTreeMap<String, usize> {
        self.func_helper_usage()
            .into_iter()
            .filter(|(name, _)| !helpers::IMPLEMENTED.contains(&name.as_str()))
            .collect()
    }
}

/// A task whose placeholders are filled with the configured base URLs.
#[derive(Debug, Clone)]
pub struct ResolvedTask {
    task: Arc<WebArenaTask>,
    sites: Arc<SiteConfig>,
    start_urls: Vec<String>,
    pub(crate) reference_url: Option<String>,
    pub(crate) program_html: Vec<ProgramHtmlCheck>,
}

impl ResolvedTask {
    fn resolve(task: Arc<WebArenaTask>, sites: Arc<SiteConfig>) -> Result<Self, DomainError> {
        for site in &task.sites {
            if sites.base_url(*site).is_none() {
                return Err(missing_site(*site));
            }
        }
        let start_urls = task
            .start_urls
            .iter()
            .map(|url| sites.fill(url))
            .collect::<Result<Vec<_>, _>>()?;
        let (reference_url, program_html) = match &task.eval {
            TaskEval::Original(eval) => (
                eval.reference_url
                    .as_deref()
                    .map(|url| sites.fill(url))
                    .transpose()?,
                eval.program_html
                    .iter()
                    .map(|check| {
                        Ok(ProgramHtmlCheck {
                            url: sites.fill(&check.url)?,
                            locator: sites.fill(&check.locator)?,
                            required: check.required.clone(),
                            prep_actions: check
                                .prep_actions
                                .iter()
                                .map(|action| sites.fill(action))
                                .collect::<Result<_, _>>()?,
                        })
                    })
                    .collect::<Result<Vec<_>, DomainError>>()?,
            ),
            TaskEval::Verified(_) => (None, Vec::new()),
        };
        Ok(Self {
            task,
            sites,
            start_urls,
            reference_url,
            program_html,
        })
    }

    /// The task as published (templated URLs, eval configuration).
    pub fn task(&self) -> &WebArenaTask {
        &self.task
    }

    pub fn id(&self) -> u32 {
        self.task.id
    }

    /// The instruction for the agent.
    pub fn intent(&self) -> &str {
        &self.task.intent
    }

    /// The URL of the first (active) tab.
    pub fn start_url(&self) -> &str {
        self.start_urls.first().map_or("", String::as_str)
    }

    /// Every tab to open at the start, first one active.
    pub fn start_urls(&self) -> &[String] {
        &self.start_urls
    }

    pub fn sites(&self) -> &[crate::Site] {
        &self.task.sites
    }

    /// The origins the agent's browser may visit: those of the task's sites
    /// and of its start URLs, without duplicates, in that order.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = Vec::new();
        let site_origins = self
            .task
            .sites
            .iter()
            .filter_map(|site| self.sites.origin(*site));
        let start_origins = self.start_urls.iter().map(|url| origin_of(url));
        for origin in site_origins.chain(start_origins) {
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        origins
    }

    /// Whether the sites must be logged in before the episode.
    pub fn require_login(&self) -> bool {
        self.task.require_login
    }

    /// Whether the sites must be reset before the episode.
    pub fn require_reset(&self) -> bool {
        self.task.require_reset
    }

    pub(crate) fn site_config(&self) -> &SiteConfig {
        &self.sites
    }
}

/// Reads a task file; errors name the file, the line, the task's index and
/// id, and the field.
pub(crate) fn load_tasks(path: &Path, dataset: Dataset) -> Result<Vec<WebArenaTask>, DomainError> {
    let text = hyperagents_domain::read_task_file(path)?;
    match dataset {
        Dataset::Original => parse::<RawOriginalTask>(path, &text),
        Dataset::Verified => parse::<RawVerifiedTask>(path, &text),
    }
}

fn parse<Raw>(path: &Path, text: &str) -> Result<Vec<WebArenaTask>, DomainError>
where
    Raw: DeserializeOwned + Into<WebArenaTask>,
{
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let raw: Vec<Raw> = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let field_path = error.path().to_string();
        let index = error.path().iter().find_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(*index),
            _ => None,
        });
        let inner = error.into_inner();
        let subject = match index {
            Some(index) => {
                let task_id = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|all| all.get(index)?.get("task_id")?.as_u64());
                match task_id {
                    Some(id) => format!("task at index {index} (task_id {id})"),
                    None => format!("task at index {index}"),
                }
            }
            None => "task list".to_string(),
        };
        DomainError::Parse {
            file: path.display().to_string(),
            line: inner.line(),
            message: format!("{subject}: field `{field_path}`: {inner}"),
        }
    })?;
    Ok(raw.into_iter().map(Into::into).collect())
}
