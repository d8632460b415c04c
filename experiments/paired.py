#!/usr/bin/env python3
"""The held-out analysis of EXPERIMENTS.md section 2, fixed before any run.

Reads the `held-out-<split>-<name>.jsonl` files `experiments/e16.sh` writes
(one `hyperagents eval --jsonl` export per scored program) and prints, per
split and run, the best node's held-out success, its paired difference with
the seed over the (task, seed) pairs both have, the 95% interval of the mean
difference (normal approximation, as `bench episodes` and the engine's
acceptance compute it), and per mode how many runs have a lower bound above 0.

Usage: experiments/paired.py DIR   (DIR: experiments/e18, or the cache's copy)
"""
import json
import math
import re
import sys
from pathlib import Path

PATTERN = re.compile(r"held-out-(?P<split>train|test|seen)-(?P<name>.+)\.jsonl$")
# What each kind of held-out file scores (experiments/e16.sh, `score`).
KINDS = {
    "train": "the train-split tasks no meta agent saw",
    "test": "the test split",
    "seen": "secondary: the tasks evolution saw, on episode seeds it did not",
    "train53": "sensitivity (e20 on): the held-out train tasks no `bench meta` context used",
}
# Held-out train tasks that `bench meta`'s evidence contexts used while the
# meta agent was tuned (EXPERIMENTS.md, e20's amendment 5); `train53` leaves
# them out.
BENCH_META_TASKS = {
    "click-collapsible-2", "click-color", "click-pie-nodelay", "click-shades", "click-test",
    "grid-coordinate", "order-food", "scroll-text", "search-engine", "social-media-all",
}


def outcomes(path):
    """(task, seed) -> success, from one eval export."""
    result = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = row["key"]
            result[(key["task"], int(key["seed"]))] = bool(row["success"])
        except (ValueError, KeyError, TypeError) as error:
            sys.exit(f"{path}:{number}: not an evaluation row ({error})")
    return result


def paired(base, other):
    """Mean of other - base over shared pairs, its 95% interval, and n."""
    diffs = [float(other[k]) - float(base[k]) for k in base if k in other]
    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    half = 1.96 * math.sqrt(var / n)
    return mean, mean - half, mean + half, n


def mode_of(run):
    # Run names are EXP-MODE-sSEED (e16-fixed-meta-s2).
    parts = run.split("-")
    return "-".join(parts[1:-1]) if len(parts) >= 3 else run


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    files = {}
    for path in sorted(root.glob("held-out-*.jsonl")):
        match = PATTERN.search(path.name)
        if match:
            files[(match["split"], match["name"])] = outcomes(path)
    for (split, name), result in list(files.items()):
        if split == "train":
            # A misspelt name would filter nothing: every listed task must
            # be one this file scored.
            missing = BENCH_META_TASKS - {task for task, _ in result}
            if missing:
                sys.exit(f"held-out-train-{name}.jsonl lacks {sorted(missing)}: not the 63 held-out tasks")
            files[("train53", name)] = {
                k: v for k, v in result.items() if k[0] not in BENCH_META_TASKS
            }
    for split, what in KINDS.items():
        seed = files.get((split, "seed"))
        if seed is None:
            print(f"{split}: the seed has not been scored yet")
            continue
        wins = {}
        tasks = len({task for task, _ in seed})
        print(f"\n### Held out ({split}: {what}; {tasks} tasks), paired with the seed by (task, seed)\n")
        print("| run | mode | success | seed | difference | 95% interval | pairs |")
        print("|---|---|---:|---:|---:|---|---:|")
        for (s, name), result in sorted(files.items()):
            if s != split or name == "seed":
                continue
            stats = paired(seed, result)
            ok = sum(result.values())
            base = sum(seed[k] for k in result if k in seed)
            if stats is None:
                print(f"| {name} | {mode_of(name)} | {ok}/{len(result)} | | | too few pairs | |")
                continue
            mean, low, high, n = stats
            mode = mode_of(name)
            wins.setdefault(mode, [0, 0])
            wins[mode][1] += 1
            if low > 0:
                wins[mode][0] += 1
            print(
                f"| {name} | {mode} | {ok}/{len(result)} ({100 * ok / len(result):.1f}%) | {base}/{n} "
                f"| {100 * mean:+.1f} pp | [{100 * low:+.1f}, {100 * high:+.1f}] | {n} |"
            )
        print()
        for mode, (above, runs) in sorted(wins.items()):
            if split not in ("train", "train53"):
                verdict = "descriptive (the primary measure is the train kind)"
            elif above >= 2:
                verdict = "a gain (plan: at least 2 of 3)"
            else:
                verdict = "no gain shown"
            print(f"- {mode}: {above} of {runs} runs with the lower bound above 0: {verdict}")


if __name__ == "__main__":
    main()
