//! Helpers shared by the CLI's end-to-end tests: the binary isolated from
//! the developer's settings and keys (models stay in the shared cache).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
}

/// The binary with no provider keys, no user settings and no `RUST_LOG`.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyperagents"));
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-hyperagents-test");
    cmd
}

/// Runs in `dir` with the response cache off.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    run_with(dir, args, &[])
}

/// Runs in `dir` with the response cache off and extra variables.
pub fn run_with(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.current_dir(dir).env("HYPERAGENTS_CACHE__MODE", "off");
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd.args(args).output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
