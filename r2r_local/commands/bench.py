"""`r2r bench`: small-only, large-only and routed decoding side by side, with the ideal speed."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from r2r_local.commands import add_model_flags, check_flags, load_pair_for, router_spec, versions
from r2r_local.config import as_dict
from r2r_local.errors import ConfigError

HELP_FIELDS = """\
output fields (per mode in --json "modes"; the table shows the main ones):
  accuracy             share of problems whose final answer (the last integer of the answer,
                       think section excluded) equals the expected one; null without answers
  n_problems           prompts run in this mode
  n_tokens             generated tokens, all prompts together
  tokens_per_s         n_tokens / decode time (decode = after the small model read the prompt;
                       the large model's catch-ups, prompt included, are inside it)
  median_tokens_per_s  median over prompts of each generation's tokens/s
  large_share          share of tokens chosen by the large model (0 for small, 1 for large)
  large_calls          large-model calls; mean_catch_up: tokens evaluated per call
  ms_small_per_token   small-model decode time per generated token (ms); likewise
  ms_router_per_token  the router with its features, ms_large_per_token the large model's
  ms_other_per_token   catch-ups, and ms_other_per_token sampling, text and the loop itself
  peak_rss_mb          the process's peak resident memory after this mode (VmHWM, MB)
  gpu_mem_mb           GPU memory in use after this mode (nvidia-smi), null without a GPU
with a served large model (--large http://HOST:PORT) only:
  large_server_calls   the server's calls (one per catch-up or large step, one per judged
                       position with verify and spec:K, plus the routed modes' prompt reads)
  ms_round_trip_per_call  a call's wall time as r2r sees it (HTTP, JSON, network included)
  ms_server_per_call   the server's own compute per call (its timings: prompt_ms + predicted_ms)
  ms_overhead_per_call their difference: what serving over HTTP adds per call (both null for
                       vLLM, whose answers carry no compute time)
r2r, overlap, ahead and overlap+ahead (the routed modes) only:
  ideal_tokens_per_s   1 / (t_small_step + t_router + large_share x t_large_call), each term
                       measured alone in the same run; t_large_call at the mean catch-up length;
                       for overlap(+ahead) max(t_small_step, t_router) replaces their sum
  efficiency           tokens_per_s / ideal_tokens_per_s
  speedup_vs_large     tokens_per_s / large tokens_per_s
  speedup_vs_r2r       (overlap, ahead, overlap+ahead) tokens_per_s / r2r tokens_per_s
  ideal_parts          the measured terms (seconds) and the catch-up length k
  redone_small_steps   (overlap) speculative small steps dropped because the large model
                       chose another token than the small model's proposal
  draft_kept           (ahead, verify, spec:K) tokens the small model drafted and that were
  draft_dropped        kept because the large model agreed / dropped because it did not
  rewinds              (ahead, verify, spec:K) drafts cut because the large model disagreed
  missed_divergences   (r2r+audit, r2r+verify) small-model tokens the large model would have
                       chosen otherwise at its next call (audit counts them; verify corrects them)
  large_calls_per_token large-model calls per generated token
  mean_kept_per_call   (verify, spec:K) drafted tokens kept per large-model call
the overlap mode (not run by default: --modes small,large,r2r,overlap) is r2r with the small
model's next step run while the router decides; its ms_small_per_token counts only the wait
for that step after the router has decided. The ahead mode (--modes ...,ahead) is r2r with the
small model writing ahead during the large model's calls; its parts overlap in time, so its
ms_*_per_token can add up to more than its time per token, and its efficiency can exceed 1.
overlap+ahead does both at once. r2r+verify keeps the small model's tokens as drafts until the
next large call checks them (a divergence the router missed is corrected there); r2r+audit is
plain r2r that counts those divergences; spec:K is speculative decoding (K drafted tokens verified
in one large call, lossless). spec:K@A and r2r+verify@A are for shape-true random models, which
agree on nothing: the large model keeps each small-model token it checks with probability A (a
seeded coin, not the tokens), so the calls and rewinds of a pair agreeing that often are timed.
--out DIR writes bench.json (the same document), tokens.csv (one row per generated token:
mode, problem, index, id, source, p, t_small, t_router, t_large, caught_up) and, when
matplotlib is installed, share_along_answer.png (large-model share by token position)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure small-only, large-only and routed decoding side by side",
                       description="Run small-only, large-only and R2R on the same prompts (greedy, same max "
                                   "tokens, interleaved) and report speed, large-model share and accuracy.",
                       epilog=HELP_FIELDS, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    p.add_argument("--router", default=None, metavar="ROUTER",
                   help="router of the r2r mode: slm | llm | random:P | entropy:T | path.onnx[@T] "
                        "(default: the configured router, else random:0.12; the demo router with --demo)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompts", metavar="FILE", help="prompts, one per line")
    src.add_argument("--problems", metavar="FILE.jsonl", help='checkable problems: {"prompt": str, "answer": int} per line '
                          '(compared with the last integer of the answer)')
    p.add_argument("--n", type=int, default=None, metavar="N",
                   help="use the first N prompts/problems (--demo alone: N held-out problems, default 100)")
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="per generation (default 128; 200 with --demo, whose answers run to ~160)")
    p.add_argument("--modes", default="small,large,r2r",
                   help="comma-separated subset of small,large,r2r,overlap,ahead,overlap+ahead,r2r+verify,r2r+audit,"
                        "spec:K; spec:K@A and r2r+verify@A with a synthetic agreement A (default small,large,r2r)")
    p.add_argument("--seed", type=int, default=0, help="seed of random routers (0 <= S < 2**32)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--out", metavar="DIR", help="also write bench.json, tokens.csv and plots here")
    p.set_defaults(func=run)


def _problems(args: argparse.Namespace) -> tuple[list[Any], str]:
    from r2r_local.bench import DEFAULT_PROMPTS, Problem, load_problems, load_prompts

    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if args.demo and not (args.problems or args.prompts):
        from r2r_local.demo import task

        n = args.n or 100
        held = task.problems(task.EVAL_SEED, n, task.HELDOUT)
        return [Problem(p.message, str(p.answer)) for p in held], f"{n} held-out demo problems (seed {task.EVAL_SEED})"
    if args.problems:
        problems, source = load_problems(args.problems), args.problems
    elif args.prompts:
        if args.prompts.endswith(".jsonl"):
            raise ConfigError(f"--prompts {args.prompts}: a .jsonl file holds problems, give it with --problems "
                              "(--prompts reads one prompt per line)")
        problems, source = load_prompts(args.prompts), args.prompts
    else:
        problems, source = [Problem(p) for p in DEFAULT_PROMPTS], "built-in prompts"
    if args.n is not None:
        problems = problems[: args.n]
    return problems, source


def run(args: argparse.Namespace) -> int:
    from r2r_local.bench import MODES, Bench
    from r2r_local.decode import policy_for_mode

    check_flags(args)
    if args.out:
        _check_out(Path(args.out))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes:
        raise ConfigError(f"--modes must be a comma-separated subset of {','.join(MODES)}, got '{args.modes}'")
    for m in modes:
        try:
            policy_for_mode(m)
        except ConfigError as e:
            raise ConfigError(f"--modes must be a comma-separated list of modes, got '{args.modes}': {e}") from None
    twice = sorted({m for m in modes if modes.count(m) > 1})
    if twice:  # a mode run twice per prompt would double its totals and its rows in tokens.csv
        raise ConfigError(f"--modes names {', '.join(twice)} more than once ('{args.modes}')")
    if args.max_tokens is None:
        args.max_tokens = 200 if args.demo else 128
    if args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    problems, source = _problems(args)
    small_spec, large_spec, pair = load_pair_for(args)
    try:
        spec = router_spec(args, "random:0.12")
        router = pair.router(spec, seed=args.seed)
        checker = None
        if args.demo:
            from r2r_local.demo.task import answer_matches

            checker = lambda text, answer: answer_matches(answer, text)  # noqa: E731
        own = {m: pair.router(spec, seed=args.seed) for m in modes if m != "r2r" and policy_for_mode(m).routed}
        bench = Bench(pair, router, max_tokens=args.max_tokens, checker=checker, mode_routers=own)
        for m in modes:
            pair.warn_threads(policy_for_mode(m))
        bench.run(problems[:1], modes)  # warm-up: pages the weights in; not counted
        bench.records.clear()
        totals = bench.run(problems, modes, progress=_progress)
        report = {m: totals[m].summary() for m in modes}
        _add_ideal(bench, problems[0], report)
        doc = {"modes": report, "config": {
            "small": as_dict(small_spec), "large": as_dict(large_spec), "router": router.name,
            "threshold": router.threshold, "problems": source, "n_problems": len(problems),
            "max_tokens": args.max_tokens, "modes": modes, "seed": args.seed, "sampling": "greedy", "params_small": pair.small.n_params,
            "params_large": pair.large.n_params, "versions": versions()}}
    finally:
        pair.close()
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_table(doc))
    if args.out:
        _write_out(Path(args.out), doc, bench.records)
    return 0


def _add_ideal(bench: Any, problem: Any, report: dict[str, dict[str, Any]]) -> None:
    """Ideal speed, efficiency and speedups of the routed modes (the terms measured once)."""
    from r2r_local.bench import ROUTED, ideal_tokens_per_s

    large = report.get("large", {}).get("tokens_per_s")
    parts_at: dict[int, dict[str, float]] = {}  # by catch-up length (the same for both modes when
    for m in (m for m in ROUTED if m in report):  # they made the same decisions, as they should)
        r = report[m]
        k = max(1, round(r["mean_catch_up"]))
        parts = parts_at[k] = parts_at.get(k) or bench.ideal_parts(problem, k)
        r["ideal_tokens_per_s"] = ideal_tokens_per_s(parts, r["large_share"], overlap=m.startswith("overlap"))
        r["efficiency"] = r["tokens_per_s"] / r["ideal_tokens_per_s"]
        r["ideal_parts"] = parts
        if large:
            r["speedup_vs_large"] = r["tokens_per_s"] / large
    for m in ("overlap", "ahead", "overlap+ahead"):
        if m in report and report.get("r2r", {}).get("tokens_per_s"):
            report[m]["speedup_vs_r2r"] = report[m]["tokens_per_s"] / report["r2r"]["tokens_per_s"]


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\rbench: {done}/{total} prompts", end="" if done < total else "\n", file=sys.stderr, flush=True)
    elif done == total or done % max(1, total // 10) == 0:
        print(f"bench: {done}/{total} prompts", file=sys.stderr, flush=True)


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(doc: dict[str, Any]) -> str:
    cols = [("accuracy", "accuracy", ".3f"), ("tok/s", "tokens_per_s", ".2f"), ("share", "large_share", ".3f"),
            ("calls", "large_calls", "d"), ("catch-up", "mean_catch_up", ".2f"), ("small ms", "ms_small_per_token", ".2f"),
            ("router ms", "ms_router_per_token", ".3f"), ("large ms", "ms_large_per_token", ".2f"),
            ("other ms", "ms_other_per_token", ".3f"), ("peak RSS MB", "peak_rss_mb", ".0f")]
    lines = [f"{'mode':<13}" + "".join(f"{c[0]:>12}" for c in cols)]
    for mode, row in doc["modes"].items():
        lines.append(f"{mode:<13}" + "".join(f"{_fmt(row.get(key), spec):>12}" for _, key, spec in cols))
    for mode in ("r2r", "overlap", "ahead", "overlap+ahead"):
        r = doc["modes"].get(mode)
        if not r or "ideal_tokens_per_s" not in r:
            continue
        p = r["ideal_parts"]
        lines.append(f"{mode} ideal {r['ideal_tokens_per_s']:.2f} tok/s (small step {1000 * p['t_small_step_s']:.2f} ms, "
                     f"router {1000 * p['t_router_s']:.3f} ms, large call of {p['catch_up_k']} tokens "
                     f"{1000 * p['t_large_call_s']:.2f} ms): efficiency {r['efficiency']:.2f}")
        if "speedup_vs_large" in r:
            lines.append(f"{mode} speedup over large-only: {r['speedup_vs_large']:.2f}x")
        if "speedup_vs_r2r" in r:
            what = (f"{r['redone_small_steps']} speculative small steps redone" if mode == "overlap" else
                    f"{r['draft_kept']} tokens written ahead kept, {r['draft_dropped']} dropped")
            lines.append(f"{mode} against r2r: {r['speedup_vs_r2r']:.2f}x ({what})")
    for mode, r in doc["modes"].items():
        if r.get("large_server_calls"):
            split = ("(the server reports no compute time)" if r["ms_server_per_call"] is None else
                     f"= server compute {r['ms_server_per_call']:.2f} + overhead {r['ms_overhead_per_call']:.2f}")
            lines.append(f"{mode} served large model: {r['large_server_calls']} calls, round trip "
                         f"{r['ms_round_trip_per_call']:.2f} ms/call {split}")
    c = doc["config"]
    lines.append(f"router {c['router']}, {c['n_problems']} prompts from {c['problems']}, max {c['max_tokens']} tokens, greedy")
    return "\n".join(lines)


def _check_out(out: Path) -> None:
    """Fail before the benchmark, not after it, when --out cannot be the output folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory (bench writes bench.json, tokens.csv there)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the directory ({e.strerror})") from None
    for name in ("bench.json", "tokens.csv", "share_along_answer.png"):
        if (out / name).is_dir():
            raise ConfigError(f"--out {out}: {out / name} is a directory")


def _write_out(out: Path, doc: dict[str, Any], records: list[Any]) -> None:
    """Replace the run's numbers together (atomic.replacing_together), so an earlier run's files in
    `out` are never mixed with this one's, nor left half written; an earlier run's plot goes first,
    and this run's is drawn after its numbers are in place (a plot that fails costs only itself)."""
    from r2r_local.atomic import replacing_together

    plot = out / "share_along_answer.png"
    try:
        if plot.is_file():
            plot.unlink()
        with replacing_together(out / "tokens.csv", out / "bench.json") as (tokens_tmp, json_tmp):
            with tokens_tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(asdict(records[0]).keys()) if records else ["mode"])
                writer.writeheader()
                for r in records:
                    writer.writerow(asdict(r))
            json_tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write the results ({e.strerror or e})") from None
    written = ["bench.json", "tokens.csv"]
    try:
        if _plot_share(plot, records):
            written.append(plot.name)
    except OSError as e:
        print(f"bench: {plot}: the plot could not be written ({e.strerror or e})", file=sys.stderr)
    print(f"bench: wrote {', '.join(str(out / w) for w in written)}", file=sys.stderr)


def _plot_share(path: Path, records: list[Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed, no plot written (pip install 'r2r-local[plots]')", file=sys.stderr)
        return False
    routed = [r for r in records if r.mode == "r2r"]
    if not routed:
        return False
    n = max(r.index for r in routed) + 1
    hits, seen = [0] * n, [0] * n
    for r in routed:
        seen[r.index] += 1
        hits[r.index] += r.source == "large"
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(n), [h / s if s else 0 for h, s in zip(hits, seen)], lw=1)
    ax.set_xlabel("token position in the answer")
    ax.set_ylabel("large-model share")
    ax.set_title("Large-model share along the answer (r2r mode, all prompts)")
    fig.tight_layout()
    from r2r_local.atomic import replacing

    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return True
