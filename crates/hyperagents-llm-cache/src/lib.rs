//! A response cache for chat models, and record/replay built on it.
//!
//! [`ResponseCache`] keeps answers in a SQLite file, keyed by a SHA-256 of the
//! provider, the model, the model's fingerprint and the normalized request
//! ([`CacheKey`]). [`CachedModel`] wraps any [`hyperagents_llm::ChatModel`]
//! and consults the cache according to a [`CacheMode`]:
//!
//! - `off`: every call goes to the model;
//! - `read-write`: answers are served from the cache when present, and fresh
//!   answers are recorded;
//! - `replay-only`: answers come from the cache or the call fails with
//!   [`hyperagents_llm::LlmError::CacheMiss`]; the model is never called.
//!
//! Recording a run in `read-write` mode and rerunning it in `replay-only` mode
//! reproduces it without a provider, since seeds are part of every request.

mod error;
mod key;
mod mode;
mod model;
mod store;

pub use error::CacheError;
pub use key::{CacheKey, normalized_request};
pub use mode::{CacheMode, ParseCacheModeError};
pub use model::CachedModel;
pub use store::{CacheEntry, ResponseCache, SCHEMA_VERSION};
