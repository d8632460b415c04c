//! The crate's error type, and its mapping onto the domain's errors.

use std::path::PathBuf;

use hyperagents_domain::DomainError;

/// What went wrong in the browser layer.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// No Chromium executable was configured or found on `PATH`.
    #[error(
        "no Chromium executable found (looked for {looked_for} on PATH); install Debian's \
         `chromium` package or configure the executable"
    )]
    ChromiumNotFound { looked_for: String },
    /// The configured executable does not exist or cannot be run.
    #[error("cannot run Chromium at {path}: {message}")]
    BadExecutable { path: PathBuf, message: String },
    /// Chromium started but did not announce its DevTools endpoint.
    #[error("Chromium ({path}) failed to start: {message}")]
    Launch { path: PathBuf, message: String },
    /// A scratch directory for the browser profile could not be made.
    #[error("cannot create a scratch directory for Chromium: {0}")]
    Scratch(#[source] std::io::Error),
    /// The DevTools protocol failed (connection lost, command refused).
    #[error("DevTools: {0}")]
    Cdp(String),
    /// A script the host ran in the page threw.
    #[error("script error: {0}")]
    Script(String),
    /// An agent-supplied argument was refused (unknown ref, disallowed URL,
    /// forbidden key, …). The message is written for the agent.
    #[error("{0}")]
    Refused(String),
    /// A wait ran out of time.
    #[error("timed out after {seconds:.1} s waiting for {what}")]
    Timeout { what: String, seconds: f64 },
    /// The pool was closed or its browser has gone.
    #[error("the browser pool is closed")]
    PoolClosed,
}

impl From<chromiumoxide::error::CdpError> for BrowserError {
    fn from(error: chromiumoxide::error::CdpError) -> Self {
        BrowserError::Cdp(error.to_string())
    }
}

impl BrowserError {
    /// Maps the error for an action named `action`: refusals become
    /// `BadArguments` (the agent can correct them), the rest environment
    /// failures.
    pub fn into_action_error(self, action: &str) -> DomainError {
        match self {
            BrowserError::Refused(message) => DomainError::BadArguments {
                action: action.to_string(),
                message,
            },
            other => DomainError::Environment(other.to_string()),
        }
    }
}

impl From<BrowserError> for DomainError {
    fn from(error: BrowserError) -> Self {
        match error {
            BrowserError::Refused(message) => DomainError::Environment(message),
            other => DomainError::Environment(other.to_string()),
        }
    }
}
