//! A pool of browser windows: one Chromium process, one window per worker.
//!
//! Workers get a *window*, never a background tab: Chromium does not run
//! input for a background tab promptly (a mouse move there hung in the
//! prototype). A checked-out window comes back to the pool when its lease is
//! dropped; the next checkout closes any tabs the last episode opened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::emulation::SetFocusEmulationEnabledParams;
use chromiumoxide::cdp::browser_protocol::page::{
    EventJavascriptDialogOpening, HandleJavaScriptDialogParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    ActivateTargetParams, CloseTargetParams, CreateTargetParams, GetTargetsParams, TargetId,
};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::BrowserError;
use crate::launch::{Chromium, LaunchConfig};
use crate::page::PageHandle;

/// How to start a pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub launch: LaunchConfig,
    /// Windows (= concurrent episodes).
    pub windows: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            launch: LaunchConfig::default(),
            windows: 1,
        }
    }
}

/// Where the start-up time went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartTiming {
    /// Spawn to a working DevTools connection.
    pub browser: Duration,
    /// Opening every window.
    pub windows: Duration,
}

impl StartTiming {
    pub fn total(&self) -> Duration {
        self.browser + self.windows
    }
}

/// One Chromium with `windows` windows to lend.
#[derive(Clone)]
pub struct BrowserPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BrowserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserPool")
            .field("windows", &self.shared.windows)
            .field("timing", &self.shared.timing)
            .finish()
    }
}

struct Shared {
    chromium: Chromium,
    free: Mutex<Vec<Page>>,
    available: Arc<Semaphore>,
    windows: usize,
    timing: StartTiming,
}

/// A tab of a leased window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabInfo {
    pub index: usize,
    pub url: String,
    pub title: String,
    pub current: bool,
}

impl BrowserPool {
    /// Starts Chromium and opens `config.windows` windows.
    pub async fn launch(config: PoolConfig) -> Result<BrowserPool, BrowserError> {
        let windows = config.windows.max(1);
        let chromium = Chromium::launch(&config.launch).await?;
        let opening = Instant::now();
        let mut pages = Vec::with_capacity(windows);
        for _ in 0..windows {
            pages.push(open_window(&chromium, &config.launch).await?);
        }
        let timing = StartTiming {
            browser: chromium.started_in(),
            windows: opening.elapsed(),
        };
        Ok(BrowserPool {
            shared: Arc::new(Shared {
                chromium,
                free: Mutex::new(pages),
                available: Arc::new(Semaphore::new(windows)),
                windows,
                timing,
            }),
        })
    }

    /// How many windows the pool has.
    pub fn windows(&self) -> usize {
        self.shared.windows
    }

    /// How long starting took.
    pub fn start_timing(&self) -> StartTiming {
        self.shared.timing
    }

    /// The Chromium process (host-only).
    pub fn chromium(&self) -> &Chromium {
        &self.shared.chromium
    }

    /// Waits for a free window and lends it.
    pub async fn checkout(&self) -> Result<WindowLease, BrowserError> {
        let permit = Arc::clone(&self.shared.available)
            .acquire_owned()
            .await
            .map_err(|_| BrowserError::PoolClosed)?;
        let page = self
            .shared
            .free
            .lock()
            .map_err(|_| BrowserError::PoolClosed)?
            .pop()
            .ok_or(BrowserError::PoolClosed)?;
        let mut lease = WindowLease {
            tabs: vec![(page.target_id().clone(), PageHandle::new(page))],
            current: 0,
            shared: Arc::clone(&self.shared),
            _permit: permit,
        };
        lease.close_other_tabs().await?;
        Ok(lease)
    }

    /// Closes the browser once every lease is gone (otherwise the process is
    /// killed when the last lease drops).
    pub async fn close(self) {
        if let Ok(shared) = Arc::try_unwrap(self.shared) {
            shared.chromium.close().await;
        }
    }
}

async fn open_window(chromium: &Chromium, launch: &LaunchConfig) -> Result<Page, BrowserError> {
    let mut params = CreateTargetParams::new("about:blank");
    params.new_window = Some(true);
    params.width = Some(i64::from(launch.window_width));
    params.height = Some(i64::from(launch.window_height));
    let page = chromium.browser.new_page(params).await?;
    accept_dialogs(&page).await?;
    // Focus events (focus-text tasks, `:focus` styles) must fire in every
    // window, not just the one the window manager considers active.
    page.execute(SetFocusEmulationEnabledParams::new(true))
        .await?;
    Ok(page)
}

/// Accepts every JavaScript dialog (alert, confirm, prompt, beforeunload)
/// the page opens. An open dialog blocks the page's scripts, so every later
/// observation would hang; headless there is nobody to click it away.
async fn accept_dialogs(page: &Page) -> Result<(), BrowserError> {
    let mut dialogs = page
        .event_listener::<EventJavascriptDialogOpening>()
        .await?;
    let page = page.clone();
    tokio::spawn(async move {
        while let Some(dialog) = dialogs.next().await {
            tracing::debug!(message = %dialog.message, "accepting a JavaScript dialog");
            let _ = page.execute(HandleJavaScriptDialogParams::new(true)).await;
        }
    });
    Ok(())
}

/// A window lent to one episode. Dropping it returns the window.
pub struct WindowLease {
    /// The window's first tab, then tabs it opened, in discovery order.
    tabs: Vec<(TargetId, PageHandle)>,
    current: usize,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for WindowLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowLease")
            .field("tabs", &self.tabs.len())
            .field("current", &self.current)
            .finish()
    }
}

impl WindowLease {
    /// The tab the agent is looking at.
    pub fn current(&mut self) -> &mut PageHandle {
        &mut self.tabs[self.current].1
    }

    /// The window's first tab (where a benchmark loads its task).
    pub fn main(&mut self) -> &mut PageHandle {
        &mut self.tabs[0].1
    }

    /// Index of the current tab.
    pub fn current_index(&self) -> usize {
        self.current
    }

    /// The window's tabs: its first tab and every page opened from it.
    pub async fn tabs(&mut self) -> Result<Vec<TabInfo>, BrowserError> {
        self.refresh_tabs().await?;
        let targets = self
            .shared
            .chromium
            .browser
            .execute(GetTargetsParams::default())
            .await?
            .result
            .target_infos;
        Ok(self
            .tabs
            .iter()
            .enumerate()
            .map(|(index, (id, _))| {
                let info = targets.iter().find(|t| &t.target_id == id);
                TabInfo {
                    index,
                    url: info.map(|t| t.url.clone()).unwrap_or_default(),
                    title: info.map(|t| t.title.clone()).unwrap_or_default(),
                    current: index == self.current,
                }
            })
            .collect())
    }

    /// Makes tab `index` the current one.
    pub async fn switch_to(&mut self, index: usize) -> Result<(), BrowserError> {
        self.refresh_tabs().await?;
        let Some((target, _)) = self.tabs.get(index) else {
            return Err(BrowserError::Refused(format!(
                "no tab {index}; this window has {} tab(s)",
                self.tabs.len()
            )));
        };
        self.shared
            .chromium
            .browser
            .execute(ActivateTargetParams::new(target.clone()))
            .await?;
        self.current = index;
        Ok(())
    }

    /// Finds pages opened from this window's tabs (window.open, target=_blank)
    /// and forgets closed ones.
    async fn refresh_tabs(&mut self) -> Result<(), BrowserError> {
        let browser = &self.shared.chromium.browser;
        let targets = browser
            .execute(GetTargetsParams::default())
            .await?
            .result
            .target_infos;
        let current_id = self.tabs[self.current].0.clone();
        let main_id = self.tabs[0].0.clone();
        self.tabs
            .retain(|(id, _)| id == &main_id || targets.iter().any(|t| &t.target_id == id));
        loop {
            let known: Vec<TargetId> = self.tabs.iter().map(|(id, _)| id.clone()).collect();
            let Some(opened) = targets.iter().find(|t| {
                t.r#type == "page"
                    && !known.contains(&t.target_id)
                    && t.opener_id.as_ref().is_some_and(|o| known.contains(o))
            }) else {
                break;
            };
            match browser.get_page(opened.target_id.clone()).await {
                Ok(page) => self
                    .tabs
                    .push((opened.target_id.clone(), PageHandle::new(page))),
                // Not attached yet: it shows up on a later refresh.
                Err(_) => break,
            }
        }
        self.current = self
            .tabs
            .iter()
            .position(|(id, _)| id == &current_id)
            .unwrap_or(0);
        Ok(())
    }

    /// Closes every tab but the first (start of a new episode).
    async fn close_other_tabs(&mut self) -> Result<(), BrowserError> {
        self.refresh_tabs().await?;
        let browser = &self.shared.chromium.browser;
        let closing: Vec<TargetId> = self.tabs.drain(1..).map(|(id, _)| id).collect();
        self.current = 0;
        if closing.is_empty() {
            return Ok(());
        }
        for id in &closing {
            let _ = browser.execute(CloseTargetParams::new(id.clone())).await;
        }
        // Closing completes asynchronously; wait so the next episode never
        // sees (or switches to) a dying tab.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let targets = browser
                .execute(GetTargetsParams::default())
                .await?
                .result
                .target_infos;
            if !targets.iter().any(|t| closing.contains(&t.target_id)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

impl Drop for WindowLease {
    fn drop(&mut self) {
        let (_, main) = self.tabs.swap_remove(0);
        if let Ok(mut free) = self.shared.free.lock() {
            free.push(main.into_page());
        }
    }
}
