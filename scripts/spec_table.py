#!/usr/bin/env python3
"""Every decoding mode side by side from ONE run on this machine, with llama.cpp's own speculative
decoding, and a labelled projection to the R2R paper's rates.

    python scripts/spec_table.py --shape-small Q05.gguf --shape-large R7B.gguf [--demo-n 100]
        [--k 4,8] [--agree 0.89] [--share 0.124] [--shape-prompts 3] [--shape-tokens 48]
        [--threads 1] [--out docs/results/NAME]          (writes NAME.json and NAME.md)

1. The demo pair (real agreement) with its shipped router: small, large, r2r, r2r+verify,
   r2r+audit and spec:K on N held-out problems, and llama-server with the small model as its
   draft (`-md`, llama.cpp's speculative decoding) for the same K on the same problems; ours and
   the peer's run in alternating chunks of problems, so the machine's noise falls on both.
2. A shape-true pair (random weights, `scripts/make_shape_model.py`), which agrees on nothing:
   synthetic agreement (r2r_local/decode/policies.py, Policy.agree) times the calls and rewinds
   of a pair that agrees at the paper's rate: small, large, r2r with random:S, r2r+verify@1 (the
   router misses nothing) and r2r+verify@A (the tokens it lets through agree no more often than
   any token: the worst case), spec:K@A, on built-in prompts.
3. Each pair's per-call costs, measured in the same run, through the cost model
   (r2r_local/cost_model.py): the model next to each measured row (a check of the model), then at
   the paper's rates with the R1-1.5B/32B shape costs measured on an H200
   (docs/results/2026-11-27-h200-r1-shapes-bench.json: a small step, and large calls of 1 and 9
   tokens). Those rows are projections and are labelled so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from peer_spec import Peer, peer_args, server_binary  # noqa: E402
from r2r_local.bench import DEFAULT_PROMPTS, Bench, ModeTotals, Problem, call_times  # noqa: E402
from r2r_local.chat import Message, chat_tokens  # noqa: E402
from r2r_local.commands import versions  # noqa: E402
from r2r_local.config import ModelSpec  # noqa: E402
from r2r_local.cost_model import Costs, line, tokens_per_s  # noqa: E402
from r2r_local.demo import task  # noqa: E402
from r2r_local.demo.paths import demo_pair, demo_router  # noqa: E402
from r2r_local.pair import LoadedPair, load_pair  # noqa: E402
from r2r_local.router import Step  # noqa: E402

H200 = ROOT / "docs/results/2026-11-27-h200-r1-shapes-bench.json"
PAPER = {"agree": 0.89, "share": 0.124}


class CallCosts:
    """Per-call seconds sampled between the parts of a run (so they see the machine as the modes
    did), reported as medians of everything sampled."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def measure(self, pair: LoadedPair, router_spec: str, prompt: list[int], ks: tuple[int, int], repeats: int) -> None:
        for key, values in sample_costs(pair, router_spec, prompt, ks, repeats).items():
            self.samples.setdefault(key, []).extend(values)

    def medians(self) -> dict:
        """{"t_small_s", "t_router_s", "large_call_s": {"last": {k: s}, "all": {k: s}}, "n_samples"}"""
        med = {key: statistics.median(v) for key, v in self.samples.items()}
        calls: dict[str, dict[int, float]] = {"last": {}, "all": {}}
        for key, value in med.items():
            if key.startswith("large_"):
                _, kind, k = key.split("_")
                calls[kind][int(k)] = value
        return {"t_small_s": med["small"], "t_router_s": med["router"], "large_call_s": calls,
                "n_samples": len(self.samples["small"])}


def sample_costs(pair: LoadedPair, router_spec: str, prompt: list[int], ks: tuple[int, int], repeats: int) -> dict:
    """Seconds of a small step, a router decision, and large calls of k tokens with the last
    output only and with an output at each, for both k in `ks` (after `prompt`), `repeats` each."""
    small, large = pair.small.slot, pair.large.slot
    router = pair.router(router_spec, seed=99)  # its own instance: timing must not move a mode's stream
    if router.needs_hidden:
        small.enable_hidden()
    small.truncate(0)
    out = small.decode(prompt, hidden=router.needs_hidden)
    token = int(out.logits.argmax())
    found = {"small": call_times(lambda: (small.decode([token], hidden=router.needs_hidden),
                                     small.truncate(len(prompt))), repeats)}
    step = Step(out.logits, out.hidden, token, pair.small.embedding_row)
    found["router"] = call_times(lambda: router.decide(step), repeats * 5)
    large.truncate(0)
    large.decode(prompt[:-1])
    for k in ks:
        extra = (prompt[-1:] + [token] * k)[:k]
        found[f"large_last_{k}"] = call_times(lambda: (large.decode(extra), large.truncate(len(prompt) - 1)), repeats)
        found[f"large_all_{k}"] = call_times(lambda: (large.decode_all(extra, outputs=k),
                                                 large.truncate(len(prompt) - 1)), repeats)
    small.truncate(0)
    large.truncate(0)
    return found


def cost_model(measured: dict, small_row: dict) -> Costs:
    """The measured calls as a Costs; the loop's own cost per token is what the small-only mode
    spent per token besides its steps (so the model's small row matches by construction)."""
    (k1, k2), last, every = sorted(measured["large_call_s"]["last"]), measured["large_call_s"]["last"], \
        measured["large_call_s"]["all"]
    t_token = max(0.0, 1.0 / small_row["tokens_per_s"] - measured["t_small_s"])
    measured["t_token_s"] = t_token
    return Costs(measured["t_small_s"], measured["t_router_s"], *line(k1, last[k1], k2, last[k2]),
                 *line(k1, every[k1], k2, every[k2]), t_token)


def modeled(costs: Costs, mode: str, share: float) -> float | None:
    """The cost model's tokens/s for a bench mode name (None where it has no model: audit)."""
    base, _, agree = mode.partition("@")
    if base in ("small", "large", "r2r", "r2r+verify") or base.startswith("spec:"):
        return tokens_per_s(costs, base, share=share, agree=float(agree) if agree else 1.0)
    return None


def demo_section(args: argparse.Namespace, binary: str) -> dict:
    paths = demo_pair()
    router_spec = str(demo_router())
    spec = dict(n_ctx=1024, threads=args.threads)
    pair = load_pair(ModelSpec(str(paths.small), role="small", **spec), ModelSpec(str(paths.large), role="large", **spec))
    held = task.problems(task.EVAL_SEED, args.demo_n, task.HELDOUT)
    problems = [Problem(p.message, str(p.answer)) for p in held]
    prompts = [chat_tokens(pair.small, [Message("user", p.message)]) for p in held]
    modes = ["small", "large", "r2r", "r2r+verify", "r2r+audit"] + [f"spec:{k}" for k in args.k]
    router = pair.router(router_spec)
    own = {m: pair.router(router_spec) for m in modes if m != "r2r"}
    bench = Bench(pair, router, max_tokens=200, checker=lambda text, answer: task.answer_matches(answer, text),
                  mode_routers=own)
    peers = {"llama.cpp large alone": None, **{f"llama.cpp spec:{k}": k for k in args.k}}
    servers = {name: Peer(binary, peer_args(str(paths.small), str(paths.large), args.threads, k), prompts[0])
               for name, k in peers.items()}
    calls = CallCosts()
    try:
        bench.run(problems[:1], modes)  # warm-up, not counted
        totals: dict[str, ModeTotals] = {}
        for begin in range(0, len(problems), args.chunk):
            chunk = slice(begin, begin + args.chunk)
            bench.run(problems[chunk], modes, totals=totals)
            for peer in servers.values():
                peer.run(prompts[chunk], held[chunk], 200)
            calls.measure(pair, router_spec, prompts[begin], (1, 9), args.repeats)
            print(f"demo: {min(begin + args.chunk, len(problems))}/{len(problems)} problems", file=sys.stderr)
        costs = calls.medians()
    finally:
        for peer in servers.values():
            peer.stop()
        pair.close()
    rows = {m: totals[m].summary() for m in modes}
    model = cost_model(costs, totals["small"].summary())
    share = rows["r2r"]["large_share"]
    for m, r in rows.items():
        r["modeled_tokens_per_s"] = modeled(model, m, share if "r2r" in m else 0.0)
    return {"pair": f"demo ({paths.small.name} + {paths.large.name})", "router": _shown(router_spec),
            "n_problems": len(problems), "rows": rows, "peer": {n: p.result() for n, p in servers.items()},
            "costs": costs}


def shape_section(args: argparse.Namespace) -> dict:
    spec = dict(n_ctx=1024, threads=args.threads)
    pair = load_pair(ModelSpec(args.shape_small, role="small", **spec), ModelSpec(args.shape_large, role="large", **spec))
    router_spec = f"random:{args.share}"
    a = args.agree
    modes = ["small", "large", "r2r", "r2r+verify@1", f"r2r+verify@{a}"] + [f"spec:{k}@{a}" for k in args.k]
    problems = [Problem(p) for p in DEFAULT_PROMPTS[: args.shape_prompts]]
    own = {m: pair.router(router_spec, seed=0) for m in modes if m != "r2r"}
    bench = Bench(pair, pair.router(router_spec, seed=0), max_tokens=args.shape_tokens, mode_routers=own)
    calls = CallCosts()
    try:
        bench.run(problems[:1], ["small", "large"])  # warm-up: pages the weights in
        totals: dict[str, ModeTotals] = {}
        for i, problem in enumerate(problems):
            bench.run([problem], modes, totals=totals)
            prompt = chat_tokens(pair.small, [Message("user", problem.prompt)])
            calls.measure(pair, router_spec, prompt, (1, 9), args.shape_repeats)
            print(f"shapes: {i + 1}/{len(problems)} prompts", file=sys.stderr)
        costs = calls.medians()
    finally:
        pair.close()
    rows = {m: totals[m].summary() for m in modes}
    model = cost_model(costs, totals["small"].summary())
    for m, r in rows.items():
        r["modeled_tokens_per_s"] = modeled(model, m, args.share if "r2r" in m else 0.0)
    return {"pair": f"shape-true {Path(args.shape_small).name} + {Path(args.shape_large).name}",
            "router": router_spec, "n_prompts": len(problems), "max_tokens": args.shape_tokens,
            "rows": rows, "costs": costs}


def _shown(path: str) -> str:
    """A path inside the project relative to it (the results are read on other machines)."""
    p = Path(path)
    return str(p.relative_to(ROOT)) if p.is_absolute() and p.is_relative_to(ROOT) else path


def projection(ks: list[int]) -> dict:
    """The R1-1.5B/32B shapes at the paper's rates, from the per-call costs measured on an H200."""
    doc = json.loads(H200.read_text())["modes"]
    t_small = doc["small"]["ms_small_per_token"] / 1000
    t_router = doc["r2r"]["ms_router_per_token"] / 1000
    k9 = doc["r2r"]["ideal_parts"]
    a, b = line(1, doc["large"]["ms_large_per_token"] / 1000, k9["catch_up_k"], k9["t_large_call_s"])
    t_token = doc["r2r"]["ms_other_per_token"] / 1000
    costs = Costs(t_small, t_router, a, b, a, b, t_token)  # no all-outputs call was measured there: La = L
    share, agree = PAPER["share"], PAPER["agree"]
    rows = {"large": tokens_per_s(costs, "large"), f"r2r (share {share})": tokens_per_s(costs, "r2r", share=share)}
    for a_u in (1.0, 0.97, agree):
        rows[f"r2r+verify (share {share}, unrouted agree {a_u})"] = tokens_per_s(costs, "r2r+verify", share=share,
                                                                                 agree=a_u)
    for k in sorted(set(ks) | {2, 4, 8, 16}):
        rows[f"spec:{k} (acceptance {agree})"] = tokens_per_s(costs, f"spec:{k}", agree=agree)
    return {"label": "PROJECTION, not a measurement: the cost model at the paper's rates with per-call costs of "
                     "the R1-1.5B/32B shape models (Q4_K_M) measured on one H200 on 2026-11-27",
            "source": str(H200.relative_to(ROOT)), "costs": costs.__dict__, "tokens_per_s": rows,
            "caveat": "only large calls of 1 and 9 tokens (last output only) were measured there; spec:K and "
                      "verify need an output at every position, which costs a little more: the projection "
                      "favours them"}


def markdown(doc: dict) -> str:
    out = [f"# Decoding modes side by side ({doc['date']}, {doc['machine']}, --threads {doc['threads']})", ""]
    for key in ("demo", "shapes"):
        s = doc[key]
        out += [f"## {s['pair']}, router {s['router']}", "",
                "| mode | accuracy | tok/s measured | tok/s cost model | large share | large calls/token | "
                "kept per call | rewinds | missed divergences |", "|---|---|---|---|---|---|---|---|---|"]
        for m, r in s["rows"].items():
            acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
            mod = "-" if r["modeled_tokens_per_s"] is None else f"{r['modeled_tokens_per_s']:,.1f}"
            drafts = "verify" in m or m.startswith("spec:")  # the other modes do not count these
            kept, rewinds = (f"{r['mean_kept_per_call']:.2f}", r["rewinds"]) if drafts else ("-", "-")
            missed = r["missed_divergences"] if "verify" in m or "audit" in m else "-"
            out.append(f"| {m} | {acc} | {r['tokens_per_s']:,.1f} | {mod} | {r['large_share']:.3f} | "
                       f"{r['large_calls_per_token']:.3f} | {kept} | {rewinds} | {missed} |")
        for name, r in s.get("peer", {}).items():
            acc = "-" if r["draft_acceptance"] is None else f"{r['draft_acceptance']:.2f}"
            out.append(f"| {name} (llama-server) | {r['accuracy']:.3f} | {r['server_tokens_per_s']:,.1f} "
                       f"(server timings; wall {r['wall_tokens_per_s']:,.1f}) | - | - | - | acceptance {acc} | - | - |")
        out.append("")
    p = doc["projection"]
    out += [f"## {p['label']}", "", "| mode | tok/s (projected) |", "|---|---|"]
    out += [f"| {m} | {v:,.1f} |" for m, v in p["tokens_per_s"].items()]
    out += ["", p["caveat"], ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape-small", required=True)
    ap.add_argument("--shape-large", required=True)
    ap.add_argument("--demo-n", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=10, help="demo problems per alternation with the peer")
    ap.add_argument("--k", default="4,8", help="draft lengths (comma-separated)")
    ap.add_argument("--agree", type=float, default=PAPER["agree"])
    ap.add_argument("--share", type=float, default=PAPER["share"])
    ap.add_argument("--shape-prompts", type=int, default=3)
    ap.add_argument("--shape-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20, help="timings of each call per demo chunk")
    ap.add_argument("--shape-repeats", type=int, default=3, help="timings of each call per shape prompt")
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args()
    args.k = [int(x) for x in args.k.split(",")]
    import platform

    doc = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()} CPU",
           "threads": args.threads, "command": " ".join(sys.argv), "versions": versions()}
    doc["demo"] = demo_section(args, server_binary())
    doc["shapes"] = shape_section(args)
    doc["projection"] = projection(args.k)
    text = markdown(doc)
    print(text)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(doc, indent=2, default=str))
        Path(args.out + ".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
