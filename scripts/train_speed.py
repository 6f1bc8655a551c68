"""Training speed of a demo-shaped model on this CPU: float32 against bfloat16 autocast.

    python scripts/train_speed.py --threads 2 --shape 192,5,6,512

Times full optimizer steps (forward, backward, AdamW) of a randomly initialised Qwen2 model on
random tokens, after 3 warm-up steps, and prints tokens per second for each precision. This
is the measurement behind scripts/build_demo.py's bf16 setting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time


def tokens_per_s(shape: tuple[int, int, int, int], bf16: bool, batch: int, seq_len: int, steps: int) -> float:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    hidden, layers, heads, ffn = shape
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=400, hidden_size=hidden, intermediate_size=ffn,
                                         num_hidden_layers=layers, num_attention_heads=heads,
                                         num_key_value_heads=heads, tie_word_embeddings=True))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 400, (batch, seq_len))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * seq_len * steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", default="192,5,6,512", help="hidden,layers,heads,ffn (default: the large demo model)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.shape.split(","))
    result = {"threads": args.threads, "shape": args.shape, "batch": args.batch, "seq_len": args.seq_len}
    for name, bf16 in (("float32", False), ("bfloat16", True)):
        result[f"{name}_tokens_per_s"] = round(tokens_per_s(shape, bf16, args.batch, args.seq_len, args.steps))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
