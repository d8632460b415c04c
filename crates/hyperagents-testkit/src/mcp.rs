//! The reference MCP server the tests speak to: `@modelcontextprotocol/
//! server-everything`, installed from npm by `scripts/test.sh` (pinned by
//! `scripts/mcp-reference/package-lock.json`) and run with Debian's nodejs.
//! Nobody here wrote it, so the client is tested against the protocol as
//! others implement it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::inputs;

/// How long the HTTP server may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Where the server's package is installed.
pub fn install_dir() -> PathBuf {
    std::env::var_os("HYPERAGENTS_MCP_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| inputs::cache_dir().join("mcp-reference"))
}

/// `node` and the server's entry script, or `None` after failing the test
/// (or printing a skip with `HYPERAGENTS_TESTS_ALLOW_MISSING=1`).
pub fn everything() -> Option<Everything> {
    let entry =
        install_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let node = inputs::find_on_path("node");
    let found = match (entry.is_file(), node) {
        (true, Some(node)) => Some(Everything {
            node,
            entry: entry.clone(),
        }),
        _ => None,
    };
    inputs::require(
        found,
        format_args!("node and {}", entry.display()),
        "`scripts/test.sh` (nodejs from Debian, the server from npm)",
    )
}

/// The installed server.
#[derive(Debug, Clone)]
pub struct Everything {
    /// The `node` executable.
    pub node: PathBuf,
    /// `dist/index.js`; its first argument picks the transport.
    pub entry: PathBuf,
}

impl Everything {
    /// The stdio command: `node index.js stdio`.
    pub fn stdio_command(&self) -> Vec<String> {
        vec![
            self.node.display().to_string(),
            self.entry.display().to_string(),
            "stdio".into(),
        ]
    }

    /// Starts the streamable-HTTP transport on a free loopback port; killed
    /// when dropped.
    pub fn start_http(&self) -> EverythingHttp {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = Command::new(&self.node)
            .arg(&self.entry)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_WITHIN;
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server-everything did not listen on {port} within {READY_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        EverythingHttp { child, port }
    }
}

/// A running HTTP server.
pub struct EverythingHttp {
    child: Child,
    port: u16,
}

impl EverythingHttp {
    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for EverythingHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
