//! Test helpers: finding the MiniWoB data and starting the domain.

#![allow(dead_code, clippy::unwrap_used)] // Helpers panic on setup failures by design.

use std::path::PathBuf;
use std::time::Duration;

use hyperagents_miniwob::{MiniWob, MiniWobConfig};
use hyperagents_testkit::inputs;

/// Every browser test is killed if it takes longer than this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The unpacked MiniWoB package: `$HYPERAGENTS_MINIWOB_DIR`, else
/// `benchmarks/miniwob-1.1.0` in the cache dir. Missing, the test fails
/// (or skips, see [`inputs::require`]).
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("HYPERAGENTS_MINIWOB_DIR").map_or_else(
        || inputs::cache_dir().join("benchmarks/miniwob-1.1.0"),
        PathBuf::from,
    );
    let present = dir.join("miniwob/html/miniwob").is_dir();
    inputs::require(
        present.then(|| dir.clone()),
        format_args!("MiniWoB data at {}", dir.display()),
        "`hyperagents data pull` (run by scripts/test.sh)",
    )
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
