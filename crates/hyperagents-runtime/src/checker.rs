//! Script syntax checking for program validation, through the sandbox's
//! parser (parsing runs nothing).

use hyperagents_program::{ScriptChecker, ScriptSyntaxError};
use hyperagents_sandbox::{ScriptError, check_syntax};

/// Checks scripts with monty's parser, as the sandbox will run them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxChecker;

impl ScriptChecker for SandboxChecker {
    fn check(&self, file: &str, source: &str) -> Result<(), ScriptSyntaxError> {
        match check_syntax(file, source) {
            Ok(()) => Ok(()),
            Err(ScriptError::Syntax {
                line,
                column,
                message,
                ..
            }) => Err(ScriptSyntaxError {
                line: line as usize,
                column: Some(column as usize),
                message,
            }),
            Err(other) => Err(ScriptSyntaxError {
                line: 1,
                column: None,
                message: other.to_string(),
            }),
        }
    }
}
