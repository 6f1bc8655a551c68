#!/usr/bin/env python3
"""The figures of the GPU check from `r2r bench --json` (issue 6) and scripts/router_cost.py.

    python scripts/gpu_check_summary.py BENCH.json [ROUTER_COST.json]

Prints tokens/s per mode, R2R's speedup over the large model alone, its efficiency against the
ideal (DESIGN.md section 5) and the router's cost per token on the GPU, next to the issue's goal
(R2R at the paper's share >= 3x the 32B alone). Exit 3 when the bench output lacks a field this
needs (the bench's JSON is defined by issue 6: `modes.{small,large,r2r}.tokens_per_s`,
`large_share`, and `ideal_tokens_per_s` for r2r).
"""

from __future__ import annotations

import json
import sys
from typing import Any

GOAL_SPEEDUP = 3.0


def _get(doc: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            raise KeyError(".".join(path))
        doc = doc[key]
    return doc


def summarize(bench: dict[str, Any], router: dict[str, Any] | None) -> list[str]:
    modes = _get(bench, "modes")
    tps = {m: float(_get(bench, "modes", m, "tokens_per_s")) for m in ("small", "large", "r2r")}
    lines = [f"tokens/s: small {tps['small']:.1f}, large {tps['large']:.1f}, r2r {tps['r2r']:.1f}"]
    share = float(_get(bench, "modes", "r2r", "large_share"))
    speedup = tps["r2r"] / tps["large"]
    ideal = float(_get(bench, "modes", "r2r", "ideal_tokens_per_s"))
    lines.append(f"r2r large-model share: {100 * share:.1f}%")
    lines.append(f"speedup of r2r over the large model alone: {speedup:.2f}x "
                 f"(goal >= {GOAL_SPEEDUP:.0f}x: {'met' if speedup >= GOAL_SPEEDUP else 'NOT met'})")
    lines.append(f"efficiency against the ideal: {tps['r2r']:.1f} / {ideal:.1f} tok/s = {tps['r2r'] / ideal:.2f}")
    bench_router = {k: v for k, v in modes["r2r"].items() if "router" in k}
    if bench_router:
        lines.append("router fields reported by r2r bench: "
                     + ", ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}"
                                 for k, v in sorted(bench_router.items())))
    if router:
        small_step_ms = 1000 / tps["small"]
        for name, row in router.get("per_router", {}).items():
            cost = row["router_plus_features_ms"]
            lines.append(f"router ({name}) plus features per token: {cost:.3f} ms = {cost / small_step_ms:.2f} "
                         f"of one small-model step ({small_step_ms:.2f} ms in the bench)")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        bench = json.load(f)
    router = None
    if len(argv) > 1:
        with open(argv[1], encoding="utf-8") as f:
            router = json.load(f)
    try:
        lines = summarize(bench, router)
    except KeyError as e:
        print(f"gpu_check_summary: the r2r bench JSON has no {e.args[0]} (a field issue 6 defines)", file=sys.stderr)
        return 3
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
