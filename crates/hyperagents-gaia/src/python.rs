//! The `python` tool: the agent's code runs in the monty sandbox (a worker process of a
//! [`ScriptPool`]), never in this process. The script sees one host function, `read_file(name)`,
//! which returns the raw text of a file in the episode's own folder through the same confinement
//! as the `read_file` tool; `open()` and every other OS access are refused by the sandbox.
//!
//! A failing script (exception, time or memory limit) is a tool *result* — the traceback is what
//! the agent needs to fix its code — while a broken pool is a [`DomainError`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_domain::DomainError;
use hyperagents_sandbox::{
    HostError, HostFunctions, PoolConfig, ScriptError, ScriptLimits, ScriptPool, ScriptSource,
    ScriptValue,
};

use crate::files::{ToolLimits, raw_text, truncate};
use crate::workspace::Workspace;

/// The script name tracebacks show.
const SCRIPT_FILE: &str = "python_tool.py";

/// Bytes of file text one `read_file` call inside a script may return: the script's heap is
/// small, and a bigger file should be summarised first.
const MAX_SCRIPT_FILE_BYTES: usize = 4 << 20;

/// Wall-clock bound on one tool call, beyond the pool's own per-slice deadlines.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits for the python tool: a few seconds of VM time, a 64 MiB heap, shallow recursion and
/// few host calls — enough for arithmetic and data wrangling over an attachment.
pub fn python_tool_limits() -> ScriptLimits {
    ScriptLimits {
        vm_time_per_call: Duration::from_secs(3),
        vm_time_total: Duration::from_secs(6),
        max_recursion_depth: 100,
        max_host_calls: 20,
        max_memory_bytes: 64 << 20,
    }
}

/// A pool configuration for the python tool: `workers` processes of `worker_exe` with
/// [`python_tool_limits`].
pub fn python_pool_config(worker_exe: PathBuf, workers: usize) -> PoolConfig {
    PoolConfig::new(workers, worker_exe).with_limits(python_tool_limits())
}

/// Runs `code` and renders what it printed and returned.
pub(crate) async fn run_python(
    pool: &ScriptPool,
    code: &str,
    workspace: Arc<Workspace>,
    limits: &ToolLimits,
) -> Result<String, DomainError> {
    let host = Arc::new(PythonHost {
        workspace,
        limits: limits.clone(),
        printed: Mutex::new(String::new()),
    });
    let source = ScriptSource {
        file: SCRIPT_FILE.into(),
        code: code.to_string(),
    };
    let run = pool.run(&source, serde_json::Map::new(), host.clone());
    let result = tokio::time::timeout(CALL_TIMEOUT, run).await.map_err(|_| {
        DomainError::Environment(format!(
            "the python tool did not finish within {CALL_TIMEOUT:?}"
        ))
    })?;
    let printed = host.printed.lock().map(|p| p.clone()).unwrap_or_default();
    let mut out = String::new();
    if !printed.is_empty() {
        out.push_str(&printed);
        if !printed.ends_with('\n') {
            out.push('\n');
        }
    }
    match result {
        Ok(ScriptValue::Null) => {
            if out.is_empty() {
                out.push_str("(no output: print() what you want to see)");
            }
        }
        Ok(ScriptValue::String(s)) => out.push_str(&format!("result: {s}")),
        Ok(value) => out.push_str(&format!("result: {value}")),
        Err(ScriptError::Internal(message)) => {
            return Err(DomainError::Environment(format!(
                "the python sandbox failed: {message}"
            )));
        }
        Err(error) => out.push_str(&format!("python error: {error}")),
    }
    Ok(truncate(out.trim_end(), limits.max_chars))
}

/// The host side of one python run.
struct PythonHost {
    workspace: Arc<Workspace>,
    limits: ToolLimits,
    printed: Mutex<String>,
}

#[async_trait]
impl HostFunctions for PythonHost {
    fn functions(&self) -> Vec<String> {
        vec!["read_file".into()]
    }

    async fn call(
        &self,
        function: &str,
        args: Vec<ScriptValue>,
        kwargs: serde_json::Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        if function != "read_file" {
            return Err(HostError::raise(
                "NameError",
                format!("name '{function}' is not defined"),
            ));
        }
        let path = args
            .first()
            .or_else(|| kwargs.get("path"))
            .and_then(ScriptValue::as_str)
            .ok_or_else(|| HostError::raise("TypeError", "read_file(path) needs a path string"))?
            .to_string();
        let workspace = self.workspace.clone();
        let limits = self.limits.clone();
        let text = tokio::task::spawn_blocking(move || {
            let resolved = workspace.resolve(&path)?;
            raw_text(&resolved, &path, &limits)
        })
        .await
        .map_err(|e| HostError::raise("RuntimeError", format!("read_file failed: {e}")))?
        .map_err(|message| HostError::raise("FileNotFoundError", message))?;
        if text.len() > MAX_SCRIPT_FILE_BYTES {
            return Err(HostError::raise(
                "MemoryError",
                format!(
                    "the file's text is {} bytes; scripts may read at most {MAX_SCRIPT_FILE_BYTES}",
                    text.len()
                ),
            ));
        }
        Ok(ScriptValue::String(text))
    }

    fn print(&self, text: &str) {
        if let Ok(mut printed) = self.printed.lock() {
            // Keep a little past the cap so truncation can say that more was printed.
            if printed.len() < self.limits.max_chars.saturating_mul(4) {
                printed.push_str(text);
            }
        }
    }
}
