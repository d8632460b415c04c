//! Finding the `hyperagents-worker` executable.

use std::path::{Path, PathBuf};

use crate::ScriptError;

/// Environment variable naming the worker executable explicitly.
pub const WORKER_ENV: &str = "HYPERAGENTS_WORKER";

/// The worker's file name.
pub const WORKER_NAME: &str = "hyperagents-worker";

/// Finds the worker: `$HYPERAGENTS_WORKER`, else `hyperagents-worker` next to the current
/// executable, else in its parent directory (test binaries live in `target/<profile>/deps`).
pub fn locate_worker() -> Result<PathBuf, ScriptError> {
    if let Some(path) = std::env::var_os(WORKER_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ScriptError::Internal(format!(
                "{WORKER_ENV}={} is not a file",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| ScriptError::Internal(format!("cannot find the current executable: {e}")))?;
    let name = format!("{WORKER_NAME}{}", std::env::consts::EXE_SUFFIX);
    let dir = exe.parent();
    let candidates: Vec<PathBuf> = [dir, dir.and_then(Path::parent)]
        .into_iter()
        .flatten()
        .map(|d| d.join(&name))
        .collect();
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
            ScriptError::Internal(format!(
                "the sandbox worker `{WORKER_NAME}` was not found (looked at {}); build it with \
                 `cargo build --workspace`, or set {WORKER_ENV} to its path",
                looked.join(", ")
            ))
        })
}
