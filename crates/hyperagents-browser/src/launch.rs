//! Starting Chromium: finding the executable, spawning it with an empty
//! environment and a fresh profile, and attaching to its DevTools endpoint.
//!
//! chromiumoxide's own launcher cannot clear the child's environment (it only
//! adds variables), so the process is spawned here and chromiumoxide connects
//! to the DevTools websocket that Chromium prints on stderr. The child sees
//! only `HOME` and the XDG directories, all inside a scratch directory that is
//! deleted with the browser; API keys in the host's environment never reach it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chromiumoxide::Browser;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr};
use tokio::task::JoinHandle;

use crate::error::BrowserError;

/// Executable names searched on `PATH`, in order.
pub const EXECUTABLE_NAMES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// The real binaries behind distributions' shell wrappers. A wrapper such as
/// Debian's `/usr/bin/chromium` sources `/etc/chromium.d/*`, which exports
/// API keys and adds flags; running the binary directly keeps the
/// environment empty and the flags ours.
const WRAPPED_BINARIES: &[&str] = &[
    "/usr/lib/chromium/chromium",
    "/usr/lib/chromium-browser/chromium-browser",
    "/opt/google/chrome/chrome",
];

/// Flags every browser gets (DESIGN.md), plus the ones that keep several
/// windows responsive: without them Chromium throttles timers and renderers of
/// windows it thinks are hidden.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--disable-dev-shm-usage",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    // A page kept in the back/forward cache keeps its script contexts alive;
    // the host's isolated-world bookkeeping assumes a navigation ends them.
    "--disable-back-forward-cache",
    // RenderDocument makes a new renderer-side frame for every cross-document
    // navigation; without it a page reloaded per episode costs less CPU (bench
    // miniwob, 2026-12-07: 4 windows 13.1 → 15.0 episodes/s, twice each).
    "--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider,RenderDocument",
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
    "--lang=en-US",
    "--force-device-scale-factor=1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
];

/// How to start Chromium.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// The executable; `None` searches [`EXECUTABLE_NAMES`] on `PATH`.
    pub executable: Option<PathBuf>,
    /// Size of every window, in CSS pixels.
    pub window_width: u32,
    pub window_height: u32,
    /// How long Chromium may take to announce its DevTools endpoint.
    pub launch_timeout: Duration,
    /// Flags appended after the defaults (for experiments; not for agents).
    pub extra_args: Vec<String>,
}

impl Default for LaunchConfig {
    fn default() -> Self {
        LaunchConfig {
            executable: None,
            window_width: 1024,
            window_height: 768,
            launch_timeout: Duration::from_secs(20),
            extra_args: Vec::new(),
        }
    }
}

/// The executable to run, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChromiumExecutable {
    pub path: PathBuf,
    /// A shell wrapper (no real binary found behind it): it needs `PATH`.
    pub is_shell_wrapper: bool,
}

/// Resolves the Chromium executable: the configured path, else the first of
/// [`EXECUTABLE_NAMES`] on `path_var` (normally `$PATH`).
pub fn find_chromium(
    configured: Option<&Path>,
    path_var: Option<&std::ffi::OsStr>,
) -> Result<ChromiumExecutable, BrowserError> {
    let found = match configured {
        Some(path) => {
            if !path.is_file() {
                return Err(BrowserError::BadExecutable {
                    path: path.to_path_buf(),
                    message: "no such file".into(),
                });
            }
            path.to_path_buf()
        }
        None => path_var
            .into_iter()
            .flat_map(std::env::split_paths)
            .flat_map(|dir| EXECUTABLE_NAMES.iter().map(move |name| dir.join(name)))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| BrowserError::ChromiumNotFound {
                looked_for: EXECUTABLE_NAMES.join(", "),
            })?,
    };
    if !is_shell_script(&found) {
        return Ok(ChromiumExecutable {
            path: found,
            is_shell_wrapper: false,
        });
    }
    let script = std::fs::read_to_string(&found).unwrap_or_default();
    let mentions = |binary: &str| {
        // Debian's wrapper spells its binary as `$LIBDIR/$APPNAME` with
        // `LIBDIR=/usr/lib/$APPNAME`; match on the directory it names.
        let dir = Path::new(binary)
            .parent()
            .and_then(Path::to_str)
            .unwrap_or_default();
        let app = Path::new(binary)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        script.contains(binary)
            || (script.contains(&format!("APPNAME={app}")) && dir.ends_with(app))
    };
    match WRAPPED_BINARIES
        .iter()
        .find(|binary| mentions(binary) && is_executable(Path::new(binary)))
    {
        Some(binary) => Ok(ChromiumExecutable {
            path: PathBuf::from(binary),
            is_shell_wrapper: false,
        }),
        None => Ok(ChromiumExecutable {
            path: found,
            is_shell_wrapper: true,
        }),
    }
}

/// A running Chromium with a DevTools connection.
pub struct Chromium {
    pub(crate) browser: Browser,
    handler: JoinHandle<()>,
    stderr_drain: JoinHandle<()>,
    child: Child,
    /// Declared after `child` so the profile is removed after the kill.
    scratch: Option<tempfile::TempDir>,
    executable: PathBuf,
    started_in: Duration,
}

impl std::fmt::Debug for Chromium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chromium")
            .field("executable", &self.executable)
            .field("pid", &self.child.id())
            .field("started_in", &self.started_in)
            .finish()
    }
}

impl Chromium {
    /// Starts Chromium and connects to it.
    pub async fn launch(config: &LaunchConfig) -> Result<Chromium, BrowserError> {
        let path_var = std::env::var_os("PATH");
        let executable = find_chromium(config.executable.as_deref(), path_var.as_deref())?;
        let started = Instant::now();
        let scratch = tempfile::Builder::new()
            .prefix("hyperagents-chromium-")
            .tempdir()
            .map_err(BrowserError::Scratch)?;
        let home = scratch.path().join("home");
        let profile = scratch.path().join("profile");
        for dir in [&home, &profile] {
            std::fs::create_dir_all(dir).map_err(BrowserError::Scratch)?;
        }

        let mut command = tokio::process::Command::new(&executable.path);
        command
            .env_clear()
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"));
        if executable.is_shell_wrapper {
            command.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        command
            .args(FLAGS)
            .arg(format!(
                "--window-size={},{}",
                config.window_width, config.window_height
            ))
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(&config.extra_args)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so that the renderers die with it.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        // It makes the kernel kill Chromium if this process dies without
        // running destructors (a test killed by its timeout).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| BrowserError::BadExecutable {
            path: executable.path.clone(),
            message: e.to_string(),
        })?;
        let launch_error = |message: String| BrowserError::Launch {
            path: executable.path.clone(),
            message,
        };
        let Some(stderr) = child.stderr.take() else {
            return Err(launch_error("stderr was not captured".into()));
        };
        let mut lines = BufReader::new(stderr).lines();
        let announced =
            tokio::time::timeout(config.launch_timeout, read_devtools_url(&mut lines)).await;
        let ws_url = match announced {
            Ok(Ok(url)) => url,
            Ok(Err(tail)) => {
                kill_group(&mut child);
                return Err(launch_error(format!(
                    "it exited before announcing DevTools; stderr:\n{tail}"
                )));
            }
            Err(_) => {
                kill_group(&mut child);
                return Err(launch_error(format!(
                    "no DevTools endpoint within {:.1} s",
                    config.launch_timeout.as_secs_f64()
                )));
            }
        };
        // Chromium keeps writing to stderr; an unread pipe would block it.
        let stderr_drain = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::trace!(target: "chromium", "{line}");
            }
        });
        let (browser, mut handler) = match Browser::connect(ws_url.clone()).await {
            Ok(connected) => connected,
            Err(error) => {
                kill_group(&mut child);
                stderr_drain.abort();
                return Err(launch_error(format!("cannot connect to {ws_url}: {error}")));
            }
        };
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(error) = event {
                    tracing::debug!("chromium handler: {error}");
                }
            }
        });
        let started_in = started.elapsed();
        tracing::debug!(
            executable = %executable.path.display(),
            ms = started_in.as_millis() as u64,
            "chromium started"
        );
        Ok(Chromium {
            browser,
            handler,
            stderr_drain,
            child,
            scratch: Some(scratch),
            executable: executable.path,
            started_in,
        })
    }

    /// The chromiumoxide connection (host-only).
    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    /// The browser process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The executable that runs.
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// Time from spawning the process to a working DevTools connection.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Asks Chromium to quit, then makes sure it has.
    pub async fn close(mut self) {
        let close = self
            .browser
            .execute(chromiumoxide::cdp::browser_protocol::browser::CloseParams::default());
        let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
        let exited = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        if !matches!(exited, Ok(Ok(_))) {
            kill_group(&mut self.child);
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.handler.abort();
        self.stderr_drain.abort();
        kill_group(&mut self.child);
        // Wait briefly so the profile directory is no longer written to when
        // it is removed.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        if let Some(scratch) = self.scratch.take() {
            let _ = scratch.close();
        }
    }
}

/// Reads stderr until Chromium prints its DevTools websocket URL. On exit
/// before that, returns the last lines it printed.
async fn read_devtools_url(
    lines: &mut tokio::io::Lines<BufReader<ChildStderr>>,
) -> Result<String, String> {
    const PREFIX: &str = "DevTools listening on ";
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.trim().strip_prefix(PREFIX) {
            return Ok(url.trim().to_string());
        }
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    Err(Vec::from(tail).join("\n"))
}

/// Kills Chromium's process group (the browser and its renderers).
fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id()
        && let Ok(pid) = i32::try_from(pid)
    {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created at spawn; it has no memory effects in this process.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.start_kill();
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn is_shell_script(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .map(|()| &magic == b"#!")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_chromium_is_a_clear_error() {
        let empty = tempfile::tempdir().unwrap();
        let error = find_chromium(None, Some(empty.path().as_os_str())).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("no Chromium executable found"),
            "{message}"
        );
        assert!(message.contains("chromium-browser"), "{message}");
    }

    #[test]
    fn configured_path_must_exist() {
        let error = find_chromium(Some(Path::new("/nonexistent/chrome")), None).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/chrome"), "{error}");
    }

    #[test]
    fn a_plain_binary_on_path_is_used_as_is() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("google-chrome");
        std::fs::write(&binary, b"\x7fELF not really").unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = find_chromium(None, Some(dir.path().as_os_str())).unwrap();
        assert_eq!(
            found,
            ChromiumExecutable {
                path: binary,
                is_shell_wrapper: false
            }
        );
    }

    #[test]
    fn an_unknown_wrapper_script_runs_with_a_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("chromium");
        std::fs::write(&script, "#!/bin/sh\nexec /somewhere/else \"$@\"\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = find_chromium(None, Some(dir.path().as_os_str())).unwrap();
        assert!(found.is_shell_wrapper);
        assert_eq!(found.path, script);
    }
}
