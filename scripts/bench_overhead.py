#!/usr/bin/env python3
"""System overhead of the routed loop, measured side by side in one run (docs/design.md, "Measuring").

Same model on both sides (SmolLM2-135M-Instruct by default), greedy, fixed number of tokens:
llama-cpp-python's own generation loop against r2r's engine with routers slm, llm and
random:0.15. Runs are interleaved round by round so machine noise hits all modes alike; medians
are reported. Prints a table and writes the numbers with their config and versions as JSON.

    python scripts/bench_overhead.py [--model PATH] [--tokens 128] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r2r_local.chat import Message, chat_tokens  # noqa: E402
from r2r_local.commands import versions as _versions  # noqa: E402
from r2r_local.config import GenerationSettings, ModelSpec, SamplingParams  # noqa: E402
from r2r_local.decode import Request  # noqa: E402
from r2r_local.defaults import smollm2_path  # noqa: E402
from r2r_local.pair import load_pair  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper and a storm."
ROUTERS = ["slm", "llm", "random:0.15"]


def run_llama_cpp_python(llm, tokens: list[int], n: int) -> tuple[float, float, int]:
    """(end-to-end seconds, seconds after the first token, tokens) of Llama.generate, greedy."""
    llm.reset()  # no prompt-prefix reuse between rounds: both sides evaluate the whole prompt
    start = time.perf_counter()
    first = None
    count = 0
    for _ in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
        count += 1
        if first is None:
            first = time.perf_counter()
        if count == n:
            break
    end = time.perf_counter()
    return end - start, end - first, count


def run_engine(pair, router: str, tokens: list[int], n: int) -> tuple[float, float, int, dict]:
    request = Request(tokens, pair.router(router, seed=0), sampling=SamplingParams(),
                      settings=GenerationSettings(max_tokens=n))
    pair.small.slot.truncate(0)  # like llm.reset(): no prompt reuse from the previous round
    pair.large.slot.truncate(0)
    start = time.perf_counter()
    first = None
    gen = pair.generate(request)
    for _ in gen:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return end - start, end - first, len(gen.events), gen.stats.as_dict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="GGUF used on both sides (default: SmolLM2)")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    import llama_cpp

    model = args.model or str(smollm2_path())
    n_ctx = 1024
    spec = dict(n_ctx=n_ctx, threads=args.threads)
    pair = load_pair(ModelSpec(model, role="small", **spec), ModelSpec(model, role="large", **spec))
    llm = llama_cpp.Llama(model, n_ctx=n_ctx, n_threads=args.threads, n_threads_batch=args.threads,
                          flash_attn=True, verbose=False)
    tokens = chat_tokens(pair.small, [Message("user", PROMPT)])
    results: dict[str, list] = {m: [] for m in ["llama-cpp-python", *ROUTERS]}
    for r in range(args.rounds):
        total, steady, n = run_llama_cpp_python(llm, tokens, args.tokens)
        results["llama-cpp-python"].append({"total_s": total, "steady_s": steady, "n": n})
        for router in ROUTERS:
            total, steady, n, stats = run_engine(pair, router, tokens, args.tokens)
            results[router].append({"total_s": total, "steady_s": steady, "n": n, "stats": stats})
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def med(mode: str, key: str) -> float:
        return statistics.median(x[key] for x in results[mode])

    base_tps = statistics.median(x["n"] / x["total_s"] for x in results["llama-cpp-python"])
    rows = []
    print(f"\n{'mode':<18}{'tok/s':>8}{'ms/token':>10}{'vs llama-cpp-python':>21}"
          f"{'share':>7}{'small ms':>10}{'router ms':>10}{'large ms':>10}{'other ms':>10}")
    for mode, runs in results.items():
        tps = statistics.median(x["n"] / x["total_s"] for x in runs)
        ms_tok = statistics.median(1000 * x["steady_s"] / max(1, x["n"] - 1) for x in runs)
        row = {"mode": mode, "tokens_per_s": tps, "ms_per_token_steady": ms_tok, "ratio": tps / base_tps,
               "n_tokens": statistics.median(x["n"] for x in runs)}
        if "stats" in runs[0]:
            per = lambda k: statistics.median(1000 * x["stats"][k] / x["stats"]["n_tokens"] for x in runs)  # noqa: E731
            row.update(large_share=statistics.median(x["stats"]["large_share"] for x in runs),
                       small_ms=per("time_small_s"), router_ms=per("time_router_s"),
                       large_ms=per("time_large_s"), other_ms=per("time_other_s"),
                       mean_catch_up=statistics.median(x["stats"]["mean_catch_up"] for x in runs))
            print(f"{mode:<18}{tps:>8.1f}{ms_tok:>10.2f}{row['ratio']:>21.3f}{row['large_share']:>7.2f}"
                  f"{row['small_ms']:>10.2f}{row['router_ms']:>10.3f}{row['large_ms']:>10.2f}{row['other_ms']:>10.3f}")
        else:
            print(f"{mode:<18}{tps:>8.1f}{ms_tok:>10.2f}{1.0:>21.3f}")
        rows.append(row)
    doc = {"rows": rows, "runs": results,
           "config": {"model": model, "tokens": args.tokens, "rounds": args.rounds, "threads": args.threads,
                      "n_ctx": n_ctx, "prompt": PROMPT, "prompt_tokens": len(tokens), "sampling": "greedy"},
           "versions": _versions()}
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2))
        print(f"\nwrote {args.out}", file=sys.stderr)
    pair.close()
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
