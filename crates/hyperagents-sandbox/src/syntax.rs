//! Parsing without running ([`check_syntax`]) and the mapping of monty exceptions to
//! [`Failure`]s and [`ScriptError`]s.

use std::time::Duration;

use monty::MontyRun;
use monty_types::{CompileOptions, ExcType, MontyException};

use crate::ScriptError;
use crate::protocol::{Failure, FailureKind};

/// Parses a script without running it (in-process; compiling executes nothing). Syntax the
/// interpreter does not support (class inheritance, `match`, `yield`, `del`) is reported as a
/// syntax error at its line.
pub fn check_syntax(file: &str, code: &str) -> Result<(), ScriptError> {
    match MontyRun::new(code.to_owned(), file, Vec::new(), CompileOptions::default()) {
        Ok(_) => Ok(()),
        Err(exc) => Err(failure_to_error(
            file,
            compile_failure(&exc),
            Duration::ZERO,
        )),
    }
}

/// Describes an exception raised while compiling.
pub fn compile_failure(exc: &MontyException) -> Failure {
    let mut failure = runtime_failure(exc);
    failure.kind = FailureKind::Syntax;
    failure
}

/// Describes an exception that ended a run.
pub fn runtime_failure(exc: &MontyException) -> Failure {
    let frame = exc.traceback().last();
    let exc_type = exc.exc_type();
    let no_frames = exc.traceback().is_empty();
    let message = exc.message().unwrap_or_default();
    // The interpreter's own resource errors come without a traceback, or (pre-checked big
    // results) with its fixed message; a script's own `raise MemoryError()` is an exception.
    let kind = match exc_type {
        ExcType::TimeoutError if no_frames || message.starts_with("time limit exceeded") => {
            FailureKind::TimeLimit
        }
        ExcType::MemoryError if no_frames || message.starts_with("memory limit exceeded") => {
            FailureKind::MemoryLimit
        }
        ExcType::RecursionError => FailureKind::RecursionLimit,
        _ => FailureKind::Exception,
    };
    Failure {
        kind,
        exception: exc_type.to_string(),
        message: message.to_owned(),
        line: frame.map(|f| f.start.line),
        column: frame.map(|f| f.start.column),
        traceback: exc.to_string(),
    }
}

/// Turns a failure reported for `file` into the run's error. `time_limit` is the VM-time limit
/// that applied to the slice.
pub fn failure_to_error(file: &str, failure: Failure, time_limit: Duration) -> ScriptError {
    let file = file.to_owned();
    match failure.kind {
        FailureKind::Syntax => ScriptError::Syntax {
            file,
            line: failure.line.unwrap_or(1),
            column: failure.column.unwrap_or(1),
            message: if failure.exception == "SyntaxError" {
                failure.message
            } else {
                format!("{}: {}", failure.exception, failure.message)
            },
        },
        FailureKind::Exception => ScriptError::Exception {
            exception: failure.exception,
            message: failure.message,
            line: failure.line,
            traceback: failure.traceback,
        },
        FailureKind::TimeLimit => ScriptError::TimeLimit {
            file,
            limit: time_limit,
        },
        FailureKind::MemoryLimit => ScriptError::MemoryLimit {
            file,
            detail: {
                let what = failure
                    .message
                    .strip_prefix("memory limit exceeded: ")
                    .unwrap_or(&failure.message);
                match failure.line {
                    Some(line) => format!("line {line}: {what}"),
                    None => what.to_owned(),
                }
            },
        },
        FailureKind::RecursionLimit => ScriptError::RecursionLimit { file },
        FailureKind::Internal => {
            ScriptError::Internal(format!("worker failed on {file}: {}", failure.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_line_is_located() {
        let err = check_syntax("agent.py", "x = 1\ndef f(:\n    pass\n");
        let Err(ScriptError::Syntax {
            file, line, column, ..
        }) = err
        else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert_eq!((file.as_str(), line, column), ("agent.py", 2, 7));
    }

    #[test]
    fn good_script_passes() {
        assert_eq!(check_syntax("a.py", "x = llm('hi')\nx"), Ok(()));
    }
}
