//! The meta agent's hands: read, search and edit files of a *child* program, and nothing else.
//!
//! This is a security boundary. The caller is an LLM, so every path is untrusted: absolute
//! paths, `..`, and any path through a symbolic link are refused, and size caps are checked
//! before anything is written. Every mutating call — applied or refused — is recorded in the
//! edit log and counts against the edit budget (refused calls too, so a meta agent stuck
//! retrying a bad edit still runs out). Writes go to a temporary file that is renamed into
//! place, so a reader never sees half a file and a write never goes through an existing inode.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::diff::{self, ProgramDiff};
use crate::files::{self, FsError};
use crate::path::{PathError, RelPath};

/// Caps on what the meta agent may do to one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditLimits {
    /// Largest file a write may leave behind.
    pub max_file_bytes: u64,
    /// Largest total size of all files; edits that would grow the program past it are refused.
    pub max_total_bytes: u64,
    /// Most files the program may hold; creating one more is refused.
    pub max_files: usize,
    /// Most mutating calls (replace, insert, write, delete), applied or refused.
    pub max_edits: usize,
    /// Most hits one search returns.
    pub max_search_hits: usize,
}

impl Default for EditLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 256 * 1024,
            max_total_bytes: 4 * 1024 * 1024,
            max_files: 512,
            max_edits: 200,
            max_search_hits: 100,
        }
    }
}

/// Why an editor call was refused; messages are written for the meta agent to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// Absolute, `..`, backslashes, empty.
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    /// Links, special files, IO.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Nothing at that path.
    #[error("`{path}` does not exist")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A file operation on a directory, or the reverse.
    #[error("`{path}` is a directory")]
    IsDirectory {
        /// The path.
        path: String,
    },
    /// A directory operation on a file.
    #[error("`{path}` is a file, not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// Text operations need UTF-8.
    #[error("`{path}` is not UTF-8 text")]
    NotText {
        /// The path.
        path: String,
    },
    /// `replace` with an empty `old` would match everywhere.
    #[error("the text to replace is empty")]
    EmptyOld,
    /// `replace` found nothing.
    #[error(
        "the text to replace was not found in `{path}` (copy its words exactly; only whitespace may differ)"
    )]
    NoMatch {
        /// The file.
        path: String,
    },
    /// `replace` must be unambiguous.
    #[error(
        "the text to replace occurs {count} times in `{path}`; include more surrounding text so it matches exactly once"
    )]
    AmbiguousMatch {
        /// The file.
        path: String,
        /// Occurrences found.
        count: usize,
    },
    /// `insert` past the end.
    #[error("line {line} is out of range: `{path}` has {lines} lines, so insert before a line from 1 to {}", .lines + 1)]
    LineOutOfRange {
        /// The file.
        path: String,
        /// The line asked for.
        line: usize,
        /// Lines in the file.
        lines: usize,
    },
    /// A file over [`EditLimits::max_file_bytes`].
    #[error("`{path}` would be {bytes} bytes; the limit per file is {limit}")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Size it would have.
        bytes: u64,
        /// The cap.
        limit: u64,
    },
    /// The program over [`EditLimits::max_total_bytes`].
    #[error("the program would be {bytes} bytes; the limit is {limit}")]
    TotalTooLarge {
        /// Total it would have.
        bytes: u64,
        /// The cap.
        limit: u64,
    },
    /// The program over [`EditLimits::max_files`].
    #[error("the program would have {files} files; the limit is {limit}")]
    TooManyFiles {
        /// Count it would have.
        files: usize,
        /// The cap.
        limit: usize,
    },
    /// [`EditLimits::max_edits`] spent.
    #[error("the edit budget is spent ({limit} edit calls)")]
    EditLimitReached {
        /// The cap.
        limit: usize,
    },
    /// A search pattern that does not compile (or compiles too large).
    #[error("invalid regular expression: {0}")]
    InvalidRegex(String),
}

/// What to search for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A plain substring.
    Literal(String),
    /// A regular expression (Rust `regex` syntax: linear time, so safe on untrusted patterns).
    Regex(String),
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The file.
    pub path: RelPath,
    /// 1-based line.
    pub line: usize,
    /// The line, cut to [`SEARCH_LINE_CHARS`] characters.
    pub text: String,
}

/// Characters of a matching line a search returns.
pub const SEARCH_LINE_CHARS: usize = 200;

impl fmt::Display for SearchHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.text)
    }
}

/// Hits in path then line order, capped at [`EditLimits::max_search_hits`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchResults {
    /// The hits.
    pub hits: Vec<SearchHit>,
    /// True when more lines matched than were returned.
    pub truncated: bool,
}

impl fmt::Display for SearchResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for hit in &self.hits {
            writeln!(f, "{hit}")?;
        }
        if self.truncated {
            writeln!(f, "(more matches not shown; narrow the pattern)")?;
        }
        Ok(())
    }
}

/// One file in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Program-relative path.
    pub path: RelPath,
    /// Size in bytes.
    pub bytes: u64,
}

/// The mutating calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOp {
    /// [`ChildProgram::replace`].
    Replace,
    /// [`ChildProgram::insert`].
    Insert,
    /// [`ChildProgram::write`].
    Write,
    /// [`ChildProgram::delete`].
    Delete,
}

/// What came of one mutating call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOutcome {
    /// Done; sizes before and after (`None` where there was, or is, no file).
    Applied {
        /// Bytes before (a directory counts its files).
        bytes_before: Option<u64>,
        /// Bytes after.
        bytes_after: Option<u64>,
    },
    /// Refused, with the message the caller got.
    Refused(String),
}

/// One entry of the edit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditRecord {
    /// Which call.
    pub op: EditOp,
    /// The path as given.
    pub path: String,
    /// What happened.
    pub outcome: EditOutcome,
}

/// An editor rooted at a child program directory.
#[derive(Debug)]
pub struct ChildProgram {
    root: PathBuf,
    limits: EditLimits,
    edits_used: usize,
    log: Vec<EditRecord>,
}

/// A mutation, decided before the caps are checked.
enum Plan {
    Write(Vec<u8>),
    Delete,
}

impl ChildProgram {
    /// Opens an editor on an existing child directory.
    pub fn open(root: impl Into<PathBuf>, limits: EditLimits) -> Result<Self, EditError> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(EditError::NotADirectory {
                    path: root.display().to_string(),
                });
            }
            Err(e) => return Err(FsError::io(root.display().to_string(), e).into()),
        }
        Ok(Self {
            root,
            limits,
            edits_used: 0,
            log: Vec::new(),
        })
    }

    /// Copies `parent` to the fresh directory `child` and opens an editor on the copy.
    pub fn from_parent(parent: &Path, child: &Path, limits: EditLimits) -> Result<Self, EditError> {
        files::copy_program(parent, child)?;
        Self::open(child, limits)
    }

    /// The child directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The caps in force.
    pub fn limits(&self) -> &EditLimits {
        &self.limits
    }

    /// Mutating calls made so far (applied or refused).
    pub fn edits_used(&self) -> usize {
        self.edits_used
    }

    /// Every mutating call, in order.
    pub fn log(&self) -> &[EditRecord] {
        &self.log
    }

    /// The text of a file.
    pub fn read(&self, path: &str) -> Result<String, EditError> {
        let rel = RelPath::new(path)?;
        let host = self.existing_file(&rel)?;
        let bytes = std::fs::read(&host).map_err(|e| FsError::io(rel.as_str(), e))?;
        String::from_utf8(bytes).map_err(|_| EditError::NotText {
            path: rel.to_string(),
        })
    }

    /// Every file under `dir` (recursively; `""` or `"."` for the whole program), sorted.
    pub fn list(&self, dir: &str) -> Result<Vec<FileEntry>, EditError> {
        let base = RelPath::new_dir(dir)?;
        if let Some(base) = &base {
            let host = files::resolve_inside(&self.root, base)?;
            match std::fs::symlink_metadata(&host) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(EditError::NotADirectory {
                        path: base.to_string(),
                    });
                }
                Err(_) => {
                    return Err(EditError::NotFound {
                        path: base.to_string(),
                    });
                }
            }
        }
        let scan = files::scan(&self.root, base.as_ref()).into_result()?;
        Ok(scan
            .files
            .into_iter()
            .map(|f| FileEntry {
                path: f.rel,
                bytes: f.len,
            })
            .collect())
    }

    /// Lines matching `pattern` in every UTF-8 file, as `path:line: text`.
    pub fn search(&self, pattern: &Pattern) -> Result<SearchResults, EditError> {
        let matcher: Box<dyn Fn(&str) -> bool> = match pattern {
            Pattern::Literal(needle) => {
                let needle = needle.clone();
                Box::new(move |line: &str| line.contains(needle.as_str()))
            }
            Pattern::Regex(source) => {
                let re = regex::RegexBuilder::new(source)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| EditError::InvalidRegex(e.to_string()))?;
                Box::new(move |line: &str| re.is_match(line))
            }
        };
        let scan = files::scan(&self.root, None).into_result()?;
        let mut out = SearchResults::default();
        for file in scan.files {
            let bytes = std::fs::read(&file.host).map_err(|e| FsError::io(file.rel.as_str(), e))?;
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                if !matcher(line) {
                    continue;
                }
                if out.hits.len() == self.limits.max_search_hits {
                    out.truncated = true;
                    return Ok(out);
                }
                out.hits.push(SearchHit {
                    path: file.rel.clone(),
                    line: i + 1,
                    text: line.chars().take(SEARCH_LINE_CHARS).collect(),
                });
            }
        }
        Ok(out)
    }

    /// Replaces the one exact occurrence of `old` in `path` with `new`. When
    /// `old` does not occur exactly, a unique occurrence that differs only in
    /// whitespace (spaces, tabs, line breaks between the same words) is
    /// replaced instead: models rarely copy a snippet's whitespace faithfully.
    pub fn replace(&mut self, path: &str, old: &str, new: &str) -> Result<(), EditError> {
        self.mutate(EditOp::Replace, path, |this, rel| {
            if old.is_empty() {
                return Err(EditError::EmptyOld);
            }
            let text = this.read(rel.as_str())?;
            match text.matches(old).count() {
                0 => match whitespace_tolerant_match(&text, old) {
                    Some(range) => {
                        let mut out = text.clone();
                        out.replace_range(range, new);
                        Ok(Plan::Write(out.into_bytes()))
                    }
                    None => Err(EditError::NoMatch {
                        path: rel.to_string(),
                    }),
                },
                1 => Ok(Plan::Write(text.replacen(old, new, 1).into_bytes())),
                count => Err(EditError::AmbiguousMatch {
                    path: rel.to_string(),
                    count,
                }),
            }
        })
    }

    /// Inserts `text` as whole line(s) before 1-based `line` (one past the last line appends).
    /// A final newline is added to `text` if it has none.
    pub fn insert(&mut self, path: &str, line: usize, text: &str) -> Result<(), EditError> {
        self.mutate(EditOp::Insert, path, |this, rel| {
            let current = this.read(rel.as_str())?;
            let lines: Vec<&str> = current.split_inclusive('\n').collect();
            if line == 0 || line > lines.len() + 1 {
                return Err(EditError::LineOutOfRange {
                    path: rel.to_string(),
                    line,
                    lines: lines.len(),
                });
            }
            let mut out = String::with_capacity(current.len() + text.len() + 2);
            lines[..line - 1].iter().for_each(|l| out.push_str(l));
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
            lines[line - 1..].iter().for_each(|l| out.push_str(l));
            Ok(Plan::Write(out.into_bytes()))
        })
    }

    /// Creates or overwrites `path` (creating directories inside the root as needed).
    pub fn write(&mut self, path: &str, content: &str) -> Result<(), EditError> {
        self.mutate(EditOp::Write, path, |_, _| {
            Ok(Plan::Write(content.as_bytes().to_vec()))
        })
    }

    /// Deletes a file, or a directory with everything in it.
    pub fn delete(&mut self, path: &str) -> Result<(), EditError> {
        self.mutate(EditOp::Delete, path, |_, _| Ok(Plan::Delete))
    }

    /// The unified diff of this child against `parent_dir`, with a kind per file.
    pub fn diff_against(&self, parent_dir: &Path) -> Result<ProgramDiff, EditError> {
        Ok(diff::diff_dirs(parent_dir, &self.root)?)
    }

    /// Resolves `rel` to an existing regular file.
    fn existing_file(&self, rel: &RelPath) -> Result<PathBuf, EditError> {
        let host = files::resolve_inside(&self.root, rel)?;
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.is_dir() => Err(EditError::IsDirectory {
                path: rel.to_string(),
            }),
            Ok(meta) if meta.is_file() => Ok(host),
            Ok(_) => Err(FsError::Special {
                path: rel.to_string(),
            }
            .into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EditError::NotFound {
                path: rel.to_string(),
            }),
            Err(e) => Err(FsError::io(rel.as_str(), e).into()),
        }
    }

    fn mutate(
        &mut self,
        op: EditOp,
        path: &str,
        plan: impl FnOnce(&Self, &RelPath) -> Result<Plan, EditError>,
    ) -> Result<(), EditError> {
        let result = if self.edits_used >= self.limits.max_edits {
            Err(EditError::EditLimitReached {
                limit: self.limits.max_edits,
            })
        } else {
            self.edits_used += 1;
            RelPath::new(path).map_err(EditError::from).and_then(|rel| {
                let plan = plan(self, &rel)?;
                self.apply(&rel, plan)
            })
        };
        let outcome = match &result {
            Ok((bytes_before, bytes_after)) => EditOutcome::Applied {
                bytes_before: *bytes_before,
                bytes_after: *bytes_after,
            },
            Err(e) => EditOutcome::Refused(e.to_string()),
        };
        self.log.push(EditRecord {
            op,
            path: path.to_owned(),
            outcome,
        });
        result.map(|_| ())
    }

    fn apply(&self, rel: &RelPath, plan: Plan) -> Result<(Option<u64>, Option<u64>), EditError> {
        let host = files::resolve_inside(&self.root, rel)?;
        let existing = match std::fs::symlink_metadata(&host) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(FsError::io(rel.as_str(), e).into()),
        };
        match plan {
            Plan::Delete => match existing {
                None => Err(EditError::NotFound {
                    path: rel.to_string(),
                }),
                Some(meta) if meta.is_dir() => {
                    let scan = files::scan(&self.root, Some(rel)).into_result()?;
                    let bytes = scan.files.iter().map(|f| f.len).sum();
                    // `remove_dir_all` removes links without following them.
                    std::fs::remove_dir_all(&host).map_err(|e| FsError::io(rel.as_str(), e))?;
                    Ok((Some(bytes), None))
                }
                Some(meta) => {
                    std::fs::remove_file(&host).map_err(|e| FsError::io(rel.as_str(), e))?;
                    Ok((Some(meta.len()), None))
                }
            },
            Plan::Write(content) => {
                if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
                    return Err(EditError::IsDirectory {
                        path: rel.to_string(),
                    });
                }
                let old = existing.as_ref().map(std::fs::Metadata::len);
                let new = content.len() as u64;
                self.check_caps(rel, old, new)?;
                if let Some(parent) = host.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| FsError::io(rel.as_str(), e))?;
                }
                write_replacing(&host, &content).map_err(|e| FsError::io(rel.as_str(), e))?;
                Ok((old, Some(new)))
            }
        }
    }

    /// Caps are checked against the directory as it is now, so they hold whatever else wrote
    /// there. An edit that does not grow the program is allowed even when a parent was already
    /// over the total, so the meta agent can always shrink it.
    fn check_caps(&self, rel: &RelPath, old: Option<u64>, new: u64) -> Result<(), EditError> {
        if new > self.limits.max_file_bytes {
            return Err(EditError::FileTooLarge {
                path: rel.to_string(),
                bytes: new,
                limit: self.limits.max_file_bytes,
            });
        }
        let scan = files::scan(&self.root, None).into_result()?;
        let total: u64 = scan.files.iter().map(|f| f.len).sum();
        let after = total - old.unwrap_or(0).min(total) + new;
        if after > self.limits.max_total_bytes && after > total {
            return Err(EditError::TotalTooLarge {
                bytes: after,
                limit: self.limits.max_total_bytes,
            });
        }
        if old.is_none() && scan.files.len() + 1 > self.limits.max_files {
            return Err(EditError::TooManyFiles {
                files: scan.files.len() + 1,
                limit: self.limits.max_files,
            });
        }
        Ok(())
    }
}

/// Writes a sibling temporary file, then renames it over `target`.
fn write_replacing(target: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = file.write_all(content).and_then(|()| file.sync_data());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, target)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}
/// The span of the one place in `text` holding `old`'s words with any
/// whitespace between them; `None` when there is no such place, or more than
/// one.
fn whitespace_tolerant_match(text: &str, old: &str) -> Option<std::ops::Range<usize>> {
    let words: Vec<String> = old.split_whitespace().map(regex::escape).collect();
    if words.is_empty() {
        return None;
    }
    let pattern = regex::Regex::new(&words.join(r"\s+")).ok()?;
    let mut found = pattern.find_iter(text);
    let first = found.next()?;
    found.next().is_none().then(|| first.range())
}
