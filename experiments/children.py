#!/usr/bin/env python3
"""What each child of an evolution run was, read from the results store.

One line per node: generation, parent, status (and why a child was refused),
what its diff touched, meta tokens and how many of its meta prompt tokens were
reused, its stage scores (successes/episodes) and, for a child that reached the
full stage, the paired comparison with its parent. EXPERIMENTS.md's per-run
accounts are read from this.

Usage: experiments/children.py RUN [STORE]
       (STORE: ~/.cache/hyperagents/results.sqlite unless given)
"""
import json
import sqlite3
import sys
from pathlib import Path


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip())
    run = sys.argv[1]
    store = Path(sys.argv[2]) if len(sys.argv) == 3 else (
        Path.home() / ".cache/hyperagents/results.sqlite")
    if not store.exists():
        sys.exit(f"{store}: no results store")
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    if db.execute("SELECT 1 FROM runs WHERE id = ?", (run,)).fetchone() is None:
        sys.exit(f"{store}: no run named {run!r}")

    scores = {}
    for node, stage, successes, episodes in db.execute(
        """SELECT ne.node_id, ne.stage, SUM(e.success), COUNT(*)
           FROM node_evaluations ne
           JOIN eval_run_members m ON m.run_id = ne.eval_run_id
           JOIN evaluations e ON e.key_hash = m.key_hash
           WHERE ne.run_id = ? GROUP BY ne.node_id, ne.stage""",
        (run,),
    ):
        scores.setdefault(node, {})[stage] = f"{successes}/{episodes}"

    children, comparisons = {}, {}
    for kind, payload in db.execute(
        "SELECT kind, payload_json FROM events WHERE run_id = ? "
        "AND kind IN ('child', 'comparison') ORDER BY seq",
        (run,),
    ):
        event = json.loads(payload)
        if kind == "child":
            children[event["node"]] = event
        elif event.get("stage") == "full":
            comparisons[event["node"]] = event

    print("node | gen | parent | status | diff touched | meta tokens (prompt reused) | "
          "stage1 | full | against parent (mean, lower 95%, accepted)")
    for node, generation, parent, status, kinds, errors, meta_tokens in db.execute(
        "SELECT node_id, generation, parent_id, status, diff_kinds, "
        "validation_errors_json, meta_tokens FROM nodes WHERE run_id = ? "
        "ORDER BY generation, created_at_ms",
        (run,),
    ):
        child = children.get(node, {})
        reused = ""
        if child.get("meta_prompt_tokens"):
            share = child.get("meta_prompt_reused", 0) / child["meta_prompt_tokens"]
            reused = f" ({share:.0%} of {child['meta_prompt_tokens']:,})"
        why = "; ".join(json.loads(errors))
        node_scores = scores.get(node, {})
        comparison = comparisons.get(node)
        against = ""
        if comparison:
            against = (f"{comparison['mean_difference'] * 100:+.1f} pp, "
                       f"{comparison['lower_95'] * 100:+.1f}, "
                       f"{'yes' if comparison['accepted'] else 'no'}")
        print(" | ".join([
            node, str(generation), parent or "—",
            status + (f" ({why})" if why else ""),
            ",".join(json.loads(kinds)) or "—",
            f"{meta_tokens:,}{reused}",
            node_scores.get("stage1", "—"), node_scores.get("full", "—"), against or "—",
        ]))


if __name__ == "__main__":
    main()
