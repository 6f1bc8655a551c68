"""How often the router decides the same on features from the quantized small GGUF the app
serves as on features from the F32 GGUF it was converted from, over the same tokens; or, with
--router-b, how often two routers (e.g. float32 and int8 weights) decide the same on the same
features.

    python scripts/router_agreement.py --f32 build/demo/small-f32.gguf \
        --quantized models/demo/demo-small-q8_0.gguf --router models/demo/router.onnx --n 200
    python scripts/router_agreement.py --router models/demo/router.onnx --router-b router-int8.onnx

The token sequences are the quantized small model's own greedy answers to held-out demo
problems (what the app serves). Both models are teacher-forced over the same prompt and
answer tokens; at every position each proposes its own argmax, and the router sees each
model's hidden state, the embedding row of its proposed token (from its own GGUF) and its
top-100 logits. Prints decision agreement, probability differences and argmax agreement.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from r2r_local.backends.gguf_file import EmbeddingTable
from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import ModelSpec
from r2r_local.demo import demo_pair, demo_router, task
from r2r_local.config import GenerationSettings
from r2r_local.decode import SMALL, Decoder, Request
from r2r_local.labeling.labeller import teacher_forced
from r2r_local.router import parse_router


def features(path: str, sequences: list[tuple[list[int], list[int]]], threads: int) -> list[tuple[np.ndarray, ...]]:
    """Per sequence (prompt, answer): argmax int64 [n], hidden float32 [n,d], embedding rows of
    the argmax float32 [n,d], top-100 logits float32 [n,100] at the n answer positions."""
    table = EmbeddingTable(path)
    out = []
    with LlamaCppBackend(ModelSpec(path, n_ctx=512, threads=threads, role="small")) as be:
        for prompt, answer in sequences:
            pos = teacher_forced(be.slot, prompt, answer)
            emb = np.stack([table.row(int(t)) for t in pos.argmax])
            out.append((pos.argmax, pos.hidden, emb, pos.topk))
    return out


def compare(p_a: np.ndarray, p_b: np.ndarray, t_a: float, t_b: float) -> dict:
    """Agreement of two sets of escalation probabilities [n], each against its threshold."""
    d_a, d_b = p_a >= t_a, p_b >= t_b
    either = d_a | d_b
    return {"positions": int(len(p_a)), "decision_agreement": float(np.mean(d_a == d_b)),
            "escalations_a": int(d_a.sum()), "escalations_b": int(d_b.sum()), "escalated_by_either": int(either.sum()),
            "agreement_where_either_escalates": float(np.mean((d_a == d_b)[either])) if either.any() else None,
            "p_max_abs_diff": float(np.max(np.abs(p_a - p_b))), "p_median_abs_diff": float(np.median(np.abs(p_a - p_b)))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--f32", help="the F32 small GGUF the quantized one was made from")
    ap.add_argument("--quantized", default=None, help="the served small GGUF (default: the demo's)")
    ap.add_argument("--router", default=None, help="ONNX router (default: the demo's)")
    ap.add_argument("--router-b", help="compare this router with --router on the quantized model's features")
    ap.add_argument("--n", type=int, default=200, help="held-out problems")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if (args.f32 is None) == (args.router_b is None):
        ap.error("give --f32 (quantized vs F32 features) or --router-b (two routers), one of them")
    logging.basicConfig(level=logging.ERROR)  # llama.cpp's info and warnings stay out of the report
    quantized = args.quantized or str(demo_pair().small)
    router = parse_router(str(args.router or demo_router()))
    sequences = []
    with LlamaCppBackend(ModelSpec(quantized, n_ctx=512, threads=args.threads, role="small")) as be:
        decoder = Decoder(be, be)
        for p in task.problems(task.EVAL_SEED, args.n, task.HELDOUT):
            prompt = chat_tokens(be, [Message("user", p.message)])
            gen = decoder.generate(Request(prompt, policy=SMALL, settings=GenerationSettings(200))).run()
            sequences.append((prompt, [e.id for e in gen.events]))
    q = features(quantized, sequences, args.threads)
    p_q = np.concatenate([router.probabilities(h, e, k) for _, h, e, k in q])
    if args.router_b:
        other = parse_router(args.router_b)
        p_b = np.concatenate([other.probabilities(h, e, k) for _, h, e, k in q])
        result = compare(p_q, p_b, router.threshold, other.threshold)
        result.update(n_problems=args.n, quantized=quantized, router_a=str(router.path), router_b=str(other.path),
                      threshold_a=router.threshold, threshold_b=other.threshold)
        what = f"{Path(router.path).name} and {Path(other.path).name} decide the same"
    else:
        f = features(args.f32, sequences, args.threads)
        p_f = np.concatenate([router.probabilities(h, e, k) for _, h, e, k in f])
        result = compare(p_q, p_f, router.threshold, router.threshold)
        result = {("escalations_quantized" if k == "escalations_a" else "escalations_f32" if k == "escalations_b" else k): v
                  for k, v in result.items()}
        argmax_same = np.concatenate([a == b for (a, *_), (b, *_) in zip(q, f)])
        result.update(threshold=router.threshold, argmax_agreement=float(np.mean(argmax_same)), n_problems=args.n,
                      f32=args.f32, quantized=quantized, router=str(router.path))
        what = "router decisions on quantized and F32 features agree"
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        either = result["agreement_where_either_escalates"]
        print(f"{result['positions']} positions of {args.n} held-out answers: {what} at "
              f"{result['decision_agreement']:.2%} ({result['escalated_by_either']} escalated by either, "
              f"agreement there {either:.2%}); |p| diff max {result['p_max_abs_diff']:.4f}, "
              f"median {result['p_median_abs_diff']:.5f}" if either is not None else f"{what}: no escalations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
