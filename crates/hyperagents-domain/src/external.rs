//! Tools from outside the environment — MCP servers' tools — that a run grants.
//!
//! The run's settings declare servers and *grant* tools by name; a program's
//! manifest *requests* them (`[tools] mcp = ["server/tool", "server/*"]`).
//! Scripts see a tool only when both hold: a program cannot grant itself a
//! tool. Tools are named `server/tool` so they never collide with an
//! environment's own (which have no `/`).

use async_trait::async_trait;

use crate::ActionSpec;

/// Why a call to an external tool failed. Every failure is the call's: the
/// episode goes on and the script sees the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolCallError {
    /// The program's manifest does not request it.
    #[error(
        "tool `{tool}` is not requested by the program: add it to `[tools] mcp` in hyperagent.toml"
    )]
    NotRequested { tool: String },
    /// The program requests it, the run does not grant it.
    #[error(
        "tool `{tool}` is not granted by this run: the settings' `[mcp.servers.{server}] grant` lists {granted}"
    )]
    NotGranted {
        tool: String,
        server: String,
        granted: String,
    },
    /// No server of that name in the settings.
    #[error("tool `{tool}`: no MCP server `{server}` in the settings (declared: {known})")]
    UnknownServer {
        tool: String,
        server: String,
        known: String,
    },
    /// The server is declared but could not be started or reached.
    #[error("MCP server `{server}` is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    /// The server did not answer in time (the request was cancelled).
    #[error("tool `{tool}` did not answer within {secs} s (the call was cancelled)")]
    Timeout { tool: String, secs: f64 },
    /// The connection failed during the call (the server exited, the HTTP
    /// request failed, the reply was malformed).
    #[error("tool `{tool}` failed: {reason}")]
    Transport { tool: String, reason: String },
    /// The tool ran and reported an error.
    #[error("tool `{tool}` reported an error: {message}")]
    Tool { tool: String, message: String },
}

/// The external tools of one run, shared by its episodes.
#[async_trait]
pub trait ExternalTools: Send + Sync {
    /// The granted tools that `requested` (manifest patterns `server/tool` or
    /// `server/*`) names, with their schemas. A server that cannot be reached
    /// contributes none; calling one of its tools then says why.
    async fn list(&self, requested: &[String]) -> Vec<ActionSpec>;

    /// Calls `name` (`server/tool`) with `args` if `requested` names it and
    /// the run grants it; the result is the tool's text.
    async fn call(
        &self,
        requested: &[String],
        name: &str,
        args: &serde_json::Value,
    ) -> Result<String, ToolCallError>;

    /// What the run grants and where each server lives, for evaluation keys:
    /// a different grant or server makes different episodes. Never holds
    /// secrets (environment values are not part of it).
    fn identity(&self) -> serde_json::Value;
}

/// Whether a manifest pattern (`server/tool` or `server/*`) names `tool`.
pub fn request_names(pattern: &str, tool: &str) -> bool {
    match (pattern.split_once('/'), tool.split_once('/')) {
        (Some((ps, "*")), Some((ts, _))) => ps == ts,
        _ => pattern == tool,
    }
}

/// Whether any of the manifest's patterns names `tool`.
pub fn requested(requested: &[String], tool: &str) -> bool {
    requested.iter().any(|p| request_names(p, tool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_tools_of_their_server_only() {
        assert!(request_names("everything/echo", "everything/echo"));
        assert!(!request_names("everything/echo", "everything/get-sum"));
        assert!(request_names("everything/*", "everything/get-sum"));
        assert!(!request_names("everything/*", "other/get-sum"));
        assert!(!request_names("everything/*", "everything"));
        let asked = vec!["a/x".to_string(), "b/*".to_string()];
        assert!(requested(&asked, "a/x"));
        assert!(requested(&asked, "b/anything"));
        assert!(!requested(&asked, "a/y"));
    }
}
