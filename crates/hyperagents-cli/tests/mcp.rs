//! MCP both ways through the CLI: a program calls the tools of a real MCP
//! server (server-everything from npm) that the run's settings grant, and
//! `hyperagents mcp` is driven by an MCP client.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hyperagents_testkit::mcp;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use support::{repo, run, text};

/// The seed with its coordinator replaced by `script` and `extra` appended
/// to its manifest.
fn program(dir: &Path, script: &str, extra: &str) -> PathBuf {
    let target = dir.join("program");
    hyperagents_program::copy_program(&repo().join("programs/seed"), &target).unwrap();
    std::fs::write(target.join("hyper/main.py"), script).unwrap();
    let manifest = std::fs::read_to_string(target.join("hyperagent.toml")).unwrap();
    std::fs::write(
        target.join("hyperagent.toml"),
        format!("{manifest}\n{extra}"),
    )
    .unwrap();
    target
}

#[test]
fn a_program_calls_the_mcp_tools_its_run_grants_and_no_others() {
    let Some(everything) = mcp::everything() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
names = sorted([t["name"] for t in tools()])
log("tools: " + ", ".join(names))
try:
    tool("everything/get-env", {})
    refused = "not refused"
except Exception as e:
    refused = str(e)
log("refused: " + refused)
total = tool("everything/get-sum", {"a": 19, "b": 23})
answer(total)
"#;
    let program = program(dir.path(), script, "[tools]\nmcp = [\"everything/*\"]\n");
    let command: Vec<String> = everything
        .stdio_command()
        .iter()
        .map(|part| format!("{part:?}"))
        .collect();
    std::fs::write(
        dir.path().join("hyperagents.toml"),
        format!(
            "[mcp.servers.everything]\ncommand = [{}]\ngrant = [\"echo\", \"get-sum\"]\n",
            command.join(", ")
        ),
    )
    .unwrap();
    let suite = dir.path().join("suite.jsonl");
    std::fs::write(
        &suite,
        "{\"id\": \"sum\", \"input\": \"Add 19 and 23.\", \"expected\": 42, \"scorer\": \"numeric\"}\n",
    )
    .unwrap();
    let traces = dir.path().join("traces");
    let run_sum = || {
        run(
            dir.path(),
            &[
                "run",
                "--program",
                program.to_str().unwrap(),
                "--suite",
                suite.to_str().unwrap(),
                "--task",
                "sum",
                "--traces",
                traces.to_str().unwrap(),
            ],
        )
    };
    let out = run_sum();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.starts_with("SUCCESS task sum"), "{stdout}");
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("trajectory: "))
        .unwrap();
    let trajectory = gunzip(path);
    // Granted and requested: listed beside the environment's own tools.
    // Requested, not granted: refused with why.
    assert!(
        trajectory.contains("tools: calculator, everything/echo, everything/get-sum"),
        "{trajectory}"
    );
    assert!(
        trajectory.contains("refused: tool `everything/get-env` is not granted by this run"),
        "{trajectory}"
    );
    // Each call is a span with its input and output.
    let out = run(dir.path(), &["trace", path]);
    let tree = text(&out.stdout);
    assert!(tree.contains("everything/get-sum"), "{tree}");
    assert!(
        trajectory.contains("The sum of 19 and 23 is 42"),
        "{trajectory}"
    );

    // Without the grant in the settings the same program is refused the call.
    std::fs::write(
        dir.path().join("hyperagents.toml"),
        format!(
            "[mcp.servers.everything]\ncommand = [{}]\ngrant = [\"echo\"]\n",
            command.join(", ")
        ),
    )
    .unwrap();
    let out = run_sum();
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("FAILURE task sum"), "{stdout}");
    let trajectory = gunzip(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("trajectory: "))
            .unwrap(),
    );
    assert!(
        trajectory.contains("tool `everything/get-sum` is not granted by this run"),
        "{trajectory}"
    );
}

/// A trajectory's JSONL text.
fn gunzip(path: &str) -> String {
    text(&support::contents(Path::new(path)))
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> Value {
    let mut params = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let result = client.call_tool(params).await.unwrap();
    assert!(!result.is_error.unwrap_or(false), "{tool}: {result:?}");
    let text = result.content[0].as_text().unwrap().text.clone();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

async fn start_server(
    dir: &Path,
    store: &Path,
    allow_start: bool,
) -> RunningService<RoleClient, ()> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hyperagents"));
    command
        .current_dir(dir)
        .env("HYPERAGENTS_CACHE_DIR", dir.join("cache"))
        .env("XDG_CONFIG_HOME", "/nonexistent-hyperagents-test")
        .env_remove("RUST_LOG")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .args(["mcp", "--store", store.to_str().unwrap()]);
    if allow_start {
        command.arg("--allow-start");
    }
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ().serve(transport).await.unwrap()
}

/// Polls `job_status` until the job ends; its last status.
async fn wait_for(client: &RunningService<RoleClient, ()>, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = call(client, "job_status", json!({"job": job})).await;
        if status["running"] == json!(false) {
            assert_eq!(status["exit_code"], json!(0), "{status}");
            return status;
        }
        assert!(Instant::now() < deadline, "the job did not end: {status}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn hyperagents_mcp_starts_runs_and_serves_their_results() {
    let dir = tempfile::tempdir().unwrap();
    // Every role on a loopback server that answers "4".
    let (url, _seen) = support::fake_openai("4");
    std::fs::write(
        dir.path().join("hyperagents.toml"),
        format!(
            "[openai]\nbase_url = \"{url}\"\n[cache]\nmode = \"off\"\n\
             [roles]\ntask = \"openai:fake-model\"\nmeta = \"openai:fake-model\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("qa.jsonl"),
        "{\"id\": \"add\", \"input\": \"What is 2+2?\", \"expected\": 4, \"scorer\": \"numeric\"}\n",
    )
    .unwrap();
    let store = dir.path().join("results.sqlite");

    // Read-only unless asked: no tool that starts anything.
    let reader = start_server(dir.path(), &store, false).await;
    let names: Vec<String> = reader
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    for name in [
        "list_runs",
        "get_run",
        "list_nodes",
        "get_node",
        "get_evaluation",
        "get_trajectory",
        "get_report",
    ] {
        assert!(
            names.contains(&name.to_string()),
            "{name} missing: {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.starts_with("start_")), "{names:?}");
    reader.cancel().await.unwrap();

    let client = start_server(dir.path(), &store, true).await;
    // Start-then-poll: each call answers before its run ends.
    let eval = call(
        &client,
        "start_eval",
        json!({"suite": "qa.jsonl", "tasks": ["add"]}),
    )
    .await;
    let evolve = call(
        &client,
        "start_evolve",
        json!({"run": "via-mcp", "suite": "qa.jsonl", "generations": 1, "children": 1}),
    )
    .await;
    assert_eq!(evolve["run"], json!("via-mcp"));
    let status = wait_for(&client, eval["job"].as_str().unwrap()).await;
    let eval_run = status["eval_run"]
        .as_i64()
        .expect("the job names its evaluation run");
    wait_for(&client, evolve["job"].as_str().unwrap()).await;

    let runs = call(&client, "list_runs", json!({})).await;
    assert_eq!(runs["evolution_runs"][0]["id"], json!("via-mcp"), "{runs}");
    assert!(
        runs["evaluation_runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == json!(eval_run)),
        "{runs}"
    );
    let evaluation = call(&client, "get_evaluation", json!({"eval_run": eval_run})).await;
    assert_eq!(evaluation["summary"]["successes"], json!(1), "{evaluation}");
    assert_eq!(evaluation["episodes"][0]["task"], json!("add"));
    let page = call(
        &client,
        "get_trajectory",
        json!({"eval_run": eval_run, "task": "add", "seed": 0}),
    )
    .await;
    assert!(
        page["text"].as_str().unwrap().contains("\"answer\""),
        "{page}"
    );

    let run = call(&client, "get_run", json!({"run": "via-mcp"})).await;
    let last = run["generations"].as_array().unwrap().last().cloned();
    assert_eq!(
        last.map(|g| g["generation"].clone()),
        Some(json!(1)),
        "{run}"
    );
    let nodes = call(&client, "list_nodes", json!({"run": "via-mcp"})).await;
    assert_eq!(nodes["nodes"][0]["node_id"], json!("seed"), "{nodes}");
    let seed = call(
        &client,
        "get_node",
        json!({"run": "via-mcp", "node": "seed"}),
    )
    .await;
    assert!(!seed["stages"].as_array().unwrap().is_empty(), "{seed}");
    let report = call(&client, "get_report", json!({"run": "via-mcp"})).await;
    assert!(report.as_str().unwrap().contains("via-mcp"), "{report}");

    // Unknown ids are the caller's error, named.
    let params = CallToolRequestParams::new("get_run")
        .with_arguments(json!({"run": "nope"}).as_object().unwrap().clone());
    let error = client.call_tool(params).await.unwrap_err().to_string();
    assert!(error.contains("no evolution run `nope`"), "{error}");
    // A run id that already exists is refused before anything starts.
    let params = CallToolRequestParams::new("start_evolve").with_arguments(
        json!({"run": "via-mcp", "suite": "qa.jsonl"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let error = client.call_tool(params).await.unwrap_err().to_string();
    assert!(error.contains("exists already"), "{error}");
    client.cancel().await.unwrap();
}
