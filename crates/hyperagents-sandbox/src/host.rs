//! The host side of a run: the functions a script may call.

use async_trait::async_trait;

use crate::{HostError, ScriptValue};

/// Names no host may provide: they would break the sandbox (code loading, terminal input, file
/// access). [`crate::ScriptPool::run`] drops them from [`HostFunctions::functions`], so a script
/// calling them gets a `NameError`.
pub const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "__import__",
    "input",
    "open",
    "breakpoint",
    "globals",
    "locals",
    "vars",
];

/// Host functions available to one script run. The sandbox calls `call` whenever the script calls
/// a function named in `functions()`; any other unknown name is a `NameError` in the script.
#[async_trait]
pub trait HostFunctions: Send + Sync {
    /// Names the script may call (names in [`FORBIDDEN_FUNCTIONS`] are ignored).
    fn functions(&self) -> Vec<String>;

    /// Runs one call. `Err(HostError::Raise)` is a catchable exception in the script,
    /// `Err(HostError::Abort)` ends the run.
    async fn call(
        &self,
        function: &str,
        args: Vec<ScriptValue>,
        kwargs: serde_json::Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError>;

    /// Receives what the script printed since the previous host call (at most 1 MiB per slice;
    /// printing more is a `MemoryError`). Ignored by default.
    fn print(&self, _text: &str) {}
}
