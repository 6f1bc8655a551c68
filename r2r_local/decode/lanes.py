"""The two models' slots as lanes: work on one may run in a worker thread beside the other.

A lane owns at most one piece of work in flight. `settle()` waits for work nobody will use (a
generation abandoned at a yield, or cut short by Ctrl-C, can leave some), so a slot is never
touched by two threads at once and the models are never freed under a running call.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from time import perf_counter
from typing import Callable, Sequence

from r2r_local.backends import Dist, Slot


@dataclass
class _Step:
    """The small model's step on `token` at cache position `base`, running in the worker."""

    token: int
    base: int
    future: Future


class Lane:
    """One slot and a lazily started single worker thread."""

    def __init__(self, slot: Slot, name: str) -> None:
        self.slot, self._name = slot, name
        self._worker: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"r2r-{self._name}")
        return self._worker.submit(fn, *args, **kwargs)

    def settle(self) -> None:  # pragma: no cover - overridden
        pass

    def close(self) -> None:
        try:
            self.settle()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)
                self._worker = None


class StepLane(Lane):
    """The proposing model's slot, stepping one token at a time. `start(token)` evaluates a
    proposal in the worker (overlap); `step(token)` returns the distribution after `token`, using
    that work when it was on the same token and dropping its position when not."""

    def __init__(self, slot: Slot, name: str) -> None:
        super().__init__(slot, name)
        self.pending: _Step | None = None
        self.redone = 0  # steps started on a token that another token replaced (a running count)

    def start(self, token: int, hidden: bool) -> None:
        self.pending = _Step(token, self.slot.n_past, self.submit(self.slot.decode, [token], hidden=hidden))

    def step(self, token: int, hidden: bool) -> tuple[Dist, float]:
        """(distribution after `token`, seconds the caller waited for it)."""
        t = perf_counter()
        spec = self.pending
        if spec is not None:
            out = spec.future.result()  # an interrupt here leaves it pending for settle to wait for
            self.pending = None
            if spec.token == token:
                return out, perf_counter() - t
            self.slot.truncate(spec.base)  # drop the step on the replaced token
            self.redone += 1
        out = self.slot.decode([token], hidden=hidden)
        return out, perf_counter() - t

    def settle(self) -> None:
        """Wait for a step nobody will use and drop its position."""
        spec = self.pending
        if spec is None:
            return
        try:
            wait_quietly(spec.future)
        finally:
            self.pending = None
            if self.slot.n_past > spec.base:
                self.slot.truncate(spec.base)


class CatchUpLane(Lane):
    """The judging model's slot: catches up on committed tokens and gives its distribution at
    the next position, in the caller's thread or in the worker (write-ahead)."""

    def __init__(self, slot: Slot) -> None:
        super().__init__(slot, "large")
        self.pending: Future | None = None

    def pending_for(self, committed: Sequence[int]) -> list[int]:
        """The committed tokens the cache lacks; at least the last one, whose output is wanted."""
        if self.slot.n_past >= len(committed):
            self.slot.truncate(len(committed) - 1)
        return list(committed[self.slot.n_past:])

    def catch_up(self, tokens: list[int]) -> tuple[Dist, float, int]:
        """(distribution after the last token, seconds, tokens evaluated) in one call."""
        t = perf_counter()
        out = self.slot.decode(tokens)
        return out, perf_counter() - t, len(tokens)

    def start(self, tokens: list[int]) -> None:
        self.pending = self.submit(self.catch_up, tokens)

    def result(self) -> tuple[Dist, float, int]:
        # Cleared only once the call is over: an interrupt while waiting leaves it for settle.
        out = self.pending.result()
        self.pending = None
        return out

    def settle(self) -> None:
        try:
            if self.pending is not None:
                wait_quietly(self.pending)
        finally:
            self.pending = None


def wait_quietly(future: Future) -> None:
    """Wait for work nobody will use; a failure in it changes nothing. A Ctrl-C does not cut the
    wait short (the models must not be freed under a running call): it is raised once the work
    is over."""
    interrupted = False
    while not future.done():
        try:
            wait([future])
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt
