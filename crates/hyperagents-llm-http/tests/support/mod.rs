//! A scriptable loopback HTTP/1.1 server for the providers' tests, written
//! on a raw `TcpListener` so that a test can answer in ways a real framework
//! would not: bodies shorter than their `Content-Length`, connections closed
//! mid-stream, answers that never come. Each request takes the next scripted
//! [`Reply`]; every request is recorded for the test to inspect.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hyperagents_llm::retry::RetryPolicy;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One step of a raw reply.
#[derive(Debug, Clone)]
pub enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Keep the connection open and say nothing more, ever.
    Stall,
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with `Content-Length`, after `delay`; the
    /// connection stays open for the next request.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Raw bytes and pauses, then the connection is closed.
    Raw(Vec<Step>),
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self::Full {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub fn text(status: u16, content_type: &str, body: &str) -> Self {
        Self::Full {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Self::Full { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    pub fn with_delay(mut self, wait: Duration) -> Self {
        if let Self::Full { delay, .. } = &mut self {
            *delay = wait;
        }
        self
    }

    /// Reads the request and never answers.
    pub fn hang() -> Self {
        Self::Raw(vec![Step::Stall])
    }

    /// An event stream: each event is written separately, a little apart,
    /// then the connection closes (close-delimited body).
    pub fn sse(events: &[String]) -> Self {
        Self::Raw(sse_steps(events))
    }

    /// Like [`Reply::sse`], but the server then stalls instead of closing.
    pub fn sse_then_stall(events: &[String]) -> Self {
        let mut steps = sse_steps(events);
        steps.push(Step::Stall);
        Self::Raw(steps)
    }

    /// Declares `declared` bytes of body, sends `body` (shorter), closes.
    pub fn truncated(status: u16, declared: usize, body: &str) -> Self {
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
        );
        Self::Raw(vec![
            Step::Write(head.into_bytes()),
            Step::Write(body.as_bytes().to_vec()),
        ])
    }

    /// A body without `Content-Length` that ends when the connection closes,
    /// so the client cannot tell it was cut short.
    pub fn close_delimited(status: u16, body: &str) -> Self {
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
        );
        Self::Raw(vec![
            Step::Write(head.into_bytes()),
            Step::Write(body.as_bytes().to_vec()),
        ])
    }
}

fn sse_steps(events: &[String]) -> Vec<Step> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    let mut steps = vec![Step::Write(head.as_bytes().to_vec())];
    for event in events {
        steps.push(Step::Write(event.clone().into_bytes()));
        steps.push(Step::Sleep(Duration::from_millis(5)));
    }
    steps
}

/// `data: …` for an event stream.
pub fn sse_data(data: &Value) -> String {
    format!("data: {data}\n\n")
}

/// `event: …` plus `data: …`, Anthropic style.
pub fn sse_event(data: &Value) -> String {
    let name = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    format!("event: {name}\ndata: {data}\n\n")
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn raw(&self) -> String {
        let mut text = format!("{} {}\n", self.method, self.path);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.push_str(&String::from_utf8_lossy(&self.body));
        text
    }
}

/// A panicking test thread must not hide the server's records.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct State {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The server; it stops (with all its connections) when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(replies: impl IntoIterator<Item = Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        lock(&state.replies).extend(replies);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, shared.clone()));
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await {
        lock(&state.requests).push(request);
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let reply = lock(&state.replies).pop_front();
        let reply = reply.unwrap_or_else(|| Reply::text(555, "text/plain", "no reply scripted"));
        let keep_open = match reply {
            Reply::Full {
                status,
                headers,
                body,
                delay,
            } => {
                tokio::time::sleep(delay).await;
                let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let mut bytes = head.into_bytes();
                bytes.extend_from_slice(&body);
                stream.write_all(&bytes).await.is_ok()
            }
            Reply::Raw(steps) => {
                for step in steps {
                    match step {
                        Step::Write(bytes) => {
                            if stream.write_all(&bytes).await.is_err() {
                                break;
                            }
                            let _ = stream.flush().await;
                        }
                        Step::Sleep(wait) => tokio::time::sleep(wait).await,
                        Step::Stall => std::future::pending::<()>().await,
                    }
                }
                false
            }
        };
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep_open {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads one request (head and `Content-Length` body) from the connection;
/// `None` once the client closes it.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut request_line = lines.next()?.split(' ');
            let method = request_line.next()?.to_string();
            let path = request_line.next()?.to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
                .collect();
            let length = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, value)| value.parse::<usize>().ok())
                .unwrap_or(0);
            let start = end + 4;
            while buffer.len() < start + length {
                if read_more(stream, buffer).await == 0 {
                    return None;
                }
            }
            let body = buffer[start..start + length].to_vec();
            buffer.drain(..start + length);
            return Some(Recorded {
                method,
                path,
                headers,
                body,
                at: Instant::now(),
            });
        }
        if read_more(stream, buffer).await == 0 {
            return None;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            n
        }
        Err(_) => 0,
    }
}

/// Retries quickly, so that only a server's `Retry-After` can make a test
/// wait long.
pub fn fast_retry(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(5),
    }
}

/// A port nothing listens on (bound, then released).
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

/// The gap between two recorded requests.
pub fn gap(requests: &[Recorded], earlier: usize, later: usize) -> Duration {
    requests[later].at.duration_since(requests[earlier].at)
}
