"""stream_answer's batches: pieces are committed before they are shown, stored and shown at most
every flush_s (not per token), text written before a long model call shows without waiting for
the next token, and a failed store reaches the worker. Real generation on the demo pair (fast);
the one stand-in is a pause after a token, for a long model call, which the tiny models never make."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from pilot_helpers import options
from r2r_local.chat import Message
from r2r_tui.loader import core_loader
from r2r_tui.store import History, HistoryError
from r2r_tui.streaming import Routing, stream_answer

QUESTION = [Message("user", "What is 4567 + 5678?")]


@pytest.fixture(scope="module")
def demo():
    loaded = core_loader(options(demo=True, threads=1))(lambda _: None)
    yield loaded
    loaded.close()


def _routing(loaded) -> Routing:
    return Routing(loaded.pair, loaded.policy, loaded.router, loaded.router.threshold)


def _answer(history: History):
    conversation = history.new_conversation("t")
    return conversation, history.start_answer(conversation, "router")


def test_pieces_are_stored_before_they_are_shown_and_shown_in_batches(demo, tmp_path):
    history = History(tmp_path / "h.db")
    conversation, mid = _answer(history)
    shown, times, mismatches = [], [], []

    def emit(progress):
        times.append(time.perf_counter())
        stored = history.messages(conversation)[-1].pieces  # read back from the file
        shown.extend(progress.pieces)
        if stored != shown:
            mismatches.append((len(stored), len(shown)))

    start = time.perf_counter()
    answer = stream_answer(_routing(demo), QUESTION, history, mid, emit, threading.Event(), flush_s=0.05)
    elapsed = time.perf_counter() - start
    [message] = History(tmp_path / "h.db").messages(conversation)
    n = answer.stats["n_tokens"]
    assert mismatches == []  # at every emit, exactly what was shown had been committed
    assert message.pieces == shown and message.content == answer.answer != "" and answer.stop_reason == "eos"
    assert "".join(p.text for p in shown if p.part == "answer").strip() == answer.answer
    # batched: one emit per flush_s at most (the first at once, the last at the end), not one per token
    assert n >= 50 and len(times) <= elapsed / 0.05 + 2 and len(times) < n / 3
    assert all(b - a >= 0.05 * 0.9 for a, b in zip(times, times[1:-1]))


@dataclass(frozen=True)
class _PauseAfter(Routing):
    """The real generation, pausing `pause` seconds after token `k` (a long model call)."""

    k: int = 1
    pause: float = 1.0
    yielded: list = None  # (token index, time) of each token handed on

    def generate(self, *args, **kwargs):
        return _Paused(super().generate(*args, **kwargs), self)


class _Paused:
    def __init__(self, gen, routing: _PauseAfter) -> None:
        self.gen, self.routing = gen, routing

    def __iter__(self):
        for event in self.gen:
            self.routing.yielded.append((event.index, time.perf_counter()))
            yield event
            if len(self.routing.yielded) == self.routing.k + 1:
                time.sleep(self.routing.pause)

    def __getattr__(self, name):
        return getattr(self.gen, name)


def test_text_written_before_a_long_model_call_shows_during_it(demo):
    history = History.unsaved()
    _, mid = _answer(history)
    yielded: list = []
    routing = _PauseAfter(demo.pair, demo.policy, demo.router, demo.router.threshold, k=1, pause=1.5, yielded=yielded)
    shown: list = []
    stream_answer(routing, QUESTION, history, mid, lambda p: shown.append((time.perf_counter(), p)),
                  threading.Event(), flush_s=0.2)
    (first, _), (second, at), (third, resumed) = yielded[:3]
    # the first token is shown at once; the second waits for its batch, which the helper thread
    # flushes during the pause, about flush_s after the first one, long before the third token
    when = next(t for t, p in shown if any(piece.token == second for piece in p.pieces))
    assert resumed - at >= 1.5
    assert when - at < 0.2 + 0.5 and when < resumed


def test_a_store_that_fails_mid_answer_fails_the_answer_and_keeps_what_was_shown(demo, monkeypatch):
    history = History.unsaved()
    conversation, mid = _answer(history)
    real, calls = history.add_pieces, []

    def add_pieces(*args):
        calls.append(1)
        if len(calls) > 1:
            raise HistoryError("history h.db: disk I/O error")
        return real(*args)

    monkeypatch.setattr(history, "add_pieces", add_pieces)
    shown: list = []
    with pytest.raises(HistoryError, match="disk I/O error"):
        stream_answer(_routing(demo), QUESTION, history, mid, lambda p: shown.extend(p.pieces),
                      threading.Event(), flush_s=0.02)
    [message] = history.messages(conversation)
    assert message.complete and message.stop_reason == "error" and message.pieces == shown != []
    assert message.think == "".join(p.text for p in shown if p.part == "think").strip()
