//! A GGUF file the user names by path instead of a catalog entry. It is
//! untrusted input: its header is read by [`GgufHeader`] (bounded, never
//! trusting a length), it must carry a chat template (the prompt format is
//! never guessed), and its SHA-256, which pins the exact weights in cache
//! keys, is computed and compared with the pin the settings give, if any.
//! Whether llama.cpp can load it is for the caller to find out in a child
//! process: some malformed tensors abort the loading process.

use std::path::{Path, PathBuf};

use crate::ModelError;
use crate::gguf::GgufHeader;

/// What was checked of a local GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    pub path: PathBuf,
    /// Lowercase hex.
    pub sha256: String,
    pub architecture: Option<String>,
    pub tensor_count: u64,
}

/// Reads and checks the GGUF file at `path` (see the module's documentation).
pub fn check_local_gguf(path: &Path, pin: Option<&str>) -> Result<LocalModel, ModelError> {
    let label = path.display().to_string();
    let header = GgufHeader::read_path(path)?;
    if header.chat_template().is_none() {
        return Err(ModelError::MissingChatTemplate {
            model: label,
            path: path.to_path_buf(),
        });
    }
    let sha256 = crate::datasets::sha256_file(path)?;
    if let Some(expected) = pin {
        let expected = expected.trim().to_ascii_lowercase();
        if expected != sha256 {
            return Err(ModelError::Sha256 {
                model: label,
                path: path.to_path_buf(),
                expected,
                actual: sha256,
            });
        }
    }
    Ok(LocalModel {
        path: path.to_path_buf(),
        sha256,
        architecture: header.architecture().map(str::to_owned),
        tensor_count: header.tensor_count,
    })
}
