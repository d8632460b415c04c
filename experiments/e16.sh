#!/usr/bin/env bash
# Experiment e16 (EXPERIMENTS.md, section 2): hyper against none, then
# fixed-meta and prompt-only, at an equal token budget on 12 MiniWoB++ train
# tasks; every run's final best node scored on the held-out train tasks and the
# test split, paired with the seed. Resumable: rerun to continue (finished
# runs and stored episodes are not redone).
#
# Usage: [MODES="hyper none"] [SEEDS="1 2 3"] experiments/e16.sh
# The first run pins the build: it refuses a checkout with uncommitted
# changes, builds, and copies the binaries, their commit and the seed program
# to $OUT/bin and $OUT/seed; every later run (and resume) uses those, so later
# work on the tree cannot change the grid half-way.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"
EXP="${EXP:-e16}"
read -r -a MODES <<<"${MODES:-hyper none}"
read -r -a SEEDS <<<"${SEEDS:-1 2 3}"
# The 12 train tasks evolution sees (EXPERIMENTS.md says how they were chosen).
TASKS="click-button,click-collapsible,click-dialog,click-link,click-menu,click-shape,click-tab,click-test-2,enter-password,enter-text,focus-text-2,login-user"
BUDGET="${BUDGET:-1500000}"
GENERATIONS="${GENERATIONS:-6}"
# Episodes act at most 4 times (the first experiment's length); the held-out
# measure uses 4 episode seeds per task, disjoint from the seeds evolution used.
export HYPERAGENTS_RUN__MAX_STEPS=4
HELD_OUT_FIRST_SEED=1000
HELD_OUT_SEEDS=4
OUT="$HYPERAGENTS_CACHE_DIR/experiments/$EXP"
# What must outlive this machine (the cache does not: e17's store was lost
# with the machine it ran on) is copied into the repository as it is made —
# each run's report, the comparison, the held-out episodes — to be committed.
KEEP="$ROOT/experiments/$EXP"
mkdir -p "$OUT" "$KEEP"

pin() {
  if [ -x "$OUT/bin/hyperagents" ]; then
    echo "pinned at $(cat "$OUT/bin/COMMIT")"
    return
  fi
  if [ -n "$(git status --porcelain)" ]; then
    echo "commit first: the pinned build must be a commit" >&2
    exit 1
  fi
  build_all
  mkdir -p "$OUT/bin"
  cp "$CARGO_TARGET_DIR/debug/hyperagents" "$CARGO_TARGET_DIR/debug/hyperagents-worker" "$OUT/bin/"
  git rev-parse HEAD > "$OUT/bin/COMMIT"
  rm -rf "$OUT/seed"
  cp -r programs/seed "$OUT/seed"
}
phase pin pin
HYPERAGENTS_BIN="$OUT/bin/hyperagents"
SEED="$OUT/seed"
phase models pull_models
phase data pull_data
for seed in "${SEEDS[@]}"; do
  for mode in "${MODES[@]}"; do
    HYPERAGENTS_RUN__SEED="$seed" phase "$mode-s$seed" "$HYPERAGENTS_BIN" evolve \
      --run "$EXP-$mode-s$seed" --program "$SEED" --mode "$mode" --suite miniwob --tasks "$TASKS" \
      --stage1 4 --generations "$GENERATIONS" --children 2 --episodes 2 --token-budget "$BUDGET"
    "$HYPERAGENTS_BIN" report "$EXP-$mode-s$seed" --out "$KEEP/$EXP-$mode-s$seed" > /dev/null
  done
done
runs=()
for seed in "${SEEDS[@]}"; do
  for mode in "${MODES[@]}"; do runs+=("$EXP-$mode-s$seed"); done
done
phase compare "$HYPERAGENTS_BIN" compare "${runs[@]}" --out "$OUT"
cp "$OUT"/compare* "$KEEP/"

# Held out: the 63 train tasks evolution does not see (the default split's
# 75 less the 12 above), and the test split.
HELD_OUT="ascending-numbers,buy-ticket,choose-date,choose-date-easy,choose-date-medium,choose-date-nodelay,click-button-sequence,click-collapsible-2,click-collapsible-2-nodelay,click-collapsible-nodelay,click-color,click-dialog-2,click-menu-2,click-pie,click-pie-nodelay,click-scroll-list,click-shades,click-tab-2,click-tab-2-easy,click-tab-2-hard,click-tab-2-medium,click-test,click-test-transfer,click-widget,copy-paste,copy-paste-2,drag-items,drag-items-grid,drag-shapes,drag-shapes-2,drag-sort-numbers,enter-date,enter-text-2,enter-text-dynamic,enter-time,find-greatest,focus-text,form-sequence,form-sequence-2,form-sequence-3,generate-number,grid-coordinate,guess-number,login-user-popup,navigate-tree,odd-or-even,order-food,phone-book,read-table,read-table-2,scroll-text,scroll-text-2,search-engine,sign-agreement,simple-arithmetic,social-media,social-media-all,social-media-some,text-transform,tic-tac-toe,use-autocomplete,use-autocomplete-nodelay,use-spinner"
score() {
  local name="$1" program="$2" split="$3" tasks="$4"
  local args=(--program "$program" --suite miniwob --split "$split" --episodes "$HELD_OUT_SEEDS"
    --first-seed "$HELD_OUT_FIRST_SEED" --jsonl "$OUT/held-out-$split-$name.jsonl")
  [ -n "$tasks" ] && args+=(--tasks "$tasks")
  "$HYPERAGENTS_BIN" eval "${args[@]}" | tail -2 > "$OUT/held-out-$split-$name.txt"
  cp "$OUT/held-out-$split-$name.jsonl" "$OUT/held-out-$split-$name.txt" "$KEEP/"
}
phase held-out-seed score seed "$SEED" train "$HELD_OUT"
phase test-seed score seed "$SEED" test ""
for run in "${runs[@]}"; do
  best="$("$HYPERAGENTS_BIN" status "$run" --best)"
  phase "held-out-$run" score "$run" "$best" train "$HELD_OUT"
  phase "test-$run" score "$run" "$best" test ""
done
print_phases
