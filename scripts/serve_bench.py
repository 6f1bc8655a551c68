"""The server against in-process decoding, measured side by side in one run.

    python scripts/serve_bench.py --small M.gguf --large M.gguf --threads 1 --out result.json

1. One streaming client: for each prompt, the in-process pair (what `r2r generate` runs) and
   then `r2r serve` (a subprocess with the same models and flags, through the real `openai`
   client), alternating so that both see the same machine load. Reported per side: decode
   tokens/s ((tokens - 1) / (last token - first token), as the caller sees them), end-to-end
   tokens/s (tokens / (last token - request)), time to first token, the core's own decode rate
   (Stats.tokens_per_s, inside the server process for the server); and whether both wrote the
   same tokens.
2. N concurrent streaming clients (default 4), `--rounds` times: total tokens/s over the wall
   time, latency p50/p95 (request -> last token) and time to first token p50/p95.
Greedy decoding; every prompt goes through the small model's chat template on both sides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Write a short story about a cat who learns to swim.",
    "Explain how a bicycle works to a child.",
    "Give me five tips for learning a new language.",
    "Describe the water cycle.",
    "What should I pack for a week of hiking?",
    "Write a poem about the sea.",
    "Why is the sky blue?",
    "How do I make a cup of tea?",
]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", required=True)
    p.add_argument("--large", required=True)
    p.add_argument("--router", default="slm")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--prompts", type=int, default=6, help="prompts of the one-client comparison")
    p.add_argument("--demo-problems", action="store_true",
                   help="ask held-out demo addition problems instead of the general prompts (for the demo pair)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each prompt per side (the order alternates)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2, help="rounds of concurrent clients")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args()


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation."""
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def timing(t0: float, stamps: list[float], n: int) -> dict[str, float]:
    """Figures of one generation of `n` tokens from the request time and the arrival times of its
    text (one per token in process; over HTTP a chunk may carry several tokens)."""
    decode = (n - 1) / (stamps[-1] - stamps[0]) if n > 1 and stamps[-1] > stamps[0] else 0.0
    return {"tokens": n, "ttft_s": stamps[0] - t0, "decode_tokens_per_s": decode,
            "e2e_tokens_per_s": n / (stamps[-1] - t0), "latency_s": stamps[-1] - t0}


def in_process(pair: Any, router: Any, prompt: str, max_tokens: int) -> tuple[dict[str, float], list[int]]:
    from r2r_local.chat import Message, chat_tokens
    from r2r_local.config import GenerationSettings, SamplingParams
    from r2r_local.decode import Request, routed

    t0 = time.perf_counter()
    tokens = chat_tokens(pair.small, [Message("user", prompt)])
    gen = pair.generate(Request(tokens, router, routed(), sampling=SamplingParams(),
                                settings=GenerationSettings(max_tokens)))
    stamps, ids = [], []
    for event in gen:
        stamps.append(time.perf_counter())
        ids.append(event.id)
    return {**timing(t0, stamps, len(ids)), "engine_tokens_per_s": gen.stats.tokens_per_s}, ids


def over_http(client: Any, prompt: str, max_tokens: int) -> tuple[dict[str, float], list[int]]:
    """One streaming chat completion; a token's time is when its chunk arrives."""
    t0 = time.perf_counter()
    stream = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"return_tokens": True})
    stamps, ids, engine = [], [], 0.0
    for chunk in stream:
        if chunk.choices and (chunk.choices[0].delta.content or (chunk.choices[0].delta.model_extra or {})
                              .get("reasoning_content")):
            stamps.append(time.perf_counter())
        if chunk.usage is not None:
            ids, engine = chunk.model_extra["r2r"]["tokens"], chunk.model_extra["r2r"]["tokens_per_s"]
    return {**timing(t0, stamps, len(ids)), "engine_tokens_per_s": engine}, ids


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "r2r_local.cli", "serve", "--small", args.small, "--large", args.large, "--router",
           args.router, "--threads", str(args.threads), "--n-ctx", str(args.n_ctx), "--port", "0",
           "--max-queue", str(args.clients)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on " in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, line.split("listening on ")[1].split()[0]
    raise SystemExit(f"r2r serve did not start (exit {proc.wait()})")


def prompt_list(args: argparse.Namespace) -> list[str]:
    if not args.demo_problems:
        return PROMPTS
    from r2r_local.demo.task import EVAL_SEED, problems

    return [p.message for p in problems(EVAL_SEED, max(args.prompts, args.clients * args.rounds))]


def one_client(args: argparse.Namespace, pair: Any, router: Any, client: Any) -> dict[str, Any]:
    rows = []
    in_process(pair, router, "Hello", 8)  # warm both sides once (first calls allocate)
    over_http(client, "Hello", 8)
    for prompt in prompt_list(args)[: args.prompts]:
        for rep in range(args.repeat):  # A B, then B A: a drift in the machine's load hits both sides alike
            order = ["in_process", "server"] if rep % 2 == 0 else ["server", "in_process"]
            got = {side: (in_process(pair, router, prompt, args.max_tokens) if side == "in_process"
                          else over_http(client, prompt, args.max_tokens)) for side in order}
            rows.append({"prompt": prompt, "first": order[0], "in_process": got["in_process"][0],
                         "server": got["server"][0], "same_tokens": got["in_process"][1] == got["server"][1]})
    summary = {}
    for side in ("in_process", "server"):
        runs = [r[side] for r in rows]
        summary[side] = {
            "tokens": sum(r["tokens"] for r in runs),
            "decode_tokens_per_s": sum(r["tokens"] - 1 for r in runs) / sum(r["latency_s"] - r["ttft_s"] for r in runs),
            "e2e_tokens_per_s": sum(r["tokens"] for r in runs) / sum(r["latency_s"] for r in runs),
            "ttft_ms_median": 1000 * statistics.median(r["ttft_s"] for r in runs),
            # the core's own figure (Stats.tokens_per_s: tokens over its decode phase), inside the server for "server"
            "engine_tokens_per_s_median": statistics.median(r["engine_tokens_per_s"] for r in runs),
        }
    for key in ("decode_tokens_per_s", "e2e_tokens_per_s"):
        summary[f"server_share_of_{key}"] = summary["server"][key] / summary["in_process"][key]
    summary["median_run_ratio_decode"] = statistics.median(
        r["server"]["decode_tokens_per_s"] / r["in_process"]["decode_tokens_per_s"] for r in rows)
    summary["all_same_tokens"] = all(r["same_tokens"] for r in rows)
    return {"summary": summary, "runs": rows}


def _ask(client: Any, prompt: str, max_tokens: int, barrier: threading.Barrier, out: list) -> None:
    barrier.wait()
    out.append(over_http(client, prompt, max_tokens)[0])


def concurrent(args: argparse.Namespace, client: Any) -> dict[str, Any]:
    runs: list[dict[str, float]] = []
    walls = []
    for round_ in range(args.rounds):
        asked = prompt_list(args)
        prompts = [asked[(round_ * args.clients + i) % len(asked)] for i in range(args.clients)]
        out: list[dict[str, float]] = []
        barrier = threading.Barrier(args.clients)
        threads = [threading.Thread(target=_ask, args=(client, p, args.max_tokens, barrier, out)) for p in prompts]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        walls.append(time.perf_counter() - t0)
        runs += out
    latency, ttft = [r["latency_s"] for r in runs], [r["ttft_s"] for r in runs]
    return {"clients": args.clients, "requests": len(runs), "tokens": sum(r["tokens"] for r in runs),
            "total_tokens_per_s": sum(r["tokens"] for r in runs) / sum(walls),
            "latency_s_p50": pct(latency, 0.5), "latency_s_p95": pct(latency, 0.95),
            "ttft_s_p50": pct(ttft, 0.5), "ttft_s_p95": pct(ttft, 0.95), "runs": runs}


def main() -> None:
    args = parse()
    import openai

    from r2r_local.commands import versions
    from r2r_local.config import ModelSpec
    from r2r_local.pair import load_pair

    spec = dict(n_ctx=args.n_ctx, threads=args.threads)
    pair = load_pair(ModelSpec(args.small, role="small", **spec), ModelSpec(args.large, role="large", **spec))
    router = pair.router(args.router)
    proc, url = start_server(args)
    try:
        client = openai.OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=600)
        doc = {"command": " ".join(["python", *sys.argv]), "config": {k: str(v) for k, v in vars(args).items()},
               "versions": versions(), "one_client": one_client(args, pair, router, client),
               "concurrent": concurrent(args, client)}
    finally:
        proc.terminate()
        proc.wait(60)
        pair.close()
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    s, c = doc["one_client"]["summary"], doc["concurrent"]
    print(f"one client: in-process {s['in_process']['decode_tokens_per_s']:.1f} tok/s, server "
          f"{s['server']['decode_tokens_per_s']:.1f} tok/s ({100 * s['server_share_of_decode_tokens_per_s']:.1f}%); "
          f"TTFT {s['in_process']['ttft_ms_median']:.1f} / {s['server']['ttft_ms_median']:.1f} ms; "
          f"same tokens: {s['all_same_tokens']}")
    print(f"{c['clients']} clients: {c['total_tokens_per_s']:.1f} tok/s total, latency p50 {c['latency_s_p50']:.2f} s, "
          f"p95 {c['latency_s_p95']:.2f} s")


if __name__ == "__main__":
    main()
