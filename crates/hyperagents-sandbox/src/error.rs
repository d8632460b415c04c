//! Errors: a host function's failure ([`HostError`]) and a run's failure ([`ScriptError`]).

use std::time::Duration;

/// A host function's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Raised in the script as an exception of this Python type (`ValueError`, `RuntimeError`,
    /// ...); the script may catch it. An unknown type name is raised as `RuntimeError`.
    #[error("{exception}: {message}")]
    Raise {
        /// Python exception type name.
        exception: String,
        /// The exception's message.
        message: String,
    },
    /// Ends the run at once; the script cannot catch it (budget spent, episode cancelled).
    #[error("aborted: {message}")]
    Abort {
        /// Why the run was ended.
        message: String,
    },
}

impl HostError {
    /// A catchable exception of type `exception`.
    pub fn raise(exception: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Raise {
            exception: exception.into(),
            message: message.into(),
        }
    }

    /// An uncatchable end of the run.
    pub fn abort(message: impl Into<String>) -> Self {
        Self::Abort {
            message: message.into(),
        }
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The script does not parse, or uses syntax the interpreter does not support.
    #[error("{file}:{line}:{column}: syntax error: {message}")]
    Syntax {
        /// The script's path.
        file: String,
        /// 1-based line.
        line: u32,
        /// 1-based column (characters).
        column: u32,
        /// What is wrong.
        message: String,
    },
    /// An uncaught exception; `traceback` is CPython-style text naming file and line.
    #[error("{traceback}")]
    Exception {
        /// Python exception type name (`KeyError`, `NameError`, ...).
        exception: String,
        /// The exception's message (may be empty).
        message: String,
        /// Line of the innermost frame, when known.
        line: Option<u32>,
        /// CPython-style traceback, ending with `Type: message`.
        traceback: String,
    },
    /// The run used up its VM time (per host call or in total), or its worker was stuck past the
    /// parent's wall-clock deadline.
    #[error("{file}: time limit exceeded ({limit:?} of VM time)")]
    TimeLimit {
        /// The script's path.
        file: String,
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// The Python call stack grew past `max_recursion_depth` and the `RecursionError` was not
    /// caught.
    #[error("{file}: recursion limit exceeded")]
    RecursionLimit {
        /// The script's path.
        file: String,
    },
    /// The run exceeded its memory limit (clean `MemoryError`, or its worker was killed for it).
    #[error("{file}: memory limit exceeded: {detail}")]
    MemoryLimit {
        /// The script's path.
        file: String,
        /// What happened (the interpreter's message or the worker's exit).
        detail: String,
    },
    /// The worker running this script died (crash, signal): only this run fails.
    #[error("{file}: the worker process died: {reason}")]
    WorkerDied {
        /// The script's path.
        file: String,
        /// Exit status or signal, plus the tail of the worker's stderr.
        reason: String,
    },
    /// A host function (or the host-call budget) ended the run.
    #[error("{file}: aborted by the host: {message}")]
    Aborted {
        /// The script's path.
        file: String,
        /// Why.
        message: String,
    },
    /// A fault of the sandbox itself (cannot start a worker, protocol violation, bad config).
    #[error("sandbox: {0}")]
    Internal(String),
}
