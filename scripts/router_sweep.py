"""Accuracy against large-model share for a trained router on the demo pair, with the
random and entropy routers measured at the same shares.

    python scripts/router_sweep.py --router models/demo/router.onnx --thresholds 0.2,0.5,0.8 --n 100

For each threshold t the trained router runs as `router.onnx@t` (greedy, held-out problems of
r2r_local.demo.task, which labelling never sees). Its measured large-model share s is then
given to `random:s`, and `entropy:T` is searched (bisection on T) until its share is within
--tolerance of s; where no T reaches s (many tokens have zero entropy, so the entropy router's
share has a ceiling), the closest share found is reported and marked "not reached". Every figure is measured in this run on the same loaded pair; nothing is
interpolated. Prints a Markdown table and writes the whole result as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from r2r_local.bench import Bench, Problem
from r2r_local.config import ModelSpec
from r2r_local.demo import demo_pair, demo_router, task
from r2r_local.pair import load_pair

MAX_TOKENS = 200
MAX_ENTROPY_TRIES = 10


def measure(bench_for, spec: str, problems: list[Problem], cache: dict) -> dict:
    """Accuracy and large share of the r2r mode with router `spec` (memoized per spec)."""
    if spec not in cache:
        t0 = time.perf_counter()
        totals = bench_for(spec).run(problems, modes=("r2r",))["r2r"].summary()
        cache[spec] = {"router": spec, "accuracy": totals["accuracy"], "large_share": totals["large_share"],
                       "seconds": round(time.perf_counter() - t0, 1)}
        print(f"  {spec}: accuracy {totals['accuracy']:.3f}, share {totals['large_share']:.4f}", file=sys.stderr)
    return cache[spec]


def entropy_at_share(bench_for, share: float, problems: list[Problem], tol: float, cache: dict) -> dict:
    """The entropy router whose measured share is closest to `share` (bisection on T, nats);
    the share falls as T rises."""
    lo, hi = 0.0, 6.0
    best = None
    for _ in range(MAX_ENTROPY_TRIES):
        t = round((lo + hi) / 2, 4)
        got = measure(bench_for, f"entropy:{t:g}", problems, cache)
        if best is None or abs(got["large_share"] - share) < abs(best["large_share"] - share):
            best = got
        if abs(got["large_share"] - share) <= tol:
            break
        lo, hi = (t, hi) if got["large_share"] > share else (lo, t)
    return best | {"matched": abs(best["large_share"] - share) <= tol}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", default=None, help="trained ONNX router (default: the shipped demo router)")
    ap.add_argument("--thresholds", default="0.1,0.3,0.5,0.7,0.9")
    ap.add_argument("--n", type=int, default=100, help="held-out problems")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=0.003, help="largest share difference for entropy:T")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random router")
    ap.add_argument("--out", help="write the JSON result here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # llama.cpp's info and warnings stay out of the report
    router = args.router or demo_router()
    if router is None:
        print("router_sweep.py: no --router given and no demo router is shipped", file=sys.stderr)
        return 2
    pair_paths = demo_pair()
    pair = load_pair(ModelSpec(str(pair_paths.small), n_ctx=512, threads=args.threads, role="small"),
                     ModelSpec(str(pair_paths.large), n_ctx=512, threads=args.threads, role="large"))
    problems = [Problem(p.message, str(p.answer)) for p in task.problems(task.EVAL_SEED, args.n, task.HELDOUT)]

    def bench_for(spec: str) -> Bench:
        return Bench(pair, pair.router(spec, seed=args.seed), max_tokens=MAX_TOKENS)

    alone = Bench(pair, pair.router("slm"), max_tokens=MAX_TOKENS).run(problems, modes=("small", "large"))
    result = {"router": str(router), "n_problems": args.n, "eval_seed": task.EVAL_SEED, "threads": args.threads,
              "small": alone["small"].summary()["accuracy"], "large": alone["large"].summary()["accuracy"],
              "points": []}
    cache: dict = {}
    for t in (float(x) for x in args.thresholds.split(",")):
        trained = measure(bench_for, f"{router}@{t:g}", problems, cache)
        share = trained["large_share"]
        rand = measure(bench_for, f"random:{share:.4f}", problems, cache)
        ent = entropy_at_share(bench_for, share, problems, args.tolerance, cache)
        result["points"].append({"threshold": t, "trained": trained, "random": rand, "entropy": ent})
    pair.close()
    print(table(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


def table(result: dict) -> str:
    lines = [f"small alone {result['small']:.3f}, large alone {result['large']:.3f} "
             f"({result['n_problems']} held-out problems, seed {result['eval_seed']})", "",
             "| threshold | trained: accuracy @ share | random:P at that share | entropy:T at that share |",
             "|---|---|---|---|"]
    for p in result["points"]:
        tr, ra, en = p["trained"], p["random"], p["entropy"]
        lines.append(f"| {p['threshold']:g} | {tr['accuracy']:.3f} @ {tr['large_share']:.3f} "
                     f"| {ra['accuracy']:.3f} @ {ra['large_share']:.3f} "
                     f"| {en['accuracy']:.3f} @ {en['large_share']:.3f} ({en['router']}"
                     f"{'' if en['matched'] else '; share not reached'}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
