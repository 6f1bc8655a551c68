"""Writing ahead (opt-in): the small model keeps writing while the large model catches up.

In the plain loop (engine.py) everything waits while the large model evaluates its catch-up and
chooses the escalated token. Here that call runs in a worker thread, and the small model goes on
from its own proposal at that position as if the large model will agree: it proposes, the router
decides, the small model evaluates, token after token, on its own cache. None of it is committed
yet. When the large model's choice arrives:

- it equals the small model's proposal: that position (source "large") and every token written
  ahead since are committed and streamed in order. Each of them was proposed and routed on the
  same committed prefix as in the plain loop, so they are exactly the plain loop's tokens;
- it differs: the tokens written ahead are dropped from the small cache (they were never
  committed) and the large model's choice is committed, as in the plain loop.

Writing ahead stops, and waits for the large model, at the next position the router escalates
(that decision is kept for after the wait), at an end-of-generation proposal, and where the
token or context limit would be passed. The large model's calls are the plain loop's calls
(same positions, same catch-up batches), so its choices are bit-identical.

Same output as the plain loop, token for token, for routers whose decision depends only on the
step (a trained ONNX router, entropy:T, slm, llm), greedy or sampled (one uniform number is
drawn per position). A random:P router draws per decision, and decisions on dropped tokens
shift its stream: its outputs then differ from the plain loop's, with the same expected share.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import Iterator

import numpy as np

from r2r_local.backends import Backend, Output
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.engine import Engine, Generation, _Committer, _wait_quietly
from r2r_local.metering import Meter, TokenEvent
from r2r_local.router import Decision, Router, Step
from r2r_local.sampling import sample


@dataclass
class _Written:
    """A token the small model wrote ahead: its id, the router's p and the seconds spent."""

    token: int
    p: float | None
    t_small: float
    t_router: float


@dataclass
class _Routed:
    """A proposal and the router's decision on it, kept for the position after a wait."""

    token: int
    decision: Decision
    t_router: float


class _Draws:
    """One uniform number per position of the generation, drawn in position order."""

    def __init__(self, seed: int | None) -> None:
        self._rng, self._values = np.random.default_rng(seed), []

    def __getitem__(self, i: int) -> float:
        while len(self._values) <= i:
            self._values.append(float(self._rng.random()))
        return self._values[i]


class AheadEngine(Engine):
    """An Engine whose small model writes ahead during the large model's calls (module docstring).

    ahead_tokens_dropped counts tokens written ahead and dropped because the large model chose
    another token; ahead_tokens_kept those committed after a wait.
    """

    def __init__(self, small: Backend, large: Backend, router: Router, *, n_shared: int) -> None:
        super().__init__(small, large, router, n_shared=n_shared)
        self.ahead = small is not large  # one backend on both sides cannot run beside itself
        self.ahead_tokens_dropped = 0
        self.ahead_tokens_kept = 0
        self._large_worker: ThreadPoolExecutor | None = None
        self._large_pending: Future | None = None

    def _settle(self) -> None:
        """Wait for a large-model call nobody will use, then drop small-cache positions past the
        committed sequence (a generation abandoned at a yield can leave both)."""
        try:
            if self._large_pending is not None:
                _wait_quietly(self._large_pending)
        finally:
            self._large_pending = None
            super()._settle()
            self._drop_uncommitted()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._large_worker is not None:
                self._large_worker.shutdown(wait=True)
                self._large_worker = None

    def _loop(
        self,
        gen: Generation,
        prompt: list[int],
        sampling: SamplingParams,
        settings: GenerationSettings,
        cancel: threading.Event | None,
    ) -> Iterator[TokenEvent]:
        if not self.ahead:
            yield from super()._loop(gen, prompt, sampling, settings, cancel)
            return
        meter = Meter()
        out = self._prefill(prompt, meter, cancel)
        draws, commit = _Draws(sampling.seed), _Committer(self, gen, meter, settings)
        start, t_small, held = perf_counter(), 0.0, None
        try:
            while True:
                if out is None or (cancel is not None and cancel.is_set()):  # None: cancelled in the prompt
                    gen.stop_reason = "cancelled"
                    break
                i = meter.n_tokens
                if held is None:
                    held = self._route(out, sample(out.logits[: self.n_shared], sampling, draws[i]))
                routed, held = held, None
                if not routed.decision.escalate:
                    if (yield from commit(routed.token, "small", routed.decision.p, t_small, routed.t_router)):
                        break
                    t = perf_counter()
                    out = self.small.decode([routed.token], hidden=self.router.needs_hidden)
                    t_small = perf_counter() - t
                    continue
                stopped, out, t_small, held = yield from self._escalate(routed, t_small, i, draws, sampling,
                                                                        settings, commit, cancel)
                if stopped:
                    break
        finally:
            self._settle()
            meter.time_decode = perf_counter() - start
            commit.finish()

    def _route(self, out: Output, token: int) -> _Routed:
        t = perf_counter()
        decision = self.router.decide(Step(out.logits[: self.n_shared], out.hidden, token, self.small.embedding_row))
        return _Routed(token, decision, perf_counter() - t)

    def _escalate(self, routed: _Routed, t_small: float, i: int, draws: _Draws, sampling: SamplingParams,
                  settings: GenerationSettings, commit: _Committer, cancel: threading.Event | None):
        """Position i was escalated: the large model chooses in the worker while the small model
        writes ahead; then commit what holds. Returns (stopped, out, t_small, held) for the loop.
        On a cancel the tokens written ahead are dropped, so the loop stops where the plain one would."""
        if self._large_worker is None:
            self._large_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="r2r-large")
        self._large_pending = self._large_worker.submit(self._large_choice, sampling, draws[i])
        base = len(self.sequence)
        ahead = self._write_ahead(routed.token, i, draws, sampling, settings, cancel)
        # Cleared only once the call is over: an interrupt while waiting leaves it for _settle to
        # wait for, so the models are never freed under a running call.
        choice, t_large, caught_up = self._large_pending.result()
        self._large_pending = None
        large = (choice, "large", routed.decision.p, t_small, routed.t_router, t_large, caught_up)
        cancelled = cancel is not None and cancel.is_set()
        if choice == routed.token and ahead.out is not None and not cancelled:
            self.ahead_tokens_kept += len(ahead.written)
            if (yield from commit(*large)):
                return True, None, 0.0, None
            for w in ahead.written:
                if (yield from commit(w.token, "small", w.p, w.t_small, w.t_router)):
                    return True, None, 0.0, None
            return False, ahead.out, ahead.t_last, ahead.held
        if self.small.n_past > base:
            self.ahead_tokens_dropped += self.small.n_past - base
            self.small.truncate(base)
        if (yield from commit(*large)):
            return True, None, 0.0, None
        t = perf_counter()
        out = self.small.decode([choice], hidden=self.router.needs_hidden)
        return False, out, perf_counter() - t, None

    def _write_ahead(self, guess: int, i: int, draws: _Draws, sampling: SamplingParams,
                     settings: GenerationSettings, cancel: threading.Event | None) -> "_Ahead":
        """Evaluate `guess` (the small model's proposal at escalated position i) and keep writing
        until the large model answers or writing ahead must stop (module docstring)."""
        ahead = _Ahead()
        pending = self._large_pending
        if self.small.is_eog(guess) or len(self.sequence) + 2 > self.n_ctx or i + 1 >= settings.max_tokens:
            return ahead
        t = perf_counter()
        ahead.out = self.small.decode([guess], hidden=self.router.needs_hidden)
        ahead.t_last = perf_counter() - t
        while not pending.done() and not (cancel is not None and cancel.is_set()):
            j = i + 1 + len(ahead.written)  # index of the next proposal
            if j + 1 >= settings.max_tokens or len(self.sequence) + len(ahead.written) + 3 > self.n_ctx:
                break
            routed = self._route(ahead.out, sample(ahead.out.logits[: self.n_shared], sampling, draws[j]))
            if routed.decision.escalate or self.small.is_eog(routed.token):
                ahead.held = routed
                break
            ahead.written.append(_Written(routed.token, routed.decision.p, ahead.t_last, routed.t_router))
            t = perf_counter()
            ahead.out = self.small.decode([routed.token], hidden=self.router.needs_hidden)
            ahead.t_last = perf_counter() - t
        return ahead


@dataclass
class _Ahead:
    """What the small model wrote ahead: tokens after the guess, the routed proposal that stopped
    it (if one did), its output after the last evaluated token (None: not even the guess was
    evaluated) and the seconds of that last step."""

    written: list[_Written] = field(default_factory=list)
    held: _Routed | None = None
    out: Output | None = None
    t_last: float = 0.0
