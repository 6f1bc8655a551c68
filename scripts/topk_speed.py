#!/usr/bin/env python3
"""The router's top-100 feature: r2r's topk_logits against a full argpartition, side by side.

Logits: the real ones SmolLM2-135M-Instruct gives along a greedy answer (49,152 entries), and
random normal ones of R1's vocabulary size (151,936). Both functions run on the same logits in
turn; medians over all of them; the results must be equal.

    python scripts/topk_speed.py [--tokens 200] [--repeat 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from r2r_local.commands import versions  # noqa: E402
from r2r_local.router.features import TOPK, topk_logits  # noqa: E402


def argpartition_topk(logits: np.ndarray, k: int = TOPK) -> np.ndarray:
    """The straightforward way: argpartition the whole vocabulary, sort the head."""
    head = logits[np.argpartition(logits, -k)[-k:]]
    return np.sort(head)[::-1].astype(np.float32)


def smollm2_logits(n: int) -> list[np.ndarray]:
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.config import ModelSpec
    from r2r_local.defaults import smollm2_path

    rows = []
    with LlamaCppBackend(ModelSpec(str(smollm2_path()), n_ctx=512, threads=2, role="small")) as be:
        prompt = be.tokenize("Write a long story about a lighthouse keeper.", add_special=True, parse_special=False)
        out = be.slot.decode(prompt)
        for _ in range(n):
            rows.append(out.logits.copy())
            out = be.slot.decode([int(np.argmax(out.logits))])
    return rows


def compare(rows: list[np.ndarray], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"topk_logits": [], "argpartition": []}
    for _ in range(repeat):
        for x in rows:
            for name, fn in (("topk_logits", topk_logits), ("argpartition", argpartition_topk)):
                t = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t)
    for x in rows:
        if not np.array_equal(topk_logits(x), argpartition_topk(x)):
            raise SystemExit("topk_speed: the two functions disagree")
    fast, slow = (statistics.median(times[n]) * 1e3 for n in ("topk_logits", "argpartition"))
    return {"n_vocab": int(rows[0].shape[0]), "n_logits": len(rows), "topk_logits_ms": fast,
            "argpartition_ms": slow, "speedup": slow / fast}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=200, help="logit rows of each kind (default 200)")
    p.add_argument("--repeat", type=int, default=20, help="passes over them (default 20)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    rng = np.random.default_rng(0)
    kinds = {
        "smollm2_real": smollm2_logits(args.tokens),
        "r1_vocab_random": [(rng.standard_normal(151936) * 3).astype(np.float32) for _ in range(args.tokens)],
    }
    results = {name: compare(rows, args.repeat) for name, rows in kinds.items()}
    for name, r in results.items():
        print(f"{name:16s} vocab {r['n_vocab']:>7,}: topk_logits {r['topk_logits_ms']:.4f} ms, "
              f"argpartition {r['argpartition_ms']:.4f} ms, {r['speedup']:.1f}x (median of "
              f"{r['n_logits'] * args.repeat:,} calls each)")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "config": vars(args),
                                               "versions": versions()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
