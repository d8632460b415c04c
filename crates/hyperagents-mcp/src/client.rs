//! The run's MCP servers as [`ExternalTools`]: connected on first use,
//! reconnected after they exit, every call under a timeout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyperagents_domain::external::requested;
use hyperagents_domain::{ActionSpec, ExternalTools, ToolCallError};
use rmcp::model::{
    CallToolRequestParams, ClientRequest, ContentBlock, Request, ServerResult, Tool,
};
use rmcp::service::{PeerRequestOptions, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;

use crate::settings::{Endpoint, McpServerSettings, McpSettings, McpSettingsError};

/// The most text one call returns to a script; the rest is cut with a note.
pub const MAX_RESULT_BYTES: usize = 256 * 1024;

/// After a failed start, calls fail at once with its reason for this long
/// instead of each waiting out another start.
const RETRY_AFTER: Duration = Duration::from_secs(15);

/// The MCP servers of one run.
pub struct McpTools {
    servers: BTreeMap<String, Server>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field("servers", &self.servers.keys().collect::<Vec<_>>())
            .finish()
    }
}

struct Server {
    name: String,
    settings: McpServerSettings,
    endpoint: Endpoint,
    state: Mutex<State>,
}

enum State {
    Idle,
    Connected(Arc<Connection>),
    Failed { reason: String, at: Instant },
}

struct Connection {
    service: RunningService<RoleClient, ()>,
    tools: Vec<Tool>,
    /// The stdio server's process, for tests and logs.
    pid: Option<u32>,
}

impl Connection {
    /// A session just opened, with the tools its server lists.
    async fn listing(
        service: RunningService<RoleClient, ()>,
        pid: Option<u32>,
    ) -> Result<Self, String> {
        let tools = service
            .list_all_tools()
            .await
            .map_err(|e| format!("listing its tools failed: {e}"))?;
        Ok(Self {
            service,
            tools,
            pid,
        })
    }
}

impl McpTools {
    /// The servers the settings declare; none is started yet.
    pub fn new(settings: &McpSettings) -> Result<Self, McpSettingsError> {
        settings.check()?;
        let mut servers = BTreeMap::new();
        for (name, server) in &settings.servers {
            servers.insert(
                name.clone(),
                Server {
                    name: name.clone(),
                    endpoint: server.endpoint(name)?,
                    settings: server.clone(),
                    state: Mutex::new(State::Idle),
                },
            );
        }
        Ok(Self { servers })
    }

    /// Whether the settings declare any server.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The process id of a connected stdio server.
    pub async fn server_pid(&self, server: &str) -> Option<u32> {
        let server = self.servers.get(server)?;
        match &*server.state.lock().await {
            State::Connected(connection) => connection.pid,
            _ => None,
        }
    }

    /// Every tool a server offers, granted or not (for `hyperagents mcp`
    /// users and checks; scripts see only [`ExternalTools::list`]).
    pub async fn server_tools(&self, server: &str) -> Result<Vec<String>, ToolCallError> {
        let slot = self
            .servers
            .get(server)
            .ok_or_else(|| self.unknown_server(server, server))?;
        let connection = slot.connection().await?;
        Ok(connection
            .tools
            .iter()
            .map(|t| t.name.to_string())
            .collect())
    }

    fn unknown_server(&self, tool: &str, server: &str) -> ToolCallError {
        ToolCallError::UnknownServer {
            tool: tool.to_string(),
            server: server.to_string(),
            known: if self.servers.is_empty() {
                "none".into()
            } else {
                self.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        }
    }
}

impl Server {
    /// The live connection, started if there is none (or the last one closed).
    async fn connection(&self) -> Result<Arc<Connection>, ToolCallError> {
        let mut state = self.state.lock().await;
        match &*state {
            State::Connected(connection) if !connection.service.is_transport_closed() => {
                return Ok(connection.clone());
            }
            State::Failed { reason, at } if at.elapsed() < RETRY_AFTER => {
                return Err(ToolCallError::Unavailable {
                    server: self.name.clone(),
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
        let limit = Duration::from_secs_f64(self.settings.startup_timeout_secs);
        let started = match tokio::time::timeout(limit, self.connect()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer to the MCP handshake within {} s",
                self.settings.startup_timeout_secs
            )),
        };
        match started {
            Ok(connection) => {
                let connection = Arc::new(connection);
                tracing::info!(
                    server = %self.name,
                    tools = connection.tools.len(),
                    "MCP server connected"
                );
                *state = State::Connected(connection.clone());
                Ok(connection)
            }
            Err(reason) => {
                tracing::warn!(server = %self.name, %reason, "MCP server unavailable");
                *state = State::Failed {
                    reason: reason.clone(),
                    at: Instant::now(),
                };
                Err(ToolCallError::Unavailable {
                    server: self.name.clone(),
                    reason,
                })
            }
        }
    }

    async fn connect(&self) -> Result<Connection, String> {
        match &self.endpoint {
            Endpoint::Stdio { program, args } => {
                let program = resolve_program(program)?;
                let mut command = tokio::process::Command::new(&program);
                command.args(args).env_clear();
                // Only the variables the settings name; absent ones are skipped.
                for name in &self.settings.env {
                    if let Some(value) = std::env::var_os(name) {
                        command.env(name, value);
                    }
                }
                let (transport, stderr) = TokioChildProcess::builder(command)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
                let pid = transport.id();
                if let Some(stderr) = stderr {
                    let server = self.name.clone();
                    tokio::spawn(async move {
                        let mut lines = tokio::io::BufReader::new(stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            tracing::debug!(target: "mcp_server", server = %server, "{line}");
                        }
                    });
                }
                let service = ().serve(transport).await.map_err(|e| {
                    format!(
                        "{} did not complete the MCP handshake: {e}",
                        program.display()
                    )
                })?;
                Connection::listing(service, pid).await
            }
            Endpoint::Http { url } => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
                if let Some(variable) = &self.settings.auth_token_env {
                    let token = std::env::var(variable).map_err(|_| {
                        format!("`auth_token_env` names `{variable}`, which is not set")
                    })?;
                    config = config.auth_header(token);
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                let service =
                    ().serve(transport)
                        .await
                        .map_err(|e| format!("connecting to {url}: {e}"))?;
                Connection::listing(service, None).await
            }
        }
    }

    /// Forgets `connection` if it is still the current one, so the next
    /// call starts the server again.
    async fn drop_connection(&self, connection: &Arc<Connection>) {
        let mut state = self.state.lock().await;
        if let State::Connected(current) = &*state
            && Arc::ptr_eq(current, connection)
        {
            *state = State::Idle;
        }
    }

    async fn call(
        &self,
        full_name: &str,
        tool: &str,
        args: &Value,
    ) -> Result<String, ToolCallError> {
        let arguments = match args {
            Value::Object(map) => Some(map.clone()),
            Value::Null => None,
            other => {
                return Err(ToolCallError::Tool {
                    tool: full_name.to_string(),
                    message: format!("arguments must be an object, not {other}"),
                });
            }
        };
        let connection = self.connection().await?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let timeout = Duration::from_secs_f64(self.settings.timeout_secs);
        let reply = async {
            connection
                .service
                .send_request_with_option(
                    ClientRequest::CallToolRequest(Request::new(params)),
                    PeerRequestOptions::with_timeout(timeout),
                )
                .await?
                .await_response()
                .await
        };
        // The SDK's own timeout cancels the request on the server; this
        // outer one only guards a send that never completes.
        let reply = match tokio::time::timeout(timeout + Duration::from_secs(1), reply).await {
            Ok(reply) => reply,
            Err(_) => Err(ServiceError::Timeout { timeout }),
        };
        match reply {
            Ok(ServerResult::CallToolResult(result)) => {
                let text = result_text(&result.content, result.structured_content.as_ref());
                if result.is_error.unwrap_or(false) {
                    Err(ToolCallError::Tool {
                        tool: full_name.to_string(),
                        message: text,
                    })
                } else {
                    Ok(text)
                }
            }
            Ok(_) => Err(ToolCallError::Transport {
                tool: full_name.to_string(),
                reason: "the server answered with something other than a tool result".into(),
            }),
            Err(ServiceError::Timeout { .. }) => Err(ToolCallError::Timeout {
                tool: full_name.to_string(),
                secs: self.settings.timeout_secs,
            }),
            Err(ServiceError::McpError(error)) => Err(ToolCallError::Tool {
                tool: full_name.to_string(),
                message: error.message.to_string(),
            }),
            Err(error) => {
                let closed = connection.service.is_transport_closed()
                    || matches!(
                        error,
                        ServiceError::TransportClosed | ServiceError::TransportSend(_)
                    );
                if closed {
                    self.drop_connection(&connection).await;
                }
                Err(ToolCallError::Transport {
                    tool: full_name.to_string(),
                    reason: if closed {
                        format!(
                            "the connection to MCP server `{}` closed during the call (the server exited?): {error}",
                            self.name
                        )
                    } else {
                        error.to_string()
                    },
                })
            }
        }
    }
}

/// What a script gets from a tool result: its text parts; other parts as a
/// short note; structured content when there is no text.
fn result_text(content: &[ContentBlock], structured: Option<&Value>) -> String {
    let mut parts: Vec<String> = content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(text) => text.text.clone(),
            ContentBlock::Image(image) => format!("[image {}]", image.mime_type),
            ContentBlock::Audio(audio) => format!("[audio {}]", audio.mime_type),
            ContentBlock::ResourceLink(link) => format!("[resource {}]", link.uri),
            ContentBlock::Resource(_) => "[embedded resource]".to_string(),
            _ => "[content]".to_string(),
        })
        .collect();
    if parts.iter().all(|p| p.starts_with('['))
        && let Some(value) = structured
    {
        parts.push(value.to_string());
    }
    let mut text = parts.join("\n");
    if text.len() > MAX_RESULT_BYTES {
        let mut end = MAX_RESULT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let total = text.len();
        text.truncate(end);
        text.push_str(&format!("\n[cut at {MAX_RESULT_BYTES} of {total} bytes]"));
    }
    text
}

/// A program named without a `/` is looked up on this process's `PATH`:
/// the server itself starts with no `PATH` unless the settings pass it.
fn resolve_program(program: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("`{program}` is not on PATH"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[async_trait]
impl ExternalTools for McpTools {
    async fn list(&self, requests: &[String]) -> Vec<ActionSpec> {
        let mut specs = Vec::new();
        for (name, server) in &self.servers {
            let asked = requests
                .iter()
                .any(|r| r.split_once('/').is_some_and(|(s, _)| s == name));
            if !asked {
                continue;
            }
            // An unreachable server contributes nothing; calling one of its
            // tools then says why.
            let Ok(connection) = server.connection().await else {
                continue;
            };
            for tool in &connection.tools {
                let full = format!("{name}/{}", tool.name);
                if server.settings.grants(&tool.name) && requested(requests, &full) {
                    specs.push(ActionSpec {
                        name: full,
                        description: tool.description.as_deref().unwrap_or("").to_string(),
                        parameters: Value::Object((*tool.input_schema).clone()),
                    });
                }
            }
        }
        specs
    }

    async fn call(
        &self,
        requests: &[String],
        name: &str,
        args: &Value,
    ) -> Result<String, ToolCallError> {
        let Some((server_name, tool)) = name.split_once('/') else {
            return Err(self.unknown_server(name, ""));
        };
        if !requested(requests, name) {
            return Err(ToolCallError::NotRequested {
                tool: name.to_string(),
            });
        }
        let Some(server) = self.servers.get(server_name) else {
            return Err(self.unknown_server(name, server_name));
        };
        if !server.settings.grants(tool) {
            return Err(ToolCallError::NotGranted {
                tool: name.to_string(),
                server: server_name.to_string(),
                granted: if server.settings.grant.is_empty() {
                    "nothing".into()
                } else {
                    server.settings.grant.join(", ")
                },
            });
        }
        server.call(name, tool, args).await
    }

    fn identity(&self) -> Value {
        let servers: serde_json::Map<String, Value> = self
            .servers
            .iter()
            .map(|(name, server)| {
                let mut grant = server.settings.grant.clone();
                grant.sort();
                let place = match &server.endpoint {
                    Endpoint::Stdio { program, args } => {
                        json!({"command": std::iter::once(program).chain(args).collect::<Vec<_>>()})
                    }
                    Endpoint::Http { url } => json!({ "url": url }),
                };
                (
                    name.clone(),
                    json!({"at": place, "env": server.settings.env, "grant": grant}),
                )
            })
            .collect();
        Value::Object(servers)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_text_and_cut_what_is_too_long() {
        let text = result_text(&[ContentBlock::text("a"), ContentBlock::text("b")], None);
        assert_eq!(text, "a\nb");
        let structured = json!({"sum": 3});
        assert_eq!(result_text(&[], Some(&structured)), "{\"sum\":3}");
        let long = "é".repeat(MAX_RESULT_BYTES);
        let cut = result_text(&[ContentBlock::text(long)], None);
        assert!(cut.len() < MAX_RESULT_BYTES + 100);
        assert!(cut.ends_with(&format!("of {} bytes]", 2 * MAX_RESULT_BYTES)));
    }

    #[test]
    fn programs_without_a_slash_are_found_on_path() {
        assert!(resolve_program("sh").is_ok_and(|p| p.is_absolute()));
        let missing = resolve_program("surely-no-such-program-here").unwrap_err();
        assert!(missing.contains("not on PATH"));
        assert_eq!(
            resolve_program("./x").ok(),
            Some(PathBuf::from("./x")),
            "a path is taken as given"
        );
    }
}
