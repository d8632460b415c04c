//! MiniWoB++ as a [`hyperagents_domain::Domain`].
//!
//! [`MiniWob::start`] serves an unpacked `miniwob` package (the directory
//! holding `miniwob/html`) on a loopback port, launches a
//! [`hyperagents_browser::BrowserPool`] and lists the tasks. Each
//! [`Domain::reset`] leases a window, loads the task page and runs MiniWoB's
//! reset protocol with the episode's seed (so the same seed gives the same
//! utterance and page). Agents act through the generic web actions, may
//! navigate only to the local server, and never see the reward globals,
//! which the host reads to score.
//!
//! [`split`] holds the documented train/test split, [`scripted`] reference
//! policies for a few tasks, and [`bench`] the throughput benchmark.

pub mod bench;
pub mod episode;
pub mod scripted;
pub mod server;
pub mod split;
pub mod tasks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_browser::{
    ActionKind, AllowedOrigins, BrowserError, BrowserPool, LaunchConfig, ObserverConfig,
    PoolConfig, WebConfig, WebEnvironment,
};
use hyperagents_domain::{Domain, DomainError, Environment};

pub use episode::{MiniWobTask, ResetOptions};
pub use server::StaticServer;
pub use split::{ExcludedTask, Split, SplitPart};

/// Elements of MiniWoB's own chrome that agents never see: the reward
/// display (last reward, averages), the start cover, the click canvas, and
/// the query (the instruction, given separately; flight tasks also show
/// their reward reason there).
pub const HIDDEN_SELECTORS: &[&str] = &[
    "#reward-display",
    "#sync-task-cover",
    "#click-canvas",
    "#query",
    "#query-wrap",
    "#reward-reason",
];

/// Actions MiniWoB agents get: no `answer` (the page decides when an episode
/// ends) and no `tab` (tasks live in one tab).
pub const MINIWOB_ACTIONS: &[ActionKind] = &[
    ActionKind::Click,
    ActionKind::Type,
    ActionKind::Press,
    ActionKind::Select,
    ActionKind::Scroll,
    ActionKind::Hover,
    ActionKind::Drag,
    ActionKind::Goto,
    ActionKind::Back,
];

/// Errors of the MiniWoB domain.
#[derive(Debug, thiserror::Error)]
pub enum MiniWobError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("MiniWoB data: {0}")]
    Data(String),
    #[error("{file}:{line}: {message}")]
    Split {
        file: String,
        line: usize,
        message: String,
    },
    #[error("cannot start the MiniWoB page server: {0}")]
    Server(#[source] std::io::Error),
    #[error("unknown MiniWoB task `{0}`")]
    UnknownTask(String),
    #[error("task `{task}`: {source}")]
    Browser {
        task: String,
        #[source]
        source: BrowserError,
    },
    #[error(transparent)]
    Launch(#[from] BrowserError),
}

impl From<MiniWobError> for DomainError {
    fn from(error: MiniWobError) -> Self {
        match error {
            MiniWobError::UnknownTask(task) => DomainError::UnknownTask(task),
            MiniWobError::Io { path, source } => DomainError::Io { path, source },
            MiniWobError::Split {
                file,
                line,
                message,
            } => DomainError::Parse {
                file,
                line,
                message,
            },
            other => DomainError::Environment(other.to_string()),
        }
    }
}

/// How to run MiniWoB.
#[derive(Debug, Clone)]
pub struct MiniWobConfig {
    /// The unpacked package: the directory that contains `miniwob/html`.
    pub data_dir: PathBuf,
    /// Browser windows, i.e. episodes that can run at once.
    pub windows: usize,
    pub launch: LaunchConfig,
    /// Observation budget and the like; [`HIDDEN_SELECTORS`] are always
    /// added to its exclusions.
    pub observer: ObserverConfig,
    /// `core.EPISODE_MAX_TIME`: long, because LLM agents are slow and the
    /// page ends an episode with reward -1 when it runs out.
    pub episode_max_time_ms: u64,
    /// `core.setDataMode(...)`.
    pub data_mode: String,
    /// Reload the task page at every reset (the default): a fresh document
    /// per episode, so no state leaks from one episode to the next.
    /// Otherwise the page is reused when the window already shows the task.
    pub reload_each_episode: bool,
    /// How long a page may take to load and become ready.
    pub load_timeout: Duration,
}

impl MiniWobConfig {
    /// Defaults for a package unpacked at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        MiniWobConfig {
            data_dir: data_dir.into(),
            windows: 1,
            launch: LaunchConfig::default(),
            observer: ObserverConfig::default(),
            episode_max_time_ms: 1_000_000,
            data_mode: "train".into(),
            reload_each_episode: true,
            load_timeout: Duration::from_secs(10),
        }
    }
}

/// The MiniWoB domain: a page server, a browser pool and the task list.
pub struct MiniWob {
    server: StaticServer,
    pool: BrowserPool,
    tasks: Vec<String>,
    web: Arc<WebConfig>,
    reset: ResetOptions,
    reload_each_episode: bool,
}

impl std::fmt::Debug for MiniWob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniWob")
            .field("base_url", &self.server.base_url())
            .field("tasks", &self.tasks.len())
            .field("pool", &self.pool)
            .finish()
    }
}

impl MiniWob {
    /// Serves the package and starts the browser.
    pub async fn start(config: MiniWobConfig) -> Result<MiniWob, MiniWobError> {
        let html = tasks::html_dir(&config.data_dir);
        if !html.is_dir() {
            return Err(MiniWobError::Data(format!(
                "{} does not exist: point the MiniWoB data directory at the unpacked package \
                 (the directory containing miniwob/html)",
                html.display()
            )));
        }
        let tasks = tasks::list_tasks(&html)?;
        let server = StaticServer::start(&html).await?;
        let pool = BrowserPool::launch(PoolConfig {
            launch: config.launch.clone(),
            windows: config.windows,
        })
        .await?;
        let mut observer = config.observer.clone();
        for selector in HIDDEN_SELECTORS {
            if !observer.exclude_selectors.iter().any(|s| s == selector) {
                observer.exclude_selectors.push((*selector).to_string());
            }
        }
        let web = WebConfig {
            allowed: AllowedOrigins::new([server.base_url()])?,
            observer,
            actions: MINIWOB_ACTIONS.to_vec(),
            screenshot_each_step: false,
        };
        Ok(MiniWob {
            server,
            pool,
            tasks,
            web: Arc::new(web),
            reset: ResetOptions {
                data_mode: config.data_mode,
                episode_max_time_ms: config.episode_max_time_ms,
                load_timeout: config.load_timeout,
            },
            reload_each_episode: config.reload_each_episode,
        })
    }

    /// Every task, in a stable order.
    pub fn tasks(&self) -> &[String] {
        &self.tasks
    }

    /// The page server's URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The browser pool (start time, window count).
    pub fn pool(&self) -> &BrowserPool {
        &self.pool
    }

    /// The task's page URL.
    pub fn task_url(&self, task: &str) -> Result<String, MiniWobError> {
        if !self.tasks.iter().any(|t| t == task) {
            return Err(MiniWobError::UnknownTask(task.to_string()));
        }
        Ok(format!(
            "{}{}",
            self.server.base_url(),
            tasks::task_path(task)
        ))
    }

    /// Starts an episode of `task` with `seed` (the concrete environment,
    /// for scripted policies and host-side inspection).
    pub async fn start_episode(
        &self,
        task: &str,
        seed: u64,
    ) -> Result<WebEnvironment, MiniWobError> {
        let url = self.task_url(task)?;
        let browser = |source: BrowserError| MiniWobError::Browser {
            task: task.to_string(),
            source,
        };
        let mut window = self.pool.checkout().await.map_err(browser)?;
        let page = window.main();
        let reuse = !self.reload_each_episode
            && page
                .url()
                .await
                .map(|current| current == url)
                .unwrap_or(false);
        if !reuse {
            page.navigate(&url).await.map_err(browser)?;
        }
        let instruction = episode::reset_page(page, seed, &self.reset)
            .await
            .map_err(browser)?;
        let loader_id = page.document().await.map_err(browser)?.loader_id;
        WebEnvironment::start(
            window,
            instruction,
            Box::new(MiniWobTask::new(loader_id)),
            Arc::clone(&self.web),
        )
        .await
        .map_err(browser)
    }

    /// Stops the browser (waits for outstanding episodes to be dropped
    /// first; otherwise the browser is killed when the last one goes).
    pub async fn close(self) {
        let MiniWob { server, pool, .. } = self;
        pool.close().await;
        drop(server);
    }
}

#[async_trait]
impl Domain for MiniWob {
    fn name(&self) -> &str {
        "miniwob"
    }

    fn task_ids(&self) -> Vec<String> {
        self.tasks.clone()
    }

    async fn reset(&self, task: &str, seed: u64) -> Result<Box<dyn Environment>, DomainError> {
        Ok(Box::new(self.start_episode(task, seed).await?))
    }
}
