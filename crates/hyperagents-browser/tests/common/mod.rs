//! Test helpers: a loopback HTTP server for fixed pages, a pool, and a
//! trivial task.

#![allow(dead_code, clippy::unwrap_used)] // Helpers panic on setup failures by design.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_browser::{
    AllowedOrigins, BrowserError, BrowserPool, PoolConfig, WebConfig, WebEnvironment, WebTask,
    WindowLease,
};
use hyperagents_domain::{DomainError, Score};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Every browser test is killed if it takes longer than this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `pages` (path → HTML) on 127.0.0.1:0; returns the base URL
/// (`http://127.0.0.1:PORT`).
pub async fn serve(pages: &[(&str, &str)]) -> String {
    let pages: Arc<HashMap<String, String>> = Arc::new(
        pages
            .iter()
            .map(|(path, body)| (path.to_string(), body.to_string()))
            .collect(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let pages = Arc::clone(&pages);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let path = path.split('?').next().unwrap_or("/").to_string();
                // A page under /slow/ answers late, so a click that navigates
                // to it must wait for the new document.
                if path.starts_with("/slow/") {
                    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                }
                let response = match pages.get(&path) {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        body.len(),
                        body
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{address}")
}

pub async fn pool(windows: usize) -> BrowserPool {
    BrowserPool::launch(PoolConfig {
        windows,
        ..PoolConfig::default()
    })
    .await
    .expect("Chromium must start (setup installs Debian's chromium)")
}

/// A task that never ends by itself and scores the answer "ok" as success.
pub struct AnswerTask;

#[async_trait]
impl WebTask for AnswerTask {
    async fn after_action(&mut self, _window: &mut WindowLease) -> Result<bool, BrowserError> {
        Ok(false)
    }

    async fn score(
        &mut self,
        _window: &mut WindowLease,
        answer: Option<&str>,
    ) -> Result<Score, DomainError> {
        let success = answer == Some("ok");
        Ok(Score {
            value: if success { 1.0 } else { 0.0 },
            success,
            reason: format!("answer {answer:?}"),
        })
    }
}

/// Opens `url` in a fresh window of `pool` and wraps it.
pub async fn environment(pool: &BrowserPool, base: &str, url: &str) -> WebEnvironment {
    let mut window = pool.checkout().await.unwrap();
    window.main().navigate(url).await.unwrap();
    let config = WebConfig {
        allowed: AllowedOrigins::new([base]).unwrap(),
        ..WebConfig::default()
    };
    WebEnvironment::start(
        window,
        "test".into(),
        Box::new(AnswerTask),
        Arc::new(config),
    )
    .await
    .unwrap()
}
