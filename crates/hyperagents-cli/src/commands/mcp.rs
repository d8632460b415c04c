//! `hyperagents mcp`: the results store as MCP tools on stdio.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hyperagents_mcp::{HyperagentsServer, Launcher, serve_stdio};
use hyperagents_store::ResultsStore;

use crate::cli::{GlobalArgs, McpArgs};
use crate::settings::Settings;

pub async fn run(settings: &Settings, global: &GlobalArgs, args: McpArgs) -> Result<ExitCode> {
    let default_store = settings.cache_dir().join("results.sqlite");
    let path = args.store.clone().unwrap_or_else(|| default_store.clone());
    if !path.exists() {
        // No store yet: an empty one, so the tools say there is no run.
        ResultsStore::open(&path)
            .with_context(|| format!("creating the results store {}", path.display()))?;
    }
    let store = ResultsStore::open_read_only(&path)
        .with_context(|| format!("opening the results store {} to read", path.display()))?;
    let launcher = if args.allow_start {
        Some(Launcher {
            exe: std::env::current_exe().context("finding this executable")?,
            global_args: forwarded(global),
            logs_dir: settings.cache_dir().join("mcp-jobs"),
            store_override: args.store.filter(|p| *p != default_store),
        })
    } else {
        None
    };
    // Standard output carries the protocol: everything else goes to stderr.
    tracing::info!(store = %path.display(), allow_start = args.allow_start, "MCP server on stdio");
    serve_stdio(HyperagentsServer::new(
        store,
        settings.cache_dir().join("runs"),
        launcher,
    ))
    .await
    .context("serving MCP on stdio")?;
    Ok(ExitCode::SUCCESS)
}

/// The global flags a started job needs to read the settings this server read.
fn forwarded(global: &GlobalArgs) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(config) = &global.config {
        args.extend(["--config".to_string(), config.display().to_string()]);
    }
    if let Some(mode) = &global.cache_mode {
        args.extend(["--cache-mode".to_string(), mode.clone()]);
    }
    if let Some(dir) = &global.cache_dir {
        args.extend(["--cache-dir".to_string(), dir.display().to_string()]);
    }
    if let Some(threads) = global.threads {
        args.extend(["--threads".to_string(), threads.to_string()]);
    }
    args
}
