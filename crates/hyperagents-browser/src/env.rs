//! [`WebEnvironment`]: a browser window as a [`hyperagents_domain::Environment`].
//! A benchmark supplies the instruction and a [`WebTask`] that decides when
//! the episode is over and scores it; the environment supplies observation
//! and the guarded actions.

use std::sync::Arc;

use async_trait::async_trait;
use hyperagents_domain::{
    ActionOutcome, ActionSpec, DomainError, Environment, ObserveOptions, Score,
};
use serde_json::Value;

use crate::actions::{Action, ActionKind, parse_action};
use crate::error::BrowserError;
use crate::keys::keystrokes;
use crate::observe::{Layout, Observation, ObserverConfig, RenderedObservation, collect};
use crate::origin::AllowedOrigins;
use crate::page::PageHandle;
use crate::pool::WindowLease;

/// How many intermediate mouse moves a drag makes: drag-and-drop libraries
/// (jQuery UI) start a drag only after the pointer has moved a few pixels.
const DRAG_STEPS: u32 = 6;

/// The policy of a web environment: what agents see and may do.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub allowed: AllowedOrigins,
    pub observer: ObserverConfig,
    /// The actions offered, in order.
    pub actions: Vec<ActionKind>,
    /// Take a screenshot after every action (kept for the trajectory by
    /// the host; agents never receive it).
    pub screenshot_each_step: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            allowed: AllowedOrigins::none(),
            observer: ObserverConfig::default(),
            actions: ActionKind::ALL.to_vec(),
            screenshot_each_step: false,
        }
    }
}

/// The benchmark's side of an episode: host-only, never visible to agents.
#[async_trait]
pub trait WebTask: Send {
    /// Called after every action (successful or not): returns true once the
    /// page says the episode is over.
    async fn after_action(&mut self, window: &mut WindowLease) -> Result<bool, BrowserError>;
    /// Scores the episode. `answer` is what the agent gave with `answer`.
    async fn score(
        &mut self,
        window: &mut WindowLease,
        answer: Option<&str>,
    ) -> Result<Score, DomainError>;
}

/// One episode in one browser window.
pub struct WebEnvironment {
    window: WindowLease,
    instruction: String,
    task: Box<dyn WebTask>,
    config: Arc<WebConfig>,
    answer: Option<String>,
    done: bool,
    last_screenshot: Option<Vec<u8>>,
}

impl std::fmt::Debug for WebEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebEnvironment")
            .field("instruction", &self.instruction)
            .field("done", &self.done)
            .finish()
    }
}

impl WebEnvironment {
    /// Starts an episode in `window`, whose page the benchmark has already
    /// prepared. Element refs start again from 1.
    pub async fn start(
        mut window: WindowLease,
        instruction: String,
        task: Box<dyn WebTask>,
        config: Arc<WebConfig>,
    ) -> Result<WebEnvironment, BrowserError> {
        window.current().reset_refs().await?;
        Ok(WebEnvironment {
            window,
            instruction,
            task,
            config,
            answer: None,
            done: false,
            last_screenshot: None,
        })
    }

    /// The window (host-only hooks: main-world evaluation, navigation).
    pub fn window(&mut self) -> &mut WindowLease {
        &mut self.window
    }

    /// The answer the agent gave, if any.
    pub fn answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }

    /// The structured observation (for scripted policies and tests).
    pub async fn observation(&mut self) -> Result<Observation, BrowserError> {
        collect(self.window.current(), &self.config.observer).await
    }

    /// The observation as text, with what was cut.
    pub async fn render_observation(&mut self) -> Result<RenderedObservation, BrowserError> {
        self.render_observation_with(ObserveOptions::default())
            .await
    }

    /// The observation as text as the agent asked for it, with what was cut.
    pub async fn render_observation_with(
        &mut self,
        options: ObserveOptions,
    ) -> Result<RenderedObservation, BrowserError> {
        let observation = self.observation().await?;
        let tabs = self.window.tabs().await?;
        let layout = Layout {
            positions: options.positions,
        };
        Ok(observation.render_with(self.config.observer.max_tokens, &tabs, layout))
    }

    /// Performs an action; returns the message for the agent.
    pub async fn perform(&mut self, action: Action) -> Result<String, BrowserError> {
        let config = Arc::clone(&self.config);
        match action {
            Action::Click { reference } => {
                let page = self.window.current();
                let point = reachable_point(page, reference).await?;
                page.click_and_follow(point.x, point.y).await?;
                Ok(with_cover_note(
                    format!("clicked [{reference}]"),
                    &point.covered_by,
                ))
            }
            Action::Hover { reference } => {
                let page = self.window.current();
                let point = reachable_point(page, reference).await?;
                page.mouse_move(point.x, point.y, 0).await?;
                Ok(with_cover_note(
                    format!("hovering over [{reference}]"),
                    &point.covered_by,
                ))
            }
            Action::Type {
                reference,
                text,
                append,
            } => {
                let page = self.window.current();
                let focus = page
                    .call(
                        "focusForTyping",
                        &[Value::from(reference), Value::from(!append)],
                    )
                    .await?;
                if focus.get("kind").and_then(Value::as_str) == Some("value") {
                    page.call(
                        "setValue",
                        &[Value::from(reference), Value::from(text.clone())],
                    )
                    .await?;
                } else {
                    page.type_keystrokes(&keystrokes(&text)).await?;
                }
                Ok(format!("typed {} into [{reference}]", quote(&text)))
            }
            Action::Press { key } => {
                self.window.current().press_key(&key).await?;
                Ok(format!("pressed {}", key.name))
            }
            Action::Select { reference, options } => {
                let chosen = self
                    .window
                    .current()
                    .call(
                        "selectOptions",
                        &[Value::from(reference), Value::from(options)],
                    )
                    .await?;
                Ok(format!("selected {chosen} in [{reference}]"))
            }
            Action::Scroll {
                reference,
                direction,
            } => {
                let result = self
                    .window
                    .current()
                    .call(
                        "scroll",
                        &[
                            reference.map(Value::from).unwrap_or(Value::Null),
                            direction
                                .map(|d| Value::from(d.as_str()))
                                .unwrap_or(Value::Null),
                        ],
                    )
                    .await?;
                Ok(result.as_str().unwrap_or("scrolled").to_string())
            }
            Action::Drag { from, to } => {
                let page = self.window.current();
                let start = reachable_point(page, from).await?;
                let end = page.element_point(to, false).await?;
                if !end.inside_viewport {
                    return Err(BrowserError::Refused(format!(
                        "drag target [{to}] is outside the viewport; scroll so both elements are visible"
                    )));
                }
                page.mouse_move(start.x, start.y, 0).await?;
                page.mouse_button(start.x, start.y, true).await?;
                for step in 1..=DRAG_STEPS {
                    let t = f64::from(step) / f64::from(DRAG_STEPS);
                    let x = start.x + (end.x - start.x) * t;
                    let y = start.y + (end.y - start.y) * t;
                    page.mouse_move(x, y, 1).await?;
                }
                page.mouse_button(end.x, end.y, false).await?;
                Ok(format!("dragged [{from}] onto [{to}]"))
            }
            Action::Goto { url } => {
                let current = self.window.current().url().await.ok();
                let target = config.allowed.check(&url, current.as_deref())?;
                self.window.current().navigate(target.as_str()).await?;
                Ok(format!("opened {target}"))
            }
            Action::Back => {
                let page = self.window.current();
                let Some((entry, url)) = page.previous_entry().await? else {
                    return Err(BrowserError::Refused("there is no previous page".into()));
                };
                if !config.allowed.allows(&url) {
                    return Err(BrowserError::Refused(format!(
                        "the previous page ({url}) is not on an allowed site"
                    )));
                }
                page.go_to_history_entry(entry).await?;
                Ok(format!("went back to {url}"))
            }
            Action::Tab { index } => {
                let tabs = self.window.tabs().await?;
                let Some(tab) = tabs.get(index) else {
                    return Err(BrowserError::Refused(format!(
                        "no tab {index}; open tabs: 0..{}",
                        tabs.len().saturating_sub(1)
                    )));
                };
                if tab.url.is_empty() {
                    return Err(BrowserError::Refused(format!(
                        "tab {index} is still loading; observe again"
                    )));
                }
                if !config.allowed.allows(&tab.url) {
                    return Err(BrowserError::Refused(format!(
                        "tab {index} ({}) is not on an allowed site",
                        tab.url
                    )));
                }
                self.window.switch_to(index).await?;
                Ok(format!("switched to tab {index}"))
            }
            Action::Answer { text } => {
                let message = format!("answer recorded: {}", quote(&text));
                self.answer = Some(text);
                self.done = true;
                Ok(message)
            }
        }
    }

    /// The last screenshot taken after an action (when enabled).
    pub fn last_screenshot(&self) -> Option<&[u8]> {
        self.last_screenshot.as_deref()
    }
}

#[async_trait]
impl Environment for WebEnvironment {
    fn instruction(&self) -> String {
        self.instruction.clone()
    }

    async fn observe(&mut self) -> Result<String, DomainError> {
        Ok(self.render_observation().await?.text)
    }

    async fn observe_with(&mut self, options: ObserveOptions) -> Result<String, DomainError> {
        Ok(self.render_observation_with(options).await?.text)
    }

    fn actions(&self) -> Vec<ActionSpec> {
        self.config.actions.iter().map(|kind| kind.spec()).collect()
    }

    async fn act(&mut self, name: &str, args: &Value) -> Result<ActionOutcome, DomainError> {
        if self.done {
            return Err(DomainError::EpisodeOver);
        }
        let action = parse_action(name, args, &self.config.actions)?;
        let outcome = self.perform(action).await;
        if !self.done {
            self.done = self.task.after_action(&mut self.window).await?;
        }
        if self.config.screenshot_each_step {
            self.last_screenshot = self.window.current().screenshot_png().await.ok();
        }
        let message = outcome.map_err(|e| e.into_action_error(name))?;
        Ok(ActionOutcome {
            message,
            done: self.done,
        })
    }

    fn is_done(&self) -> bool {
        self.done
    }

    async fn screenshot(&mut self) -> Result<Option<Vec<u8>>, DomainError> {
        Ok(Some(self.window.current().screenshot_png().await?))
    }

    async fn score(&mut self) -> Result<Score, DomainError> {
        let answer = self.answer.clone();
        self.task.score(&mut self.window, answer.as_deref()).await
    }
}

/// The element's centre, scrolled into view; refuses when it cannot be
/// brought into the viewport.
async fn reachable_point(
    page: &mut PageHandle,
    reference: u64,
) -> Result<crate::page::ElementPoint, BrowserError> {
    let point = page.element_point(reference, true).await?;
    if !point.inside_viewport {
        return Err(BrowserError::Refused(format!(
            "element [{reference}] cannot be scrolled into the viewport"
        )));
    }
    Ok(point)
}

fn with_cover_note(message: String, covered_by: &Option<String>) -> String {
    match covered_by {
        Some(cover) => format!("{message} (the pointer landed on {cover}, which covers it)"),
        None => message,
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}
