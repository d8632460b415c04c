//! What both providers' configurations share: defaults, builder methods and
//! the error a bad configuration is reported with (before any request).

use std::time::Duration;

/// Long enough for a slow local model to write a long answer; a stuck
/// server still fails within minutes rather than hanging a run.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Enough parallelism for a batch of agents without tripping rate limits.
pub(crate) const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// A provider could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid base URL `{url}`: {message}")]
    InvalidBaseUrl { url: String, message: String },
    /// The key holds characters an HTTP header cannot carry; the key itself
    /// is deliberately not part of the message.
    #[error("the API key is not a valid HTTP header value")]
    InvalidApiKey,
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// Builder methods shared by [`crate::OpenAiConfig`] and
/// [`crate::AnthropicConfig`], which have the same common fields.
macro_rules! common_builders {
    ($config:ty) => {
        impl $config {
            /// Replaces the base URL (a trailing `/` is ignored).
            pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
                self.base_url = base_url.into();
                self
            }
            pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
                self.api_key = Some(secrecy::SecretString::from(api_key.into()));
                self
            }
            pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.request_timeout = timeout;
                self
            }
            pub fn with_connect_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.connect_timeout = timeout;
                self
            }
            pub fn with_retry(mut self, retry: hyperagents_llm::retry::RetryPolicy) -> Self {
                self.retry = retry;
                self
            }
            /// At least 1 is used whatever is given.
            pub fn with_max_concurrency(mut self, max_concurrency: usize) -> Self {
                self.max_concurrency = max_concurrency;
                self
            }
            pub fn with_stream(mut self, stream: bool) -> Self {
                self.stream = stream;
                self
            }
        }
    };
}
pub(crate) use common_builders;
