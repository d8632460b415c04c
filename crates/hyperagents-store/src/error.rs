//! What the results store can fail with.

use std::path::PathBuf;

/// A failure of the results store. Every variant names the database file
/// (or the export file) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory of results store {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open results store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path} is not a hyperagents results store (SQLite application id {found:#x}); \
         is it another database?"
    )]
    NotAStore { path: PathBuf, found: i64 },
    #[error(
        "results store {path} has schema version {found}, but this build knows versions up to \
         {supported}; use a newer build"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "results store {path} has schema version {found}, older than this build's {supported}, \
         and was opened read-only; run any command that writes it (`hyperagents status`) once"
    )]
    SchemaTooOld {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "results store {path} is full (the disk, or the size limit set on it): {operation} \
         was not stored; everything stored before it is intact. Free space and rerun"
    )]
    Full {
        path: PathBuf,
        operation: &'static str,
    },
    #[error("results store {path}: {operation} failed: {source}")]
    Sqlite {
        path: PathBuf,
        operation: &'static str,
        source: rusqlite::Error,
    },
    #[error("results store {path}: evaluation {key} is corrupt: {reason}")]
    CorruptRecord {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("results store {path}: no evaluation run {run}")]
    UnknownRun { path: PathBuf, run: i64 },
    #[error("results store {path}: no evaluation {key} to link to run {run}")]
    UnknownEvaluation {
        path: PathBuf,
        run: i64,
        key: String,
    },
    #[error("results store {path}: no evolution run {run:?}")]
    UnknownEvolutionRun { path: PathBuf, run: String },
    #[error("results store {path}: evolution run {run:?} has no node {node:?}")]
    UnknownNode {
        path: PathBuf,
        run: String,
        node: String,
    },
    #[error("results store {path}: {what} is corrupt: {reason}")]
    CorruptArchive {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("results store {path}: {what} is already stored differently: {reason}")]
    Conflict {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("results store {path}: {what} is not valid: {reason}")]
    InvalidInput {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("cannot write the export {path}: {source}")]
    Export {
        path: PathBuf,
        source: std::io::Error,
    },
}
