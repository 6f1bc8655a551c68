"""Per-token cost of the demo pair in llama.cpp: median single-token decode time of each model.

    python scripts/demo_cost.py [--threads N] [--steps N] [--rounds N]

Rounds alternate between the models so that machine noise hits both alike. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import ModelSpec
from r2r_local.demo import demo_pair, template
from r2r_local.demo.evaluate import decode_times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200, help="single-token decodes per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    pair = demo_pair()
    times: dict[str, list[np.ndarray]] = {"small": [], "large": []}
    backends = {
        role: LlamaCppBackend(ModelSpec(str(path), n_ctx=512, threads=args.threads, role=role))
        for role, path in (("small", pair.small), ("large", pair.large))
    }
    prompt = backends["small"].tokenize(template.prompt("347+589"), add_special=True, parse_special=True)
    for _ in range(args.rounds):
        for role, be in backends.items():
            times[role].append(decode_times(be, prompt, args.steps))
    med = {role: float(np.median(np.concatenate(t))) for role, t in times.items()}
    out = {
        "threads": args.threads,
        "decodes_per_model": args.steps * args.rounds,
        "median_ms": {role: round(m * 1e3, 4) for role, m in med.items()},
        "ratio_large_small": round(med["large"] / med["small"], 2),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
