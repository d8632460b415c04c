//! A real `nats-server` (Debian's, installed by `scripts/test.sh`) with
//! JetStream on loopback at a free port, its store in a folder of its own;
//! killed when dropped. [`NatsServer::restart`] stops it and starts it again
//! on the same port and store, for tests of a server restarted mid-run.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::inputs;

/// How long a starting server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(15);

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    /// Holds the store folder (and the server's log) until the server goes.
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server; `None` (after failing the test, or printing a skip
    /// with `HYPERAGENTS_TESTS_ALLOW_MISSING=1`) when `nats-server` is not
    /// installed.
    pub fn start() -> Option<NatsServer> {
        let binary = inputs::find_on_path("nats-server");
        inputs::require(
            binary.as_ref(),
            "nats-server on PATH",
            "`scripts/test.sh` (Debian's nats-server package)",
        )?;
        let dir = tempfile::tempdir().expect("a temporary folder for nats-server");
        let store = dir.path().join("jetstream");
        let port = free_port();
        let mut server = NatsServer {
            child: None,
            port,
            store,
            _dir: dir,
        };
        server.spawn();
        Some(server)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills the server (it stays down until [`NatsServer::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) {
        let log = self.store.with_extension("log");
        // A fresh log, so readiness is this start's.
        let _ = std::fs::remove_file(&log);
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_until_ready(self.port, &log);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until the server accepts TCP and its log says it is ready (with
/// JetStream up), or panics with the log.
fn wait_until_ready(port: u16, log: &Path) {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let logged = std::fs::read_to_string(log).unwrap_or_default();
        let accepting = TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok();
        if accepting && logged.contains("Server is ready") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nats-server on port {port} not ready within {READY_WITHIN:?}:\n{logged}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
