//! Load errors that point at a place: every problem with a program names the file, and where it
//! can the line and column, because the reader is often the meta agent, which must find and fix
//! it.

use std::fmt;

/// Where a problem is: a program-relative file, and a 1-based line and column when known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Program-relative path.
    pub file: String,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column, counted in characters.
    pub column: Option<usize>,
}

impl Location {
    /// A whole file.
    pub fn file(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
        }
    }

    /// The place of byte `offset` in `source`.
    pub fn at_offset(file: impl Into<String>, source: &str, offset: usize) -> Self {
        let (line, column) = line_col(source, offset);
        Self {
            file: file.into(),
            line: Some(line),
            column: Some(column),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// 1-based line and character column of byte `offset` (clamped into `source`).
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// One problem found while loading a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct ProgramError {
    /// Where it is.
    pub location: Location,
    /// What is wrong.
    pub kind: ProgramErrorKind,
}

impl ProgramError {
    pub(crate) fn new(location: Location, kind: ProgramErrorKind) -> Self {
        Self { location, kind }
    }

    /// The error with the program's directory as the user named it, named
    /// once: `dir/file:line: …`, or `dir: …` for the directory itself.
    pub fn in_dir(&self, dir: &std::path::Path) -> String {
        if self.location.file == "." {
            format!("{}: {}", dir.display(), self.kind)
        } else {
            format!("{}/{self}", dir.display())
        }
    }
}

/// What is wrong; the message is written for someone about to edit the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProgramErrorKind {
    /// The directory has no manifest.
    #[error("missing manifest: a program directory needs `hyperagent.toml` at its root")]
    MissingManifest,
    /// A file could not be walked or read (links, special files, bad names, IO).
    #[error("{0}")]
    File(String),
    /// Manifest, prompts and scripts must be text.
    #[error("file is not valid UTF-8 text")]
    NotUtf8,
    /// TOML syntax or schema (missing field, unknown field, wrong type).
    #[error("{0}")]
    Toml(String),
    /// `format` is absent.
    #[error("missing `format = {supported}` (the manifest format version)")]
    MissingFormat {
        /// The version this build reads.
        supported: u32,
    },
    /// A manifest from another format version.
    #[error("unsupported manifest format {found}; this build reads format {supported}")]
    UnsupportedFormat {
        /// The version found.
        found: i64,
        /// The version this build reads.
        supported: u32,
    },
    /// Agent and skill names are identifiers scripts pass to `delegate`/`skill`.
    #[error(
        "invalid name `{name}`: use a letter followed by letters, digits, `_` or `-` (at most 64)"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A required text field is blank.
    #[error("`{field}` must not be empty")]
    EmptyField {
        /// The field.
        field: &'static str,
    },
    /// Models are named by role alias; the run binds aliases to real models.
    #[error("unknown model alias `{alias}` (allowed: task, meta, judge)")]
    UnknownModelAlias {
        /// The alias found.
        alias: String,
    },
    /// `[tools] mcp` entries are `server/tool` or `server/*`.
    #[error(
        "invalid tool request `{request}`: write `server/tool` or `server/*` (letters, digits, `_`, `-`, `.`)"
    )]
    InvalidToolRequest {
        /// The entry found.
        request: String,
    },
    /// A task agent lists a skill nobody declared.
    #[error("unknown skill `{name}` ({})", known_list(.known, "skills"))]
    UnknownSkill {
        /// The reference.
        name: String,
        /// Declared skills, in declaration order.
        known: Vec<String>,
    },
    /// A delegation names a task agent nobody declared.
    #[error("unknown task agent `{name}` ({})", known_list(.known, "task agents"))]
    UnknownAgent {
        /// The reference.
        name: String,
        /// Declared task agents, in declaration order.
        known: Vec<String>,
    },
    /// The same name twice in one list.
    #[error("`{name}` is listed twice")]
    DuplicateReference {
        /// The repeated name.
        name: String,
    },
    /// A path that is absolute, climbs with `..`, or is otherwise malformed.
    #[error("invalid path: {0}")]
    InvalidPath(crate::path::PathError),
    /// A prompt or script named by the manifest does not exist.
    #[error("missing {role} file `{path}`")]
    MissingFile {
        /// prompt, script or select script.
        role: &'static str,
        /// The path named.
        path: String,
    },
    /// A prompt or script path names a directory.
    #[error("{role} path `{path}` is a directory, not a file")]
    NotAFile {
        /// prompt, script or select script.
        role: &'static str,
        /// The path named.
        path: String,
    },
    /// A skill needs something to run: a prompt, a script, or both.
    #[error("skill `{skill}` has neither `prompt` nor `script`; give at least one")]
    SkillWithoutBody {
        /// The skill.
        skill: String,
    },
    /// Task agents delegating in a loop would never terminate.
    #[error("delegation cycle: {}", .cycle.join(" -> "))]
    DelegationCycle {
        /// The agents in order, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A budget value that cannot be used.
    #[error("`{field}` {reason}")]
    InvalidBudget {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Reported by the [`ScriptChecker`](crate::ScriptChecker).
    #[error("script syntax error: {0}")]
    ScriptSyntax(String),
    /// A prompt that minijinja cannot compile.
    #[error("template error: {0}")]
    TemplateSyntax(String),
}

fn known_list(known: &[String], what: &str) -> String {
    if known.is_empty() {
        format!("no {what} are declared")
    } else {
        format!("known: {}", known.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = "ab\nçd\nx";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 3), (2, 1));
        assert_eq!(line_col(src, 5), (2, 2)); // after the two-byte `ç`
        assert_eq!(line_col(src, 4), (2, 1)); // inside `ç`: clamped back
        assert_eq!(line_col(src, 99), (3, 2));
    }

    #[test]
    fn display_matches_the_documented_shape() {
        let err = ProgramError::new(
            Location {
                file: "hyperagent.toml".into(),
                line: Some(12),
                column: Some(5),
            },
            ProgramErrorKind::UnknownSkill {
                name: "clik".into(),
                known: vec!["click".into(), "type_text".into(), "answer".into()],
            },
        );
        assert_eq!(
            err.to_string(),
            "hyperagent.toml:12:5: unknown skill `clik` (known: click, type_text, answer)"
        );
        let whole = ProgramError::new(Location::file("a.md"), ProgramErrorKind::NotUtf8);
        assert_eq!(whole.to_string(), "a.md: file is not valid UTF-8 text");
    }
}
