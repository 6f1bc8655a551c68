#!/usr/bin/env python3
"""Router cost per token next to one small-model step, side by side in one run (issue 6 item 3).

Per token, interleaved: (a) one single-token decode of the small model with its hidden state,
as the routed loop does it; (b) what routing adds: the top-100 of the step's logits, the sampled
token's input-embedding row read from the small model's GGUF (EmbeddingTable, no row cache:
every read goes to the file), and one call of an ONNX router of the reference architecture
(d=1536, hidden_dims 6 x 1024, expansion 4: 56.3M parameters, random weights) through
OnnxRouter. Prints medians, their ratio, and the config and versions they were measured with.

    python scripts/router_cost.py [--small R1_1.5B_SHAPE.gguf] [--steps 50] [--threads 2]
                                  [--device cpu|cuda|all] [--json OUT]

Without --small an r1-1.5b-shape Q4_K_M GGUF is written to --workdir first (1.12 GB).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from r2r_local.commands import versions  # noqa: E402
from r2r_local.errors import R2RError  # noqa: E402


def _ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def ensure_small(path: str | None, workdir: Path) -> str:
    if path:
        return path
    from r2r_local.shapes import get_shape
    from r2r_local.shapes.writer import write_shape_model

    out = workdir / "r1-1.5b-shape-Q4_K_M.gguf"
    if not out.exists():
        print(f"writing an r1-1.5b-shape Q4_K_M model to {out}", file=sys.stderr)
        write_shape_model(get_shape("r1-1.5b"), "Q4_K_M", out, seed=0)
    return str(out)


def open_routers(workdir: Path, device: str, fp16: bool):
    """OnnxRouter on each wanted device where onnxruntime can run it: {device: router}."""
    import onnxruntime as ort

    from r2r_local.router.onnx import OnnxRouter
    from r2r_local.router.reference_onnx import RouterArch, write_reference_router

    path = workdir / f"reference-router{'-fp16' if fp16 else ''}.onnx"
    if not path.exists():
        write_reference_router(path, RouterArch(), seed=0, fp16=fp16)
    wanted = ["cpu", "cuda"] if device == "all" else [device]
    routers = {}
    for dev in wanted:
        if dev == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            print("cuda: onnxruntime has no CUDA provider here; skipped", file=sys.stderr)
            continue
        os.environ["R2R_ROUTER_DEVICE"] = dev
        router = OnnxRouter(path, n_embd=1536)
        if dev == "cuda" and router.provider != "CUDAExecutionProvider":
            print(f"cuda: the session fell back to {router.provider}; skipped", file=sys.stderr)
            continue
        routers[dev] = router
    return path, routers


def measure(small, table, routers: dict, steps: int, warmup: int = 3) -> dict[str, list[float]]:
    from r2r_local.router.features import topk_logits
    from r2r_local.shapes.timing import prefill

    t: dict[str, list[float]] = {"small_step": [], "topk": [], "embedding_row": []}
    for dev in routers:
        t[f"router_{dev}"] = []
    token = prefill(small)
    rng = np.random.default_rng(0)
    for i in range(warmup + steps):
        s0 = time.perf_counter()
        out = small.decode([token], hidden=True)
        s1 = time.perf_counter()
        topk = topk_logits(out.logits)
        s2 = time.perf_counter()
        # A random row each time (greedy decoding of random weights repeats one token).
        emb = table.row(int(rng.integers(0, small.n_vocab)))
        s3 = time.perf_counter()
        ends = {}
        for dev, router in routers.items():
            r0 = time.perf_counter()
            router.probabilities(out.hidden[None, :], emb[None, :], topk[None, :])
            ends[dev] = time.perf_counter() - r0
        if i >= warmup:
            t["small_step"].append(s1 - s0)
            t["topk"].append(s2 - s1)
            t["embedding_row"].append(s3 - s2)
            for dev, sec in ends.items():
                t[f"router_{dev}"].append(sec)
        token = int(np.argmax(out.logits))
    return t


def report(times: dict[str, list[float]], routers: dict) -> dict:
    med = {k: _ms(v) for k, v in times.items()}
    features = [a + b for a, b in zip(times["topk"], times["embedding_row"])]
    out = {"median_ms": med, "features_ms": _ms(features), "per_device": {}}
    for dev in routers:
        per_token = [f + r for f, r in zip(features, times[f"router_{dev}"])]
        out["per_device"][dev] = {
            "router_plus_features_ms": _ms(per_token),
            "fraction_of_small_step": _ms(per_token) / med["small_step"],
            "fraction_paired": statistics.median(p / s for p, s in zip(per_token, times["small_step"])),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", metavar="PATH", help="an r1-1.5b-shape GGUF (default: write one)")
    p.add_argument("--steps", type=int, default=50, help="timed tokens (default 50)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default 2)")
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                   help="where the router runs (default: every device present)")
    p.add_argument("--fp16", action="store_true", help="router weights in float16")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "r2r-router-cost"))
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        from r2r_local.backends.gguf_file import EmbeddingTable
        from r2r_local.backends.llama_cpp import LlamaCppBackend
        from r2r_local.config import ModelSpec
        from r2r_local.shapes.timing import machine

        small_path = ensure_small(args.small, workdir)
        router_path, routers = open_routers(workdir, args.device, args.fp16)
        if not routers:
            raise R2RError("no device could run the router")
        with LlamaCppBackend(ModelSpec(small_path, n_ctx=512, threads=args.threads, role="small"),
                             want_hidden=True) as small:
            if small.n_embd != 1536:
                raise R2RError(f"{small_path}: n_embd {small.n_embd}, expected 1536 (an r1-1.5b shape)")
            table = EmbeddingTable(small_path, cache_rows=0)
            times = measure(small, table, routers, args.steps)
            config = {"small": small_path, "small_shape": small.meta("r2r.shape"),
                      "small_size_bytes": small.size_bytes, "small_n_params": small.n_params,
                      "small_n_vocab": small.n_vocab, "threads": args.threads, "steps": args.steps,
                      "router": str(router_path), "router_bytes": router_path.stat().st_size,
                      "router_provider": {d: r.provider for d, r in routers.items()},
                      "router_threads": os.environ.get("R2R_ROUTER_THREADS", "1"),
                      "router_fp16": args.fp16, "embedding_row_cache": "off (every read from the file)"}
    except R2RError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = {"config": config, "versions": versions(), "machine": machine(), **report(times, routers)}
    _print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _print(r: dict) -> None:
    med = r["median_ms"]
    print(f"small step (r1-1.5b shape, decode 1 token + hidden): {med['small_step']:8.2f} ms")
    print(f"  top-100 of {r['config']['small_n_vocab']} logits:            {med['topk']:8.3f} ms")
    print(f"  embedding row from the GGUF:              {med['embedding_row']:8.3f} ms")
    for dev, d in r["per_device"].items():
        print(f"  router call ({dev}):                       {med['router_' + dev]:8.2f} ms")
        print(f"router + features ({dev}): {d['router_plus_features_ms']:.2f} ms per token = "
              f"{d['fraction_of_small_step']:.3f} x one small step "
              f"(median of per-token ratios {d['fraction_paired']:.3f})")
    print(json.dumps({k: r[k] for k in ("config", "versions", "machine")}))


if __name__ == "__main__":
    sys.exit(main())
