#!/usr/bin/env bash
# The property tests over untrusted inputs (every test named `fuzz`: GGUF headers, program
# manifests, model replies, JSONL suites, GAIA metadata, WebArena task files, trajectories,
# page observations) with far more generated cases than CI's few hundred per property.
# Usage: scripts/fuzz.sh [FILTER...]   (CASES=N cases per property, default 100000;
#        FILTER narrows the run, e.g. `scripts/fuzz.sh gguf`)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export PROPTEST_CASES="${CASES:-100000}"

fuzz() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest is missing: installing it once"
    cargo install --locked cargo-nextest
  fi
  # The workspace's package selection, as CI builds it (another can rebuild llama.cpp);
  # `fuzz` first, so a FILTER narrows the run rather than widening it.
  cargo nextest run --locked --workspace --profile fuzz --no-fail-fast -E 'test(/^fuzz[:_]/)' "$@"
}

echo "fuzz: $PROPTEST_CASES cases per property"
phase fuzz fuzz "$@"
print_phases
