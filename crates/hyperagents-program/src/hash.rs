//! Content addressing: a program is identified by the SHA-256 of its files.
//!
//! # Encoding
//!
//! The hash is SHA-256 over
//!
//! ```text
//! "hyperagents-program-v1\n"
//! for each file, in ascending byte order of its path:
//!     u64 big-endian byte length of the path  ||  path (UTF-8, `/`-separated, normalized)
//!     u64 big-endian byte length of the content  ||  content
//! ```
//!
//! Length prefixes make the encoding injective: no two different file sets produce the same
//! byte stream. Only regular files count: directories (including empty ones), permissions and
//! timestamps do not. Nothing is ignored — hidden files included — and a symbolic link anywhere
//! is an error, so the hash always covers exactly what an episode can read.
//!
//! The *episode hash* is the same encoding over the files an episode loads: everything except
//! `meta/` and `memory/`. Two programs that differ only in their meta agent or notes have the
//! same episode hash, so their evaluations can be shared.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::files::{self, FsError};
use crate::path::RelPath;

/// Domain-separation prefix; bump the version if the encoding ever changes.
const HASH_TAG: &[u8] = b"hyperagents-program-v1\n";

/// Top-level directories an episode never loads.
const NON_EPISODE_DIRS: [&str; 2] = ["meta", "memory"];

/// The SHA-256 identity of a set of program files.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the form [`to_hex`](Self::to_hex) writes.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// True for files an episode loads (everything outside `meta/` and `memory/`).
pub fn is_episode_file(path: &RelPath) -> bool {
    !NON_EPISODE_DIRS.iter().any(|dir| path.is_under(dir))
}

/// Hashes (path, content) pairs in any order; the pairs are sorted by path first.
///
/// Useful for files that do not sit in a directory (an archive's stored blobs).
pub fn hash_files<'a>(files: impl IntoIterator<Item = (&'a RelPath, &'a [u8])>) -> ContentHash {
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    hasher.update(HASH_TAG);
    for (path, content) in files {
        hasher.update((path.as_str().len() as u64).to_be_bytes());
        hasher.update(path.as_str().as_bytes());
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(content);
    }
    ContentHash(hasher.finalize().into())
}

/// The content hash of the program directory `dir` (see the module docs for the encoding).
pub fn content_hash_dir(dir: &Path) -> Result<ContentHash, FsError> {
    let files = files::read_all(dir)?;
    Ok(hash_files(files.iter().map(|(p, b)| (p, b.as_slice()))))
}

/// The episode hash of the program directory `dir`: the content hash without `meta/` and
/// `memory/`.
pub fn episode_hash_dir(dir: &Path) -> Result<ContentHash, FsError> {
    let files = files::read_all(dir)?;
    Ok(hash_files(
        files
            .iter()
            .filter(|(p, _)| is_episode_file(p))
            .map(|(p, b)| (p, b.as_slice())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(p: &str) -> RelPath {
        RelPath::new(p).unwrap()
    }

    #[test]
    fn order_of_pairs_does_not_matter() {
        let (a, b) = (rel("a"), rel("b"));
        let one = hash_files([(&a, &b"1"[..]), (&b, &b"2"[..])]);
        let two = hash_files([(&b, &b"2"[..]), (&a, &b"1"[..])]);
        assert_eq!(one, two);
    }

    #[test]
    fn length_prefixes_keep_path_and_content_apart() {
        // Without length prefixes "ab"+"c" and "a"+"bc" would stream the same bytes.
        let (ab, a) = (rel("ab"), rel("a"));
        assert_ne!(
            hash_files([(&ab, &b"c"[..])]),
            hash_files([(&a, &b"bc"[..])])
        );
    }

    #[test]
    fn the_encoding_is_pinned() {
        // Recomputed by hand from the documented encoding, so a silent change fails here.
        let path = rel("hyperagent.toml");
        let mut expected = Sha256::new();
        expected.update(b"hyperagents-program-v1\n");
        expected.update(15u64.to_be_bytes());
        expected.update(b"hyperagent.toml");
        expected.update(3u64.to_be_bytes());
        expected.update(b"x=1");
        let expected = ContentHash(expected.finalize().into());
        assert_eq!(hash_files([(&path, &b"x=1"[..])]), expected);
        assert_eq!(ContentHash::from_hex(&expected.to_hex()), Some(expected));
    }

    #[test]
    fn episode_files_exclude_meta_and_memory_only() {
        assert!(!is_episode_file(&rel("meta/improve.py")));
        assert!(!is_episode_file(&rel("memory/notes.md")));
        assert!(is_episode_file(&rel("metadata.md")));
        assert!(is_episode_file(&rel("hyperagent.toml")));
        assert!(is_episode_file(&rel("tasks/meta/prompt.md")));
    }
}
