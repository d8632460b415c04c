#!/usr/bin/env bash
# Sets up everything the tests need, then runs formatting, lints and tests.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

run_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    # nextest applies the per-test kill timeouts in .config/nextest.toml.
    cargo nextest run --locked --workspace --no-fail-fast
    cargo test --locked --workspace --doc
  else
    echo "cargo-nextest is missing: installing it once"
    cargo install --locked cargo-nextest
    cargo nextest run --locked --workspace --no-fail-fast
    cargo test --locked --workspace --doc
  fi
}

lint() {
  cargo fmt --all --check
  cargo clippy --locked --workspace --all-targets -- -D warnings
}

phase apt install_apt_packages
phase build build_cli
phase models pull_models smollm2-135m
phase lint lint
phase tests run_tests
print_phases
