use std::time::Duration;

/// Everything a model call can fail with. Every variant that concerns a
/// provider names the provider and model; none ever carries an API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{provider} model {model}: HTTP {status}: {message}")]
    Http {
        provider: String,
        model: String,
        status: u16,
        message: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    #[error("{provider} model {model}: connection failed: {message}")]
    Connection {
        provider: String,
        model: String,
        message: String,
    },
    #[error("{provider} model {model}: no complete answer within {after:?}")]
    Timeout {
        provider: String,
        model: String,
        after: Duration,
    },
    #[error("{provider} model {model}: malformed response: {message}")]
    MalformedResponse {
        provider: String,
        model: String,
        message: String,
    },
    #[error("{provider} model {model}: request not supported: {message}")]
    Unsupported {
        provider: String,
        model: String,
        message: String,
    },
    #[error("{provider} model {model}: {message}")]
    Engine {
        provider: String,
        model: String,
        message: String,
    },
    #[error("budget for role `{role}` is spent: {resource} used {used}, limit {limit}")]
    BudgetExhausted {
        role: String,
        resource: &'static str,
        used: String,
        limit: String,
    },
    #[error(
        "{provider} model {model}: no cached response for request {key} (cache is replay-only)"
    )]
    CacheMiss {
        provider: String,
        model: String,
        key: String,
    },
    #[error("response cache: {0}")]
    Cache(String),
    #[error("no model is bound to role `{0}`")]
    UnknownRole(String),
}

impl LlmError {
    /// Whether trying the same request again may succeed: 408, 409, 429 and
    /// 5xx answers, connection failures and timeouts.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Http { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            LlmError::Connection { .. } | LlmError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// How long the server asked us to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
