#!/usr/bin/env bash
# Issue 6: the four modes at an equal token budget on MiniWoB++ train tasks,
# each run's best-so-far nodes scored on the held-out test split.
# Resumable: rerun to continue (finished runs are skipped by the engine).
# Usage: experiments/modes.sh [SEEDS...]   (default: 1 2)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
SEEDS=("${@:-1 2}")
TASKS="click-button,click-menu,click-shape,click-link,click-dialog,enter-text,focus-text,click-widget"
BUDGET=250000
export HYPERAGENTS_RUN__MAX_STEPS=12

phase build build_all
phase models pull_models
phase data pull_data
for seed in ${SEEDS[@]}; do
  for mode in none hyper fixed-meta prompt-only; do
    HYPERAGENTS_RUN__SEED="$seed" phase "$mode-s$seed" "$HYPERAGENTS_BIN" evolve \
      --run "e9-$mode-s$seed" --mode "$mode" --suite miniwob --tasks "$TASKS" \
      --stage1 3 --generations 4 --children 2 --episodes 2 --token-budget "$BUDGET"
  done
done
runs=()
for seed in ${SEEDS[@]}; do
  for mode in none hyper fixed-meta prompt-only; do runs+=("e9-$mode-s$seed"); done
done
phase compare "$HYPERAGENTS_BIN" compare "${runs[@]}" --out "$HYPERAGENTS_CACHE_DIR/compare/e9"
print_phases
