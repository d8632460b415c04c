//! Walking, reading and copying program directories.
//!
//! A program may hold only directories and regular files: a symbolic link could make a program's
//! content (and hash) depend on files outside it, or let an edit write through it, so every walk
//! refuses links instead of following or skipping them. Checks are made with `symlink_metadata`
//! on each component; programs are not edited concurrently with these walks, so the remaining
//! check-then-use window is not treated as an attack surface.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::path::{PathError, RelPath};

/// A filesystem problem, naming the program-relative path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Links are refused so a program's content can never point outside it.
    #[error("`{path}` is a symbolic link; programs may not contain links")]
    Symlink {
        /// Program-relative path of the link.
        path: String,
    },
    /// Sockets, FIFOs and devices have no content to hash or copy.
    #[error("`{path}` is not a regular file or directory")]
    Special {
        /// Program-relative path of the entry.
        path: String,
    },
    /// A name the program format cannot represent (not UTF-8, backslash, control character).
    #[error("`{path}` has an unusable file name: {reason}")]
    BadName {
        /// The name, lossily decoded.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A component that should be a directory is a file.
    #[error("`{path}` is not a directory")]
    NotADirectory {
        /// Program-relative path of the component.
        path: String,
    },
    /// The destination of a copy must be fresh so nothing stale mixes into the child.
    #[error("`{path}` already exists")]
    AlreadyExists {
        /// Host path of the destination.
        path: String,
    },
    /// Any other IO failure.
    #[error("`{path}`: {error}")]
    Io {
        /// Program-relative (or, for a root, host) path.
        path: String,
        /// The underlying error.
        error: io::Error,
    },
}

impl FsError {
    /// The path the error is about.
    pub fn path(&self) -> &str {
        match self {
            FsError::Symlink { path }
            | FsError::Special { path }
            | FsError::BadName { path, .. }
            | FsError::NotADirectory { path }
            | FsError::AlreadyExists { path }
            | FsError::Io { path, .. } => path,
        }
    }

    pub(crate) fn io(path: impl Into<String>, error: io::Error) -> Self {
        FsError::Io {
            path: path.into(),
            error,
        }
    }
}

/// What a walk found: every regular file (sorted by path), every directory, and every problem.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub files: Vec<ScannedFile>,
    pub dirs: Vec<RelPath>,
    pub errors: Vec<FsError>,
}

/// One regular file found by a walk.
#[derive(Debug)]
pub(crate) struct ScannedFile {
    pub rel: RelPath,
    pub host: PathBuf,
    pub len: u64,
}

impl Scan {
    /// The first problem, if any, for callers that fail fast.
    pub fn into_result(mut self) -> Result<Self, FsError> {
        if self.errors.is_empty() {
            Ok(self)
        } else {
            Err(self.errors.swap_remove(0))
        }
    }
}

/// Walks `root/base` (the whole of `root` when `base` is `None`), collecting every problem
/// rather than stopping at the first, so a loader can report them all.
pub(crate) fn scan(root: &Path, base: Option<&RelPath>) -> Scan {
    let mut out = Scan::default();
    let (start, start_name) = match base {
        None => (root.to_path_buf(), root.display().to_string()),
        Some(b) => match resolve_inside(root, b) {
            Ok(host) => (host, b.to_string()),
            Err(e) => {
                out.errors.push(e);
                return out;
            }
        },
    };
    // Links below the root were refused above; the root itself is the host's choice, so
    // `metadata` may follow it.
    match std::fs::metadata(&start) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            out.errors.push(FsError::NotADirectory { path: start_name });
            return out;
        }
        Err(error) => {
            out.errors.push(FsError::io(start_name, error));
            return out;
        }
    }
    let mut stack: Vec<(PathBuf, Option<RelPath>)> = vec![(start, base.cloned())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let dir_name = rel_dir
            .as_ref()
            .map_or_else(|| ".".to_owned(), RelPath::to_string);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                out.errors.push(FsError::io(dir_name, error));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    out.errors.push(FsError::io(dir_name.clone(), error));
                    continue;
                }
            };
            let raw_name = entry.file_name();
            let shown = match &rel_dir {
                Some(d) => format!("{d}/{}", raw_name.to_string_lossy()),
                None => raw_name.to_string_lossy().into_owned(),
            };
            let rel = match child_rel(rel_dir.as_ref(), &raw_name) {
                Ok(rel) => rel,
                Err(reason) => {
                    out.errors.push(FsError::BadName {
                        path: shown,
                        reason,
                    });
                    continue;
                }
            };
            // `DirEntry::metadata` does not follow links.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(error) => {
                    out.errors.push(FsError::io(shown, error));
                    continue;
                }
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                out.errors.push(FsError::Symlink { path: shown });
            } else if kind.is_dir() {
                out.dirs.push(rel.clone());
                stack.push((entry.path(), Some(rel)));
            } else if kind.is_file() {
                out.files.push(ScannedFile {
                    rel,
                    host: entry.path(),
                    len: meta.len(),
                });
            } else {
                out.errors.push(FsError::Special { path: shown });
            }
        }
    }
    out.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    out.dirs.sort();
    out
}

fn child_rel(parent: Option<&RelPath>, name: &std::ffi::OsStr) -> Result<RelPath, String> {
    let name = name
        .to_str()
        .ok_or_else(|| "the name is not valid UTF-8".to_owned())?;
    let child = match RelPath::new(name) {
        Ok(child) if child.as_str() == name => child,
        Ok(_) | Err(PathError::Empty) => return Err("the name is not a plain file name".into()),
        Err(e) => return Err(e.to_string()),
    };
    Ok(match parent {
        Some(p) => p.join(&child),
        None => child,
    })
}

/// Reads every regular file under `root`, keyed by path; fails on the first problem.
/// Every regular file under `root` with its bytes, by path (the walk of
/// [`list_program_files`]).
pub fn read_all(root: &Path) -> Result<BTreeMap<RelPath, Vec<u8>>, FsError> {
    let scan = scan(root, None).into_result()?;
    let mut files = BTreeMap::new();
    for file in scan.files {
        let bytes = std::fs::read(&file.host).map_err(|e| FsError::io(file.rel.as_str(), e))?;
        files.insert(file.rel, bytes);
    }
    Ok(files)
}

/// Lists every regular file under `root`, sorted by path.
///
/// Fails on symbolic links, special files and unusable names, like every walk in this crate.
pub fn list_program_files(root: &Path) -> Result<Vec<RelPath>, FsError> {
    Ok(scan(root, None)
        .into_result()?
        .files
        .into_iter()
        .map(|f| f.rel)
        .collect())
}

/// Copies the program at `src` into a new directory `dst` (which must not exist yet).
///
/// The source is walked completely before anything is written, so a program holding a symbolic
/// link is refused without leaving a partial copy. Empty directories are copied too.
pub fn copy_program(src: &Path, dst: &Path) -> Result<(), FsError> {
    let scan = scan(src, None).into_result()?;
    let dst_name = dst.display().to_string();
    if std::fs::symlink_metadata(dst).is_ok() {
        return Err(FsError::AlreadyExists { path: dst_name });
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| FsError::io(dst_name.clone(), e))?;
    }
    std::fs::create_dir(dst).map_err(|e| FsError::io(dst_name, e))?;
    for dir in &scan.dirs {
        std::fs::create_dir_all(dir.to_path(dst)).map_err(|e| FsError::io(dir.as_str(), e))?;
    }
    for file in &scan.files {
        std::fs::copy(&file.host, file.rel.to_path(dst))
            .map_err(|e| FsError::io(file.rel.as_str(), e))?;
    }
    Ok(())
}

/// Checks every existing component of `rel` under `root`: none may be a link, and every one but
/// the last must be a directory. Returns the host path. Missing components are fine (the caller
/// decides whether the target must exist).
pub(crate) fn resolve_inside(root: &Path, rel: &RelPath) -> Result<PathBuf, FsError> {
    let mut host = root.to_path_buf();
    let mut shown = String::new();
    let count = rel.components().count();
    for (i, part) in rel.components().enumerate() {
        host.push(part);
        if !shown.is_empty() {
            shown.push('/');
        }
        shown.push_str(part);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(FsError::Symlink { path: shown });
            }
            Ok(meta) if i + 1 < count && !meta.is_dir() => {
                return Err(FsError::NotADirectory { path: shown });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                host.extend(rel.components().skip(i + 1));
                return Ok(host);
            }
            Err(e) => return Err(FsError::io(shown, e)),
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_sorts_files_and_reports_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/z.txt"), "z").unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("b/link")).unwrap();
        let scan = scan(dir.path(), None);
        let names: Vec<_> = scan.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(names, ["a.txt", "b/c/z.txt"]);
        assert_eq!(scan.errors.len(), 1);
        assert!(matches!(&scan.errors[0], FsError::Symlink { path } if path == "b/link"));
    }

    #[test]
    fn resolve_inside_refuses_linked_directories() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let rel = RelPath::new("out/new.txt").unwrap();
        assert!(matches!(
            resolve_inside(dir.path(), &rel),
            Err(FsError::Symlink { path }) if path == "out"
        ));
        let fresh = RelPath::new("x/y/z.txt").unwrap();
        assert_eq!(
            resolve_inside(dir.path(), &fresh).unwrap(),
            dir.path().join("x/y/z.txt")
        );
    }

    #[test]
    fn copy_refuses_links_before_writing_anything() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("p")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let target = dst.path().join("child");
        assert!(matches!(
            copy_program(src.path(), &target),
            Err(FsError::Symlink { .. })
        ));
        assert!(!target.exists());
    }
}
