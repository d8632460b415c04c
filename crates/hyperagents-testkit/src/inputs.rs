//! Inputs that tests read from the machine rather than build themselves:
//! models, benchmark data, the WebArena reference venv, pip. `scripts/test.sh`
//! provides all of them, so a missing one fails its test, naming it and what
//! provides it; a test that returned early instead would pass without
//! running. Where inputs are knowingly absent (a laptop without the models),
//! `HYPERAGENTS_TESTS_ALLOW_MISSING=1` turns the failure into a printed skip;
//! CI never sets it.

use std::ffi::OsString;
use std::fmt::Display;
use std::path::PathBuf;

/// Set to `1`, a test whose input is missing passes without running.
pub const ALLOW_MISSING_ENV: &str = "HYPERAGENTS_TESTS_ALLOW_MISSING";

/// `found` when there is one; otherwise [`missing`], then `None` for the
/// test to return on.
pub fn require<T>(found: Option<T>, what: impl Display, provided_by: &str) -> Option<T> {
    if found.is_none() {
        missing(what, provided_by);
    }
    found
}

/// Fails the test, naming `what` is missing and `provided_by`; with
/// `HYPERAGENTS_TESTS_ALLOW_MISSING=1`, prints that the test is skipped and
/// returns, for the test to return too.
pub fn missing(what: impl Display, provided_by: &str) {
    report_missing(
        what,
        provided_by,
        allows_missing(std::env::var_os(ALLOW_MISSING_ENV)),
    );
}

/// The cache directory the tests' inputs are pulled into, resolved as
/// `hyperagents` resolves it (`$HYPERAGENTS_CACHE_DIR`, which
/// `scripts/test.sh` sets, else the platform's cache directory).
pub fn cache_dir() -> PathBuf {
    hyperagents_models::default_cache_dir()
        .expect("a cache directory: set HYPERAGENTS_CACHE_DIR or HOME")
}

/// The first file named `name` in a directory of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn allows_missing(value: Option<OsString>) -> bool {
    value.is_some_and(|value| value == "1")
}

fn report_missing(what: impl Display, provided_by: &str, allow_missing: bool) {
    assert!(
        allow_missing,
        "missing test input: {what}; {provided_by} provides it \
         ({ALLOW_MISSING_ENV}=1 skips the tests that need it instead)"
    );
    eprintln!("skipped: {what} missing; {provided_by} provides it");
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOWHERE: &str = "/nonexistent/hyperagents/model.gguf";

    #[test]
    fn a_present_input_is_returned() {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(require(Some(here.clone()), "the crate", "git"), Some(here));
    }

    #[test]
    #[should_panic(
        expected = "missing test input: a model at /nonexistent/hyperagents/model.gguf; \
                    `hyperagents models pull` provides it"
    )]
    fn a_missing_input_fails_the_test() {
        assert!(!PathBuf::from(NOWHERE).exists());
        report_missing(
            format_args!("a model at {NOWHERE}"),
            "`hyperagents models pull`",
            false,
        );
    }

    #[test]
    fn a_missing_input_skips_only_when_allowed() {
        report_missing(format_args!("a model at {NOWHERE}"), "pull", true);
        assert!(allows_missing(Some("1".into())));
        for not_allowed in [None, Some(""), Some("0"), Some("true")] {
            assert!(!allows_missing(not_allowed.map(OsString::from)));
        }
    }
}
