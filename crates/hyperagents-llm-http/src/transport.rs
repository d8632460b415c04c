//! The HTTP machinery both providers share: sending a JSON body, the
//! whole-attempt timeout, retries (through [`RetryPolicy::run`]) that honour
//! `Retry-After`, the concurrency limit, SSE decoding, latency, debug
//! tracing, and turning every failure into an [`LlmError`] that names
//! provider, model and status — with the API key scrubbed from anything the
//! server or the network stack said.
//!
//! Providers only build request bodies and parse answers; they report
//! problems as a [`Fault`], which the transport dresses with context.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use hyperagents_llm::retry::RetryPolicy;
use hyperagents_llm::{ChatResponse, LlmError};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::ConfigError;

/// Longest excerpt of a server's message kept in an error.
pub(crate) const EXCERPT_CHARS: usize = 300;
/// Error bodies are read only this far: the excerpt needs little, and a
/// misbehaving server must not make us buffer megabytes.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Stands in for the API key wherever a server echoed it back.
const REDACTED: &str = "[redacted]";

/// The callback `chat_streaming` reports text through.
pub(crate) type DeltaSink<'a> = dyn for<'d> FnMut(&'d str) + Send + 'a;

/// A problem a provider found in an answer or a request, before the
/// transport adds provider and model.
#[derive(Debug)]
pub(crate) enum Fault {
    Malformed(String),
    Unsupported(String),
    /// An error the server reported inside a successful answer (an error
    /// event in a stream), retried like the HTTP status it stands for.
    Status {
        status: u16,
        message: String,
    },
    Engine(String),
}

/// Whether an event stream has more to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Done,
}

/// Turns a provider's server-sent events into one [`ChatResponse`].
pub(crate) trait StreamAssembler: Send {
    /// Handles one event; text meant for the caller goes to `emit`.
    fn on_event(
        &mut self,
        event: &str,
        data: &str,
        emit: &mut dyn FnMut(&str),
    ) -> Result<Flow, Fault>;

    /// The complete answer once the stream has ended (`latency` is filled in
    /// by the transport).
    fn finish(self) -> Result<ChatResponse, Fault>;
}

/// What a provider tells the transport about its endpoint.
pub(crate) struct Settings {
    pub provider: &'static str,
    pub model: String,
    pub url: String,
    /// Headers every request carries (`anthropic-version`, …).
    pub fixed_headers: Vec<(HeaderName, HeaderValue)>,
    /// The key, and the header and prefix that carry it.
    pub auth: Option<(SecretString, HeaderName, &'static str)>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub max_concurrency: usize,
}

/// One provider's connection to its endpoint; shared by the provider's
/// clones through an `Arc`, so they share connections and the concurrency
/// limit.
pub(crate) struct Transport {
    provider: &'static str,
    model: String,
    url: reqwest::Url,
    /// Includes the auth header, marked sensitive so that no `Debug` of it
    /// prints the key.
    headers: HeaderMap,
    /// Kept only to scrub the key out of server-provided text.
    secret: Option<SecretString>,
    client: reqwest::Client,
    request_timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    permits: Arc<Semaphore>,
}

impl Transport {
    pub(crate) fn new(settings: Settings) -> Result<Self, ConfigError> {
        let url =
            reqwest::Url::parse(&settings.url).map_err(|err| ConfigError::InvalidBaseUrl {
                url: settings.url.clone(),
                message: err.to_string(),
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::InvalidBaseUrl {
                url: settings.url,
                message: "the scheme must be http or https".into(),
            });
        }
        let mut headers = HeaderMap::new();
        for (name, value) in settings.fixed_headers {
            headers.insert(name, value);
        }
        let mut secret = None;
        if let Some((key, name, prefix)) = settings.auth {
            let mut value = HeaderValue::from_str(&format!("{prefix}{}", key.expose_secret()))
                .map_err(|_| ConfigError::InvalidApiKey)?;
            value.set_sensitive(true);
            headers.insert(name, value);
            secret = Some(key);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("hyperagents/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ConfigError::Client(error_chain(&err)))?;
        let permits = settings.max_concurrency.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Self {
            provider: settings.provider,
            model: settings.model,
            url,
            headers,
            secret,
            client,
            request_timeout: settings.request_timeout,
            connect_timeout: settings.connect_timeout,
            retry: settings.retry,
            permits: Arc::new(Semaphore::new(permits)),
        })
    }

    pub(crate) fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Sends `body` and parses the whole answer with `parse`, retrying as
    /// the policy allows. `latency` runs from the first attempt's send to
    /// the complete answer, so it includes failed attempts and backoff.
    pub(crate) async fn call_json<F>(&self, body: Bytes, parse: F) -> Result<ChatResponse, LlmError>
    where
        F: Fn(&[u8]) -> Result<ChatResponse, Fault> + Sync,
    {
        let first_send = OnceLock::new();
        let (body, first, parse) = (&body, &first_send, &parse);
        let mut response = self
            .retry
            .run(|attempt| self.attempt_json(body, attempt, first, parse))
            .await?;
        response.latency = since(&first_send);
        Ok(response)
    }

    /// Sends `body` as a streaming request and assembles the events with a
    /// fresh assembler per attempt; text goes to `sink` as it arrives.
    ///
    /// Once any text has reached `sink`, a failure is returned as it is
    /// instead of retried: a retry would report the answer's start twice.
    /// Without a sink (a plain `chat` that streams) every retryable failure
    /// is retried. Latency is measured as in [`Self::call_json`].
    pub(crate) async fn call_stream<A, M>(
        &self,
        body: Bytes,
        make_assembler: M,
        sink: Option<&mut DeltaSink<'_>>,
    ) -> Result<ChatResponse, LlmError>
    where
        A: StreamAssembler,
        M: Fn() -> A + Sync,
    {
        let first_send = OnceLock::new();
        let delivered = AtomicBool::new(false);
        let sink = sink.map(Mutex::new);
        let (body, first, make, sink_ref, delivered_ref) = (
            &body,
            &first_send,
            &make_assembler,
            sink.as_ref(),
            &delivered,
        );
        let outcome = self
            .retry
            .run(|attempt| async move {
                let result = self
                    .attempt_stream(body, attempt, first, make, sink_ref, delivered_ref)
                    .await;
                match result {
                    Ok(response) => Ok(Ok(response)),
                    Err(err) if delivered_ref.load(Ordering::SeqCst) => {
                        tracing::debug!(
                            provider = self.provider,
                            model = %self.model,
                            attempt,
                            "not retrying: part of the answer was already reported"
                        );
                        Ok(Err(err))
                    }
                    Err(err) => Err(err),
                }
            })
            .await;
        let mut response = outcome.and_then(|inner| inner)?;
        response.latency = since(&first_send);
        Ok(response)
    }

    async fn attempt_json<F>(
        &self,
        body: &Bytes,
        attempt: u32,
        first_send: &OnceLock<Instant>,
        parse: &F,
    ) -> Result<ChatResponse, LlmError>
    where
        F: Fn(&[u8]) -> Result<ChatResponse, Fault> + Sync,
    {
        let _permit = self.acquire().await?;
        let started = self.start_attempt(attempt, false, first_send);
        let work = async {
            let response = self.send(body, false, attempt, started).await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|err| self.transport_error(err))?;
            parse(&bytes).map_err(|fault| self.fault(fault))
        };
        let result = self.bounded(work).await;
        self.end_attempt(attempt, started, &result);
        result
    }

    async fn attempt_stream<A, M>(
        &self,
        body: &Bytes,
        attempt: u32,
        first_send: &OnceLock<Instant>,
        make_assembler: &M,
        sink: Option<&Mutex<&mut DeltaSink<'_>>>,
        delivered: &AtomicBool,
    ) -> Result<ChatResponse, LlmError>
    where
        A: StreamAssembler,
        M: Fn() -> A + Sync,
    {
        let _permit = self.acquire().await?;
        let started = self.start_attempt(attempt, true, first_send);
        let work = async {
            let response = self.send(body, true, attempt, started).await?;
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if !content_type.starts_with("text/event-stream") {
                let body = read_limited(response).await;
                let text = self.redact(String::from_utf8_lossy(&body).into_owned());
                return Err(self.fault(Fault::Malformed(format!(
                    "expected an event stream but got content-type `{content_type}`: {}",
                    excerpt(&text, EXCERPT_CHARS)
                ))));
            }
            let mut emit = |text: &str| {
                if let (Some(sink), false) = (sink, text.is_empty()) {
                    delivered.store(true, Ordering::SeqCst);
                    let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    (*sink)(text);
                }
            };
            let mut assembler = make_assembler();
            let mut events = response.bytes_stream().eventsource();
            while let Some(event) = events.next().await {
                let event = event.map_err(|err| self.sse_error(err))?;
                let flow = assembler
                    .on_event(&event.event, &event.data, &mut emit)
                    .map_err(|fault| self.fault(fault))?;
                if flow == Flow::Done {
                    break;
                }
            }
            assembler.finish().map_err(|fault| self.fault(fault))
        };
        let result = self.bounded(work).await;
        self.end_attempt(attempt, started, &result);
        result
    }

    async fn acquire(&self) -> Result<SemaphorePermit<'_>, LlmError> {
        self.permits
            .acquire()
            .await
            .map_err(|_| self.fault(Fault::Engine("the concurrency limiter was closed".into())))
    }

    fn start_attempt(&self, attempt: u32, stream: bool, first_send: &OnceLock<Instant>) -> Instant {
        let started = Instant::now();
        first_send.get_or_init(|| started);
        tracing::debug!(
            provider = self.provider,
            model = %self.model,
            attempt,
            stream,
            "sending model request"
        );
        started
    }

    fn end_attempt(&self, attempt: u32, started: Instant, result: &Result<ChatResponse, LlmError>) {
        let latency_ms = millis(started.elapsed());
        match result {
            Ok(_) => tracing::debug!(
                provider = self.provider,
                model = %self.model,
                attempt,
                latency_ms,
                "model request complete"
            ),
            Err(err) => tracing::debug!(
                provider = self.provider,
                model = %self.model,
                attempt,
                latency_ms,
                error = %err,
                "model request failed"
            ),
        }
    }

    /// Posts the body and turns a non-success status into an error.
    async fn send(
        &self,
        body: &Bytes,
        stream: bool,
        attempt: u32,
        started: Instant,
    ) -> Result<reqwest::Response, LlmError> {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(body.clone())
            .send()
            .await
            .map_err(|err| self.transport_error(err))?;
        let status = response.status();
        tracing::debug!(
            provider = self.provider,
            model = %self.model,
            attempt,
            status = status.as_u16(),
            latency_ms = millis(started.elapsed()),
            "model response status"
        );
        if status.is_success() {
            Ok(response)
        } else {
            Err(self.status_error(response).await)
        }
    }

    async fn status_error(&self, response: reqwest::Response) -> LlmError {
        let status = response.status();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let body = read_limited(response).await;
        let message = excerpt(&self.redact(server_message(&body)), EXCERPT_CHARS);
        let message = if message.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no message")
                .to_string()
        } else {
            message
        };
        LlmError::Http {
            provider: self.provider.to_string(),
            model: self.model.clone(),
            status: status.as_u16(),
            message,
            retry_after,
        }
    }

    /// Runs one attempt under the whole-request timeout.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, LlmError>>,
    ) -> Result<T, LlmError> {
        tokio::time::timeout(self.request_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(LlmError::Timeout {
                    provider: self.provider.to_string(),
                    model: self.model.clone(),
                    after: self.request_timeout,
                })
            })
    }

    fn transport_error(&self, err: reqwest::Error) -> LlmError {
        // We set no reqwest-level timeout but the connect timeout, so a
        // reqwest timeout is always a connect timeout.
        if err.is_timeout() {
            return LlmError::Timeout {
                provider: self.provider.to_string(),
                model: self.model.clone(),
                after: self.connect_timeout,
            };
        }
        LlmError::Connection {
            provider: self.provider.to_string(),
            model: self.model.clone(),
            message: self.redact(error_chain(&err.without_url())),
        }
    }

    fn sse_error(&self, err: EventStreamError<reqwest::Error>) -> LlmError {
        match err {
            EventStreamError::Transport(err) => self.transport_error(err),
            EventStreamError::Utf8(err) => self.fault(Fault::Malformed(format!(
                "event stream is not UTF-8: {err}"
            ))),
            EventStreamError::Parser(err) => self.fault(Fault::Malformed(format!(
                "invalid event stream: {}",
                excerpt(&err.to_string(), EXCERPT_CHARS)
            ))),
        }
    }

    /// Adds provider and model to a provider's complaint.
    pub(crate) fn fault(&self, fault: Fault) -> LlmError {
        let provider = self.provider.to_string();
        let model = self.model.clone();
        match fault {
            Fault::Malformed(message) => LlmError::MalformedResponse {
                provider,
                model,
                message: self.redact(message),
            },
            Fault::Unsupported(message) => LlmError::Unsupported {
                provider,
                model,
                message: self.redact(message),
            },
            Fault::Status { status, message } => LlmError::Http {
                provider,
                model,
                status,
                message: excerpt(&self.redact(message), EXCERPT_CHARS),
                retry_after: None,
            },
            Fault::Engine(message) => LlmError::Engine {
                provider,
                model,
                message: self.redact(message),
            },
        }
    }

    /// Replaces the API key wherever it occurs in `text` (servers do echo
    /// keys back in "invalid key" messages). Keys shorter than 4 characters
    /// are not looked for: they would mangle messages and protect nothing.
    fn redact(&self, text: String) -> String {
        match &self.secret {
            Some(secret) => {
                let key = secret.expose_secret();
                if key.len() >= 4 && text.contains(key) {
                    text.replace(key, REDACTED)
                } else {
                    text
                }
            }
            None => text,
        }
    }
}

fn since(first_send: &OnceLock<Instant>) -> Duration {
    first_send.get().map(Instant::elapsed).unwrap_or_default()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Reads up to [`ERROR_BODY_LIMIT`] bytes; a body that breaks off yields
/// what arrived, since it only feeds an error message.
async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(ERROR_BODY_LIMIT);
    body
}

/// An error and its sources, without repeating what an outer message
/// already says (hyper's chains often do).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

/// The server's own explanation from an error body: OpenAI's and
/// Anthropic's `{"error": {"type", "message"}}`, a few common variants, or
/// the raw text.
pub(crate) fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
        let message = value
            .pointer("/error/message")
            .or_else(|| value.get("error").filter(|error| error.is_string()))
            .or_else(|| value.get("message"))
            .or_else(|| value.get("detail"))
            .and_then(serde_json::Value::as_str);
        if let Some(message) = message {
            return match value
                .pointer("/error/type")
                .and_then(serde_json::Value::as_str)
            {
                Some(kind) => format!("{kind}: {message}"),
                None => message.to_string(),
            };
        }
    }
    text.into_owned()
}

/// `text` on one line, cut to `limit` characters.
pub(crate) fn excerpt(text: &str, limit: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// How long the server asked us to wait: `retry-after-ms` (sent by OpenAI)
/// or `Retry-After` as delta-seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && let Ok(wait) = Duration::try_from_secs_f64(ms / 1000.0)
    {
        return Some(wait);
    }
    parse_retry_after(text(RETRY_AFTER.as_str())?, now)
}

/// Parses a `Retry-After` value; a date in the past means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
    }

    #[test]
    fn retry_after_ms_wins() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("9"));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(
            retry_after(&headers, SystemTime::now()),
            Some(Duration::from_millis(250))
        );
        headers.remove("retry-after-ms");
        assert_eq!(
            retry_after(&headers, SystemTime::now()),
            Some(Duration::from_secs(9))
        );
    }

    #[test]
    fn server_messages_are_found() {
        let openai = br#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#;
        assert_eq!(server_message(openai), "invalid_request_error: bad model");
        assert_eq!(server_message(br#"{"error":"plain"}"#), "plain");
        assert_eq!(server_message(br#"{"detail":"nope"}"#), "nope");
        assert_eq!(server_message(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn excerpts_are_short_and_single_line() {
        assert_eq!(excerpt("a\n  b\tc", 10), "a b c");
        let long = "é".repeat(400);
        let cut = excerpt(&long, 300);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
    }
}
