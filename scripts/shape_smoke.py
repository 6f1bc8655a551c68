#!/usr/bin/env python3
"""Smoke check of shape-true GGUFs: each loads in llama.cpp and samples N tokens from its own
chat template (random weights: random text), and every model pairs with the first one under
r2r's vocabulary check (padding rows may differ).

    python scripts/shape_smoke.py MODEL.gguf [MODEL2.gguf ...] [--tokens 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from r2r_local.errors import R2RError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.chat import Message, chat_tokens
    from r2r_local.config import ModelSpec
    from r2r_local.pair import load_pair

    try:
        for path in args.models:
            with LlamaCppBackend(ModelSpec(path, n_ctx=256, threads=args.threads)) as b:
                prompt = chat_tokens(b, [Message("user", "Tell me a story.")])
                out, rng, generated = b.slot.decode(prompt), np.random.default_rng(0), []
                for _ in range(args.tokens):
                    probs = np.exp(out.logits - out.logits.max())
                    generated.append(int(rng.choice(len(probs), p=probs / probs.sum())))
                    out = b.slot.decode([generated[-1]])
                text = b"".join(b.token_bytes(t) for t in generated).decode("utf-8", "replace")
                print(f"{path}: {b.n_vocab} rows, {b.n_params} params, {len(prompt)} prompt tokens -> {text[:60]!r}")
        for other in args.models[1:]:
            spec = dict(n_ctx=64, threads=args.threads)
            pair = load_pair(ModelSpec(args.models[0], role="small", **spec), ModelSpec(other, role="large", **spec))
            print(f"pair {args.models[0]} + {other}: shared {pair.n_shared} "
                  f"({pair.small.n_vocab} / {pair.large.n_vocab} rows)")
            pair.close()
    except R2RError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
