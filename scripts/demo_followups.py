#!/usr/bin/env python3
"""Accuracy of the demo pair in r2r-chat on held-out problems asked as 1st, 2nd and 3rd turns.

    python scripts/demo_followups.py [--n 200] [--threads 1] [--json OUT]

Every answer goes through the app's own path: the loader of `r2r-chat --demo` (the shipped
router at its shipped threshold, the routed policy), r2r_tui.streaming.prompt_messages (what the
answer is given) and stream_answer (greedy, the app's default sampling), with the previous answers
kept as the app keeps them (their answer text, the think section left out). For target problem i
(r2r_local.demo.task.problems(EVAL_SEED, n, HELDOUT)) one conversation is played: the target alone
(turn 1); filler a, its answer, the target (turn 2); filler a, its answer, filler b, its answer,
the target (turn 3). Fillers are other held-out problems (seed EVAL_SEED + 1). Both ways of
building the prompt are measured: "conversation" (every turn sent: what real pairs get, and what
the demo pair got before) and "single_turn" (the latest user message alone: what the demo pair
gets now, ModelChoice.single_turn). An answer is right when its stated result (after the think
section, task.extract_answer) is the sum.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {"conversation": False, "single_turn": True}


def _import_tui() -> None:
    """Make `r2r_tui` this checkout's tui/ (an installed r2r_tui may be another checkout's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("r2r_tui", ROOT / "tui" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "tui")])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["r2r_tui"] = module
    spec.loader.exec_module(module)


class Chat:
    """The app's answer path on a loaded pair, without the UI: one unsaved history."""

    def __init__(self, loaded: Any, max_tokens: int) -> None:
        from r2r_local.config import GenerationSettings
        from r2r_tui.store import History
        from r2r_tui.streaming import Routing

        self.loaded = loaded
        self.routing = Routing(loaded.pair, loaded.policy, loaded.router, loaded.router.threshold)
        self.history = History.unsaved()
        self.conversation = self.history.new_conversation("demo follow-ups")
        self.settings = GenerationSettings(max_tokens=max_tokens)

    def answer(self, turns: list[Any], single_turn: bool) -> tuple[str, Any]:
        """(the text to judge, the Answer) of the next answer after `turns` (ending with a user message)."""
        from r2r_tui.streaming import prompt_messages, stream_answer

        mid = self.history.start_answer(self.conversation, self.routing.label)
        a = stream_answer(self.routing, prompt_messages("", turns, single_turn), self.history, mid,
                          lambda _: None, threading.Event(), settings=self.settings)
        text = f"<think>{a.think}</think>\n{a.answer}" if a.think else a.answer
        return text, a


def play(chat: Chat, target: Any, fillers: list[Any], single_turn: bool) -> list[dict[str, Any]]:
    """The target asked as turn 1, 2 and 3 (after 0, 1, 2 fillers answered by the pair)."""
    from r2r_local.chat import Message
    from r2r_local.demo import task

    rows = []
    turns: list[Message] = []
    for k in range(3):
        text, answer = chat.answer(turns + [Message("user", target.message)], single_turn)
        rows.append({"turn": k + 1, "right": task.is_correct(target, text), "got": task.extract_answer(text),
                     "large_tokens": answer.stats["large_tokens"], "n_tokens": answer.stats["n_tokens"]})
        if k < 2:
            filler = fillers[k]
            turns.append(Message("user", filler.message))
            _, filler_answer = chat.answer(turns, single_turn)
            turns.append(Message("assistant", filler_answer.answer))  # as the app keeps a turn
    return rows


def measure(chat: Chat, n: int, single_turn: bool) -> dict[str, Any]:
    from r2r_local.demo import task

    targets = task.problems(task.EVAL_SEED, n, task.HELDOUT)
    fillers = task.problems(task.EVAL_SEED + 1, 2 * n, task.HELDOUT)
    per_turn: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 3: []}
    wrong: list[dict[str, Any]] = []
    for i, target in enumerate(targets):
        for row in play(chat, target, fillers[2 * i:2 * i + 2], single_turn):
            per_turn[row["turn"]].append(row)
            if not row["right"] and len(wrong) < 10:
                wrong.append({"turn": row["turn"], "message": target.message, "sum": target.answer, "got": row["got"]})
    out: dict[str, Any] = {}
    for turn, rows in per_turn.items():
        tokens = sum(r["n_tokens"] for r in rows)
        out[f"turn_{turn}"] = {"right": sum(r["right"] for r in rows), "n": len(rows),
                               "accuracy": round(sum(r["right"] for r in rows) / len(rows), 4),
                               "large_share": round(sum(r["large_tokens"] for r in rows) / tokens, 4)}
    out["first_wrong"] = wrong
    return out


def _shown_path(path: str) -> str:
    """A path inside this checkout relative to it (results name no machine's folders)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="held-out target problems (default 200)")
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads per model (default 1)")
    p.add_argument("--max-tokens", type=int, default=400, help="per answer (default 400)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if args.n < 1 or any(m not in MODES for m in modes):
        p.error("--n must be >= 1 and --modes among " + ", ".join(MODES))
    import logging

    logging.getLogger("r2r_local.llama").setLevel(logging.CRITICAL)
    _import_tui()
    from r2r_local.commands import versions
    from r2r_tui.loader import ChatOptions, core_loader

    loaded = core_loader(ChatOptions(demo=True, threads=args.threads))(lambda _: None)
    try:
        chat = Chat(loaded, args.max_tokens)
        results: dict[str, Any] = {}
        for mode in modes:
            start = time.monotonic()
            results[mode] = measure(chat, args.n, MODES[mode])
            results[mode]["seconds"] = round(time.monotonic() - start, 1)
            print(json.dumps({mode: {k: v for k, v in results[mode].items() if k != "first_wrong"}}), flush=True)
        config = {"n": args.n, "threads": args.threads, "max_tokens": args.max_tokens,
                  "router": _shown_path(loaded.choice.router), "threshold": loaded.router.threshold, "policy": loaded.policy.name,
                  "single_turn_in_the_app": loaded.choice.single_turn, "loadavg_at_end": list(os.getloadavg())}
    finally:
        loaded.close()
    report = {"config": config, "versions": versions(), "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
