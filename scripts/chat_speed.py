#!/usr/bin/env python3
"""Tokens/s of r2r-chat against `r2r generate` on the same prompt, models, router and threads.

    python scripts/chat_speed.py [--rounds 5] [--pairs smollm2,demo] [--threads 1] [--json OUT]
                                 [--baseline DIR] [--note TEXT]

Each round runs, in a fresh process each and in an order that rotates from round to round:
  cli     `r2r generate --json` (the core's loop, text not even printed);
  stream  the app's stream path alone (r2r_tui.streaming.stream_answer with its SQLite history
          on disk, no UI): what storing the pieces costs;
  app     the whole app, headless under Textual's Pilot (history on disk, Markdown, status line):
          the prompt is typed into a new conversation and the answer awaited.
The figure compared is the core's own tokens/s (generated tokens over the decode phase's wall
time, which includes whatever the consumer of the token stream does between tokens); the medians
over the rounds (and of each round's ratio to cli, the runs of a round being close in time on a
shared machine) are reported with the per-token split of that time (small model, router, large
model, other = the loop and the consumer) and, for the app, how often it stored pieces, posted
progress to the UI, redrew the Markdown and how long its UI handlers ran. Every run must produce
the same number of tokens (greedy decoding), or the comparison is refused. --baseline DIR also
runs stream and app from another checkout (say, an export of the code before a change) in the
same rounds: before and after, side by side under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAIRS: dict[str, dict[str, Any]] = {
    # The app's default router on the built-in pair (SmolLM2-135M on both sides); a prompt that
    # runs to the token limit.
    "smollm2": {"flags": ["--router", "entropy:1.5"], "max_tokens": 200,
                "prompt": "Write a short paragraph about the history of Paris."},
    # The demo pair with its shipped router: a 4-digit addition (about 100 tokens).
    "demo": {"flags": ["--demo"], "max_tokens": 400, "prompt": "What is 4567 + 5678?"},
}
VARIANTS = ("cli", "stream", "app")
BASELINE = "_baseline"  # the suffix of a variant run on --baseline's checkout
PER_TOKEN = ("time_small_s", "time_router_s", "time_large_s", "time_other_s")


def _import_tui(root: Path) -> None:
    """Make `r2r_tui` the tui/ of checkout `root` (an installed r2r_tui may be another checkout's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("r2r_tui", root / "tui" / "__init__.py",
                                                  submodule_search_locations=[str(root / "tui")])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["r2r_tui"] = module
    spec.loader.exec_module(module)


def _chat_argv(pair: str, threads: int, history: str | None = None) -> list[str]:
    cfg = PAIRS[pair]
    argv = [*cfg["flags"], "--threads", str(threads), "--max-tokens", str(cfg["max_tokens"])]
    return argv + (["--history", history] if history else [])


# --- one run (a child process) ------------------------------------------------------------------

def run_stream(pair: str, threads: int, workdir: Path) -> dict[str, Any]:
    """stream_answer alone, with the app's loader, routing and a history file; no UI."""
    import threading

    from r2r_local.chat import Message
    from r2r_tui.cli import parse_args
    from r2r_tui.loader import core_loader
    from r2r_tui.store import History
    from r2r_tui.streaming import Routing, stream_answer

    options, kwargs = parse_args(_chat_argv(pair, threads))
    loaded = core_loader(options)(lambda _: None)
    history = History(workdir / "history.sqlite3")
    counts = _count_stores(History)
    try:
        routing = Routing(loaded.pair, loaded.policy, loaded.router, loaded.router.threshold)
        mid = history.start_answer(history.new_conversation("speed"), routing.label)
        emitted = [0]

        def emit(_: object) -> None:
            emitted[0] += 1

        answer = stream_answer(routing, [Message("user", PAIRS[pair]["prompt"])], history, mid, emit,
                               threading.Event(), kwargs["sampling"], kwargs["settings"])
    finally:
        history.close()
        loaded.close()
    return {"stats": answer.stats, "counts": {"stores": counts["stores"], "progress": emitted[0]}}


def _count_stores(history_cls: type) -> dict[str, int]:
    """Count the history's piece writes (each one SQLite transaction)."""
    counts = {"stores": 0}
    original = history_cls.add_pieces

    def add_pieces(self, *args: Any, **kwargs: Any) -> int:
        counts["stores"] += 1
        return original(self, *args, **kwargs)

    history_cls.add_pieces = add_pieces
    return counts


def run_app(pair: str, threads: int, workdir: Path) -> dict[str, Any]:
    """The whole app under Pilot: type the prompt into a new conversation, await the answer."""
    from r2r_tui.app import ChatApp
    from r2r_tui.cli import parse_args
    from r2r_tui.loader import core_loader
    from r2r_tui.store import History

    options, kwargs = parse_args(_chat_argv(pair, threads, str(workdir / "history.sqlite3")))
    counts: dict[str, float] = _count_stores(History)  # type: ignore[assignment]
    _instrument_ui(ChatApp, counts)
    app = ChatApp(core_loader(options), **kwargs)
    wall = asyncio.run(_drive(app, PAIRS[pair]["prompt"], counts))
    answer = app.last_answer
    assert answer is not None and answer.stats is not None, "the app produced no answer"
    return {"stats": answer.stats, "counts": counts, "wall_s": wall}


def _instrument_ui(app_cls: type, counts: dict[str, float]) -> None:
    """Count progress messages, UI handler time and Markdown redraws (time included)."""
    from r2r_tui.marked_markdown import MarkedMarkdown
    from r2r_tui.messages import AnswerProgress

    counts.update(progress=0, ui_handler_s=0.0, redraws=0, redraw_s=0.0)
    post, handle = app_cls.post_message, app_cls.on_answer_progress

    def post_message(self, message: Any) -> bool:
        counts["progress"] += isinstance(message, AnswerProgress)
        return post(self, message)

    def on_answer_progress(self, event: Any) -> None:
        t = time.perf_counter()
        handle(self, event)
        counts["ui_handler_s"] += time.perf_counter() - t

    def timed(method: Any) -> Any:
        async def redraw(self: Any, source: str) -> None:
            t = time.perf_counter()
            await method(self, source)
            counts["redraws"] += 1
            counts["redraw_s"] += time.perf_counter() - t

        return redraw

    app_cls.post_message, app_cls.on_answer_progress = post_message, on_answer_progress
    for name in ("update", "append"):  # a whole new layout, or (where the app uses it) an append
        setattr(MarkedMarkdown, name, timed(getattr(MarkedMarkdown, name)))


async def _drive(app: Any, prompt: str, counts: dict[str, float], timeout: float = 300.0) -> float:
    """Load, send `prompt`, wait for the answer to end and be drawn; the send-to-done seconds.
    counts gets the CPU seconds of the UI thread and of the whole process from send to done."""
    from r2r_tui.answer_view import AssistantMessage
    from r2r_tui.prompt_input import PromptInput

    async with app.run_test(headless=True, size=(100, 32)) as pilot:
        deadline = time.monotonic() + timeout
        while app.loaded is None:
            if app.query_one("LoadPanel").error is not None or time.monotonic() > deadline:
                raise SystemExit(f"the app did not load: {app.query_one('LoadPanel').error}")
            await asyncio.sleep(0.05)
        app.query_one(PromptInput).text = prompt
        start, ui_cpu, cpu = time.perf_counter(), time.thread_time(), time.process_time()
        enter = asyncio.create_task(pilot.press("enter"))
        while app.last_answer is None or app.generating:
            if time.monotonic() > deadline:
                raise SystemExit("the answer did not end in time")
            await asyncio.sleep(0.005)
        wall = time.perf_counter() - start
        counts["ui_cpu_s"] = time.thread_time() - ui_cpu  # the UI thread (this one), send to done
        counts["process_cpu_s"] = time.process_time() - cpu
        await enter
        view = app.query(AssistantMessage).last()
        while not view.rendered:
            await asyncio.sleep(0.01)
    return wall


# --- the rounds (the parent) --------------------------------------------------------------------

def _run_child(variant: str, pair: str, threads: int, env: dict[str, str], baseline: Path | None) -> dict[str, Any]:
    cfg = PAIRS[pair]
    root = baseline if variant.endswith(BASELINE) and baseline is not None else ROOT
    if variant == "cli":
        cmd = [sys.executable, "-m", "r2r_local.cli", "generate", *cfg["flags"], "--threads", str(threads),
               "--max-tokens", str(cfg["max_tokens"]), "--prompt", cfg["prompt"], "--json"]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", variant.removesuffix(BASELINE),
               "--pair", pair, "--threads", str(threads), "--root", str(root)]
    done = subprocess.run(cmd, cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} on {pair} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    return {"stats": doc["stats"], "counts": doc.get("counts", {}), "wall_s": doc.get("wall_s")}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of one variant."""
    stats = [r["stats"] for r in runs]
    n = stats[0]["n_tokens"]
    out: dict[str, Any] = {"n_tokens": n, "tokens_per_s": [round(s["tokens_per_s"], 2) for s in stats],
                           "median_tokens_per_s": round(statistics.median(s["tokens_per_s"] for s in stats), 2)}
    for key in PER_TOKEN:
        out[f"median_ms_per_token_{key[5:-2]}"] = round(statistics.median(1e3 * s[key] / n for s in stats), 3)
    for key in runs[0]["counts"]:
        out[f"median_{key}"] = round(statistics.median(r["counts"][key] for r in runs), 4)
    if runs[0].get("wall_s") is not None:
        out["median_send_to_done_s"] = round(statistics.median(r["wall_s"] for r in runs), 3)
    return out


def measure(pair: str, rounds: int, threads: int, env: dict[str, str], baseline: Path | None) -> dict[str, Any]:
    variants = VARIANTS + ((f"stream{BASELINE}", f"app{BASELINE}") if baseline is not None else ())
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for variant in order:
            runs[variant].append(_run_child(variant, pair, threads, env, baseline))
            print(f"{pair} round {r + 1}/{rounds} {variant}: {runs[variant][-1]['stats']['tokens_per_s']:.1f} tok/s",
                  flush=True)
    n_tokens = {v: {run["stats"]["n_tokens"] for run in rs} for v, rs in runs.items()}
    if len(set().union(*n_tokens.values())) != 1:
        raise SystemExit(f"{pair}: the runs wrote different numbers of tokens {n_tokens}: not the same work")
    out: dict[str, Any] = {v: _summary(rs) for v, rs in runs.items()}
    cli = out["cli"]["median_tokens_per_s"]
    for variant in variants[1:]:
        out[f"{variant}_over_cli"] = round(out[variant]["median_tokens_per_s"] / cli, 3)
        ratios = [a["stats"]["tokens_per_s"] / c["stats"]["tokens_per_s"] for a, c in zip(runs[variant], runs["cli"])]
        out[f"{variant}_over_cli_per_round"] = [round(x, 3) for x in ratios]
        out[f"{variant}_over_cli_median_of_rounds"] = round(statistics.median(ratios), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="runs of each variant per pair (default 5)")
    p.add_argument("--pairs", default="smollm2,demo", help=f"comma-separated, of {', '.join(PAIRS)}")
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads per model (default 1)")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="another checkout (its tui/ and r2r_local/) whose stream and app also run in each round")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--note", default="", help="a line stored with the results (what code was measured)")
    p.add_argument("--one", choices=("stream", "app"), help=argparse.SUPPRESS)
    p.add_argument("--pair", choices=tuple(PAIRS), help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        return _child(args)
    pairs = [x for x in args.pairs.split(",") if x]
    unknown = [x for x in pairs if x not in PAIRS]
    if unknown or args.rounds < 1:
        p.error(f"unknown pair {unknown[0]!r}" if unknown else "--rounds must be >= 1")
    if args.baseline is not None and not (args.baseline / "tui" / "streaming.py").is_file():
        p.error(f"--baseline {args.baseline}: not a checkout of r2r-local (no tui/streaming.py)")
    return _parent(args, pairs)


def _child(args: argparse.Namespace) -> int:
    import logging

    sys.path.insert(0, str(args.root))  # that checkout's r2r_local
    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    _import_tui(args.root)
    with tempfile.TemporaryDirectory() as tmp:
        run = run_app if args.one == "app" else run_stream
        print(json.dumps(run(args.pair, args.threads, Path(tmp))))
    return 0


def _commit(root: Path) -> str:
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True)
    if git.returncode != 0:
        return "-"
    return git.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _parent(args: argparse.Namespace, pairs: list[str]) -> int:
    from r2r_local.commands import versions

    load_at_start = list(os.getloadavg())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:  # no user config, no user history
        env = {**os.environ, "R2R_CONFIG_DIR": f"{tmp}/config", "R2R_DATA_DIR": f"{tmp}/data"}
        for pair in pairs:
            results[pair] = measure(pair, args.rounds, args.threads, env, args.baseline)
            print(json.dumps({pair: results[pair]}, indent=1), flush=True)
    report = {"config": {"rounds": args.rounds, "threads": args.threads, "pairs": {k: PAIRS[k] for k in pairs},
                         "order": "the variants in an order that rotates from round to round, a fresh process each",
                         "loadavg_at_start": load_at_start, "loadavg_at_end": list(os.getloadavg()),
                         "commit": _commit(ROOT), "baseline": str(args.baseline) if args.baseline else None,
                         "note": args.note, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()},
              "versions": versions(), "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
