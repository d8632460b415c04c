//! One MiniWoB++ episode: the reset protocol and the host-side scorer.
//!
//! The reward lives in page globals (`WOB_DONE_GLOBAL`,
//! `WOB_RAW_REWARD_GLOBAL`). Only the host reads them, in the page's main
//! world; agents observe through the isolated-world helper, which cannot see
//! page globals, and the observation hides MiniWoB's reward display.

use async_trait::async_trait;
use hyperagents_browser::{BrowserError, PageHandle, WebTask, WindowLease};
use hyperagents_domain::{DomainError, Score};
use serde_json::Value;

/// Seeds are passed to `Math.seedrandom` as JS numbers, which are exact only
/// below 2^53; larger seeds are reduced modulo 2^53.
pub const SEED_MASK: u64 = (1 << 53) - 1;

/// What the reset protocol needs from the configuration.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    pub data_mode: String,
    pub episode_max_time_ms: u64,
    pub load_timeout: std::time::Duration,
}

/// Runs the reset protocol on a page already showing the task (its
/// `#sync-task-cover` present). Returns the instruction.
pub async fn reset_page(
    page: &PageHandle,
    seed: u64,
    options: &ResetOptions,
) -> Result<String, BrowserError> {
    page.wait_for_main(
        "!!document.getElementById('sync-task-cover')",
        options.load_timeout,
    )
    .await?;
    let mode = serde_json::to_string(&options.data_mode)
        .map_err(|e| BrowserError::Script(e.to_string()))?;
    let script = format!(
        "core.endEpisode(0); Math.seedrandom({seed}); core.setDataMode({mode}); \
         core.EPISODE_MAX_TIME = {max}; core.startEpisodeReal(); true",
        seed = seed & SEED_MASK,
        max = options.episode_max_time_ms,
    );
    page.evaluate_main(&script).await?;
    // Flight tasks load their site asynchronously and raise this flag.
    page.wait_for_main("WOB_TASK_READY === true", options.load_timeout)
        .await?;
    let utterance = page
        .evaluate_main(
            "(() => { const u = core.getUtterance(); \
             return typeof u === 'string' ? u : (u && u.utterance) || ''; })()",
        )
        .await?;
    Ok(utterance.as_str().unwrap_or_default().to_string())
}

/// The scorer side of a MiniWoB episode.
#[derive(Debug)]
pub struct MiniWobTask {
    /// The document the episode started in; any other means the agent left.
    loader_id: String,
    left_task_page: bool,
}

impl MiniWobTask {
    pub fn new(loader_id: String) -> Self {
        MiniWobTask {
            loader_id,
            left_task_page: false,
        }
    }
}

#[async_trait]
impl WebTask for MiniWobTask {
    async fn after_action(&mut self, window: &mut WindowLease) -> Result<bool, BrowserError> {
        let page = window.main();
        // A new document (goto, back, a link) is a fresh task page whose
        // globals say nothing about this episode: end it as a failure.
        if page.document().await?.loader_id != self.loader_id {
            self.left_task_page = true;
            return Ok(true);
        }
        let done = page.evaluate_main("WOB_DONE_GLOBAL === true").await?;
        Ok(done == Value::Bool(true))
    }

    async fn score(
        &mut self,
        window: &mut WindowLease,
        _answer: Option<&str>,
    ) -> Result<Score, DomainError> {
        if self.left_task_page {
            return Ok(failure("the agent navigated away from the task page"));
        }
        let page = window.main();
        let current = page.document().await.map_err(DomainError::from)?;
        if current.loader_id != self.loader_id {
            return Ok(failure("the agent navigated away from the task page"));
        }
        let state = page
            .evaluate_main("({done: WOB_DONE_GLOBAL === true, raw: Number(WOB_RAW_REWARD_GLOBAL)})")
            .await
            .map_err(DomainError::from)?;
        let done = state.get("done").and_then(Value::as_bool).unwrap_or(false);
        let raw = state.get("raw").and_then(Value::as_f64).unwrap_or(0.0);
        if !done {
            return Ok(failure("the episode did not finish (no reward given)"));
        }
        let success = raw > 0.0;
        // The reason carries only the reward, never MiniWoB's own reward
        // reason, which can name expected values.
        Ok(Score {
            value: raw.clamp(0.0, 1.0),
            success,
            reason: format!("raw reward {raw:.2}"),
        })
    }
}

fn failure(reason: &str) -> Score {
    Score {
        value: 0.0,
        success: false,
        reason: reason.to_string(),
    }
}
