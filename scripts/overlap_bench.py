#!/usr/bin/env python3
"""What overlapping the router with the small model's next step buys, measured side by side.

Builds a router of the reference architecture (hidden_dims 6 x 1024, expansion 4; random
weights, so only its cost is real) for the small model's hidden size, sets its threshold so
that it escalates about --share of the small model's own tokens, and runs `r2r bench` with the
modes small, large, r2r and overlap in one run (interleaved prompt by prompt, same prompts,
greedy). Both routed modes make the same decisions; the overlap mode runs the small model's
step on its proposal while the router decides.

    python scripts/overlap_bench.py [--small S.gguf] [--large L.gguf] [--share 0.12] [--threads 1]
                                    [--n 5] [--max-tokens 128] [--gpu-layers N] [--int8] [--modes M,...]
                                    [--work DIR] [--json OUT]

Defaults: SmolLM2-135M-Instruct on both sides (the large model then always agrees, so no
speculative step is ever redone), one llama.cpp thread (the router's onnxruntime thread gets
the other core of a 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from r2r_local.errors import R2RError  # noqa: E402


def calibrate(small_path: str, router_path: Path, share: float, threads: int, n_prompts: int, n_tokens: int,
              gpu_layers: int) -> float:
    """The threshold at which the router escalates `share` of the small model's own greedy tokens
    on the bench's prompts (random weights: only the share is meaningful, not the choices)."""
    from r2r_local.bench import DEFAULT_PROMPTS
    from r2r_local.chat import Message, chat_tokens
    from r2r_local.config import GenerationSettings, ModelSpec, SamplingParams
    from r2r_local.decode import Request
    from r2r_local.pair import load_pair
    from r2r_local.router.onnx import OnnxRouter

    spec = dict(n_ctx=1024, threads=threads, n_gpu_layers=gpu_layers)
    pair = load_pair(ModelSpec(small_path, role="small", **spec), ModelSpec(small_path, role="large", **spec))
    try:
        probs: list[float] = []
        router = OnnxRouter(router_path, n_embd=pair.small.n_embd)

        class Recording:
            name, needs_hidden, threshold, may_escalate = "recording", True, None, False

            def decide(self, step, threshold=None):
                decision = router.decide(step)
                probs.append(decision.p)
                return type(decision)(False, decision.p)

        for text in DEFAULT_PROMPTS[:n_prompts]:
            prompt = chat_tokens(pair.small, [Message("user", text)])
            pair.generate(Request(prompt, Recording(), sampling=SamplingParams(),
                                  settings=GenerationSettings(n_tokens))).run()
    finally:
        pair.close()
    threshold = float(np.quantile(np.array(probs), 1.0 - share))
    return min(max(threshold, 1e-6), 1 - 1e-6)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", help="small GGUF (default SmolLM2-135M-Instruct)")
    p.add_argument("--large", help="large GGUF (default: the small one)")
    p.add_argument("--share", type=float, default=0.12, help="large-model share to calibrate for (default 0.12)")
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    p.add_argument("--n", type=int, default=5, help="prompts (built-in ones; default 5)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--gpu-layers", type=int, default=None,
                   help="small model layers on the GPU (default: all on a GPU build of llama.cpp, else 0); "
                        "the large model's come from the fit plan")
    p.add_argument("--int8", action="store_true", help="the router with int8 weights (scripts/export.py router-int8)")
    p.add_argument("--modes", default="small,large,r2r,overlap",
                   help="r2r bench modes (default small,large,r2r,overlap; add ahead to time writing ahead too)")
    p.add_argument("--work", help="folder for the router (default: a temporary one)")
    p.add_argument("--json", metavar="OUT", help="also write r2r bench's JSON here")
    args = p.parse_args(argv)
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    from r2r_local.backends.gguf_file import read_header
    from r2r_local.backends.llama_cpp import supports_gpu_offload
    from r2r_local.defaults import smollm2_path
    from r2r_local.router.reference_onnx import RouterArch, write_reference_router

    small = args.small or str(smollm2_path())
    large = args.large or small
    gpu_layers = args.gpu_layers if args.gpu_layers is not None else (-1 if supports_gpu_offload() else 0)
    work = Path(args.work or tempfile.mkdtemp(prefix="r2r-overlap-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        d = read_header(small).arch_int("embedding_length")
        if not d:
            raise R2RError(f"{small}: no embedding_length in its header")
        router = write_reference_router(work / f"reference-router-d{d}.onnx", RouterArch(d=d))
        if args.int8:
            from r2r_local.export.router import quantize_router_int8

            router = quantize_router_int8(router, work / f"reference-router-d{d}-int8.onnx").onnx_path
        threshold = calibrate(small, router, args.share, args.threads, args.n, args.max_tokens, gpu_layers)
    except R2RError as e:
        print(f"overlap_bench: {e}", file=sys.stderr)
        return 1
    print(f"router: reference architecture, d={d}, {RouterArch(d=d).n_params / 1e6:.1f}M parameters"
          f"{' (int8 weights)' if args.int8 else ''}, "
          f"threshold {threshold:.6f} for a share of ~{args.share}", file=sys.stderr)
    cmd = [sys.executable, "-m", "r2r_local.cli", "bench", "--small", small, "--large", large,
           "--router", f"{router}@{threshold:.6f}", "--modes", args.modes, "--n", str(args.n),
           "--max-tokens", str(args.max_tokens), "--threads", str(args.threads), "--n-ctx", "1024",
           "--small-gpu-layers", str(gpu_layers)]
    if args.json:
        proc = subprocess.run([*cmd, "--json"], capture_output=True, text=True)
        if proc.returncode == 0:
            Path(args.json).write_text(proc.stdout)
            doc = json.loads(proc.stdout)
            for mode in ("overlap", "ahead"):
                o = doc["modes"].get(mode)
                if o and "speedup_vs_r2r" in o:
                    print(f"{mode} against r2r: {o['speedup_vs_r2r']:.2f}x; r2r {doc['modes']['r2r']['tokens_per_s']:.1f} "
                          f"tok/s, {mode} {o['tokens_per_s']:.1f} tok/s at share {o['large_share']:.3f}")
        else:
            sys.stderr.write(proc.stderr)
        return proc.returncode
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
