//! The MCP client against a real MCP server nobody here wrote
//! (`@modelcontextprotocol/server-everything`, from npm), over stdio and
//! streamable HTTP: listing, calling, grants, an environment of only the
//! named variables, a server that exits mid-call, one that answers too
//! late, one that never completes the handshake.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hyperagents_domain::{ExternalTools, ToolCallError};
use hyperagents_mcp::{McpServerSettings, McpSettings, McpTools};
use hyperagents_testkit::mcp::{self, Everything};
use serde_json::json;

fn server(command: Vec<String>, url: Option<String>, grant: &[&str]) -> McpServerSettings {
    McpServerSettings {
        command,
        url,
        env: Vec::new(),
        auth_token_env: None,
        grant: grant.iter().map(|g| g.to_string()).collect(),
        timeout_secs: 30.0,
        startup_timeout_secs: 20.0,
    }
}

fn tools(name: &str, settings: McpServerSettings) -> McpTools {
    let mut all = McpSettings::default();
    all.servers.insert(name.to_string(), settings);
    McpTools::new(&all).expect("valid settings")
}

fn asked(patterns: &[&str]) -> Vec<String> {
    patterns.iter().map(|p| p.to_string()).collect()
}

fn stdio(everything: &Everything, grant: &[&str]) -> McpServerSettings {
    server(everything.stdio_command(), None, grant)
}

async fn lists_and_calls(tools: &McpTools) {
    let requested = asked(&["everything/*"]);
    let listed = tools.list(&requested).await;
    let mut names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["everything/echo", "everything/get-sum"]);
    let sum = listed
        .iter()
        .find(|t| t.name == "everything/get-sum")
        .expect("listed");
    assert!(!sum.description.is_empty());
    assert!(
        sum.parameters["properties"]["a"].is_object(),
        "the server's input schema is passed on: {}",
        sum.parameters
    );

    let text = tools
        .call(&requested, "everything/get-sum", &json!({"a": 2, "b": 40}))
        .await
        .expect("get-sum answers");
    assert!(text.contains("42"), "{text}");
    let text = tools
        .call(
            &requested,
            "everything/echo",
            &json!({"message": "hello there"}),
        )
        .await
        .expect("echo answers");
    assert!(text.contains("hello there"), "{text}");

    // Granted tools only, whatever the program asks for.
    let refused = tools
        .call(&requested, "everything/get-env", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ToolCallError::NotGranted { .. }),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("not granted") && message.contains("echo, get-sum"),
        "{message}"
    );
    // Requested tools only, whatever the run grants.
    let narrow = asked(&["everything/echo"]);
    let refused = tools
        .call(&narrow, "everything/get-sum", &json!({"a": 1, "b": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ToolCallError::NotRequested { .. }),
        "{refused:?}"
    );
    assert_eq!(tools.list(&narrow).await.len(), 1);
    // A server the settings do not declare.
    let refused = tools
        .call(&asked(&["other/*"]), "other/x", &json!({}))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("no MCP server `other`"),
        "{refused}"
    );
    // The server's own error for bad arguments reaches the script as text.
    let refused = tools
        .call(&requested, "everything/get-sum", &json!({"a": "two"}))
        .await
        .unwrap_err();
    assert!(matches!(refused, ToolCallError::Tool { .. }), "{refused:?}");
}

#[tokio::test]
async fn over_stdio_granted_and_requested_tools_are_listed_and_called() {
    let Some(everything) = mcp::everything() else {
        return;
    };
    let tools = tools("everything", stdio(&everything, &["echo", "get-sum"]));
    lists_and_calls(&tools).await;
}

#[tokio::test]
async fn over_streamable_http_granted_and_requested_tools_are_listed_and_called() {
    let Some(everything) = mcp::everything() else {
        return;
    };
    let http = everything.start_http();
    let tools = tools(
        "everything",
        server(Vec::new(), Some(http.url()), &["echo", "get-sum"]),
    );
    lists_and_calls(&tools).await;
}

#[tokio::test]
async fn a_stdio_server_starts_with_only_the_variables_the_settings_name() {
    let Some(everything) = mcp::everything() else {
        return;
    };
    assert!(std::env::var_os("PATH").is_some() && std::env::var_os("HOME").is_some());
    let mut settings = stdio(&everything, &["get-env"]);
    settings.env = vec!["HOME".into(), "HYPERAGENTS_SURELY_UNSET_VARIABLE".into()];
    let tools = tools("everything", settings);
    let requested = asked(&["everything/get-env"]);
    let text = tools
        .call(&requested, "everything/get-env", &json!({}))
        .await
        .expect("get-env answers");
    let env: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("the server prints its environment as JSON");
    assert_eq!(
        env.get("HOME").and_then(|v| v.as_str()),
        std::env::var("HOME").ok().as_deref()
    );
    for absent in [
        "PATH",
        "CARGO_MANIFEST_DIR",
        "HYPERAGENTS_SURELY_UNSET_VARIABLE",
    ] {
        assert!(!env.contains_key(absent), "{absent} leaked: {text}");
    }
}

#[tokio::test]
async fn a_server_that_exits_mid_call_fails_that_call_and_is_started_again_for_the_next() {
    let Some(everything) = mcp::everything() else {
        return;
    };
    let tools = std::sync::Arc::new(tools(
        "everything",
        stdio(&everything, &["echo", "trigger-long-running-operation"]),
    ));
    let requested = asked(&["everything/*"]);
    tools
        .call(&requested, "everything/echo", &json!({"message": "up"}))
        .await
        .expect("the server is up");
    let pid = tools.server_pid("everything").await.expect("a stdio pid");

    let call = {
        let tools = tools.clone();
        let requested = requested.clone();
        tokio::spawn(async move {
            tools
                .call(
                    &requested,
                    "everything/trigger-long-running-operation",
                    &json!({"duration": 20, "steps": 20}),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let started = Instant::now();
    let failed = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("the call ends soon after the server dies")
        .expect("the task ran")
        .unwrap_err();
    assert!(
        matches!(failed, ToolCallError::Transport { .. }),
        "{failed:?}"
    );
    assert!(failed.to_string().contains("closed"), "{failed}");
    assert!(started.elapsed() < Duration::from_secs(15));

    let text = tools
        .call(&requested, "everything/echo", &json!({"message": "again"}))
        .await
        .expect("the next call starts the server again");
    assert!(text.contains("again"));
    let new_pid = tools.server_pid("everything").await.expect("a stdio pid");
    assert_ne!(pid, new_pid);
}

#[tokio::test]
async fn a_call_past_its_timeout_is_cancelled_and_the_server_stays_usable() {
    let Some(everything) = mcp::everything() else {
        return;
    };
    let mut settings = stdio(&everything, &["echo", "trigger-long-running-operation"]);
    settings.timeout_secs = 1.0;
    let tools = tools("everything", settings);
    let requested = asked(&["everything/*"]);
    tools
        .call(&requested, "everything/echo", &json!({"message": "up"}))
        .await
        .expect("the server is up");
    let pid = tools.server_pid("everything").await;
    let started = Instant::now();
    let failed = tools
        .call(
            &requested,
            "everything/trigger-long-running-operation",
            &json!({"duration": 10, "steps": 2}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(failed, ToolCallError::Timeout { .. }),
        "{failed:?}"
    );
    assert!(failed.to_string().contains("within 1 s"), "{failed}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = tools
        .call(
            &requested,
            "everything/echo",
            &json!({"message": "still here"}),
        )
        .await
        .expect("the same server answers the next call");
    assert!(text.contains("still here"));
    assert_eq!(tools.server_pid("everything").await, pid);
}

#[tokio::test]
async fn a_server_that_never_completes_the_handshake_is_unavailable_not_fatal() {
    let mut settings = server(vec!["sleep".into(), "60".into()], None, &["*"]);
    settings.startup_timeout_secs = 1.0;
    let tools = tools("mute", settings);
    let requested = asked(&["mute/*"]);
    let started = Instant::now();
    assert!(tools.list(&requested).await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
    let failed = tools
        .call(&requested, "mute/anything", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(failed, ToolCallError::Unavailable { .. }),
        "{failed:?}"
    );
    assert!(failed.to_string().contains("handshake"), "{failed}");
    // Within the retry pause the reason comes back at once.
    let again = Instant::now();
    assert!(tools.call(&requested, "mute/x", &json!({})).await.is_err());
    assert!(again.elapsed() < Duration::from_millis(500));

    let missing = McpTools::new(&{
        let mut all = McpSettings::default();
        all.servers.insert(
            "gone".into(),
            server(vec!["surely-no-such-mcp-server".into()], None, &["*"]),
        );
        all
    })
    .expect("valid settings");
    let failed = missing
        .call(&asked(&["gone/*"]), "gone/x", &json!({}))
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("not on PATH"), "{failed}");
}
