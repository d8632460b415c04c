//! The seed program, built into the binary, so `eval` and `evolve` work from
//! any directory and `hyperagents init DIR` writes a starter program.
//!
//! The default `--program programs/seed` is the repository's copy when the
//! current directory holds one (a developer's edits win); elsewhere it is
//! this built-in copy, written once into the cache under its content hash.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use include_dir::{Dir, DirEntry, include_dir};
use sha2::{Digest, Sha256};

use crate::settings::Settings;

/// The `--program` default of `eval` and `evolve`.
pub const DEFAULT_PROGRAM: &str = "programs/seed";

static SEED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../programs/seed");

/// Every file of the built-in seed as (relative path, bytes), sorted.
fn seed_files() -> Vec<(PathBuf, &'static [u8])> {
    let mut files = Vec::new();
    let mut stack = vec![&SEED];
    while let Some(dir) = stack.pop() {
        for entry in dir.entries() {
            match entry {
                DirEntry::Dir(sub) => stack.push(sub),
                DirEntry::File(file) => files.push((file.path().to_path_buf(), file.contents())),
            }
        }
    }
    files.sort();
    files
}

/// Writes the built-in seed into `dir`, which must not exist or be empty.
pub fn write_seed(dir: &Path) -> Result<()> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    for (rel, bytes) in seed_files() {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The program `--program` names: the path itself, or for the default when
/// it does not exist here, the built-in seed.
pub fn resolve_program(path: &Path, settings: &Settings) -> Result<PathBuf> {
    if path != Path::new(DEFAULT_PROGRAM) || path.exists() {
        return Ok(path.to_path_buf());
    }
    let mut hasher = Sha256::new();
    for (rel, bytes) in seed_files() {
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let hash = hex::encode(hasher.finalize());
    let programs = settings.cache_dir().join("programs");
    let dir = programs.join(format!("seed-{}", &hash[..16]));
    if dir.join("hyperagent.toml").is_file() {
        return Ok(dir);
    }
    // Written beside, then renamed: a reader never sees half a program.
    std::fs::create_dir_all(&programs)
        .with_context(|| format!("creating {}", programs.display()))?;
    let staging = programs.join(format!(".seed-{}-{}", &hash[..16], std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    write_seed(&staging)?;
    if let Err(error) = std::fs::rename(&staging, &dir) {
        let _ = std::fs::remove_dir_all(&staging);
        // Another process may have put the same seed there first.
        if !dir.join("hyperagent.toml").is_file() {
            return Err(error).with_context(|| format!("writing {}", dir.display()));
        }
    }
    tracing::info!(dir = %dir.display(), "using the built-in seed program");
    Ok(dir)
}
