"""One answer streamed from the engine: think/answer split, history writes, live figures.

Runs in the generation worker thread; knows nothing about Textual. Each token's pieces are
committed to the history before `emit` is called, so what the UI shows is already stored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Sequence

from r2r_local.chat import THINK_OPEN, Message, chat_tokens
from r2r_local.config import GenerationSettings, SamplingParams

from r2r_tui.store import History, Piece
from r2r_tui.think import ANSWER, THINK, ThinkSplitter

if TYPE_CHECKING:
    from r2r_local.engine import Engine


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


def prompt_opens_think(engine: "Engine", prompt: Sequence[int]) -> bool:
    """Whether the rendered prompt already ends inside a <think> section (R1's template does)."""
    tail = "".join(engine.small.token_text(t) for t in prompt[-6:])
    return tail.rstrip().endswith(THINK_OPEN)


def stream_answer(
    engine: "Engine",
    messages: Sequence[Message],
    history: History,
    message_id: int,
    emit: Callable[[Progress], None],
    cancel: threading.Event,
    sampling: SamplingParams = SamplingParams(),
    settings: GenerationSettings = GenerationSettings(),
) -> Answer:
    """Generate the next assistant turn after `messages`, storing it under `message_id`."""
    prompt = chat_tokens(engine.small, messages)
    splitter = ThinkSplitter(prompt_opens_think(engine, prompt))
    gen = engine.generate(prompt, sampling, settings, cancel)
    p_small, p_large = engine.small.n_params, engine.large.n_params
    parts: dict[str, list[str]] = {THINK: [], ANSWER: []}
    next_idx, n, large, first_at, rate, active = 0, 0, 0, 0.0, 0.0, p_small / 1e9
    source = "small"
    try:
        for event in gen:
            n += 1
            large += event.source == "large"
            source = event.source
            now = perf_counter()
            first_at = first_at or now
            pieces = tuple(Piece(event.index, event.source, part, text) for part, text in splitter.feed(event.text))
            next_idx = _store(history, message_id, next_idx, pieces, parts)
            rate = (n - 1) / (now - first_at) if n > 1 and now > first_at else 0.0
            active = (p_small + large / n * p_large) / 1e9
            emit(Progress(pieces, n, large, rate, active))
    finally:
        # Also on an error: the text already shown stays stored as a finished (partial) answer.
        tail = tuple(Piece(n, source, part, text) for part, text in splitter.flush())
        _store(history, message_id, next_idx, tail, parts)
        if tail:
            emit(Progress(tail, n, large, rate, active))
        think, answer = "".join(parts[THINK]).strip(), "".join(parts[ANSWER]).strip()
        stats = gen.stats.as_dict() if gen.stats is not None else None
        history.finish_answer(message_id, answer, think, gen.stop_reason or "error", stats)
    return Answer(think, answer, gen.stop_reason, gen.message, stats)


def _store(history: History, message_id: int, idx: int, pieces: tuple[Piece, ...],
           parts: dict[str, list[str]]) -> int:
    for p in pieces:
        parts[p.part].append(p.text)
    return history.add_pieces(message_id, idx, pieces)
