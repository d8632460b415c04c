//! `[mcp]` in the settings: which MCP servers a run may reach and which of
//! their tools it grants to programs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[mcp]`: servers by name (the `server` of `server/tool`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpSettings {
    pub servers: BTreeMap<String, McpServerSettings>,
}

/// One server: a stdio command or a streamable-HTTP URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSettings {
    /// A stdio server: the program (found on this process's `PATH` when it
    /// has no `/`) and its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// A streamable-HTTP server: its endpoint (`http://host:port/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Variables a stdio server receives from this process's environment;
    /// it starts with these and nothing else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// An HTTP server's bearer token, read from this variable of this
    /// process's environment (never stored, logged or keyed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token_env: Option<String>,
    /// The tools programs may call: names, or `"*"` for all of them.
    /// Nothing is granted unless listed.
    #[serde(default)]
    pub grant: Vec<String>,
    /// How long one call may take before it is cancelled.
    #[serde(default = "default_call_timeout_secs")]
    pub timeout_secs: f64,
    /// How long starting (stdio) or connecting and the MCP handshake may take.
    #[serde(default = "default_startup_timeout_secs")]
    pub startup_timeout_secs: f64,
}

fn default_call_timeout_secs() -> f64 {
    30.0
}

fn default_startup_timeout_secs() -> f64 {
    20.0
}

/// Why the `[mcp]` settings cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpSettingsError {
    #[error("[mcp.servers.{server}]: {message}")]
    Server { server: String, message: String },
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Stdio { program: String, args: Vec<String> },
    Http { url: String },
}

impl McpServerSettings {
    /// The server's transport, checked: exactly one of `command` and `url`.
    pub fn endpoint(&self, server: &str) -> Result<Endpoint, McpSettingsError> {
        let error = |message: String| McpSettingsError::Server {
            server: server.to_string(),
            message,
        };
        let positive = |value: f64| value.is_finite() && value > 0.0;
        if !positive(self.timeout_secs) || !positive(self.startup_timeout_secs) {
            return Err(error(
                "`timeout_secs` and `startup_timeout_secs` must be positive".into(),
            ));
        }
        match (self.command.split_first(), &self.url) {
            (Some((program, args)), None) => {
                if self.auth_token_env.is_some() {
                    return Err(error("`auth_token_env` is for HTTP servers (`url`)".into()));
                }
                if program.trim().is_empty() {
                    return Err(error("`command` names no program".into()));
                }
                Ok(Endpoint::Stdio {
                    program: program.clone(),
                    args: args.to_vec(),
                })
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(error(format!("`url` must be http(s)://…, not `{url}`")));
                }
                if !self.env.is_empty() {
                    return Err(error(
                        "`env` is for stdio servers (`command`); an HTTP server has its own".into(),
                    ));
                }
                Ok(Endpoint::Http { url: url.clone() })
            }
            (Some(_), Some(_)) => Err(error("give `command` or `url`, not both".into())),
            (None, None) => Err(error(
                "give `command` (a stdio server) or `url` (streamable HTTP)".into(),
            )),
        }
    }

    /// Whether `tool` of this server is granted.
    pub fn grants(&self, tool: &str) -> bool {
        self.grant.iter().any(|g| g == "*" || g == tool)
    }
}

impl McpSettings {
    /// Checks every server; the first problem found.
    pub fn check(&self) -> Result<(), McpSettingsError> {
        for (name, server) in &self.servers {
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid_name {
                return Err(McpSettingsError::Server {
                    server: name.clone(),
                    message: "a server's name is letters, digits, `_`, `-` or `.`".into(),
                });
            }
            server.endpoint(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn server(toml_text: &str) -> McpServerSettings {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn a_server_is_a_command_or_a_url_never_both_nor_neither() {
        let stdio = server("command = [\"node\", \"index.js\", \"stdio\"]\ngrant = [\"echo\"]");
        assert_eq!(
            stdio.endpoint("e"),
            Ok(Endpoint::Stdio {
                program: "node".into(),
                args: vec!["index.js".into(), "stdio".into()]
            })
        );
        assert_eq!(stdio.timeout_secs, 30.0);
        let http = server("url = \"http://127.0.0.1:9/mcp\"");
        assert!(matches!(http.endpoint("e"), Ok(Endpoint::Http { .. })));
        let both = server("url = \"http://127.0.0.1:9/mcp\"\ncommand = [\"node\"]");
        let message = both.endpoint("e").unwrap_err().to_string();
        assert!(message.contains("[mcp.servers.e]") && message.contains("not both"));
        assert!(server("grant = []").endpoint("e").is_err());
        assert!(server("url = \"ftp://x\"").endpoint("e").is_err());
        assert!(
            server("url = \"http://x/mcp\"\nenv = [\"HOME\"]")
                .endpoint("e")
                .is_err()
        );
        assert!(
            server("command = [\"node\"]\ntimeout_secs = 0")
                .endpoint("e")
                .is_err()
        );
    }

    #[test]
    fn only_listed_tools_are_granted() {
        let s = server("command = [\"x\"]\ngrant = [\"echo\"]");
        assert!(s.grants("echo"));
        assert!(!s.grants("get-env"));
        assert!(server("command = [\"x\"]\ngrant = [\"*\"]").grants("get-env"));
        assert!(!server("command = [\"x\"]").grants("echo"));
    }

    #[test]
    fn server_names_are_checked() {
        let mut settings = McpSettings::default();
        settings
            .servers
            .insert("bad/name".into(), server("command = [\"x\"]"));
        assert!(
            settings
                .check()
                .unwrap_err()
                .to_string()
                .contains("bad/name")
        );
    }
}
