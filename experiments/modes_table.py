#!/usr/bin/env python3
"""Per-run and per-mode tables of an experiment's evolution runs (section 1's
tables, for runs whose stores are on different machines).

`hyperagents compare` needs every run in one results store; the grid's runs
were played on machines whose caches were replaced between sessions, so this
reads what the repository keeps instead: each run's `report.md` (its header
table and its token table) and the held-out exports `paired.py` reads, for the
primary measure (the held-out train tasks, paired with the seed).

Usage: experiments/modes_table.py DIR   (DIR: experiments/e20)
"""
import re
import sys
from pathlib import Path

from paired import mode_of, outcomes, paired

MODES = ["hyper", "fixed-meta", "prompt-only", "none"]


def header_fields(report):
    """The `| field | value |` rows at the top of a run's report."""
    fields = {}
    for line in report.splitlines():
        match = re.match(r"^\| ([^|]+?) \| ([^|]*?) \|$", line)
        if match and match.group(1) not in ("field", "---"):
            fields[match.group(1)] = match.group(2)
        if line.startswith("## "):
            break
    return fields


def role_tokens(report, role_prefix):
    """Tokens of a role in the report's `Tokens and cost per role` table."""
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith(role_prefix):
            return int(cells[3].replace(",", ""))
    return None


def percent(text):
    """`29.2%` or `50.0% (g2c1)` -> (29.2, node or None); `—` -> (None, None)."""
    match = re.match(r"^([0-9.]+)%(?: \((.+)\))?$", text.strip())
    if not match:
        return None, None
    return float(match.group(1)), match.group(2)


def accepted(text):
    """`0 of 8 comparisons` -> (0, 8)."""
    match = re.match(r"^(\d+) of (\d+)", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def valid_children(report):
    """Valid and all children, from the report's node table (the seed left out)."""
    valid = total = 0
    in_nodes = False
    for line in report.splitlines():
        if line.startswith("## Nodes"):
            in_nodes = True
            continue
        if in_nodes and line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].split(" ")[0]  # `g2c1 (best)`
        if not in_nodes or len(cells) < 5 or name in ("node", "seed") or name.startswith("-"):
            continue
        total += 1
        valid += cells[4] == "valid"
    return valid, total


def fmt(value, spec, missing="—"):
    return missing if value is None else format(value, spec)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    seed_train = root / "held-out-train-seed.jsonl"
    if not seed_train.exists():
        sys.exit(f"{seed_train}: missing (the seed's held-out train rows)")
    seed_outcomes = outcomes(seed_train)
    rows = []
    for run_dir in sorted(p for p in root.iterdir() if (p / "report.md").exists()):
        run = run_dir.name
        report = (run_dir / "report.md").read_text()
        fields = header_fields(report)
        held = root / f"held-out-train-{run}.jsonl"
        primary = paired(seed_outcomes, outcomes(held)) if held.exists() else None
        seed_pct, _ = percent(fields.get("seed train success", ""))
        best_pct, best_node = percent(fields.get("best train success", ""))
        test_pct, _ = percent(fields.get("test success of the best node", ""))
        acc, comparisons = accepted(fields.get("accepted improvements", ""))
        valid, children = valid_children(report)
        rows.append({
            "run": run,
            "mode": mode_of(run),
            "seed": seed_pct,
            "best": best_pct,
            "node": best_node,
            "test": test_pct,
            "meta": role_tokens(report, "meta"),
            "train": role_tokens(report, "task, train"),
            "valid": valid,
            "children": children,
            "accepted": acc,
            "comparisons": comparisons,
            "wall": fields.get("wall time", "—"),
            "primary": primary,
        })
    if not rows:
        sys.exit(f"{root}: no run folder with a report.md")
    print("| run | mode | seed train | best train (node) | its test stage | meta tokens | train-episode tokens "
          "| valid children | accepted | wall time | primary held-out difference [95%] |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sorted(rows, key=lambda r: (MODES.index(r["mode"]) if r["mode"] in MODES else 9, r["run"])):
        primary = r["primary"]
        primary_text = (f"{100 * primary[0]:+.1f} pp [{100 * primary[1]:+.1f}, {100 * primary[2]:+.1f}]"
                        if primary else "—")
        print(f"| {r['run']} | {r['mode']} | {fmt(r['seed'], '.1f')}% | {fmt(r['best'], '.1f')}% ({r['node'] or '—'}) "
              f"| {fmt(r['test'], '.1f')}% | {fmt(r['meta'], ',')} | {fmt(r['train'], ',')} "
              f"| {r['valid']}/{r['children']} | {fmt(r['accepted'], 'd')} of {fmt(r['comparisons'], 'd')} "
              f"| {r['wall']} | {primary_text} |")
    print()
    print("| mode | runs | seed train | best train | its test stage | meta tokens | train-episode tokens "
          "| valid children | accepted | primary difference (mean) | runs with lower bound > 0 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        runs = [r for r in rows if r["mode"] == mode]
        if not runs:
            continue

        def mean(key):
            values = [r[key] for r in runs if r[key] is not None]
            return sum(values) / len(values) if values else None

        primaries = [r["primary"] for r in runs if r["primary"]]
        gains = sum(1 for p in primaries if p[1] > 0)
        mean_primary = sum(p[0] for p in primaries) / len(primaries) if primaries else None
        print(f"| {mode} | {len(runs)} | {fmt(mean('seed'), '.1f')}% | {fmt(mean('best'), '.1f')}% "
              f"| {fmt(mean('test'), '.1f')}% | {fmt(mean('meta'), ',.0f')} | {fmt(mean('train'), ',.0f')} "
              f"| {sum(r['valid'] for r in runs)}/{sum(r['children'] for r in runs)} "
              f"| {sum(r['accepted'] or 0 for r in runs)} of {sum(r['comparisons'] or 0 for r in runs)} "
              f"| {fmt(None if mean_primary is None else 100 * mean_primary, '+.1f')} pp "
              f"| {gains} of {len(primaries)} |")


if __name__ == "__main__":
    main()
