#!/usr/bin/env python3
"""The GPU fit plan of the known Qwen3 pairs on cards of given free memory, from shape-true
headers (no download, no GPU): each GGUF of models/known_models.toml is written as a header-only
file of its shape and mix (the real tensor table: names, shapes, llama.cpp's types), and
r2r_local.fit plans it as `r2r models pull` / `r2r doctor --assume-free-gb` would.

    python scripts/qwen3_fit_table.py --free-gb 8 12 [--n-ctx 4096] [--json]

The router counts as the reference architecture's fp32 ONNX for the small model's hidden size
(its real size; the published checkpoints are not stored here). GB = 1e9 bytes, as
--assume-free-gb reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r2r_local.catalog import load_catalog  # noqa: E402
from r2r_local.fit import layout_from_gguf, plan_fit  # noqa: E402
from r2r_local.router.reference_onnx import RouterArch  # noqa: E402
from r2r_local.shapes import get_shape  # noqa: E402
from r2r_local.shapes.writer import write_shape_header  # noqa: E402

# Catalog file key -> (shape, mix).
SHAPES = {"qwen3-0.6b-q8_0": ("qwen3-0.6b", "Q8_0"), "qwen3-1.7b-q8_0": ("qwen3-1.7b", "Q8_0"),
          "qwen3-4b-q4_k_m": ("qwen3-4b", "Q4_K_M"), "qwen3-8b-q4_k_m": ("qwen3-8b", "Q4_K_M"),
          "qwen3-32b-q4_k_m": ("qwen3-32b", "Q4_K_M")}


def plans(free_gb: list[float], n_ctx: int, tmp: Path) -> list[dict]:
    """One row per (Qwen3 pair, free memory): the plan's layers and bytes."""
    layouts = {}
    for key, (name, quant) in SHAPES.items():
        layouts[key] = layout_from_gguf(write_shape_header(get_shape(name), quant, tmp / f"{key}.gguf"))
    rows = []
    for pair in load_catalog().values():
        if pair.small.key not in SHAPES:
            continue
        small, large = layouts[pair.small.key], layouts[pair.large.key]
        router = 4 * RouterArch(d=small.n_embd).n_params
        for gb in free_gb:
            plan = plan_fit(small, large, n_ctx=n_ctx, free_bytes=int(gb * 1e9), router_bytes=router)
            rows.append({"pair": pair.name, "free_gb": gb, "n_ctx": n_ctx, "router_bytes": router,
                         "large_layers_on_gpu": min(plan.large.gpu_layers, plan.large.n_layer),
                         "large_layers": plan.large.n_layer, "large_head_on_gpu": plan.large.gpu_layers > plan.large.n_layer,
                         "gpu_gb": round(plan.gpu_bytes / 1e9, 2), "large_cpu_gb": round(plan.large.cpu_bytes / 1e9, 2),
                         "router_on_gpu": plan.router_on_gpu, "lines": plan.lines()})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--free-gb", type=float, nargs="+", default=[8.0, 12.0], help="free GPU memory, GB (1e9 bytes)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context length (default 4096)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    args = p.parse_args(argv)
    if any(gb <= 0 for gb in args.free_gb) or args.n_ctx < 1:
        print("error: --free-gb and --n-ctx must be positive", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = plans(args.free_gb, args.n_ctx, Path(tmp))
    if args.json:
        json.dump({"rows": rows}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for r in rows:
        print(f"{r['pair']} at {r['free_gb']:g} GB free (n_ctx {r['n_ctx']}):")
        for line in r["lines"]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
