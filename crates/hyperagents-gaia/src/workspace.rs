//! An episode's own folder: a fresh temporary directory holding only the task's attachment, and
//! the one place agent-supplied paths are resolved.
//!
//! A path is accepted only if it names an existing file inside the folder: `..` components are
//! refused outright, absolute paths must lie inside the folder, and the resolved (canonical) path
//! must still lie inside it, so a symlink cannot lead out. Messages never show the host path of
//! the folder.

use std::path::{Component, Path, PathBuf};

use hyperagents_domain::DomainError;

/// One episode's folder; removed when dropped.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
    /// The folder's canonical path (what resolved paths must start with).
    root: PathBuf,
}

impl Workspace {
    /// Creates a fresh folder under `parent` (the system temporary folder when `None`) and
    /// copies the attachment in under `name`.
    pub fn create(
        parent: Option<&Path>,
        attachment: Option<(&str, &Path)>,
    ) -> Result<Self, DomainError> {
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("gaia-episode-");
            b
        };
        let dir = match parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(|source| DomainError::Io {
            path: parent
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| std::env::temp_dir().display().to_string()),
            source,
        })?;
        let root = std::fs::canonicalize(dir.path()).map_err(|source| DomainError::Io {
            path: dir.path().display().to_string(),
            source,
        })?;
        if let Some((name, source_path)) = attachment {
            fs_err::copy(source_path, root.join(name)).map_err(|source| DomainError::Io {
                path: source_path.display().to_string(),
                source,
            })?;
        }
        Ok(Self { dir, root })
    }

    /// The folder on the host (for the host side only: never shown to agents).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Resolves an agent-supplied path to a file inside the folder, or says why it cannot.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, String> {
        let requested = requested.trim();
        if requested.is_empty() {
            return Err(format!("no path given; {}", self.listing()));
        }
        let path = Path::new(requested);
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "`{requested}`: `..` is not allowed; only the episode's own files can be read ({})",
                self.listing()
            ));
        }
        let candidate = if path.is_absolute() {
            let inside = path.starts_with(&self.root) || path.starts_with(self.dir.path());
            if !inside {
                return Err(format!(
                    "`{requested}` is outside the episode folder; {}",
                    self.listing()
                ));
            }
            path.to_path_buf()
        } else {
            self.root.join(path)
        };
        let resolved = std::fs::canonicalize(&candidate)
            .map_err(|_| format!("no file `{requested}`; {}", self.listing()))?;
        if !resolved.starts_with(&self.root) {
            return Err(format!(
                "`{requested}` leads outside the episode folder; {}",
                self.listing()
            ));
        }
        Ok(resolved)
    }

    /// The names of the files in the folder, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// "files available: a.csv" / "this task has no files".
    pub fn listing(&self) -> String {
        let files = self.files();
        if files.is_empty() {
            "this task has no files".into()
        } else {
            format!("files available: {}", files.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_folder_only() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.txt");
        std::fs::write(&secret, "secret").unwrap();
        let attachment = outside.path().join("source.txt");
        std::fs::write(&attachment, "hello").unwrap();
        let ws = Workspace::create(None, Some(("notes.txt", &attachment))).unwrap();
        assert_eq!(ws.files(), vec!["notes.txt".to_string()]);
        assert!(ws.resolve("notes.txt").is_ok());
        assert!(ws.resolve("./notes.txt").is_ok());
        let absolute = ws.path().join("notes.txt");
        assert!(ws.resolve(&absolute.display().to_string()).is_ok());
        for bad in [
            "../secret.txt",
            "notes.txt/../../secret.txt",
            &secret.display().to_string(),
            "/etc/passwd",
            "missing.txt",
            "",
        ] {
            let err = ws.resolve(bad).unwrap_err();
            assert!(err.contains("notes.txt"), "{bad}: {err}");
            assert!(!err.contains(&*ws.path().display().to_string()), "{err}");
        }
        std::os::unix::fs::symlink(&secret, ws.path().join("link.txt")).unwrap();
        let err = ws.resolve("link.txt").unwrap_err();
        assert!(err.contains("leads outside"), "{err}");
    }

    #[test]
    fn the_folder_is_removed_with_the_workspace() {
        let ws = Workspace::create(None, None).unwrap();
        let path = ws.path().to_path_buf();
        assert!(path.is_dir());
        assert_eq!(ws.listing(), "this task has no files");
        drop(ws);
        assert!(!path.exists());
    }
}
