//! What the response cache can fail with.

use std::path::PathBuf;

use hyperagents_llm::LlmError;

/// A failure of the response cache itself (not of the model behind it).
/// Every variant that concerns the database names its file.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create the directory of response cache {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open response cache {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "response cache {path} has schema version {found}, but this build reads version \
         {expected}; move the file aside to start a new cache"
    )]
    SchemaVersion {
        path: PathBuf,
        found: String,
        expected: i64,
    },
    #[error("response cache {path}: {operation} failed: {source}")]
    Sqlite {
        path: PathBuf,
        operation: &'static str,
        source: rusqlite::Error,
    },
    #[error("response cache {path}: entry {key} is corrupt: {reason}")]
    CorruptEntry {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("cannot serialize the {what} for the response cache: {source}")]
    Serialize {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("response cache worker task failed: {0}")]
    Task(String),
}

impl From<CacheError> for LlmError {
    fn from(err: CacheError) -> Self {
        LlmError::Cache(err.to_string())
    }
}
