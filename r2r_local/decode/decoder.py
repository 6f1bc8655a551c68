"""The one decoding loop: propose, route, judge, commit (docs/design.md, "The loop").

`Decoder` owns a pair's two models, their slots and worker lanes, and runs one request at a
time; nothing about a request (router, threshold, sampling, policy) is stored on it. `Decoding`
is one request's loop. Invariant kept here: the proposing model's cache holds committed + draft
(a prefix of it while a step runs in a worker), the judging model's cache a prefix of the
committed tokens; the judging model catches up, in one batched call, on every committed token it
has not seen when a position is escalated. Committed tokens are never taken back. With the same
model on both sides and greedy sampling the output is that model's own greedy output, whatever
the router does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from time import perf_counter
from typing import Callable, Iterator, Sequence

from r2r_local.backends import N_BATCH, Dist, Model, Slot
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode.lanes import CatchUpLane, StepLane
from r2r_local.decode.output import Committer, Generation
from r2r_local.decode.policies import ROUTED, Policy, judge_now, write_ahead
from r2r_local.decode.speculate import speculate
from r2r_local.decode.transcript import Drafted, Transcript
from r2r_local.errors import ConfigError, DecodeCancelled, DecodeError, PromptTooLongError
from r2r_local.metering import DraftEvent, Meter, TokenEvent
from r2r_local.router import Router, Step
from r2r_local.sampling import choose, sample


@dataclass(frozen=True)
class Request:
    """One generation's arguments. router: decides for routed policies (its own threshold unless
    `threshold` is given); cancel: set it to stop within one token (or one prompt chunk);
    show_drafts: the Generation also yields DraftEvents, the uncommitted draft as provisional
    text (policies that draft before a judgment: spec:K, r2r+verify)."""

    prompt: Sequence[int]
    router: Router | None = None
    policy: Policy = ROUTED
    threshold: float | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    cancel: threading.Event | None = None
    show_drafts: bool = False


class Decoder:
    """A small and a large model (their vocabularies already limited to what they share)."""

    def __init__(self, small: Model, large: Model) -> None:
        self.small, self.large = small, large
        self.n_ctx = min(small.slot.n_ctx, large.slot.n_ctx)
        # One slot on both sides (a model paired with itself) cannot run beside itself.
        self.concurrent = small.slot is not large.slot and small.caps.concurrent and large.caps.concurrent
        self.small_lane = StepLane(small.slot, "small")
        self.large_steps = StepLane(large.slot, "large-steps")  # the large model proposing alone
        self.large_lane = CatchUpLane(large.slot)
        self.active: Decoding | None = None  # the request whose tokens the slots hold

    def generate(self, request: Request) -> Generation:
        """Start generating after `request.prompt` (token ids). Cache prefixes shared with what
        the slots hold are reused. Nothing runs until the Generation is iterated."""
        gen = Generation(iter(()))
        gen._events = Decoding(self, request, gen).events()
        return gen

    def settle(self) -> None:
        """Wait for work still running in a lane (a generation abandoned at a yield, or cut short
        by Ctrl-C, can leave some) and drop what the last request evaluated past its committed
        tokens, so the caches hold a prefix of them again."""
        try:
            self.large_lane.settle()
        finally:
            self.small_lane.settle()
            if self.active is not None:
                committed = len(self.active.t.committed)
                self.active.drop_draft(committed, counted=False)
                if self.large_lane.slot.n_past > committed:  # a verified draft cut short by a stop
                    self.large_lane.slot.truncate(committed)

    def close(self) -> None:
        """Wait for running work and stop the workers; the models stay open (their owner frees them)."""
        try:
            self.settle()
        finally:
            try:
                self.large_lane.close()
            finally:
                self.small_lane.close()


class Decoding:
    """One request's loop over a Decoder's lanes; `events()` is the generator of TokenEvents."""

    def __init__(self, decoder: Decoder, request: Request, gen: Generation) -> None:
        policy = request.policy
        if policy.routed and request.router is None:
            raise ConfigError(f"the {policy.name} policy needs a router")
        self.decoder, self.request, self.gen, self.policy = decoder, request, gen, policy
        self.settings, self.sampling, self.n_ctx = request.settings, request.sampling, decoder.n_ctx
        self.proposer = decoder.small if policy.proposer == "small" else decoder.large
        self.steps = decoder.small_lane if policy.proposer == "small" else decoder.large_steps
        self.router = request.router if policy.routed else None
        self.threshold = request.threshold if request.threshold is not None or self.router is None \
            else self.router.threshold
        self.judges = policy.spec > 0 or (self.router is not None and self.router.may_escalate)
        self.hidden = self.router is not None and self.router.needs_hidden
        self.overlap = policy.overlap and decoder.concurrent
        self.drafts = policy.spec > 0 or policy.verify  # every proposal goes into a draft
        if self.drafts:
            self.escalate = speculate
        else:
            self.escalate = write_ahead if policy.ahead and decoder.concurrent else judge_now
        self.last_out: Dist | None = None  # what the last proposal was sampled from
        self.t = Transcript(list(request.prompt), request.sampling.seed)
        gen.committed = self.t.committed
        self.draws, self.n_prompt = self.t.draws, self.t.n_prompt  # the per-token path reads them often
        self.meter = Meter()
        self.commit = Committer(self.t.committed, self.proposer, self.n_ctx, gen, self.meter, request.settings)

    def cancelled(self) -> bool:
        cancel = self.request.cancel
        return cancel is not None and cancel.is_set()

    def choose(self, out: Dist, position: int) -> int:
        u = self.draws[position - self.n_prompt]
        return sample(out.logits, self.sampling, u) if out.logits is not None else choose(out, self.sampling, u)

    def events(self) -> Iterator[TokenEvent | DraftEvent]:
        out = self._prefill()
        start, t_small, held, redone = perf_counter(), 0.0, None, self.steps.redone
        alone = self.policy.proposer == "large"
        try:
            while True:
                if out is None or self.cancelled():  # None: cancelled while reading the prompt
                    self.gen.stop_reason = "cancelled"
                    break
                if held is None:
                    held = self.propose(out, len(self.t.committed) + len(self.t.draft), t_small)
                if held.escalated or self.drafts:
                    stopped, out, t_small, held = yield from self.escalate(self, held)
                    if stopped:
                        break
                    continue
                if alone:  # the large model alone: each step is a one-token large call
                    stopped = yield from self.commit(held.token, "large", None, 0.0, 0.0, held.t_small, 1)
                else:
                    stopped = yield from self.commit(held.token, "small", held.p, held.t_small, held.t_router)
                if stopped:
                    break
                out, t_small = self.steps.step(held.token, self.hidden)
                held = None
        except DecodeError as e:  # a model failed mid-generation (a remote server gone, say): what was
            self.gen.stop_reason, self.gen.message = "error", str(e)  # committed stays, with the reason
        finally:
            self.decoder.settle()
            self.decoder.active = None
            self.meter.redone_steps = self.steps.redone - redone
            self.meter.time_decode = perf_counter() - start
            self.commit.finish(self.decoder.small.n_params, self.decoder.large.n_params)

    def propose(self, out: Dist, position: int, t_small: float) -> Drafted:
        """Sample the proposer's token at `position` from `out` and route it."""
        token = self.choose(out, position)
        self.last_out = out
        if self.overlap and not self.proposer.is_eog(token) and position + 1 <= self.n_ctx \
                and position - self.t.n_prompt + 1 < self.settings.max_tokens:
            self.steps.start(token, self.hidden)
        if self.router is None:
            return Drafted(token, None, False, t_small)
        t = perf_counter()
        decision = self.router.decide(Step(out.logits, out.hidden, token, self.proposer.embedding_row), self.threshold)
        return Drafted(token, decision.p, decision.escalate, t_small, perf_counter() - t)

    def drop_draft(self, keep: int, *, counted: bool = True) -> None:
        """Drop the proposer's cache positions past `keep`: a draft the large model rejected
        (counted), or what was evaluated past the last committed token when a generation ends."""
        self.steps.settle()
        self.t.draft.clear()
        slot = self.steps.slot
        if slot.n_past > keep:
            if counted:
                self.meter.draft_dropped += slot.n_past - keep
                self.meter.rewinds += 1
            slot.truncate(keep)

    def _read_prompt(self, slot: Slot, judge: Slot, prompt: list[int]) -> Dist | None:
        """The proposer reads the prompt from what it holds on; the large model reads it up to
        its last token, as it would running alone, rather than in its first catch-up: that keeps
        its prefill out of the decode phase, and the first catch-up still gives the first answer
        position. None: cancelled."""
        out = _read_in_chunks(slot, prompt[slot.n_past:], self.cancelled, hidden=self.hidden)
        if out is None:
            return None
        if self.judges and judge.n_past < len(prompt) - 1:
            if _read_in_chunks(judge, prompt[judge.n_past: len(prompt) - 1], self.cancelled) is None:
                return None
        return out

    def _prefill(self) -> Dist | None:
        """Read the prompt into the caches; None when the request was cancelled while reading
        (checked between chunks of N_BATCH tokens and, through the slot's abort check, inside one)."""
        self.decoder.settle()
        self.decoder.active = self
        prompt = self.t.committed
        if not prompt:
            raise ConfigError("the prompt is empty")
        if len(prompt) >= self.n_ctx:
            raise PromptTooLongError(f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx} "
                                     "(raise --n-ctx or shorten the prompt)")
        if self.hidden:
            self.proposer.slot.enable_hidden()
        # Slots record what their caches hold, so one shared with another request (large alone
        # next to routed, say) is never trusted beyond its real common prefix.
        slot, judge = self.steps.slot, self.decoder.large_lane.slot
        keep = min(_common_prefix(slot.tokens, prompt), len(prompt) - 1)
        slot.truncate(keep)
        if self.judges:
            judge.truncate(min(_common_prefix(judge.tokens, prompt), keep))
        t = perf_counter()
        try:
            out = self._read_prompt(slot, judge, prompt)
        except DecodeCancelled:  # a cancel cut a prompt chunk short
            return None
        if out is None:
            return None
        m = self.meter
        m.time_prompt, m.prompt_tokens, m.cached_tokens = perf_counter() - t, len(prompt), keep
        return out


def _read_in_chunks(slot: Slot, tokens: Sequence[int], check: "Callable[[], bool]", *,
                    hidden: bool = False) -> Dist | None:
    """Evaluate `tokens` in calls of N_BATCH (the same splits one call makes, so the same numbers),
    stopping between chunks, or inside one, once `check()` is true (then None). The slot's abort
    check is set only here: on every single step it would cost."""
    out = None
    slot.set_abort(check)
    try:
        for begin in range(0, len(tokens), N_BATCH):
            if check():
                return None
            end = min(begin + N_BATCH, len(tokens))
            out = slot.decode(tokens[begin:end], hidden=hidden and end == len(tokens))
    finally:
        slot.set_abort(None)
    return out


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
