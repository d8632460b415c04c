#!/usr/bin/env bash
# The main job on the embedded default model: set up, fetch the model, answer.
# Usage: scripts/main.sh ["PROMPT"]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
PROMPT="${1:-In one sentence: what is a self-improving agent?}"

phase apt install_apt_packages
phase build build_all
phase models pull_models smollm2-135m
phase chat "$HYPERAGENTS_BIN" chat --model task --stream "$PROMPT"
print_phases
