//! Test helpers: finding the MiniWoB data and starting the domain.

#![allow(dead_code, clippy::unwrap_used)] // Helpers panic on setup failures by design.

use std::path::PathBuf;
use std::time::Duration;

use hyperagents_miniwob::{MiniWob, MiniWobConfig};

/// Every browser test is killed if it takes longer than this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The unpacked MiniWoB package: `$HYPERAGENTS_MINIWOB_DIR`, else
/// `$HOME/.cache/hyperagents/benchmarks/miniwob-1.1.0`. `None` (with the
/// reason printed) when it is absent — the only reason these tests skip.
pub fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("HYPERAGENTS_MINIWOB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?)
            .join(".cache/hyperagents/benchmarks/miniwob-1.1.0"),
    };
    if dir.join("miniwob/html/miniwob").is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: MiniWoB data not found at {} (set HYPERAGENTS_MINIWOB_DIR or run the setup that fetches it)",
            dir.display()
        );
        None
    }
}

pub fn config(dir: PathBuf) -> MiniWobConfig {
    MiniWobConfig::new(dir)
}

/// Starts MiniWoB with one window; Chromium missing is a failure.
pub async fn start(dir: PathBuf) -> MiniWob {
    MiniWob::start(config(dir))
        .await
        .expect("MiniWoB must start (Chromium is installed by setup)")
}

/// Runs `body` under the test timeout.
pub async fn within_timeout<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out (Chromium hung?)");
}
