"""How often the router decides the same on features from the quantized small GGUF the app
serves as on features from the F32 GGUF it was converted from, over the same tokens.

    python scripts/router_agreement.py --f32 build/demo/small-f32.gguf \
        --quantized models/demo/demo-small-q8_0.gguf --router models/demo/router.onnx --n 200

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

import numpy as np

from r2r_local.backends.gguf_file import EmbeddingTable
from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import ModelSpec
from r2r_local.demo import demo_pair, demo_router, task
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.engine import Engine
from r2r_local.labeling.labeller import teacher_forced
from r2r_local.router import parse_router
from r2r_local.router.baselines import SmallOnly


def features(path: str, sequences: list[tuple[list[int], list[int]]], threads: int) -> list[tuple[np.ndarray, ...]]:
    """Per sequence (prompt, answer): argmax int64 [n], hidden float32 [n,d], embedding rows of
    the argmax float32 [n,d], top-100 logits float32 [n,100] at the n answer positions."""
    table = EmbeddingTable(path)
    out = []
    with LlamaCppBackend(ModelSpec(path, n_ctx=512, threads=threads, role="small")) as be:
        for prompt, answer in sequences:
            pos = teacher_forced(be, prompt, answer)
            emb = np.stack([table.row(int(t)) for t in pos.argmax])
            out.append((pos.argmax, pos.hidden, emb, pos.topk))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--f32", required=True, help="the F32 small GGUF the quantized one was made from")
    ap.add_argument("--quantized", default=None, help="the served small GGUF (default: the demo's)")
    ap.add_argument("--router", default=None, help="ONNX router (default: the demo's)")
    ap.add_argument("--n", type=int, default=200, help="held-out problems")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # llama.cpp's info and warnings stay out of the report
    quantized = args.quantized or str(demo_pair().small)
    router = parse_router(str(args.router or demo_router()))
    sequences = []
    with LlamaCppBackend(ModelSpec(quantized, n_ctx=512, threads=args.threads, role="small")) as be:
        engine = Engine(be, be, SmallOnly(), n_shared=be.n_vocab)
        for p in task.problems(task.EVAL_SEED, args.n, task.HELDOUT):
            prompt = chat_tokens(be, [Message("user", p.message)])
            gen = engine.generate(prompt, SamplingParams(), GenerationSettings(200)).run()
            sequences.append((prompt, [e.id for e in gen.events]))
    q = features(quantized, sequences, args.threads)
    f = features(args.f32, sequences, args.threads)
    p_q = np.concatenate([router.probabilities(h, e, k) for _, h, e, k in q])
    p_f = np.concatenate([router.probabilities(h, e, k) for _, h, e, k in f])
    argmax_same = np.concatenate([a == b for (a, *_), (b, *_) in zip(q, f)])
    d_q, d_f = p_q >= router.threshold, p_f >= router.threshold
    result = {
        "positions": int(len(p_q)),
        "threshold": router.threshold,
        "decision_agreement": float(np.mean(d_q == d_f)),
        "escalations_quantized": int(d_q.sum()),
        "escalations_f32": int(d_f.sum()),
        "escalated_by_either": int((d_q | d_f).sum()),
        "agreement_where_either_escalates": float(np.mean((d_q == d_f)[d_q | d_f])) if (d_q | d_f).any() else None,
        "p_max_abs_diff": float(np.max(np.abs(p_q - p_f))),
        "p_median_abs_diff": float(np.median(np.abs(p_q - p_f))),
        "argmax_agreement": float(np.mean(argmax_same)),
        "n_problems": args.n,
        "f32": args.f32,
        "quantized": quantized,
        "router": str(router.path),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['positions']} positions of {args.n} held-out answers: router decisions agree at "
              f"{result['decision_agreement']:.2%} (escalations: quantized {result['escalations_quantized']}, "
              f"F32 {result['escalations_f32']}; agreement where either escalates "
              f"{result['agreement_where_either_escalates']:.2%}); |p| diff max {result['p_max_abs_diff']:.4f}, "
              f"median {result['p_median_abs_diff']:.5f}; small-model argmax agreement {result['argmax_agreement']:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
