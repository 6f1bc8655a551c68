#!/usr/bin/env python3
"""Two checkouts side by side in one run: the same benchmark command in each, alternating.

For a change to the decoding core, "no speed lost" is a ratio measured in one run: this runs
`scripts/bench_overhead.py` (routed-loop overhead on SmolLM2) and/or `r2r bench --demo` from an
old and a new checkout of r2r-local in turns (the order flips every round, so drift in the
machine's load falls on both), each as its own process with its own checkout first on the path,
and prints the medians side by side. Writes all runs and the config as JSON with --out.

    python scripts/ab_compare.py --old ../old-checkout --new . --rounds 5 [--what overhead,demo]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _run(tree: Path, argv: list[str], out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, *argv], cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ab_compare: {' '.join(argv)} failed in {tree}:\n{proc.stderr[-2000:]}")
    return json.loads(out.read_text()) if out.exists() else json.loads(proc.stdout)


def overhead(tree: Path, tmp: Path, tokens: int, threads: int) -> dict[str, dict[str, float]]:
    """Per mode of bench_overhead.py: tok/s and ms per token outside the models ("other")."""
    out = tmp / "overhead.json"
    out.unlink(missing_ok=True)
    doc = _run(tree, ["scripts/bench_overhead.py", "--rounds", "1", "--tokens", str(tokens),
                      "--threads", str(threads), "--out", str(out)], out)
    rows = {}
    for row in doc["rows"]:
        rows[row["mode"]] = {"tokens_per_s": row["tokens_per_s"], "ms_other": row.get("other_ms"),
                             "ms_per_token": row["ms_per_token_steady"]}
    return rows


def demo(tree: Path, tmp: Path, n: int, threads: int) -> dict[str, dict[str, float]]:
    """Per mode of `r2r bench --demo`: tok/s, accuracy and large-model share."""
    out = tmp / "demo.json"
    out.unlink(missing_ok=True)
    proc_out = tmp / "demo-stdout.json"
    env = dict(os.environ, PYTHONPATH=str(tree))
    argv = [sys.executable, "-m", "r2r_local.cli", "bench", "--demo", "--n", str(n), "--threads", str(threads), "--json"]
    proc = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ab_compare: r2r bench failed in {tree}:\n{proc.stderr[-2000:]}")
    proc_out.write_text(proc.stdout)
    doc = json.loads(proc.stdout)
    return {m: {"tokens_per_s": r["tokens_per_s"], "accuracy": r["accuracy"], "large_share": r["large_share"],
                "ms_other": r["ms_other_per_token"]} for m, r in doc["modes"].items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, type=Path, help="the old checkout")
    ap.add_argument("--new", required=True, type=Path, help="the new checkout")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--what", default="overhead,demo", help="overhead, demo or both (comma-separated)")
    ap.add_argument("--tokens", type=int, default=128, help="overhead: tokens per generation")
    ap.add_argument("--n", type=int, default=20, help="demo: held-out problems per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write all runs and the medians as JSON")
    args = ap.parse_args()
    what = [w.strip() for w in args.what.split(",") if w.strip()]
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    runs: dict[str, dict[str, list]] = {w: {"old": [], "new": []} for w in what}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for w in what:
                for side in order:
                    result = overhead(trees[side], tmp, args.tokens, args.threads) if w == "overhead" \
                        else demo(trees[side], tmp, args.n, args.threads)
                    runs[w][side].append(result)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    medians = {w: _medians(runs[w]) for w in what}
    _print(medians)
    if args.out:
        args.out.write_text(json.dumps({"medians": medians, "runs": runs, "config": {
            "old": str(trees["old"]), "new": str(trees["new"]), "rounds": args.rounds, "tokens": args.tokens,
            "n": args.n, "threads": args.threads}}, indent=2))
    return 0


def _medians(sides: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode in sides["old"][0]:
        out[mode] = {}
        for key in sides["old"][0][mode]:
            vals = {s: [run[mode][key] for run in sides[s] if run[mode].get(key) is not None] for s in ("old", "new")}
            if vals["old"] and vals["new"]:
                old, new = statistics.median(vals["old"]), statistics.median(vals["new"])
                out[mode][key] = {"old": old, "new": new, "new/old": new / old if old else None}
    return out


def _print(medians: dict) -> None:
    for w, modes in medians.items():
        print(f"\n{w}: median old -> new (new/old)")
        for mode, keys in modes.items():
            cells = "  ".join(f"{k} {v['old']:.4g} -> {v['new']:.4g} ({v['new/old']:.3f})"
                              for k, v in keys.items() if v["new/old"] is not None)
            print(f"  {mode:<16} {cells}")


if __name__ == "__main__":
    sys.exit(main())
