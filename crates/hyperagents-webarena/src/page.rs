//! The browser page the evaluator drives.
//!
//! WebArena's `url_match` reads the page's URL after the episode, and
//! `program_html` navigates the page and runs JavaScript locators in it.
//! That page belongs to the host: the evaluator runs after the agent is
//! done, and nothing it reads or runs passes through the agent. Any browser
//! wrapper implements [`EvalPage`]; this crate knows no browser.

use async_trait::async_trait;
use serde_json::Value;

/// Why a page operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The page's script threw (a locator on an element that is not there,
    /// …). WebArena scores such a locator as empty text.
    #[error("script error: {0}")]
    Script(String),
    /// The browser or the connection to it failed; evaluation stops with
    /// an environment error rather than a score.
    #[error("browser error: {0}")]
    Browser(String),
}

/// A host-controlled page the evaluator may read, navigate and script.
#[async_trait]
pub trait EvalPage: Send {
    /// The URL the page shows now.
    async fn current_url(&mut self) -> Result<String, PageError>;

    /// Navigates to `url` and waits for the load to finish.
    async fn goto(&mut self, url: &str) -> Result<(), PageError>;

    /// Evaluates a JavaScript expression in the page (awaiting a promise
    /// result) and returns its value as JSON, `null` for `undefined`.
    /// A value rather than text, because WebArena formats results the way
    /// Python's `str()` prints what Playwright returns (`1`, `True`,
    /// `['a', 'b']`).
    async fn eval_js(&mut self, expression: &str) -> Result<Value, PageError>;

    /// The page's HTML, as Playwright's `page.content()` serializes it
    /// (doctype, then the document element's outer HTML).
    async fn content(&mut self) -> Result<String, PageError> {
        let value = self.eval_js(CONTENT_SCRIPT).await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }
}

const CONTENT_SCRIPT: &str = "(() => { let html = ''; \
     if (document.doctype) { html = new XMLSerializer().serializeToString(document.doctype); } \
     if (document.documentElement) { html += document.documentElement.outerHTML; } \
     return html; })()";
