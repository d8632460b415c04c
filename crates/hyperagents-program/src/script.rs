//! The seam to the script engine: this crate checks that scripts *parse* without knowing which
//! Python engine runs them. The runtime implements [`ScriptChecker`] with its sandboxed engine.

/// Checks a script's syntax without running it.
pub trait ScriptChecker {
    /// `file` is the program-relative path, for messages; `source` is the whole script.
    fn check(&self, file: &str, source: &str) -> Result<(), ScriptSyntaxError>;
}

/// A syntax error the checker found; lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptSyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, when the engine reports one.
    pub column: Option<usize>,
    /// The engine's message.
    pub message: String,
}
