#!/usr/bin/env python3
"""The figures of the GPU check from `r2r bench --json` (issue 6) and scripts/router_cost.py.

    python scripts/gpu_check_summary.py BENCH.json [ROUTER_COST.json] [--catch-up DECODE_TIME.json]

Prints tokens/s per mode, R2R's speedup over the large model alone, its efficiency against the
ideal speed (ideal_tokens_per_s in `r2r bench --help`) and the router's cost per token on the
GPU, next to the issue's goal (R2R at the paper's share >= 3x the 32B alone). Exit 3 when the
bench output lacks a field this needs (the bench's JSON is defined by issue 6: `modes.{small,large,r2r}.tokens_per_s`,
`large_share`, and `ideal_tokens_per_s` for r2r).

A random router's share in a short run drifts from the nominal one (0.102 for random:0.124 over
384 tokens in the first H200 run), so with --catch-up (the JSON of `scripts/decode_time.py LARGE
--catch-up ...`: the large model's cost of one call of k new tokens) it also prints the ideal
speed at the nominal share: a random router at share p calls the large model after gaps K with
P(K = k) = p (1-p)^(k-1), so per token it costs t_small + t_router + p E[t_call(K)], t_call
interpolated between the measured sizes (linearly, and beyond the largest from its last two).
That line is a projection from measured parts, labelled as such, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

GOAL_SPEEDUP = 3.0
NOMINAL_SHARE = 0.124  # the paper's, and the check's random:0.124


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


def call_cost(curve: dict[int, float], k: int) -> float:
    """Seconds of one catch-up call of k tokens, interpolated in a measured curve {k: seconds}."""
    sizes = sorted(curve)
    if k in curve:
        return curve[k]
    if len(sizes) == 1:
        return curve[sizes[0]]
    below = [s for s in sizes if s < k]
    above = [s for s in sizes if s > k]
    if below and above:
        a, b = below[-1], above[0]
    elif above:  # below the smallest size measured
        a, b = sizes[0], sizes[1]
    else:
        a, b = sizes[-2], sizes[-1]
    return curve[a] + (curve[b] - curve[a]) * (k - a) / (b - a)


def expected_call_cost(curve: dict[int, float], share: float) -> float:
    """E[t_call(K)] for K ~ Geometric(share) on 1, 2, ... (the gaps between a random router's calls)."""
    total, k, mass = 0.0, 1, share
    while mass > 1e-9 and k < 100_000:
        total += mass * call_cost(curve, k)
        k, mass = k + 1, mass * (1 - share)
    return total


def projection(bench: dict[str, Any], decode_time: dict[str, Any], share: float = NOMINAL_SHARE) -> list[str]:
    parts = _get(bench, "modes", "r2r", "ideal_parts")
    t_fixed = float(parts["t_small_step_s"]) + float(parts["t_router_s"])
    rows = [r for r in decode_time["results"] if r.get("catch_up")]
    curve = {int(k): float(v["median_ms"]) / 1000 for k, v in rows[-1]["catch_up"].items()}
    large = float(_get(bench, "modes", "large", "tokens_per_s"))
    measured_share = float(_get(bench, "modes", "r2r", "large_share"))
    measured = float(_get(bench, "modes", "r2r", "tokens_per_s"))
    lines = ["large model, one call of k new tokens (ms): "
             + ", ".join(f"k={k} {1000 * t:.2f}" for k, t in sorted(curve.items()))]
    at_run = 1 / (t_fixed + measured_share * expected_call_cost(curve, measured_share))
    at_nominal = 1 / (t_fixed + share * expected_call_cost(curve, share))
    lines.append(f"projected ideal at this run's share {measured_share:.3f}: {at_run:.1f} tok/s "
                 f"(measured {measured:.1f}, {measured / at_run:.2f} of it)")
    lines.append(f"PROJECTION (not a measurement) at the nominal share {share}: ideal {at_nominal:.1f} tok/s = "
                 f"{at_nominal / large:.2f}x the large model; at this run's efficiency "
                 f"{measured / at_run * at_nominal:.1f} tok/s = {measured / at_run * at_nominal / large:.2f}x")
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check_summary.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bench", metavar="BENCH.json", help="the output of r2r bench --json")
    p.add_argument("router_cost", metavar="ROUTER_COST.json", nargs="?",
                   help="the output of scripts/router_cost.py (optional)")
    p.add_argument("--catch-up", metavar="DECODE_TIME.json",
                   help="scripts/decode_time.py LARGE --catch-up ... output: adds the projection at the nominal share")
    return p


def _read_json(path: str) -> Any:
    """A JSON file, or SystemExit(1) with one line naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise SystemExit(f"gpu_check_summary: {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"gpu_check_summary: {path}: not a JSON file ({e})") from None


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    bench = _read_json(args.bench)
    router = _read_json(args.router_cost) if args.router_cost else None
    try:
        lines = summarize(bench, router)
        if args.catch_up:
            curve = _read_json(args.catch_up)
            if not any(r.get("catch_up") for r in curve.get("results", [])):
                print(f"gpu_check_summary: {args.catch_up} has no catch-up times "
                      "(run scripts/decode_time.py with --catch-up)", file=sys.stderr)
                return 3
            lines += projection(bench, curve)
    except KeyError as e:
        print(f"gpu_check_summary: the r2r bench JSON has no {e.args[0]} (a field issue 6 defines)", file=sys.stderr)
        return 3
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
