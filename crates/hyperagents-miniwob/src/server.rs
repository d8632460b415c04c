//! A tiny static HTTP server for MiniWoB's pages on 127.0.0.1.
//!
//! MiniWoB's flight tasks load their airline site through `http:` (an iframe
//! with `allow-same-origin`), so every task is served the same way. The
//! server's origin is the only site agents may navigate to.

use std::net::SocketAddr;
use std::path::Path;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::services::ServeDir;

use crate::MiniWobError;

/// A running static server; stops when dropped.
#[derive(Debug)]
pub struct StaticServer {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl StaticServer {
    /// Serves `root` (MiniWoB's `html` directory) on 127.0.0.1 at a free port.
    pub async fn start(root: &Path) -> Result<StaticServer, MiniWobError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(MiniWobError::Server)?;
        let address = listener.local_addr().map_err(MiniWobError::Server)?;
        // ServeDir refuses `..` and paths outside `root`.
        let app = axum::Router::new().fallback_service(ServeDir::new(root));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!("miniwob static server stopped: {error}");
            }
        });
        Ok(StaticServer {
            address,
            shutdown: Some(shutdown),
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}
