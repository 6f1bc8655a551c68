"""One answer streamed from the engine: think/answer split, history writes, live figures.

Runs in the generation worker thread; knows nothing about Textual. Each token's pieces are
committed to the history before `emit` is called, so what the UI shows is already stored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Sequence

from r2r_local.chat import Message, chat_tokens, prompt_opens_think
from r2r_local.config import GenerationSettings, SamplingParams

from r2r_tui.store import History, Piece
from r2r_tui.think import ANSWER, THINK, ThinkSplitter

if TYPE_CHECKING:
    from r2r_local.decode import Generation, Policy
    from r2r_local.metering import TokenEvent
    from r2r_local.pair import LoadedPair
    from r2r_local.router import Router


@dataclass(frozen=True)
class Routing:
    """How one answer is decoded: the pair, the policy, and for routed policies the router and
    the threshold in force when the answer started. label: what the history stores."""

    pair: "LoadedPair"
    policy: "Policy"
    router: "Router | None" = None
    threshold: float | None = None

    @property
    def label(self) -> str:
        if not self.policy.routed:
            return {"small": "slm", "large": "llm"}[self.policy.name]
        return self.router.name if self.router is not None else "-"

    def generate(self, prompt: Sequence[int], sampling: SamplingParams, settings: GenerationSettings,
                 cancel: threading.Event) -> "Generation":
        from r2r_local.decode import Request

        return self.pair.generate(Request(prompt, self.router, self.policy, self.threshold, sampling, settings, cancel))


@dataclass(frozen=True)
class Progress:
    """Live figures of the answer being written, after `n_tokens` tokens."""

    pieces: tuple[Piece, ...]
    n_tokens: int
    large_tokens: int
    tokens_per_s: float
    activated_params_b: float


@dataclass(frozen=True)
class Answer:
    """A finished (or stopped) answer. stats: the core's Stats as a dict (None if nothing ran)."""

    think: str
    answer: str
    stop_reason: str | None
    message: str | None
    stats: dict[str, Any] | None = field(default=None)


def stream_answer(
    routing: Routing,
    messages: Sequence[Message],
    history: History,
    message_id: int,
    emit: Callable[[Progress], None],
    cancel: threading.Event,
    sampling: SamplingParams = SamplingParams(),
    settings: GenerationSettings = GenerationSettings(),
    thinking: bool | None = None,
) -> Answer:
    """Generate the next assistant turn after `messages`, storing it under `message_id`.

    thinking: the chat template's switch (None: the model's default; see chat.chat_tokens).
    Whatever happens (a stop, an error), the message is finished with the text already shown."""
    pair = routing.pair
    writer = _AnswerWriter(history, message_id, pair.small.n_params, pair.large.n_params)
    gen: Generation | None = None
    try:
        prompt = chat_tokens(pair.small, messages, thinking=thinking)
        writer.splitter = ThinkSplitter(prompt_opens_think(pair.small, prompt))
        gen = routing.generate(prompt, sampling, settings, cancel)
        for event in gen:
            emit(writer.add(event))
    finally:
        tail = writer.flush()
        if tail is not None:
            emit(tail)
        answer = writer.finish(gen)
    return answer


class _AnswerWriter:
    """Turns TokenEvents into stored pieces and live figures, and finishes the stored message."""

    def __init__(self, history: History, message_id: int, p_small: int, p_large: int) -> None:
        self.history, self.message_id = history, message_id
        self.p_small, self.p_large = p_small, p_large
        self.splitter = ThinkSplitter()
        self.parts: dict[str, list[str]] = {THINK: [], ANSWER: []}
        self.next_idx, self.n, self.large, self.source = 0, 0, 0, "small"
        self.first_at, self.rate, self.active = 0.0, 0.0, p_small / 1e9

    def add(self, event: TokenEvent) -> Progress:
        self.n += 1
        self.large += event.source == "large"
        self.source = event.source
        now = perf_counter()
        self.first_at = self.first_at or now
        pieces = tuple(Piece(event.index, event.source, part, text) for part, text in self.splitter.feed(event.text))
        self._store(pieces)
        self.rate = (self.n - 1) / (now - self.first_at) if self.n > 1 and now > self.first_at else 0.0
        self.active = (self.p_small + self.large / self.n * self.p_large) / 1e9
        return Progress(pieces, self.n, self.large, self.rate, self.active)

    def flush(self) -> Progress | None:
        """Text the think splitter still held back (a possible tag start), as a last Progress."""
        tail = tuple(Piece(self.n, self.source, part, text) for part, text in self.splitter.flush())
        self._store(tail)
        return Progress(tail, self.n, self.large, self.rate, self.active) if tail else None

    def finish(self, gen: "Generation | None") -> Answer:
        think, answer = "".join(self.parts[THINK]).strip(), "".join(self.parts[ANSWER]).strip()
        stats = gen.stats.as_dict() if gen is not None and gen.stats is not None else None
        stop_reason = gen.stop_reason if gen is not None else None
        self.history.finish_answer(self.message_id, answer, think, stop_reason or "error", stats)
        return Answer(think, answer, stop_reason, gen.message if gen is not None else None, stats)

    def _store(self, pieces: tuple[Piece, ...]) -> None:
        for p in pieces:
            self.parts[p.part].append(p.text)
        self.next_idx = self.history.add_pieces(self.message_id, self.next_idx, pieces)
