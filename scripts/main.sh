#!/usr/bin/env bash
# The main job on the embedded defaults: set up, then a short evolution run on
# MiniWoB++ train tasks (SmolLM2-135M as the task model, Qwen2.5-Coder-1.5B as
# the meta model, both in-process), then its report.
# Usage: scripts/main.sh [RUN]   (rerunning with the same RUN resumes it)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
RUN="${1:-main}"
# The 12 train tasks of the efficacy experiment (EXPERIMENTS.md, e16 onward):
# the seed succeeds on some of them some of the time, and its own meta agent
# mines what those successes share (how the page's elements are ranked), the
# edit behind the held-out gains EXPERIMENTS.md reports for e20. The report pairs the final
# best node with the seed on the test split, episode by episode.
TASKS="click-button,click-collapsible,click-dialog,click-link,click-menu,click-shape,click-tab,click-test-2,enter-password,enter-text,focus-text-2,login-user"
# Episodes end after 4 environment actions, as in the experiments.
export HYPERAGENTS_RUN__MAX_STEPS="${HYPERAGENTS_RUN__MAX_STEPS:-4}"

phase apt install_apt_packages
phase build build_all
phase models pull_models
phase data pull_data
phase evolve "$HYPERAGENTS_BIN" evolve --run "$RUN" --suite miniwob --tasks "$TASKS" \
  --stage1 4 --generations 2 --children 2 --episodes 2
phase report "$HYPERAGENTS_BIN" report "$RUN"
print_phases
