#!/usr/bin/env python3
"""Per-token decode time of GGUF models on this machine: the median over N single-token decodes
(after a short prompt and 3 warm-up steps); the models take turns step by step in one run.

    python scripts/decode_time.py MODEL.gguf [MODEL2.gguf ...] [--steps 20] [--threads 2]
                                  [--gpu-layers N] [--catch-up 1,2,4,8,16] [--json OUT]

--catch-up also times, per model, one batched call of k new tokens with logits at the last only
(the large model's catch-up in the routed loop) for each k listed, the sizes taking turns; the
ideal speed of routed decoding depends on it (docs/design.md, "Measuring"), and on a GPU its cost need
not grow smoothly with k (llama.cpp switches matrix kernels between batch sizes).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r2r_local.commands import versions  # noqa: E402
from r2r_local.errors import R2RError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="GGUF files")
    p.add_argument("--steps", type=int, default=20, help="timed single-token decodes (default 20)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default 2)")
    p.add_argument("--n-ctx", type=int, default=512)
    p.add_argument("--gpu-layers", type=int, default=0, help="layers on the GPU (-1 = all; default 0)")
    p.add_argument("--catch-up", metavar="K,K,...", help="also time batched calls of these sizes")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    try:
        sizes = [int(k) for k in args.catch_up.split(",")] if args.catch_up else []
    except ValueError:
        p.error(f"--catch-up wants sizes like 1,2,4,8, got {args.catch_up!r}")
    if any(k < 1 for k in sizes):
        p.error("--catch-up sizes must be >= 1")
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.config import ModelSpec
    from r2r_local.shapes.timing import machine, time_catch_up, time_interleaved

    import os

    load_at_start = list(os.getloadavg())
    results = []
    backends = []
    try:
        for path in args.models:
            backends.append(LlamaCppBackend(ModelSpec(path, n_ctx=args.n_ctx, threads=args.threads,
                                                      n_gpu_layers=args.gpu_layers)))
        for b, times in zip(backends, time_interleaved(backends, args.steps)):
            row = {"model": b.path, "size_bytes": b.size_bytes, "n_params": b.n_params,
                   "shape": b.meta("r2r.shape"), **times.summary()}
            results.append(row)
            print(f"{Path(b.path).name:40s} {row['size_bytes'] / 1e9:6.2f} GB  median {row['median_ms']:8.1f} ms/token "
                  f"(min {row['min_ms']:.1f}, p90 {row['p90_ms']:.1f}, n={row['n']})", flush=True)
        for b, row in zip(backends, results):
            if not sizes:
                break
            row["catch_up"] = {str(k): t.summary() for k, t in time_catch_up(b, sizes, args.steps).items()}
            first = row["catch_up"][str(sizes[0])]["median_ms"]
            print(f"{Path(b.path).name}: one call of k new tokens, median ms (and x the k={sizes[0]} call):")
            print("  " + ", ".join(f"k={k} {c['median_ms']:.2f} ({c['median_ms'] / first:.2f})"
                                   for k, c in row["catch_up"].items()), flush=True)
    except R2RError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        for b in backends:
            b.close()
    report = {"config": {"steps": args.steps, "threads": args.threads, "n_ctx": args.n_ctx,
                         "gpu_layers": args.gpu_layers, "catch_up": sizes,
                         "order": "interleaved, one step of each model per round",
                         "loadavg_at_start": load_at_start},
              "versions": versions(), "machine": machine(), "results": results}
    print(json.dumps({k: report[k] for k in ("config", "versions", "machine")}))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
