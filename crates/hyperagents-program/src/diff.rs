//! What changed between a parent program and its child: a unified diff per file and a kind per
//! file, so the archive can store the diff and reports can say what sort of change helped.
//!
//! # Diff kinds
//!
//! [`classify`] looks only at the path, first rule that matches wins:
//!
//! 1. `hyperagent.toml` (at the root) → [`DiffKind::Hierarchy`]
//! 2. anything under `meta/` → [`DiffKind::Meta`]
//! 3. anything under `memory/` → [`DiffKind::Memory`]
//! 4. `*.py` → [`DiffKind::Code`]
//! 5. `*.md`, `*.txt`, `*.jinja`, `*.j2` → [`DiffKind::Prompt`]
//! 6. anything else → [`DiffKind::Other`]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use similar::TextDiff;

use crate::files::{self, FsError};
use crate::manifest::MANIFEST_FILE;
use crate::path::RelPath;

/// The sort of change a file represents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiffKind {
    /// The manifest: roles, delegation, skills, budgets, models.
    Hierarchy,
    /// The meta agent itself (prompts, improve.py, select.py).
    Meta,
    /// Prompt text outside `meta/`.
    Prompt,
    /// Python outside `meta/`.
    Code,
    /// The meta agent's notes.
    Memory,
    /// Anything else.
    Other,
}

impl DiffKind {
    /// Lower-case name for reports and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Hierarchy => "hierarchy",
            DiffKind::Meta => "meta",
            DiffKind::Prompt => "prompt",
            DiffKind::Code => "code",
            DiffKind::Memory => "memory",
            DiffKind::Other => "other",
        }
    }
}

impl fmt::Display for DiffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a change to `path` (rules in the module docs).
pub fn classify(path: &RelPath) -> DiffKind {
    if path.as_str() == MANIFEST_FILE {
        DiffKind::Hierarchy
    } else if path.is_under("meta") {
        DiffKind::Meta
    } else if path.is_under("memory") {
        DiffKind::Memory
    } else {
        match path.extension() {
            Some("py") => DiffKind::Code,
            Some("md" | "txt" | "jinja" | "j2") => DiffKind::Prompt,
            _ => DiffKind::Other,
        }
    }
}

/// Whether a file was added, changed or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeStatus {
    /// Only in the child.
    Added,
    /// In both, different bytes.
    Modified,
    /// Only in the parent.
    Removed,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Program-relative path.
    pub path: RelPath,
    /// Added, modified or removed.
    pub status: ChangeStatus,
    /// Its kind (see [`classify`]).
    pub kind: DiffKind,
    /// Unified diff with `a/` and `b/` headers (`/dev/null` for the missing side), or a
    /// one-line note for non-UTF-8 files.
    pub unified: String,
}

/// Every changed file between a parent and a child, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgramDiff {
    /// The changes.
    pub files: Vec<FileChange>,
}

impl ProgramDiff {
    /// True when the two programs have the same files with the same bytes.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The set of kinds touched.
    pub fn kinds(&self) -> BTreeSet<DiffKind> {
        self.files.iter().map(|f| f.kind).collect()
    }

    /// The whole diff as one text, file after file.
    pub fn unified(&self) -> String {
        self.files.iter().map(|f| f.unified.as_str()).collect()
    }
}

impl fmt::Display for ProgramDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.files.iter().try_for_each(|c| f.write_str(&c.unified))
    }
}

/// Compares the program directories `parent` and `child` (both walked with the usual refusal of
/// links).
pub fn diff_dirs(parent: &Path, child: &Path) -> Result<ProgramDiff, FsError> {
    let old = files::read_all(parent)?;
    let new = files::read_all(child)?;
    Ok(diff_files(&old, &new))
}

pub(crate) fn diff_files(
    old: &BTreeMap<RelPath, Vec<u8>>,
    new: &BTreeMap<RelPath, Vec<u8>>,
) -> ProgramDiff {
    let paths: BTreeSet<&RelPath> = old.keys().chain(new.keys()).collect();
    let mut files = Vec::new();
    for path in paths {
        let (before, after) = (old.get(path), new.get(path));
        let status = match (before, after) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => ChangeStatus::Modified,
            (None, Some(_)) => ChangeStatus::Added,
            (Some(_), None) => ChangeStatus::Removed,
            (None, None) => continue,
        };
        files.push(FileChange {
            path: path.clone(),
            status,
            kind: classify(path),
            unified: unified(path, before.map(Vec::as_slice), after.map(Vec::as_slice)),
        });
    }
    ProgramDiff { files }
}

fn unified(path: &RelPath, before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    let a = before.map_or_else(|| "/dev/null".to_owned(), |_| format!("a/{path}"));
    let b = after.map_or_else(|| "/dev/null".to_owned(), |_| format!("b/{path}"));
    match (as_text(before), as_text(after)) {
        (Some(old), Some(new)) => {
            let diff = TextDiff::from_lines(old, new);
            let body = diff.unified_diff().context_radius(3).to_string();
            // `similar` writes no headers when there are no hunks (an empty file added).
            format!("--- {a}\n+++ {b}\n{body}")
        }
        _ => format!("Binary files {a} and {b} differ\n"),
    }
}

/// An absent side is empty text; a non-UTF-8 side has no text.
fn as_text(side: Option<&[u8]>) -> Option<&str> {
    side.map_or(Some(""), |bytes| std::str::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(p: &str) -> RelPath {
        RelPath::new(p).unwrap()
    }

    #[test]
    fn classify_follows_the_documented_rules() {
        let cases = [
            ("hyperagent.toml", DiffKind::Hierarchy),
            ("meta/prompt.md", DiffKind::Meta),
            ("meta/improve.py", DiffKind::Meta),
            ("meta/hyperagent.toml", DiffKind::Meta),
            ("memory/notes.md", DiffKind::Memory),
            ("memory/x.py", DiffKind::Memory),
            ("tasks/web/policy.py", DiffKind::Code),
            ("hyper/main.py", DiffKind::Code),
            ("tasks/web/prompt.md", DiffKind::Prompt),
            ("skills/click/prompt.txt", DiffKind::Prompt),
            ("tasks/web/examples.json", DiffKind::Other),
            ("tasks/hyperagent.toml", DiffKind::Other),
            ("metadata.py", DiffKind::Code),
        ];
        for (path, kind) in cases {
            assert_eq!(classify(&rel(path)), kind, "{path}");
        }
    }

    #[test]
    fn added_modified_removed_and_binary() {
        let old = BTreeMap::from([
            (rel("a.md"), b"one\ntwo\n".to_vec()),
            (rel("gone.py"), b"x = 1\n".to_vec()),
            (rel("same.md"), b"s\n".to_vec()),
            (rel("blob.bin"), vec![0xff, 0x00]),
        ]);
        let new = BTreeMap::from([
            (rel("a.md"), b"one\nTWO\n".to_vec()),
            (rel("new.md"), b"hi\n".to_vec()),
            (rel("same.md"), b"s\n".to_vec()),
            (rel("blob.bin"), vec![0xfe]),
        ]);
        let diff = diff_files(&old, &new);
        let got: Vec<_> = diff
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.status))
            .collect();
        assert_eq!(
            got,
            [
                ("a.md", ChangeStatus::Modified),
                ("blob.bin", ChangeStatus::Modified),
                ("gone.py", ChangeStatus::Removed),
                ("new.md", ChangeStatus::Added),
            ]
        );
        assert_eq!(
            diff.unified(),
            "--- a/a.md\n+++ b/a.md\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n\
             Binary files a/blob.bin and b/blob.bin differ\n\
             --- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n\
             --- /dev/null\n+++ b/new.md\n@@ -0,0 +1 @@\n+hi\n"
        );
        assert_eq!(
            diff.kinds(),
            BTreeSet::from([DiffKind::Prompt, DiffKind::Code, DiffKind::Other])
        );
    }
}
