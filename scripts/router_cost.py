#!/usr/bin/env python3
"""The reference-size router's cost per token on one device, measured with PyTorch.

For the GPU check (scripts/gpu_check.sh), where onnxruntime-gpu may not be installed: the same
network as the reference router (DESIGN.md section 1: d=1536, hidden_dims 6 x 1024, expansion 4,
56.3M parameters), random weights, batch 1, timed as eager fp32, eager fp16 (CUDA only) and one
CUDA graph replay (CUDA only, what the reference does per batch size). Also the CPU-side feature
extraction: top-100 of 151936 logits with numpy. Prints one JSON document.

    python scripts/router_cost.py [--device cuda|cpu] [--iters 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np


def build(d: int = 1536, dims: tuple[int, ...] = (1024,) * 6, expansion: int = 4):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, h: int, h_out: int) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(h)
            self.mlp = nn.Sequential(nn.Linear(h, expansion * h), nn.GELU(), nn.Linear(expansion * h, h_out))
            self.skip = nn.Linear(h, h_out) if h != h_out else nn.Identity()

        def forward(self, x):
            return self.skip(x) + self.mlp(self.norm(x))

    class Router(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.logits_projection = nn.Linear(100, d)
            self.combined_projection = nn.Linear(3 * d, dims[0])
            self.input_projection = nn.Linear(dims[0], dims[0])
            self.blocks = nn.Sequential(*[Block(a, b) for a, b in zip((dims[0],) + dims[:-1], dims)])
            self.out = nn.Sequential(nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], 1))

        def forward(self, hidden, token_embedding, topk_logits):
            x = torch.cat([hidden, token_embedding, self.logits_projection(topk_logits)], dim=-1)
            return self.out(self.blocks(self.input_projection(self.combined_projection(x))))

    return Router()


def _median_ms(fn, iters: int, sync) -> float:
    for _ in range(10):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("router_cost: torch sees no CUDA device", file=sys.stderr)
        return 1
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = build().to(dev).eval()
    n_params = sum(p.numel() for p in model.parameters())
    x = [torch.randn(1, 1536, device=dev), torch.randn(1, 1536, device=dev), torch.randn(1, 100, device=dev)]
    out = {"device": str(dev), "device_name": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "params": n_params, "batch": 1, "iters": args.iters}
    with torch.inference_mode():
        out["eager_fp32_ms"] = _median_ms(lambda: model(*x), args.iters, sync)
        if dev.type == "cuda":
            half = build().to(dev).half().eval()
            xh = [t.half() for t in x]
            out["eager_fp16_ms"] = _median_ms(lambda: half(*xh), args.iters, sync)
            graph = torch.cuda.CUDAGraph()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    model(*x)
            torch.cuda.current_stream().wait_stream(stream)
            with torch.cuda.graph(graph):
                model(*x)
            out["cuda_graph_fp32_ms"] = _median_ms(graph.replay, args.iters, sync)
    logits = np.random.default_rng(0).standard_normal(151936).astype(np.float32)

    def topk() -> None:
        idx = np.argpartition(logits, -100)[-100:]
        np.sort(logits[idx])

    out["topk100_cpu_ms"] = _median_ms(topk, args.iters, lambda: None)
    best = min(v for k, v in out.items() if k.endswith("_ms") and k != "topk100_cpu_ms")
    out["router_plus_features_ms"] = best + out["topk100_cpu_ms"]
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
