#!/usr/bin/env bash
# Sets up everything the tests need, then runs formatting, lints and tests.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

run_tests() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest is missing: installing it once"
    cargo install --locked cargo-nextest
  fi
  # Doc tests first, so the run closes on nextest's summary of all tests.
  cargo test --locked --workspace --doc
  # nextest applies the per-test kill timeouts in .config/nextest.toml.
  cargo nextest run --locked --workspace --no-fail-fast
}

lint() {
  cargo fmt --all --check
  cargo clippy --locked --workspace --all-targets -- -D warnings
}

phase apt install_apt_packages
phase build build_all
# Tests fail when an input is missing (hyperagents_testkit::inputs), so this
# provides them all: SmolLM2 for the embedded engine, Qwen for the GGUF
# reader's header test (the main job pulls it too).
phase models pull_models smollm2-135m qwen2.5-coder-1.5b
phase data pull_data
phase venv webarena_reference_venv
phase mcp mcp_reference_server
phase lint lint
phase tests run_tests
print_phases
