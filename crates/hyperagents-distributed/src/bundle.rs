//! Programs as content-addressed bundles: every file of a program directory
//! with its bytes, encoded with `postcard`, named by the program's content
//! hash. A bundle is unpacked only after the hash of what it holds matches
//! the hash it was asked for, so a worker never runs bytes other than the
//! program the coordinator named.

use std::path::{Path, PathBuf};

use hyperagents_program::{ContentHash, RelPath, hash_files, read_program_files};
use serde::{Deserialize, Serialize};

/// The encoding's version; a bundle of another version is refused.
pub const BUNDLE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramBundle {
    pub format: u32,
    pub files: Vec<BundleFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Relative, `/`-separated, as [`RelPath`] spells it.
    pub path: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("reading the program at {dir}: {message}")]
    Read { dir: PathBuf, message: String },
    #[error("the bundle is not a program bundle: {0}")]
    Decode(String),
    #[error("the bundle is format {found}; this build reads format {BUNDLE_FORMAT}")]
    Format { found: u32 },
    #[error("the bundle holds an unusable path {path:?}: {message}")]
    Path { path: String, message: String },
    #[error("the bundle holds {path} twice")]
    Duplicate { path: String },
    #[error("the bundle's files hash to {found}, not {expected}: refused")]
    HashMismatch { expected: String, found: String },
    #[error("unpacking into {dir}: {message}")]
    Write { dir: PathBuf, message: String },
}

/// The program at `dir` as a bundle: its content hash (the name it is
/// stored under) and its bytes.
pub fn pack(dir: &Path) -> Result<(ContentHash, Vec<u8>), BundleError> {
    let files = read_program_files(dir).map_err(|e| BundleError::Read {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let hash = hash_files(files.iter().map(|(p, b)| (p, b.as_slice())));
    let bundle = ProgramBundle {
        format: BUNDLE_FORMAT,
        files: files
            .into_iter()
            .map(|(path, bytes)| BundleFile {
                path: path.as_str().to_string(),
                bytes,
            })
            .collect(),
    };
    let bytes = postcard::to_stdvec(&bundle).map_err(|e| BundleError::Decode(e.to_string()))?;
    Ok((hash, bytes))
}

/// Checks `bytes` against `expected` and writes the program into `dest`
/// (which must not exist yet). Nothing is written unless every path is a
/// plain relative path and the files hash to `expected`.
pub fn unpack(bytes: &[u8], expected: &ContentHash, dest: &Path) -> Result<(), BundleError> {
    let files = verify(bytes, expected)?;
    let write = |message: String| BundleError::Write {
        dir: dest.to_path_buf(),
        message,
    };
    if dest.exists() {
        return Err(write("it already exists".into()));
    }
    std::fs::create_dir_all(dest).map_err(|e| write(e.to_string()))?;
    for (path, content) in files {
        let host = path.to_path(dest);
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent).map_err(|e| write(e.to_string()))?;
        }
        std::fs::write(&host, content).map_err(|e| write(format!("{}: {e}", path.as_str())))?;
    }
    Ok(())
}

/// The files of a bundle whose content hash is `expected`, or why not.
pub fn verify(
    bytes: &[u8],
    expected: &ContentHash,
) -> Result<Vec<(RelPath, Vec<u8>)>, BundleError> {
    let bundle: ProgramBundle =
        postcard::from_bytes(bytes).map_err(|e| BundleError::Decode(e.to_string()))?;
    if bundle.format != BUNDLE_FORMAT {
        return Err(BundleError::Format {
            found: bundle.format,
        });
    }
    let mut files = std::collections::BTreeMap::new();
    for file in bundle.files {
        let path = RelPath::new(&file.path).map_err(|e| BundleError::Path {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        if files.insert(path, file.bytes).is_some() {
            return Err(BundleError::Duplicate { path: file.path });
        }
    }
    let found = hash_files(files.iter().map(|(p, b)| (p, b.as_slice())));
    if &found != expected {
        return Err(BundleError::HashMismatch {
            expected: expected.to_hex(),
            found: found.to_hex(),
        });
    }
    Ok(files.into_iter().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn program(dir: &Path) {
        std::fs::create_dir_all(dir.join("skills/a")).unwrap();
        std::fs::write(dir.join("hyperagent.toml"), "name = \"p\"\n").unwrap();
        std::fs::write(dir.join("skills/a/prompt.md"), "Hello {{ goal }}\n").unwrap();
        std::fs::write(dir.join("data.bin"), [0u8, 159, 146, 150]).unwrap();
    }

    #[test]
    fn a_bundle_unpacks_to_the_same_program() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        program(&src);
        let (hash, bytes) = pack(&src).unwrap();
        assert_eq!(hash, hyperagents_program::content_hash_dir(&src).unwrap());
        let out = dir.path().join("out");
        unpack(&bytes, &hash, &out).unwrap();
        assert_eq!(hyperagents_program::content_hash_dir(&out).unwrap(), hash);
        assert_eq!(
            std::fs::read(out.join("data.bin")).unwrap(),
            [0u8, 159, 146, 150]
        );
    }

    #[test]
    fn a_bundle_whose_bytes_do_not_match_its_hash_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        program(&src);
        let (hash, bytes) = pack(&src).unwrap();
        // One byte of a file changed in transit (or by whoever put it there).
        let mut bundle: ProgramBundle = postcard::from_bytes(&bytes).unwrap();
        bundle.files[0].bytes.push(b'!');
        let tampered = postcard::to_stdvec(&bundle).unwrap();
        let out = dir.path().join("out");
        let error = unpack(&tampered, &hash, &out).unwrap_err();
        assert!(matches!(error, BundleError::HashMismatch { .. }), "{error}");
        assert!(!out.exists());
        // Another program's bundle under this name is refused the same way.
        let other = dir.path().join("other");
        program(&other);
        std::fs::write(other.join("extra.md"), "x").unwrap();
        let (_, other_bytes) = pack(&other).unwrap();
        assert!(matches!(
            unpack(&other_bytes, &hash, &out).unwrap_err(),
            BundleError::HashMismatch { .. }
        ));
        // Garbage, and a path that leaves the folder.
        assert!(matches!(
            unpack(b"not a bundle", &hash, &out).unwrap_err(),
            BundleError::Decode(_) | BundleError::Format { .. }
        ));
        let escaping = ProgramBundle {
            format: BUNDLE_FORMAT,
            files: vec![BundleFile {
                path: "../outside.md".into(),
                bytes: b"x".to_vec(),
            }],
        };
        let error = unpack(&postcard::to_stdvec(&escaping).unwrap(), &hash, &out).unwrap_err();
        assert!(matches!(error, BundleError::Path { .. }), "{error}");
        assert!(!out.exists() && !dir.path().join("outside.md").exists());
    }
}
