//! What making a report can fail with. Every variant names the run or the
//! file it concerns.

use std::path::PathBuf;

use hyperagents_store::StoreError;

/// A failure to read a run or to write its report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed while reading `run` (the store error names the
    /// file). Boxed: store errors are large and reports are not a hot path.
    #[error("evolution run {run:?}: {source}")]
    Store {
        run: String,
        source: Box<StoreError>,
    },
    #[error("results store {store}: no evolution run {run:?}")]
    UnknownRun { store: PathBuf, run: String },
    #[error("evolution run {run:?}: the run directory {path} does not exist")]
    MissingRunDir { run: String, path: PathBuf },
    #[error("cannot create the report directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Plotting failed (an internal layout problem, not the data's fault).
    #[error("cannot draw {path}: {message}")]
    Plot { path: PathBuf, message: String },
    #[error("a comparison needs at least one run")]
    NoRuns,
    #[error("evolution run {run:?} is listed twice in the comparison")]
    DuplicateRun { run: String },
}
