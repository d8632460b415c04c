//! WebArena as a [`hyperagents_domain::Domain`], in real Chromium.
//!
//! [`WebArenaDomain::start`] takes a loaded [`WebArenaSuite`] and a browser
//! pool (launched here or shared). Each [`Domain::reset`]:
//!
//! 1. resolves the task and checks that it can be scored
//!    ([`ensure_evaluable`]) — an unconfigured site or an unsupported
//!    evaluator is [`DomainError::Unsupported`] before any window is leased
//!    or any hook runs;
//! 2. resets the task's sites when it asks for it ([`SiteHooks::reset`]);
//! 3. leases a window, logs in to the task's sites when it asks for it
//!    ([`SiteHooks::login`], on the window's first tab, before the agent
//!    has it);
//! 4. opens the start URL(s): several joined with ` |AND| ` become several
//!    tabs, the first one active;
//! 5. returns a [`WebEnvironment`] with the task's intent as instruction,
//!    every web action (`answer` and `tab` included) and navigation limited
//!    to the origins of the task's own sites.
//!
//! The score is WebArena's evaluator ([`evaluate()`]) run on the agent's
//! answer and on the agent's current tab, after the episode.
//!
//! Every episode shares the pool's browser profile, so sessions made by the
//! login hook carry over between episodes (as WebArena's saved storage
//! states do), and a site reset affects every episode running on that
//! site: run tasks that require a reset one at a time.
//!
//! Also here: [`EvalPage`] for the browser's [`PageHandle`], so the
//! evaluator and the hooks can drive a page the host controls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use hyperagents_browser::{
    ActionKind, AllowedOrigins, BrowserError, BrowserPool, ObserverConfig, PageHandle, PoolConfig,
    WebConfig, WebEnvironment, WebTask, WindowLease,
};
use hyperagents_domain::judge::Judge;
use hyperagents_domain::{Domain, DomainError, Environment, Score};
use serde_json::Value;

use crate::evaluate::{EvalOptions, ensure_evaluable, evaluate};
use crate::hooks::SiteHooks;
use crate::page::{EvalPage, PageError};
use crate::suite::{ResolvedTask, WebArenaSuite};

/// Where the domain's browser windows come from.
#[derive(Debug, Clone)]
pub enum BrowserSource {
    /// Launch a pool of its own at [`WebArenaDomain::start`].
    Launch(PoolConfig),
    /// Use a pool the caller already runs (shared with other domains).
    Shared(BrowserPool),
}

/// How to run WebArena.
#[derive(Clone)]
pub struct WebArenaDomainConfig {
    pub browser: BrowserSource,
    /// Observation budget and exclusions.
    pub observer: ObserverConfig,
    /// Take a screenshot after every action (kept for the trajectory).
    pub screenshot_each_step: bool,
    /// Decides `fuzzy_match` references.
    pub judge: Arc<dyn Judge>,
    pub eval: EvalOptions,
    /// Login and reset. Without hooks, login is skipped (the sites need
    /// none, or the profile is logged in already) and tasks that require a
    /// reset are unsupported: they must not run on a dirty site.
    pub hooks: Option<Arc<dyn SiteHooks>>,
    /// How long each extra start tab (` |AND| `) may take to load.
    pub tab_load_timeout: Duration,
}

impl std::fmt::Debug for WebArenaDomainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebArenaDomainConfig")
            .field("browser", &self.browser)
            .field("observer", &self.observer)
            .field("screenshot_each_step", &self.screenshot_each_step)
            .field("eval", &self.eval)
            .field("hooks", &self.hooks.is_some())
            .field("tab_load_timeout", &self.tab_load_timeout)
            .finish_non_exhaustive()
    }
}

impl WebArenaDomainConfig {
    /// Defaults: a one-window pool, the default observer, no screenshots,
    /// WebArena's evaluator settings, no hooks.
    pub fn new(judge: Arc<dyn Judge>) -> Self {
        Self {
            browser: BrowserSource::Launch(PoolConfig::default()),
            observer: ObserverConfig::default(),
            screenshot_each_step: false,
            judge,
            eval: EvalOptions::default(),
            hooks: None,
            tab_load_timeout: Duration::from_secs(30),
        }
    }
}

/// The WebArena domain: a suite, a browser pool and the scoring settings.
pub struct WebArenaDomain {
    suite: WebArenaSuite,
    pool: BrowserPool,
    observer: ObserverConfig,
    screenshot_each_step: bool,
    tab_load_timeout: Duration,
    scoring: Arc<Scoring>,
}

impl std::fmt::Debug for WebArenaDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebArenaDomain")
            .field("file", &self.suite.file())
            .field("tasks", &self.suite.tasks().len())
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl WebArenaDomain {
    /// Takes the browser pool (launching one when configured so).
    pub async fn start(
        suite: WebArenaSuite,
        config: WebArenaDomainConfig,
    ) -> Result<Self, DomainError> {
        let pool = match config.browser {
            BrowserSource::Launch(pool) => BrowserPool::launch(pool).await.map_err(|error| {
                DomainError::Environment(format!("cannot start the browser: {error}"))
            })?,
            BrowserSource::Shared(pool) => pool,
        };
        Ok(Self {
            suite,
            pool,
            observer: config.observer,
            screenshot_each_step: config.screenshot_each_step,
            tab_load_timeout: config.tab_load_timeout,
            scoring: Arc::new(Scoring {
                judge: config.judge,
                eval: config.eval,
                hooks: config.hooks,
            }),
        })
    }

    pub fn suite(&self) -> &WebArenaSuite {
        &self.suite
    }

    /// The browser pool (start time, window count).
    pub fn pool(&self) -> &BrowserPool {
        &self.pool
    }

    /// The task `id`, resolved, if this domain can run and score it:
    /// [`DomainError::UnknownTask`] for an id not in the suite,
    /// [`DomainError::Unsupported`] for an unconfigured site, an evaluator
    /// this crate does not implement, or a required reset without hooks.
    /// Touches no browser and no site.
    pub fn check_task(&self, id: u32) -> Result<ResolvedTask, DomainError> {
        let task = self.suite.task(id)?;
        ensure_evaluable(&task, &self.scoring.eval)?;
        if task.require_reset() && self.scoring.hooks.is_none() {
            return Err(DomainError::Unsupported(format!(
                "task {id} requires a site reset and no site hooks are configured"
            )));
        }
        Ok(task)
    }

    /// Starts an episode of task `id` (the concrete environment, for
    /// scripted policies and host-side inspection).
    pub async fn start_episode(&self, id: u32) -> Result<WebEnvironment, DomainError> {
        let task = self.check_task(id)?;
        let allowed = AllowedOrigins::new(task.allowed_origins()).map_err(|error| {
            DomainError::Environment(format!("task {id}: site configuration: {error}"))
        })?;
        let browser = |error: BrowserError| DomainError::Environment(format!("task {id}: {error}"));
        if task.require_reset()
            && let Some(hooks) = &self.scoring.hooks
        {
            for site in task.sites() {
                hooks.reset(*site).await?;
            }
        }
        let mut window = self.pool.checkout().await.map_err(browser)?;
        if task.require_login()
            && let Some(hooks) = &self.scoring.hooks
        {
            // The agent has no window yet: the login runs on a page only
            // the host drives.
            for site in task.sites() {
                hooks.login(*site, window.main()).await?;
            }
        }
        open_start_tabs(&mut window, task.start_urls(), self.tab_load_timeout)
            .await
            .map_err(browser)?;
        let web = WebConfig {
            allowed,
            observer: self.observer.clone(),
            actions: ActionKind::ALL.to_vec(),
            screenshot_each_step: self.screenshot_each_step,
        };
        let instruction = task.intent().to_string();
        let episode = WebArenaEpisode {
            task,
            scoring: Arc::clone(&self.scoring),
            verdict: None,
        };
        WebEnvironment::start(window, instruction, Box::new(episode), Arc::new(web))
            .await
            .map_err(browser)
    }

    /// Stops the browser if this domain launched it and no episode holds a
    /// window (otherwise the browser goes with the last episode).
    pub async fn close(self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Domain for WebArenaDomain {
    fn name(&self) -> &str {
        "webarena"
    }

    fn task_ids(&self) -> Vec<String> {
        self.suite.task_ids()
    }

    /// WebArena tasks are fixed: `seed` changes nothing.
    async fn reset(&self, task: &str, _seed: u64) -> Result<Box<dyn Environment>, DomainError> {
        let id = task
            .trim()
            .parse::<u32>()
            .map_err(|_| DomainError::UnknownTask(task.to_string()))?;
        Ok(Box::new(self.start_episode(id).await?))
    }
}

/// The host page as the evaluator and the hooks see it: navigation to any
/// URL and main-world scripts, both host-only hooks agents never reach.
#[async_trait]
impl EvalPage for PageHandle {
    async fn current_url(&mut self) -> Result<String, PageError> {
        // Asked of the document itself, which also sees `history.pushState`;
        // the frame tree is the fallback while a document is being replaced.
        match self.evaluate_main("window.location.href").await {
            Ok(Value::String(url)) => Ok(url),
            _ => self.url().await.map_err(page_error),
        }
    }

    async fn goto(&mut self, url: &str) -> Result<(), PageError> {
        self.navigate(url).await.map_err(page_error)
    }

    async fn eval_js(&mut self, expression: &str) -> Result<Value, PageError> {
        self.evaluate_main(expression).await.map_err(page_error)
    }
}

/// What every episode's scorer shares.
struct Scoring {
    judge: Arc<dyn Judge>,
    eval: EvalOptions,
    hooks: Option<Arc<dyn SiteHooks>>,
}

/// The host side of one episode.
struct WebArenaEpisode {
    task: ResolvedTask,
    scoring: Arc<Scoring>,
    /// The first verdict: scoring navigates the page (`program_html`), so a
    /// second run would read the evaluator's pages, not the agent's.
    verdict: Option<Score>,
}

#[async_trait]
impl WebTask for WebArenaEpisode {
    /// WebArena episodes end when the agent answers, which the environment
    /// handles itself; no page state ends them.
    async fn after_action(&mut self, _window: &mut WindowLease) -> Result<bool, BrowserError> {
        Ok(false)
    }

    async fn score(
        &mut self,
        window: &mut WindowLease,
        answer: Option<&str>,
    ) -> Result<Score, DomainError> {
        if let Some(verdict) = &self.verdict {
            return Ok(verdict.clone());
        }
        // The evaluator gets the agent's current tab, as WebArena does:
        // `url_match` reads where the agent left it and `program_html`
        // navigates it and runs the task's locators in its main world.
        // This is safe because scoring comes after the episode: the runtime
        // asks for the score once the agent's loop is over (it answered or
        // ran out of steps), so the agent can no longer act, and every
        // navigation and script from here on is the evaluator's, through
        // host-only hooks the agent never had.
        let page = window.current();
        let verdict = evaluate(
            &self.task,
            answer.unwrap_or(""),
            page,
            self.scoring.judge.as_ref(),
            &self.scoring.eval,
        )
        .await?;
        self.verdict = Some(verdict.clone());
        Ok(verdict)
    }
}

/// Loads `urls` into the window: the first into its first tab, the others
/// into new tabs opened from it (so the window's lease knows them), then
/// makes the first tab current again.
async fn open_start_tabs(
    window: &mut WindowLease,
    urls: &[String],
    timeout: Duration,
) -> Result<(), BrowserError> {
    let Some((first, others)) = urls.split_first() else {
        return window.main().navigate("about:blank").await;
    };
    window.main().navigate(first).await?;
    for url in others {
        let tabs_before = window.tabs().await?.len();
        let literal = serde_json::to_string(url)
            .map_err(|error| BrowserError::Script(format!("cannot quote {url}: {error}")))?;
        // As if the user had clicked, or the popup blocker would refuse.
        let mut open = EvaluateParams::new(format!("!!window.open({literal})"));
        open.user_gesture = Some(true);
        open.return_by_value = Some(true);
        let opened = window.main().cdp().execute(open).await?.result;
        if opened.result.value != Some(Value::Bool(true)) {
            return Err(BrowserError::Script(format!(
                "the browser did not open {url}"
            )));
        }
        let deadline = Instant::now() + timeout;
        while window.tabs().await?.len() <= tabs_before {
            if Instant::now() >= deadline {
                return Err(BrowserError::Timeout {
                    what: format!("a tab for {url}"),
                    seconds: timeout.as_secs_f64(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        window.switch_to(tabs_before).await?;
        window
            .current()
            .wait_for_main(
                "document.readyState === 'complete' && location.href !== 'about:blank'",
                timeout,
            )
            .await?;
    }
    window.switch_to(0).await
}

fn page_error(error: BrowserError) -> PageError {
    match error {
        BrowserError::Script(message) => PageError::Script(message),
        other => PageError::Browser(other.to_string()),
    }
}
