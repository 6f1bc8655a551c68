"""Per-token records and per-generation statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class TokenEvent:
    """One committed token, as streamed to the caller.

    source: "small" or "large" (who chose it); p: the router's escalation probability, when it
    has one; t_*: seconds this position cost in the small model step that proposed it, the
    router (features included) and the large model's catch-up call; caught_up: tokens the
    large model evaluated in that call (0 when it was not called).
    """

    index: int
    id: int
    text: str
    source: str
    p: float | None
    t_small: float
    t_router: float
    t_large: float
    caught_up: int


@dataclass(frozen=True)
class DraftEvent:
    """The uncommitted draft, shown as provisional text (only for a Request with show_drafts).

    text: the draft decoded from where the committed text ends (it may start with the rest of a
    character whose first bytes were committed); it replaces the provisional text shown before.
    cut: the large model rejected part of the draft (a rewind); text is then the part that
    stands. Each TokenEvent that follows commits the start of the text shown (`after_commit`).
    """

    text: str
    cut: bool = False


def after_commit(provisional: str, committed: str) -> str:
    """What stays provisional once `committed` (a TokenEvent's text) is committed: the rest of the
    provisional text when it starts with it, else nothing (the draft went elsewhere)."""
    return provisional[len(committed):] if provisional.startswith(committed) else ""


@dataclass
class Meter:
    """Running totals of one generation; `stats()` turns them into the reported figures."""

    n_tokens: int = 0
    large_tokens: int = 0
    large_calls: int = 0
    caught_up: int = 0
    time_small: float = 0.0
    time_router: float = 0.0
    time_large: float = 0.0
    time_prompt: float = 0.0
    time_decode: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    draft_kept: int = 0  # tokens written ahead of a judgment and committed after it
    draft_dropped: int = 0  # positions written ahead and dropped because the large model chose otherwise
    rewinds: int = 0  # times a draft was dropped
    redone_steps: int = 0  # overlap: small steps started on a proposal the large model replaced
    missed_divergences: int = 0  # small-model tokens the large model would have chosen otherwise

    def add_step(self, t_small: float, t_router: float, t_large: float, caught_up: int) -> None:
        self.time_small += t_small
        self.time_router += t_router
        self.time_large += t_large
        if caught_up:
            self.large_calls += 1
            self.caught_up += caught_up

    def add_token(self, event: TokenEvent) -> None:
        self.n_tokens += 1
        self.large_tokens += event.source == "large"

    def stats(self, params_small: int, params_large: int) -> "Stats":
        share = self.large_tokens / self.n_tokens if self.n_tokens else 0.0
        return Stats(
            n_tokens=self.n_tokens,
            large_tokens=self.large_tokens,
            large_share=share,
            large_calls=self.large_calls,
            mean_catch_up=self.caught_up / self.large_calls if self.large_calls else 0.0,
            tokens_per_s=self.n_tokens / self.time_decode if self.time_decode > 0 else 0.0,
            activated_params_b=(params_small + share * params_large) / 1e9,
            time_small_s=self.time_small,
            time_router_s=self.time_router,
            time_large_s=self.time_large,
            time_other_s=max(0.0, self.time_decode - self.time_small - self.time_router - self.time_large),
            time_decode_s=self.time_decode,
            time_prompt_s=self.time_prompt,
            prompt_tokens=self.prompt_tokens,
            cached_prompt_tokens=self.cached_tokens,
            draft_kept=self.draft_kept,
            draft_dropped=self.draft_dropped,
            rewinds=self.rewinds,
            redone_steps=self.redone_steps,
            missed_divergences=self.missed_divergences,
        )


@dataclass(frozen=True)
class Stats:
    """Figures of one generation.

    tokens_per_s counts the generated tokens over the decode phase (after the small model has
    read the prompt; the large model's first catch-up, which includes the prompt, is inside it).
    activated_params_b = (P_small + large_share x P_large) / 1e9. time_other_s is sampling,
    detokenizing and the loop itself. draft_kept / draft_dropped: tokens the small model wrote
    ahead of a judgment and committed / dropped; rewinds: drafts dropped; redone_steps: overlap
    steps redone because the large model chose another token; missed_divergences: small-model
    tokens the large model, at a later call, would have chosen otherwise (counted with verify,
    where they are corrected, and with audit). The large_server_calls and ms_*_per_call fields
    are set only when the large model is served (`--large http://...`; None in-process): the
    server's calls in this generation, each call's round trip as the caller saw it, the server's
    own compute for it (its timings), and their difference, the overhead per call. The calls are
    large_calls plus the large model's prompt reads (one per N_BATCH tokens of the prompt its
    cache lacks, in the routed modes; none when a previous request left the prompt there).
    """

    n_tokens: int
    large_tokens: int
    large_share: float
    large_calls: int
    mean_catch_up: float
    tokens_per_s: float
    activated_params_b: float
    time_small_s: float
    time_router_s: float
    time_large_s: float
    time_other_s: float
    time_decode_s: float
    time_prompt_s: float
    prompt_tokens: int
    cached_prompt_tokens: int
    draft_kept: int = 0
    draft_dropped: int = 0
    rewinds: int = 0
    redone_steps: int = 0
    missed_divergences: int = 0
    large_server_calls: int | None = None
    ms_round_trip_per_call: float | None = None
    ms_server_per_call: float | None = None
    ms_overhead_per_call: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ServedCounters:
    """Running totals of a served large model's slot (r2r_local.backends.remote): calls that
    answered (one per distribution; a request repeated for the incomplete-UTF-8 quirk is inside
    its call), their
    wall seconds as the caller saw them (request, HTTP, JSON, network), and the server's own
    compute (its timings.prompt_ms + predicted_ms, in seconds). round_trip_s >= server_s up to
    clock resolution: the server's work happens inside the round trip. timed: False for an engine
    that does not report its compute (vLLM): server_s stays 0 and is not reported."""

    calls: int = 0
    round_trip_s: float = 0.0
    server_s: float = 0.0
    timed: bool = True

    def plus(self, round_trip_s: float, server_s: float, calls: int = 1) -> "ServedCounters":
        """These counters with `calls` more calls that took these seconds together."""
        return ServedCounters(self.calls + calls, self.round_trip_s + round_trip_s, self.server_s + server_s,
                              self.timed)

    def since(self, before: "ServedCounters") -> "ServedCounters":
        """What was added after `before` (a snapshot of the same counters)."""
        return ServedCounters(self.calls - before.calls, self.round_trip_s - before.round_trip_s,
                              self.server_s - before.server_s, self.timed)


def served_figures(served: ServedCounters) -> dict[str, Any]:
    """The Stats fields of a served large model's calls: large_server_calls, ms per call round
    trip and server compute, and their difference, the per-call overhead (HTTP, JSON, loopback
    or network). With no call the per-call figures are 0; without the server's compute (an engine
    that does not report it) those two are None."""
    n = served.calls

    def per_call(seconds: float) -> float:
        return 1000 * seconds / n if n else 0.0

    timed = served.timed
    return {"large_server_calls": n, "ms_round_trip_per_call": per_call(served.round_trip_s),
            "ms_server_per_call": per_call(served.server_s) if timed else None,
            "ms_overhead_per_call": per_call(served.round_trip_s - served.server_s) if timed else None}


def with_served(stats: Stats, served: ServedCounters) -> Stats:
    """`stats` with the served large model's figures of the same generation (served_figures)."""
    return replace(stats, **served_figures(served))
