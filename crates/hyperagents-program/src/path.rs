//! Program-relative paths: the one place that decides what a path inside a program may look
//! like. Both the manifest and the meta agent's editor go through [`RelPath`], so "stays inside
//! the program" is checked by a type rather than by each caller.

use std::fmt;
use std::path::{Path, PathBuf};

/// A path inside a program directory, validated and normalized.
///
/// Always relative, `/`-separated, never empty, with no `.` or `..` components, no backslashes
/// and no control characters. Ordering is byte order of the normalized string, which is the
/// order the content hash uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

/// Why a string is not an acceptable [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty strings (or only `.`) name the program root, which is not a file.
    #[error("path is empty")]
    Empty,
    /// Absolute paths would let a program name files anywhere on the host.
    #[error("path `{0}` is absolute; paths are relative to the program root")]
    Absolute(String),
    /// `..` is refused everywhere, even where it would stay inside, so no path ever climbs.
    #[error("path `{0}` contains `..`; paths may not leave the program root")]
    ParentDir(String),
    /// Backslashes are separators on some hosts and ordinary characters on others.
    #[error("path `{0}` contains a backslash; use `/` between directories")]
    Backslash(String),
    /// Control characters (NUL, newlines) make paths ambiguous in listings and diffs.
    #[error("path {0:?} contains a control character")]
    ControlChar(String),
}

impl RelPath {
    /// Validates and normalizes `path` (`./a//b` becomes `a/b`).
    pub fn new(path: &str) -> Result<Self, PathError> {
        if path.chars().any(char::is_control) {
            return Err(PathError::ControlChar(path.to_owned()));
        }
        if path.contains('\\') {
            return Err(PathError::Backslash(path.to_owned()));
        }
        if path.starts_with('/') || has_drive_prefix(path) {
            return Err(PathError::Absolute(path.to_owned()));
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::ParentDir(path.to_owned())),
                _ => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(Self(parts.join("/")))
    }

    /// Parses a directory argument where the empty string and `.` mean the program root.
    pub fn new_dir(path: &str) -> Result<Option<Self>, PathError> {
        match Self::new(path) {
            Ok(rel) => Ok(Some(rel)),
            Err(PathError::Empty) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The normalized, `/`-separated form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The outermost directory (or the file name for a top-level file).
    pub fn first_component(&self) -> &str {
        self.components().next().unwrap_or(&self.0)
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The extension of the file name, without the dot.
    pub fn extension(&self) -> Option<&str> {
        let name = self.file_name();
        match name.rfind('.') {
            Some(0) | None => None,
            Some(i) => Some(&name[i + 1..]),
        }
    }

    /// True when this path lies under the top-level directory `dir`.
    pub fn is_under(&self, dir: &str) -> bool {
        self.0
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// `self/child`, for paths built from already-valid parts.
    pub(crate) fn join(&self, child: &RelPath) -> RelPath {
        RelPath(format!("{}/{}", self.0, child.0))
    }

    /// The host path of this file under `root`.
    pub fn to_path(&self, root: &Path) -> PathBuf {
        let mut out = root.to_path_buf();
        out.extend(self.components());
        out
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Sound because `RelPath`'s `Eq`, `Ord` and `Hash` are those of its string.
impl std::borrow::Borrow<str> for RelPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RelPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `C:...`: absolute (or drive-relative) on Windows; refused everywhere for portability.
fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_redundant_separators_and_dots() {
        assert_eq!(RelPath::new("./a//b/./c.md").unwrap().as_str(), "a/b/c.md");
    }

    #[test]
    fn refuses_paths_that_could_leave_the_root() {
        assert_eq!(
            RelPath::new("/etc/passwd"),
            Err(PathError::Absolute("/etc/passwd".into()))
        );
        assert_eq!(
            RelPath::new("../x"),
            Err(PathError::ParentDir("../x".into()))
        );
        assert_eq!(
            RelPath::new("a/../../x"),
            Err(PathError::ParentDir("a/../../x".into()))
        );
        assert_eq!(
            RelPath::new("a\\b"),
            Err(PathError::Backslash("a\\b".into()))
        );
        assert_eq!(RelPath::new("C:x"), Err(PathError::Absolute("C:x".into())));
        assert_eq!(
            RelPath::new("a\0b"),
            Err(PathError::ControlChar("a\0b".into()))
        );
        assert_eq!(RelPath::new(""), Err(PathError::Empty));
        assert_eq!(RelPath::new("./"), Err(PathError::Empty));
    }

    #[test]
    fn directory_arguments_accept_the_root() {
        assert_eq!(RelPath::new_dir("."), Ok(None));
        assert_eq!(RelPath::new_dir(""), Ok(None));
        assert_eq!(
            RelPath::new_dir("tasks").unwrap().unwrap().as_str(),
            "tasks"
        );
    }

    #[test]
    fn parts() {
        let p = RelPath::new("meta/improve.py").unwrap();
        assert_eq!(p.first_component(), "meta");
        assert_eq!(p.file_name(), "improve.py");
        assert_eq!(p.extension(), Some("py"));
        assert!(p.is_under("meta"));
        assert!(!RelPath::new("metadata/x").unwrap().is_under("meta"));
        assert_eq!(RelPath::new(".hidden").unwrap().extension(), None);
    }
}
