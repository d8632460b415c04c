//! The model layer's core: one normalized chat interface ([`ChatModel`]) that
//! every provider implements, and the provider-agnostic machinery around it —
//! retries with backoff ([`retry`]), deterministic seeds ([`seed`]), token and
//! cost accounting with per-role budgets ([`accounting`]) and the binding of
//! role names to models ([`router`]).
//!
//! This crate knows nothing about HTTP, llama.cpp or SQLite; providers and the
//! response cache live in their own crates and plug in through [`ChatModel`].

pub mod accounting;
mod error;
pub mod retry;
pub mod router;
pub mod seed;
mod types;

pub use error::LlmError;
pub use types::*;

use async_trait::async_trait;

/// A chat model: anything that turns a [`ChatRequest`] into a [`ChatResponse`].
///
/// Implementations must be cheap to share (`Arc<dyn ChatModel>`) and safe to
/// call concurrently; batching, connection reuse and concurrency limits are
/// their own business.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Which provider and model this is, and what it supports.
    fn descriptor(&self) -> &ModelDescriptor;

    /// Runs one chat completion.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Runs one chat completion, reporting text as it is generated.
    ///
    /// The default implementation reports the whole text once, at the end;
    /// providers that can stream override it.
    async fn chat_streaming(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn for<'d> FnMut(&'d str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        let response = self.chat(request).await?;
        on_delta(&response.text);
        Ok(response)
    }
}

#[async_trait]
impl<M: ChatModel + ?Sized> ChatModel for std::sync::Arc<M> {
    fn descriptor(&self) -> &ModelDescriptor {
        (**self).descriptor()
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        (**self).chat(request).await
    }
    async fn chat_streaming(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn for<'d> FnMut(&'d str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        (**self).chat_streaming(request, on_delta).await
    }
}
