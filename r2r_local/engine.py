"""The routed decoding loop (DESIGN.md section 2).

Invariant kept here: both caches hold a prefix of `Engine.sequence`, the committed tokens.
The small model has evaluated all of them (its cache *is* the sequence) and its output for the
last one proposes the next token; the large model lags and, when the router escalates, catches
up on every committed token it has not seen in one batched call, then chooses the token itself.
Nothing is rolled back. With the same model on both sides and greedy sampling the output is
that model's own greedy output, whatever the router does.

Overlap (opt-in): while the router decides on the small model's proposal, the small model
already evaluates that proposal in a worker thread, as if it will be kept. When the router
keeps it (most tokens), its step is ready sooner: a token costs about max(small step, router)
instead of their sum. When the router escalates and the large model chooses another token, the
speculative position is dropped from the small cache (it was never committed) and the chosen
token is evaluated instead; when the large model agrees, the speculative step is kept. Outputs
are the same as without overlap, token for token.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from time import perf_counter
from typing import Generator, Iterator, Sequence

import numpy as np

from r2r_local.backends import N_BATCH, Backend, Output
from r2r_local.chat import Utf8Stream
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.errors import ConfigError, PromptTooLongError
from r2r_local.metering import Meter, Stats, TokenEvent
from r2r_local.router import Router, Step
from r2r_local.sampling import sample


@dataclass
class Generation:
    """A generation in progress: iterate it for TokenEvents; afterwards read the result fields.

    stop_reason: "eos" | "stop" | "max_tokens" | "context_full" | "cancelled"; message: a
    one-line explanation when the stop is something the user should know about.
    """

    _events: Iterator[TokenEvent]
    events: list[TokenEvent] = field(default_factory=list)
    text: str = ""
    stop_reason: str | None = None
    message: str | None = None
    stats: Stats | None = None

    def __iter__(self) -> Iterator[TokenEvent]:
        for event in self._events:
            self.events.append(event)
            yield event

    def run(self) -> "Generation":
        """Consume the whole generation and return self."""
        for _ in self:
            pass
        return self


@dataclass
class _Speculation:
    """The small model's step on its own proposal `token`, running while the router decides."""

    token: int
    future: Future


class Engine:
    """A small and a large backend, the vocabulary size they share, and a router.

    overlap: run the small model's next step on its proposal while the router decides (see the
    module docstring); t_small then counts only the time the loop still waits for that step.
    """

    def __init__(self, small: Backend, large: Backend, router: Router, *, n_shared: int,
                 overlap: bool = False) -> None:
        self.small, self.large, self.router = small, large, router
        self.n_shared = n_shared
        self.n_ctx = min(small.n_ctx, large.n_ctx)
        self.sequence: list[int] = []
        # One backend on both sides (large-only runs) has one cache: nothing may run beside it.
        self.overlap = overlap and small is not large
        self.speculative_steps_redone = 0  # overlap: steps on a proposal the large model replaced
        self._worker: ThreadPoolExecutor | None = None
        self._pending: _Speculation | None = None  # a step running in the worker, not yet used

    def generate(
        self,
        prompt: Sequence[int],
        sampling: SamplingParams = SamplingParams(),
        settings: GenerationSettings = GenerationSettings(),
        cancel: threading.Event | None = None,
    ) -> Generation:
        """Start generating after `prompt` (token ids). Cache prefixes shared with the previous
        sequence are reused. Nothing runs until the Generation is iterated."""
        gen = Generation(iter(()))
        gen._events = self._loop(gen, list(prompt), sampling, settings, cancel)
        return gen

    def close(self) -> None:
        """Wait for work still running in the engine's worker thread (a generation abandoned at a
        yield, or cut short by Ctrl-C, can leave some) and stop the thread. The backends stay
        open: whoever loaded them frees them, after this."""
        try:
            self._settle()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)
                self._worker = None

    def _prefill(self, prompt: list[int], meter: Meter, cancel: threading.Event | None) -> Output | None:
        """Read the prompt into both caches; None when `cancel` was set while reading (checked
        between chunks of N_BATCH tokens, so a long prompt stops within one chunk)."""
        self._settle()
        if not prompt:
            raise ConfigError("the prompt is empty")
        if len(prompt) >= self.n_ctx:
            raise PromptTooLongError(
                f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx} "
                "(raise --n-ctx or shorten the prompt)"
            )
        if self.router.needs_hidden:
            self.small.enable_hidden()
        # The backends record what their caches hold, so a backend shared with another engine
        # (large-only next to routed, say) is never trusted beyond its real common prefix.
        keep = min(_common_prefix(self.small.tokens, prompt), len(prompt) - 1)
        self.small.truncate(keep)
        self.large.truncate(min(_common_prefix(self.large.tokens, prompt), keep))
        t = perf_counter()
        self.sequence = list(prompt[:keep])
        out = None
        for start in range(keep, len(prompt), N_BATCH):
            if _is_set(cancel):
                return None
            end = min(start + N_BATCH, len(prompt))
            out = self.small.decode(prompt[start:end], hidden=self.router.needs_hidden and end == len(prompt))
            self.sequence = list(prompt[:end])  # the caches only ever hold a prefix of the sequence
        # The large model reads the prompt now, as it would when running alone, rather than in
        # its first catch-up: that keeps its prefill out of the decode phase (and out of the
        # first escalated token's latency). The last prompt token stays pending, so the first
        # catch-up still yields the logits for the first answer position.
        if getattr(self.router, "may_escalate", True):
            for start in range(self.large.n_past, len(prompt) - 1, N_BATCH):
                if _is_set(cancel):
                    return None
                self.large.decode(prompt[start : min(start + N_BATCH, len(prompt) - 1)])
        meter.time_prompt, meter.prompt_tokens, meter.cached_tokens = perf_counter() - t, len(prompt), keep
        return out

    def _large_choice(self, sampling: SamplingParams, u: float) -> tuple[int, float, int]:
        """Catch the large model up on the sequence in one call; its choice, seconds, tokens read."""
        if self.large.n_past >= len(self.sequence):
            self.large.truncate(len(self.sequence) - 1)
        pending = self.sequence[self.large.n_past:]
        t = perf_counter()
        out = self.large.decode(pending)
        elapsed = perf_counter() - t
        return sample(out.logits[: self.n_shared], sampling, u), elapsed, len(pending)

    def _speculate(self, proposal: int, last: bool) -> None:
        """Start the small model's step on `proposal` in the worker, if overlap is on and the
        step could be needed (not an end-of-generation token, not the last token, room left)."""
        if not self.overlap or last or self.small.is_eog(proposal) or len(self.sequence) + 1 > self.n_ctx:
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="r2r-small")
        future = self._worker.submit(self.small.decode, [proposal], hidden=self.router.needs_hidden)
        self._pending = _Speculation(proposal, future)

    def _small_step(self, token: int) -> Output:
        """The small model's output after `token` was committed (it ends the sequence): the
        speculative step when it was on that token, else (after dropping the speculative
        position) a fresh step."""
        spec = self._pending
        if spec is not None:
            out = spec.future.result()  # an interrupt here leaves it pending for _settle to wait for
            self._pending = None
            if spec.token == token:
                return out
            self.small.truncate(len(self.sequence) - 1)  # drop the step on the replaced proposal
            self.speculative_steps_redone += 1
        return self.small.decode([token], hidden=self.router.needs_hidden)

    def _settle(self) -> None:
        """Wait for a speculative step nobody will use and drop its position, so the small
        cache holds exactly the committed sequence again. Runs when a generation ends and
        before the next one starts (a generation abandoned at a yield leaves one running)."""
        spec = self._pending
        if spec is None:
            return
        try:
            _wait_quietly(spec.future)
        finally:
            self._pending = None
            self._drop_uncommitted()

    def _drop_uncommitted(self) -> None:
        """Drop small-cache positions past the committed sequence."""
        if self.small.n_past > len(self.sequence):
            self.small.truncate(len(self.sequence))

    def _loop(
        self,
        gen: Generation,
        prompt: list[int],
        sampling: SamplingParams,
        settings: GenerationSettings,
        cancel: threading.Event | None,
    ) -> Iterator[TokenEvent]:
        meter = Meter()
        out = self._prefill(prompt, meter, cancel)
        rng, commit = np.random.default_rng(sampling.seed), _Committer(self, gen, meter, settings)
        start, t_small = perf_counter(), 0.0
        try:
            while True:
                if out is None or _is_set(cancel):  # None: cancelled while reading the prompt
                    gen.stop_reason = "cancelled"
                    break
                u = float(rng.random())
                logits = out.logits[: self.n_shared]
                proposal = sample(logits, sampling, u)
                self._speculate(proposal, last=meter.n_tokens + 1 >= settings.max_tokens)
                t = perf_counter()
                decision = self.router.decide(Step(logits, out.hidden, proposal, self.small.embedding_row))
                t_router = perf_counter() - t
                token, source, t_large, caught_up = proposal, "small", 0.0, 0
                if decision.escalate:
                    token, t_large, caught_up = self._large_choice(sampling, u)
                    source = "large"
                if (yield from commit(token, source, decision.p, t_small, t_router, t_large, caught_up)):
                    break
                t = perf_counter()
                out = self._small_step(token)
                t_small = perf_counter() - t
        finally:
            self._settle()
            meter.time_decode = perf_counter() - start
            commit.finish()


class _Committer:
    """Commits the chosen tokens of one generation: checks the stops, streams the event, extends
    the sequence (the small model evaluates the token afterwards). Calling it is a generator
    that yields the token's event and returns True when the generation must stop there (the
    token is then not added to the sequence)."""

    def __init__(self, engine: Engine, gen: Generation, meter: Meter, settings: GenerationSettings) -> None:
        self.engine, self.gen, self.meter, self.settings = engine, gen, meter, settings
        self.utf8, self.pieces = Utf8Stream(), []

    def __call__(self, token: int, source: str, p: float | None, t_small: float, t_router: float,
                 t_large: float = 0.0, caught_up: int = 0) -> Generator[TokenEvent, None, bool]:
        engine, gen, meter, settings = self.engine, self.gen, self.meter, self.settings
        meter.add_step(t_small, t_router, t_large, caught_up)
        if engine.small.is_eog(token):
            gen.stop_reason = "eos"
            return True
        text = self.utf8.feed(engine.small.token_bytes(token))
        event = TokenEvent(meter.n_tokens, token, text, source, p, t_small, t_router, t_large, caught_up)
        meter.add_token(event)
        self.pieces.append(text)
        yield event
        if settings.stop and _cut_at_stop(self.pieces, settings.stop, len(text)):
            gen.stop_reason = "stop"
            return True
        if meter.n_tokens >= settings.max_tokens:
            gen.stop_reason = "max_tokens"
            return True
        if len(engine.sequence) + 1 > engine.n_ctx:
            gen.stop_reason = "context_full"
            gen.message = f"stopped: the context of {engine.n_ctx} tokens is full (raise --n-ctx)"
            return True
        engine.sequence.append(token)
        return False

    def finish(self) -> None:
        """The generation's text and statistics (meter.time_decode set by then)."""
        gen = self.gen
        self.pieces.append(self.utf8.flush())
        gen.text = "".join(self.pieces)
        if gen.stop_reason == "stop":
            gen.text = _before_stop(gen.text, self.settings.stop)
        gen.stats = self.meter.stats(self.engine.small.n_params, self.engine.large.n_params)


def _is_set(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()


def _wait_quietly(future: Future) -> None:
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


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _cut_at_stop(pieces: list[str], stops: Sequence[str], new: int) -> bool:
    """Whether a stop string is complete; only the tail the newest piece could complete is searched."""
    need, parts, n = max(len(s) for s in stops) + new, [], 0
    for piece in reversed(pieces):
        parts.append(piece)
        n += len(piece)
        if n >= need:
            break
    tail = "".join(reversed(parts))
    return any(s in tail for s in stops)


def _before_stop(text: str, stops: Sequence[str]) -> str:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text
