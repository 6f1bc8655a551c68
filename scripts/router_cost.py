#!/usr/bin/env python3
"""Router cost per token next to one small-model step, side by side in one run (issue 6 item 3).

Per token, interleaved: (a) one single-token decode of the small model with its hidden state,
as the routed loop does it; (b) what routing adds: the top-100 of the step's logits, the sampled
token's input-embedding row read from the small model's GGUF (EmbeddingTable, no row cache:
every read goes to the file), and one call of an ONNX router of the reference architecture
(d=1536, hidden_dims 6 x 1024, expansion 4: 56.3M parameters, random weights) through
OnnxRouter, on every device asked for. Prints medians, their ratio, config and versions.

    python scripts/router_cost.py [--small R1_1.5B_SHAPE.gguf] [--steps 50] [--threads 2]
                                  [--device cpu|cuda|all] [--torch-cuda] [--router-only] [--int8] [--json OUT]

Without --small an r1-1.5b-shape Q4_K_M GGUF is written to --workdir first (1.12 GB).
--router-only skips llama.cpp (random logits and hidden states stand in for the small model's,
and without --small no embedding row is read): for a GPU machine without llama-cpp-python.
--torch-cuda also runs the same router (same weights, read from the ONNX file) with PyTorch on
CUDA, replayed as a CUDA graph with the inputs copied in and the logit copied out per call, for
machines whose onnxruntime has no CUDA provider. torch is imported only then.
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
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from r2r_local.errors import R2RError  # noqa: E402

D, N_VOCAB = 1536, 151936
RouterCall = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


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


def reference_router(workdir: Path, fp16: bool) -> Path:
    from r2r_local.router.reference_onnx import RouterArch, write_reference_router

    path = workdir / f"reference-router{'-fp16' if fp16 else ''}.onnx"
    if not path.exists():
        write_reference_router(path, RouterArch(), seed=0, fp16=fp16)
    return path


def onnx_routers(path: Path, device: str, suffix: str = "") -> tuple[dict[str, RouterCall], dict[str, str]]:
    """OnnxRouter on each wanted device where onnxruntime really runs it there."""
    import onnxruntime as ort

    from r2r_local.router.onnx import OnnxRouter, _gpu_present

    wanted = (["cpu", "cuda"] if _gpu_present() else ["cpu"]) if device == "all" else [device]
    calls, providers = {}, {}
    for dev in wanted:
        if dev == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            print("onnxruntime has no CUDA provider here; ort-cuda skipped", file=sys.stderr)
            continue
        os.environ["R2R_ROUTER_DEVICE"] = dev
        router = OnnxRouter(path, n_embd=D)
        if dev == "cuda" and router.provider != "CUDAExecutionProvider":
            print(f"the CUDA session fell back to {router.provider}; ort-cuda skipped", file=sys.stderr)
            continue
        calls[f"ort-{dev}{suffix}"] = lambda h, e, k, r=router: float(r.probabilities(h[None], e[None], k[None])[0])
        providers[f"ort-{dev}{suffix}"] = router.provider
    return calls, providers


def torch_cuda_router(path: Path, fp16: bool) -> RouterCall:
    """The ONNX file's weights in a PyTorch forward on CUDA, captured as one CUDA graph."""
    import re

    import onnx
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper

    dtype = torch.float16 if fp16 else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False
    w = {re.sub(r"_\d+$", "", i.name): torch.tensor(numpy_helper.to_array(i).astype(np.float32),
                                                     device="cuda", dtype=dtype)
         for i in onnx.load(str(path)).graph.initializer}
    n_blocks = len({k.split(".")[2] for k in w if k.startswith("backbone.blocks.")})

    def lin(x, stem):
        return x @ w[stem + ".weight"] + w[stem + ".bias"]

    def forward(h, e, k):
        x = lin(torch.cat([h, e, lin(k, "logits_projection")], -1), "combined_projection")
        x = lin(x, "backbone.input_projection")
        for i in range(n_blocks):
            s = f"backbone.blocks.{i}"
            y = F.layer_norm(x, x.shape[-1:], w[s + ".layer_norm.weight"], w[s + ".layer_norm.bias"])
            y = lin(F.gelu(lin(y, s + ".mlp.0")), s + ".mlp.3")
            x = (lin(x, s + ".dim_change") if s + ".dim_change.weight" in w else x) + y
        x = F.layer_norm(x, x.shape[-1:], w["backbone.output_layer.0.weight"], w["backbone.output_layer.0.bias"])
        return lin(x, "backbone.output_layer.1").float()

    host = [torch.zeros((1, n), dtype=torch.float32).pin_memory() for n in (D, D, 100)]
    dev = [t.to("cuda", dtype=dtype) for t in host]
    out_host = torch.zeros((1, 1), dtype=torch.float32).pin_memory()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            forward(*dev)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        out_dev = forward(*dev)

    def call(h: np.ndarray, e: np.ndarray, k: np.ndarray) -> float:
        for src, pinned, d in zip((h, e, k), host, dev):
            pinned[0].copy_(torch.from_numpy(src))
            d.copy_(pinned, non_blocking=True)
        graph.replay()
        out_host.copy_(out_dev, non_blocking=True)
        torch.cuda.synchronize()
        return float(torch.sigmoid(out_host)[0, 0])

    return call


def measure(small, table, routers: dict[str, RouterCall], steps: int, warmup: int = 3) -> dict[str, list[float]]:
    """Per-token seconds of each part; `small` None: random logits and hidden stand in."""
    from r2r_local.router.features import topk_logits

    t: dict[str, list[float]] = {"small_step": [], "topk": [], "embedding_row": []}
    t.update({name: [] for name in routers})
    rng = np.random.default_rng(0)
    if small is not None:
        from r2r_local.shapes.timing import prefill

        token = prefill(small)
    for i in range(warmup + steps):
        s0 = time.perf_counter()
        if small is not None:
            out = small.slot.decode([token], hidden=True)
            logits, hidden = out.logits, out.hidden
        else:
            logits = rng.normal(size=N_VOCAB).astype(np.float32)
            hidden = rng.normal(size=D).astype(np.float32)
        s1 = time.perf_counter()
        topk = topk_logits(logits)
        s2 = time.perf_counter()
        # A random row each time (greedy decoding of random weights repeats one token).
        emb = table.row(int(rng.integers(0, table.n_rows))) if table else rng.normal(size=D).astype(np.float32)
        s3 = time.perf_counter()
        ends = {}
        for name, call in routers.items():
            r0 = time.perf_counter()
            call(hidden, emb, topk)
            ends[name] = time.perf_counter() - r0
        if i >= warmup:
            for key, sec in (("small_step", s1 - s0), ("topk", s2 - s1), ("embedding_row", s3 - s2), *ends.items()):
                t[key].append(sec)
        if small is not None:
            token = int(np.argmax(logits))
    if small is None:
        t.pop("small_step")
    if table is None:
        t.pop("embedding_row")
    return t


def summarize(times: dict[str, list[float]], routers: dict[str, RouterCall]) -> dict:
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    features = [a + b for a, b in zip(times["topk"], times.get("embedding_row", [0.0] * len(times["topk"])))]
    out = {"median_ms": med, "features_ms": statistics.median(features) * 1e3, "per_router": {}}
    for name in routers:
        per_token = [f + r for f, r in zip(features, times[name])]
        row = {"router_plus_features_ms": statistics.median(per_token) * 1e3}
        if "small_step" in med:
            row["fraction_of_small_step"] = row["router_plus_features_ms"] / med["small_step"]
            row["fraction_paired"] = statistics.median(p / s for p, s in zip(per_token, times["small_step"]))
        out["per_router"][name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", metavar="PATH", help="an r1-1.5b-shape GGUF (default: write one)")
    p.add_argument("--steps", type=int, default=50, help="timed tokens (default 50)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default 2)")
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                   help="onnxruntime devices for the router (default: cpu, and cuda where a GPU is)")
    p.add_argument("--torch-cuda", action="store_true", help="also time the router in PyTorch on CUDA")
    p.add_argument("--router-only", action="store_true", help="no llama.cpp: random logits/hidden")
    p.add_argument("--fp16", action="store_true", help="router weights in float16")
    p.add_argument("--int8", action="store_true",
                   help="also time the router with int8 weights (scripts/export.py router-int8) beside it")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "r2r-router-cost"))
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args, workdir)
    except R2RError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def run(args: argparse.Namespace, workdir: Path) -> dict:
    from r2r_local.commands import versions
    from r2r_local.config import ModelSpec
    from r2r_local.shapes.timing import machine

    router_path = reference_router(workdir, args.fp16)
    routers, providers = onnx_routers(router_path, args.device)
    if args.int8:
        from r2r_local.export.router import quantize_router_int8

        int8_path = router_path.with_name(router_path.stem + "-int8.onnx")
        if not int8_path.exists():
            quantize_router_int8(router_path, int8_path)
        more, more_providers = onnx_routers(int8_path, args.device, suffix="-int8")
        routers.update(more)
        providers.update(more_providers)
    if args.torch_cuda:
        import torch

        routers["torch-cuda-graph"] = torch_cuda_router(router_path, args.fp16)
        providers["torch-cuda-graph"] = f"torch {torch.__version__} on {torch.cuda.get_device_name()}"
    config = {"steps": args.steps, "router": str(router_path), "router_bytes": router_path.stat().st_size,
              "router_fp16": args.fp16, "router_int8_beside": args.int8, "routers": providers,
              "ort_router_threads": os.environ.get("R2R_ROUTER_THREADS", "1")}
    table = None
    if args.small or not args.router_only:
        from r2r_local.backends.gguf_file import EmbeddingTable

        small_path = ensure_small(args.small, workdir)
        table = EmbeddingTable(small_path, cache_rows=0)
        config.update(small=small_path, embedding_row_cache="off (every read from the file)")
    if args.router_only:
        config["small"] = None if table is None else config["small"]
        times = measure(None, table, routers, args.steps)
    else:
        from r2r_local.backends.llama_cpp import LlamaCppBackend

        spec = ModelSpec(config["small"], n_ctx=512, threads=args.threads, role="small")
        with LlamaCppBackend(spec, want_hidden=True) as small:
            if small.n_embd != D:
                raise R2RError(f"{spec.path}: n_embd {small.n_embd}, expected {D} (an r1-1.5b shape)")
            config.update(small_shape=small.meta("r2r.shape"), small_size_bytes=small.size_bytes,
                          small_n_params=small.n_params, small_n_vocab=small.n_vocab, threads=args.threads)
            times = measure(small, table, routers, args.steps)
    return {"config": config, "versions": versions(), "machine": machine(), **summarize(times, routers)}


def _print(r: dict) -> None:
    med = r["median_ms"]
    if "small_step" in med:
        print(f"small step ({r['config'].get('small_shape')} shape, 1 token + hidden): {med['small_step']:9.2f} ms")
    print(f"  top-100 of {N_VOCAB} logits:        {med['topk']:9.3f} ms")
    if "embedding_row" in med:
        print(f"  embedding row from the GGUF:          {med['embedding_row']:9.3f} ms")
    for name, row in r["per_router"].items():
        line = f"router {name:18s} call {med[name]:8.3f} ms; with features {row['router_plus_features_ms']:8.3f} ms per token"
        if "fraction_of_small_step" in row:
            line += (f" = {row['fraction_of_small_step']:.3f} x one small step"
                     f" (median of per-token ratios {row['fraction_paired']:.3f})")
        print(line)
    print(json.dumps({k: r[k] for k in ("config", "versions", "machine")}))


if __name__ == "__main__":
    sys.exit(main())
