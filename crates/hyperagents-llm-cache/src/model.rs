//! [`CachedModel`]: a [`ChatModel`] that answers from a [`ResponseCache`].

use std::sync::Arc;

use async_trait::async_trait;
use hyperagents_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, ModelDescriptor};

use crate::{CacheError, CacheKey, CacheMode, ResponseCache, normalized_request};

/// Wraps a model with a response cache. Cache hits come back with
/// `cache_hit = true` and the usage and latency of the recorded call (the
/// accounting layer charges nothing for hits).
///
/// SQLite work runs on tokio's blocking pool, so this must be called from
/// within a tokio runtime. Two identical requests in flight at once may both
/// reach the model; the later answer replaces the earlier record.
#[derive(Clone)]
pub struct CachedModel {
    inner: Arc<dyn ChatModel>,
    cache: ResponseCache,
    mode: CacheMode,
}

impl std::fmt::Debug for CachedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedModel")
            .field("model", self.inner.descriptor())
            .field("cache", &self.cache)
            .field("mode", &self.mode)
            .finish()
    }
}

/// A request with its key computed once.
struct Keyed {
    key: CacheKey,
    normalized: String,
}

impl CachedModel {
    pub fn new(inner: Arc<dyn ChatModel>, cache: ResponseCache, mode: CacheMode) -> Self {
        Self { inner, cache, mode }
    }

    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    pub fn cache(&self) -> &ResponseCache {
        &self.cache
    }

    pub fn inner(&self) -> &Arc<dyn ChatModel> {
        &self.inner
    }

    fn keyed(&self, request: &ChatRequest) -> Result<Keyed, LlmError> {
        let normalized = normalized_request(request)?;
        let key = CacheKey::from_normalized(self.inner.descriptor(), &normalized);
        Ok(Keyed { key, normalized })
    }

    /// The recorded answer for `keyed`, marked as a hit; in replay-only mode
    /// a miss is [`LlmError::CacheMiss`].
    async fn lookup(&self, keyed: &Keyed) -> Result<Option<ChatResponse>, LlmError> {
        let cache = self.cache.clone();
        let key = keyed.key.clone();
        let entry = tokio::task::spawn_blocking(move || cache.get(&key))
            .await
            .map_err(|err| CacheError::Task(err.to_string()))??;
        match entry {
            Some(entry) => {
                tracing::debug!(key = %keyed.key, model = %entry.model, "response cache hit");
                let mut response = entry.response;
                response.cache_hit = true;
                Ok(Some(response))
            }
            None if self.mode == CacheMode::ReplayOnly => {
                let descriptor = self.inner.descriptor();
                Err(LlmError::CacheMiss {
                    provider: descriptor.provider.clone(),
                    model: descriptor.model.clone(),
                    key: keyed.key.to_string(),
                })
            }
            None => Ok(None),
        }
    }

    /// Records a fresh answer. A failure to record is logged, not returned:
    /// the answer has been paid for and is still good.
    async fn record(&self, keyed: Keyed, response: &ChatResponse) {
        let cache = self.cache.clone();
        let descriptor = self.inner.descriptor().clone();
        let record = response.clone();
        let key = keyed.key.clone();
        let stored = tokio::task::spawn_blocking(move || {
            cache.put(&keyed.key, &descriptor, &keyed.normalized, &record)
        })
        .await
        .map_err(|err| CacheError::Task(err.to_string()))
        .and_then(|result| result);
        if let Err(err) = stored {
            tracing::warn!(%key, error = %err, "could not record a response in the cache");
        }
    }
}

#[async_trait]
impl ChatModel for CachedModel {
    fn descriptor(&self) -> &ModelDescriptor {
        self.inner.descriptor()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if self.mode == CacheMode::Off {
            return self.inner.chat(request).await;
        }
        let keyed = self.keyed(request)?;
        if let Some(hit) = self.lookup(&keyed).await? {
            return Ok(hit);
        }
        let response = self.inner.chat(request).await?;
        self.record(keyed, &response).await;
        Ok(response)
    }

    async fn chat_streaming(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn for<'d> FnMut(&'d str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        if self.mode == CacheMode::Off {
            return self.inner.chat_streaming(request, on_delta).await;
        }
        let keyed = self.keyed(request)?;
        if let Some(hit) = self.lookup(&keyed).await? {
            on_delta(&hit.text);
            return Ok(hit);
        }
        let response = self.inner.chat_streaming(request, on_delta).await?;
        self.record(keyed, &response).await;
        Ok(response)
    }
}
