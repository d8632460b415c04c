//! One browser page as the host drives it: the isolated world that observes
//! and locates elements, real input events, navigation, and the host-only
//! hooks (main-world evaluation) that benchmark crates use to read page state.
//!
//! Nothing here is exposed to agents directly: the agent-facing surface is the
//! action set in [`crate::env`], which never evaluates agent-supplied code.

use std::time::{Duration, Instant};

use base64::Engine as _;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, DispatchMouseEventParams, DispatchMouseEventType,
    InsertTextParams, MouseButton,
};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, ClientNavigationDisposition,
    CreateIsolatedWorldParams, EventFrameRequestedNavigation, EventFrameStoppedLoading,
    GetFrameTreeParams, GetNavigationHistoryParams, NavigateToHistoryEntryParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{EvaluateParams, ExecutionContextId};
use futures::StreamExt as _;
use serde_json::Value;

use crate::error::BrowserError;
use crate::keys::{Keystroke, NamedKey};

/// The helper evaluated in the isolated world.
const OBSERVER_JS: &str = include_str!("observer.js");
/// The isolated world's name (visible in DevTools only).
const WORLD_NAME: &str = "hyperagents-observer";

/// A point in viewport coordinates where an element can be reached.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementPoint {
    pub x: f64,
    pub y: f64,
    /// False when the element's centre is outside the viewport even after
    /// scrolling (a real click there would miss).
    pub inside_viewport: bool,
    /// Another element that sits on top of the centre, described.
    pub covered_by: Option<String>,
}

/// The main frame's document, as the host identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentId {
    pub url: String,
    /// Changes with every new document loaded into the main frame.
    pub loader_id: String,
}

/// A page with the host's helper world.
pub struct PageHandle {
    page: Page,
    /// The isolated world's context in the current document; `None` until
    /// first used and after the document changed.
    world: Option<ExecutionContextId>,
    /// The first ref a new document's elements get: one past the highest
    /// ref handed out so far, so refs from an old page never name an
    /// element of a new one.
    next_ref: u64,
}

impl std::fmt::Debug for PageHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageHandle")
            .field("target", self.page.target_id())
            .finish()
    }
}

impl PageHandle {
    pub(crate) fn new(page: Page) -> Self {
        PageHandle {
            page,
            world: None,
            next_ref: 1,
        }
    }

    pub(crate) fn into_page(self) -> Page {
        self.page
    }

    /// The chromiumoxide page (host-only: raw DevTools access).
    pub fn cdp(&self) -> &Page {
        &self.page
    }

    /// Evaluates `expression` in the page's MAIN world, awaiting promises,
    /// and returns its JSON value. Host-only: agents never reach this.
    pub async fn evaluate_main(&self, expression: &str) -> Result<Value, BrowserError> {
        self.evaluate(expression, None, true).await
    }

    /// Polls `expression` in the main world until it is truthy.
    pub async fn wait_for_main(
        &self,
        expression: &str,
        timeout: Duration,
    ) -> Result<(), BrowserError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.evaluate_main(expression).await {
                Ok(value) if truthy(&value) => return Ok(()),
                Ok(_) => {}
                Err(error) if !is_context_gone(&error) && !is_script_error(&error) => {
                    return Err(error);
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(BrowserError::Timeout {
                    what: format!("`{expression}`"),
                    seconds: timeout.as_secs_f64(),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The main frame's URL and document identity.
    pub async fn document(&self) -> Result<DocumentId, BrowserError> {
        let tree = self.page.execute(GetFrameTreeParams::default()).await?;
        let frame = tree.result.frame_tree.frame;
        Ok(DocumentId {
            url: frame.url,
            loader_id: frame.loader_id.inner().clone(),
        })
    }

    /// The main frame's URL.
    pub async fn url(&self) -> Result<String, BrowserError> {
        Ok(self.document().await?.url)
    }

    /// Navigates to any URL (host-only; agents go through the origin check)
    /// and waits for the load to finish.
    pub async fn navigate(&mut self, url: &str) -> Result<(), BrowserError> {
        self.world = None;
        self.page.goto(url).await?;
        self.world = None;
        Ok(())
    }

    /// The previous history entry's URL and id, if any.
    pub async fn previous_entry(&self) -> Result<Option<(i64, String)>, BrowserError> {
        let history = self
            .page
            .execute(GetNavigationHistoryParams::default())
            .await?
            .result;
        let Ok(current) = usize::try_from(history.current_index) else {
            return Ok(None);
        };
        Ok(current
            .checked_sub(1)
            .and_then(|index| history.entries.get(index))
            .map(|entry| (entry.id, entry.url.clone())))
    }

    /// Goes to a history entry and waits until the document has loaded.
    pub async fn go_to_history_entry(&mut self, entry_id: i64) -> Result<(), BrowserError> {
        let before = self.document().await?.loader_id;
        self.world = None;
        self.page
            .execute(NavigateToHistoryEntryParams::new(entry_id))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(now) = self.document().await
                && now.loader_id != before
                && truthy(
                    &self
                        .evaluate_main("document.readyState === 'complete'")
                        .await
                        .unwrap_or(Value::Null),
                )
            {
                self.world = None;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(BrowserError::Timeout {
            what: "the previous page".into(),
            seconds: 10.0,
        })
    }

    /// A PNG of the viewport.
    pub async fn screenshot_png(&self) -> Result<Vec<u8>, BrowserError> {
        let params = CaptureScreenshotParams {
            format: Some(CaptureScreenshotFormat::Png),
            ..CaptureScreenshotParams::default()
        };
        let shot = self.page.execute(params).await?.result;
        let encoded: &str = shot.data.as_ref();
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| BrowserError::Cdp(format!("screenshot is not base64: {e}")))
    }

    /// Calls the isolated-world helper `name` with JSON `args`. Retries once
    /// the document changed under it (a navigation between calls).
    pub(crate) async fn call(&mut self, name: &str, args: &[Value]) -> Result<Value, BrowserError> {
        let args_json = serde_json::to_string(args)
            .map_err(|e| BrowserError::Script(format!("cannot encode arguments: {e}")))?;
        // The arguments are a JSON literal spliced into a call expression
        // that runs in the isolated world; JSON strings cannot escape it.
        let expression = format!("globalThis.__hyperagents.call({name:?}, {args_json})");
        let mut last_error = None;
        for attempt in 0..5u64 {
            let context = match self.ensure_world().await {
                Ok(context) => context,
                Err(error) if is_context_gone(&error) => {
                    self.world = None;
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            match self.evaluate(&expression, Some(context), false).await {
                Ok(value) => return unwrap_call(value),
                Err(error) if is_context_gone(&error) || is_missing_helper(&error) => {
                    self.world = None;
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| BrowserError::Cdp("the page kept navigating".into())))
    }

    async fn ensure_world(&mut self) -> Result<ExecutionContextId, BrowserError> {
        if let Some(context) = self.world {
            return Ok(context);
        }
        let tree = self.page.execute(GetFrameTreeParams::default()).await?;
        let frame_id = tree.result.frame_tree.frame.id;
        let mut params = CreateIsolatedWorldParams::new(frame_id);
        params.world_name = Some(WORLD_NAME.to_string());
        params.grant_univeral_access = Some(false);
        let context = self.page.execute(params).await?.result.execution_context_id;
        self.evaluate(OBSERVER_JS, Some(context), false).await?;
        if self.next_ref > 1 {
            let expression = format!(
                "globalThis.__hyperagents.call('reset', [{}])",
                self.next_ref
            );
            self.evaluate(&expression, Some(context), false).await?;
        }
        self.world = Some(context);
        Ok(context)
    }

    /// Forgets every ref; the next observation numbers elements from 1
    /// (start of an episode, so a seed always gives the same refs).
    pub(crate) async fn reset_refs(&mut self) -> Result<(), BrowserError> {
        self.next_ref = 1;
        self.call("reset", &[Value::from(1)]).await?;
        Ok(())
    }

    /// Records the refs an observation handed out.
    pub(crate) fn saw_refs(&mut self, highest: u64) {
        self.next_ref = self.next_ref.max(highest.saturating_add(1));
    }

    async fn evaluate(
        &self,
        expression: &str,
        context: Option<ExecutionContextId>,
        await_promise: bool,
    ) -> Result<Value, BrowserError> {
        let mut params = EvaluateParams::new(expression);
        params.context_id = context;
        params.return_by_value = Some(true);
        params.await_promise = Some(await_promise);
        let returns = self.page.execute(params).await?.result;
        if let Some(details) = returns.exception_details {
            let description = details
                .exception
                .as_ref()
                .and_then(|e| e.description.clone())
                .unwrap_or(details.text);
            return Err(BrowserError::Script(description));
        }
        Ok(returns.result.value.unwrap_or(Value::Null))
    }

    /// Moves the mouse to a point.
    pub(crate) async fn mouse_move(
        &self,
        x: f64,
        y: f64,
        buttons: i64,
    ) -> Result<(), BrowserError> {
        let mut params = DispatchMouseEventParams::new(DispatchMouseEventType::MouseMoved, x, y);
        params.buttons = Some(buttons);
        if buttons != 0 {
            params.button = Some(MouseButton::Left);
        }
        self.page.execute(params).await?;
        Ok(())
    }

    /// Presses or releases the left button at a point.
    pub(crate) async fn mouse_button(
        &self,
        x: f64,
        y: f64,
        down: bool,
    ) -> Result<(), BrowserError> {
        let kind = if down {
            DispatchMouseEventType::MousePressed
        } else {
            DispatchMouseEventType::MouseReleased
        };
        let mut params = DispatchMouseEventParams::new(kind, x, y);
        params.button = Some(MouseButton::Left);
        params.buttons = Some(if down { 1 } else { 0 });
        params.click_count = Some(1);
        self.page.execute(params).await?;
        Ok(())
    }

    /// A full left click: move, press, release. The three events are sent
    /// back to back and awaited together: Chromium handles input in order,
    /// and waiting for each acknowledgement costs a frame.
    pub(crate) async fn click_at(&self, x: f64, y: f64) -> Result<(), BrowserError> {
        futures::try_join!(
            self.mouse_move(x, y, 0),
            self.mouse_button(x, y, true),
            self.mouse_button(x, y, false)
        )?;
        Ok(())
    }

    /// A left click that, when it starts a navigation of this tab (a link, a
    /// form's submit button, a script setting `location`), waits until the
    /// frame stops loading, so the next observation reads the new document
    /// rather than the one the click left. Call right after aiming the click
    /// with [`PageHandle::element_point`], which arms the document's count of
    /// navigations started.
    pub(crate) async fn click_and_follow(&mut self, x: f64, y: f64) -> Result<(), BrowserError> {
        let mut requested = self
            .page
            .event_listener::<EventFrameRequestedNavigation>()
            .await?;
        let mut stopped = self
            .page
            .event_listener::<EventFrameStoppedLoading>()
            .await?;
        self.click_at(x, y).await?;
        let navigating = match self.navigations_after_click().await {
            Ok(Some(started)) => started > 0 || announced(&mut requested),
            // The document went away under the click: it navigated.
            Err(error) if is_context_gone(&error) => true,
            // No Navigation API in this browser, or the helper is gone: wait
            // a while for Chromium to announce a navigation instead.
            Ok(None) | Err(_) => {
                let announced = async {
                    while let Some(request) = requested.next().await {
                        if request.disposition == ClientNavigationDisposition::CurrentTab {
                            return true;
                        }
                    }
                    false
                };
                tokio::time::timeout(NAVIGATION_GRACE, announced)
                    .await
                    .unwrap_or(false)
            }
        };
        if navigating {
            // A navigation that never finishes loading is for the next
            // observation to show as it is.
            let _ = tokio::time::timeout(NAVIGATION_LOAD, stopped.next()).await;
        }
        Ok(())
    }

    /// How many cross-document navigations the document started since the
    /// click was aimed, read after the page's pending zero-delay timers ran
    /// (a click handler that navigates from `setTimeout(…, 0)` counts).
    /// `None` when the browser has no Navigation API.
    async fn navigations_after_click(&mut self) -> Result<Option<u64>, BrowserError> {
        let context = self.ensure_world().await?;
        let expression = "new Promise((resolve) => setTimeout(() => \
             resolve(globalThis.__hyperagents.call('navigations', [])), 0))";
        let value = unwrap_call(self.evaluate(expression, Some(context), true).await?)?;
        Ok(value.as_u64())
    }

    /// Presses and releases one named key in the focused element.
    pub(crate) async fn press_key(&self, key: &NamedKey) -> Result<(), BrowserError> {
        let [down, up] = named_key_events(key);
        futures::try_join!(self.send_key(down), self.send_key(up))?;
        Ok(())
    }

    /// Types keystrokes into the focused element. All events are sent back
    /// to back (in order) and awaited together, like a fast typist.
    pub(crate) async fn type_keystrokes(&self, strokes: &[Keystroke]) -> Result<(), BrowserError> {
        let mut sends = Vec::new();
        for stroke in strokes {
            match stroke {
                Keystroke::Named(key) => {
                    for event in named_key_events(key) {
                        sends.push(futures::future::Either::Left(self.send_key(event)));
                    }
                }
                Keystroke::Insert(text) => {
                    sends.push(futures::future::Either::Right(
                        self.insert_text(text.clone()),
                    ));
                }
                Keystroke::Char { ch, key_code } => {
                    let text = ch.to_string();
                    let mut down = DispatchKeyEventParams::new(DispatchKeyEventType::KeyDown);
                    down.key = Some(text.clone());
                    down.text = Some(text.clone());
                    down.unmodified_text = Some(text.clone());
                    down.windows_virtual_key_code = *key_code;
                    let mut up = DispatchKeyEventParams::new(DispatchKeyEventType::KeyUp);
                    up.key = Some(text);
                    up.windows_virtual_key_code = *key_code;
                    sends.push(futures::future::Either::Left(self.send_key(down)));
                    sends.push(futures::future::Either::Left(self.send_key(up)));
                }
            }
        }
        futures::future::try_join_all(sends).await?;
        Ok(())
    }

    async fn send_key(&self, event: DispatchKeyEventParams) -> Result<(), BrowserError> {
        self.page.execute(event).await?;
        Ok(())
    }

    async fn insert_text(&self, text: String) -> Result<(), BrowserError> {
        self.page.execute(InsertTextParams::new(text)).await?;
        Ok(())
    }

    /// Where to reach element `reference` (scrolling it into view when asked).
    pub(crate) async fn element_point(
        &mut self,
        reference: u64,
        scroll: bool,
    ) -> Result<ElementPoint, BrowserError> {
        let value = self
            .call("point", &[Value::from(reference), Value::from(scroll)])
            .await?;
        let number = |key: &str| value.get(key).and_then(Value::as_f64);
        match (number("x"), number("y")) {
            (Some(x), Some(y)) => Ok(ElementPoint {
                x,
                y,
                inside_viewport: value
                    .get("inside")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                covered_by: value
                    .get("covered")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }),
            _ => Err(BrowserError::Script(format!(
                "unexpected point result: {value}"
            ))),
        }
    }
}

/// The keydown and keyup events of a named key.
fn named_key_events(key: &NamedKey) -> [DispatchKeyEventParams; 2] {
    let mut down = DispatchKeyEventParams::new(if key.text.is_some() {
        DispatchKeyEventType::KeyDown
    } else {
        DispatchKeyEventType::RawKeyDown
    });
    down.key = Some(key.key.to_string());
    down.code = Some(key.code.to_string());
    down.windows_virtual_key_code = Some(key.key_code);
    down.native_virtual_key_code = Some(key.key_code);
    down.text = key.text.map(str::to_string);
    down.unmodified_text = key.text.map(str::to_string);
    let mut up = DispatchKeyEventParams::new(DispatchKeyEventType::KeyUp);
    up.key = Some(key.key.to_string());
    up.code = Some(key.code.to_string());
    up.windows_virtual_key_code = Some(key.key_code);
    up.native_virtual_key_code = Some(key.key_code);
    [down, up]
}

/// Turns the helper's `{ok}` / `{error}` envelope into a result. Helper
/// errors are about the agent's arguments (unknown ref, not a select, …).
fn unwrap_call(value: Value) -> Result<Value, BrowserError> {
    if let Some(message) = value.get("error").and_then(Value::as_str) {
        return Err(BrowserError::Refused(message.to_string()));
    }
    match value {
        Value::Object(mut map) => Ok(map.remove("ok").unwrap_or(Value::Null)),
        other => Err(BrowserError::Script(format!(
            "unexpected helper result: {other}"
        ))),
    }
}

/// Whether Chromium already announced a navigation of this tab (events that
/// arrived while the click was handled; never waits).
fn announced(
    requested: &mut (impl futures::Stream<Item = std::sync::Arc<EventFrameRequestedNavigation>> + Unpin),
) -> bool {
    use futures::FutureExt as _;
    while let Some(Some(request)) = requested.next().now_or_never() {
        if request.disposition == ClientNavigationDisposition::CurrentTab {
            return true;
        }
    }
    false
}

/// Without the Navigation API: how long after a click's input events are
/// acknowledged a navigation it caused has to be requested (Chromium requests
/// it while handling the click).
const NAVIGATION_GRACE: Duration = Duration::from_millis(50);
/// The longest wait for the document a click navigated to.
const NAVIGATION_LOAD: Duration = Duration::from_secs(5);

/// Whether the error means the script context went away (navigation).
pub(crate) fn is_context_gone(error: &BrowserError) -> bool {
    let message = error.to_string();
    [
        "Cannot find context with specified id",
        "Execution context was destroyed",
        "Inspected target navigated or closed",
        "Cannot find default execution context",
        "No frame for given id found",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

fn is_missing_helper(error: &BrowserError) -> bool {
    matches!(error, BrowserError::Script(message) if message.contains("__hyperagents"))
}

fn is_script_error(error: &BrowserError) -> bool {
    matches!(error, BrowserError::Script(_))
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_envelopes_unwrap() {
        assert_eq!(
            unwrap_call(serde_json::json!({"ok": 3})).unwrap(),
            serde_json::json!(3)
        );
        let error = unwrap_call(serde_json::json!({"error": "unknown ref 9"})).unwrap_err();
        assert!(matches!(error, BrowserError::Refused(ref m) if m == "unknown ref 9"));
    }
}
