"""Between HTTP and the engine: one loaded pair, one FIFO queue, a cancel per request.

HTTP handlers `submit` a Work and get a Job; one worker thread takes jobs in arrival order and
runs each generation on the pair, handing the job's sink every TokenEvent as it is committed and
then one Finished. The pair decodes one request at a time, and the core reuses the cache prefix
a request shares with the one before it.

Each job has its own cancel (threading.Event), which the core checks every token: a client that
goes away sets it and the worker moves on within one token step; a job cancelled while it waits
is skipped without touching the models. At most `max_queue` jobs wait (the running one is not
counted); `submit` raises QueueFull beyond that.

Batching later: the worker's unit is `_take()` (the next job) and `_run(job)`. A batching engine
would take up to B waiting jobs in `_take` and step their generations together in `_run`; submit,
the cancels, the sinks and the observer stay as they are.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Callable, Protocol

from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import Generation, Policy, Request
from r2r_local.metering import TokenEvent

if TYPE_CHECKING:
    from r2r_local.pair import LoadedPair
    from r2r_local.router import Router

log = logging.getLogger("r2r_local.serve")


@dataclass(frozen=True)
class Work:
    """One generation to run: prompt token ids, the policy (routed, small or large alone), the
    threshold (None: the router's own), sampling and limits."""

    prompt: list[int]
    policy: Policy
    threshold: float | None
    sampling: SamplingParams
    settings: GenerationSettings


@dataclass(frozen=True)
class Finished:
    """The last item a sink gets. gen: None when the job never ran (cancelled while waiting, or
    the server closing); error: what the engine raised, if it did."""

    gen: Generation | None
    error: BaseException | None


Sink = Callable[[TokenEvent | Finished], None]  # called in the worker thread; must not block


class QueueFull(Exception):
    """`max_queue` jobs are already waiting."""


class Observer(Protocol):
    def finished(self, job: "Job") -> None: ...


@dataclass(eq=False)
class Job:
    """A submitted Work. arrival: 1, 2, ... in submit order; started: the same count in the
    order the engine took jobs (equal to arrival order, FIFO); times are perf_counter seconds."""

    work: Work
    sink: Sink
    arrival: int
    submitted_at: float
    cancel: threading.Event = field(default_factory=threading.Event)
    started: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    cancelled_at: float | None = None
    result: Finished | None = None

    def stop(self) -> None:
        """Ask the engine to stop this job (idempotent; a finished job ignores it)."""
        if not self.cancel.is_set():
            self.cancelled_at = perf_counter()
            self.cancel.set()

    @property
    def queue_wait(self) -> float:
        return (self.started_at or self.submitted_at) - self.submitted_at

    def deliver(self, item: TokenEvent | Finished) -> None:
        try:
            self.sink(item)
        except Exception:  # the client's loop is gone: nobody will read this job any more
            log.debug("job %d: sink failed, stopping it", self.arrival, exc_info=True)
            self.stop()


class Scheduler:
    """Owns the loaded pair and its router; `close()` stops the worker and frees the pair."""

    def __init__(self, pair: "LoadedPair", router: "Router", max_queue: int,
                 observer: Observer | None = None) -> None:
        self.pair, self.router, self.max_queue, self.observer = pair, router, max_queue, observer
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._arrivals, self._starts = itertools.count(1), itertools.count(1)
        self._cond, self._close_lock = threading.Condition(), threading.Lock()
        self._closing = self._closed = False
        self._run_seconds = 1.0  # a running mean of how long a job holds the engine
        self._worker = threading.Thread(target=self._loop, name="r2r-serve-engine", daemon=True)
        self._worker.start()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def closing(self) -> bool:
        return self._closing

    def expected_wait(self) -> float:
        """Seconds until a job submitted now would start, roughly (for Retry-After)."""
        return self._run_seconds * (len(self._waiting) + (1 if self._running else 0))

    def submit(self, work: Work, sink: Sink) -> Job:
        """Queue `work`; raises QueueFull when max_queue jobs wait, RuntimeError once closing."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the server is shutting down")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting")
            job = Job(work, sink, next(self._arrivals), perf_counter())
            self._waiting.append(job)
            self._cond.notify()
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Cancel every job, wait for the worker (a running generation stops within a token) and
        free the pair. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self.cancel_all()
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("the engine did not stop within %.0f s; leaving the models loaded", timeout)
                return
            self._closed = True
            self.pair.close()

    def cancel_all(self) -> None:
        """Stop the running job and every waiting one (the server is going down); no new job is taken."""
        with self._cond:
            self._closing = True
            for job in [*self._waiting, *([self._running] if self._running else [])]:
                job.stop()
            self._cond.notify()

    def _loop(self) -> None:
        while (job := self._take()) is not None:
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None

    def _take(self) -> Job | None:
        with self._cond:
            while not self._waiting and not self._closing:
                self._cond.wait()
            if not self._waiting:
                return None
            job = self._running = self._waiting.popleft()
            job.started, job.started_at = next(self._starts), perf_counter()
            return job

    def _run(self, job: Job) -> None:
        """Run one job's generation, feeding its sink; errors end the job, never the worker."""
        gen, error = None, None
        if not job.cancel.is_set():
            w = job.work
            try:
                gen = self.pair.generate(Request(w.prompt, self.router, w.policy, w.threshold, w.sampling,
                                                 w.settings, job.cancel))
                for event in gen:
                    job.deliver(event)
            except Exception as e:  # an engine error belongs to this request only
                log.debug("job %d failed", job.arrival, exc_info=True)
                error = e
        job.ended_at = perf_counter()
        if gen is not None:
            self._run_seconds = 0.8 * self._run_seconds + 0.2 * (job.ended_at - (job.started_at or job.ended_at))
        job.result = Finished(gen if gen is not None and gen.stats is not None else None, error)
        if self.observer is not None:
            try:
                self.observer.finished(job)
            except Exception:
                log.exception("metrics failed for job %d", job.arrival)
        job.deliver(job.result)
