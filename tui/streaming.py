"""One answer streamed from the engine: think/answer split, history writes, live figures.

Runs in the generation worker thread; knows nothing about Textual. New pieces are committed to
the history before `emit` is called with them, so what the UI shows is already stored; they are
committed and emitted in batches, at most every FLUSH_S seconds (see _Flusher). Modes that draft
before the large model checks (spec:K, routed+verify) also hand over the draft as provisional
text, which is shown but never stored.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Sequence

from r2r_local.chat import Message, chat_tokens, prompt_opens_think
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.metering import DraftEvent, after_commit

from r2r_tui.store import History, Piece
from r2r_tui.think import ANSWER, THINK, ThinkSplitter

# While an answer streams, its new pieces are stored and shown at most this often (and text waits
# at most about this long to show, also during a long model call).
FLUSH_S = 0.1

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
        """slm | llm | spec:K | the router's name (+verify for routed decoding with verify)."""
        if not self.policy.routed:
            return {"small": "slm", "large": "llm"}.get(self.policy.name, self.policy.name)
        name = self.router.name if self.router is not None else "-"
        return name + "+verify" if self.policy.verify else name

    @property
    def drafts(self) -> bool:
        """Whether tokens wait as drafts for the large model's check (shown as provisional text)."""
        return self.policy.spec > 0 or self.policy.verify

    def generate(self, prompt: Sequence[int], sampling: SamplingParams, settings: GenerationSettings,
                 cancel: threading.Event) -> "Generation":
        from r2r_local.decode import Request

        return self.pair.generate(Request(prompt, self.router, self.policy, self.threshold, sampling, settings, cancel,
                                          show_drafts=self.drafts))


# Provisional text: [(part, text)] in order, part THINK or ANSWER (the draft split as the answer's
# text would be); never stored.
Provisional = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Progress:
    """Live figures of the answer being written, after `n_tokens` tokens. provisional: the draft
    not yet checked by the large model, after the committed pieces (it replaces the one before)."""

    pieces: tuple[Piece, ...]
    n_tokens: int
    large_tokens: int
    tokens_per_s: float
    activated_params_b: float
    provisional: Provisional = ()


@dataclass(frozen=True)
class Answer:
    """A finished (or stopped) answer. stats: the core's Stats as a dict (None if nothing ran)."""

    think: str
    answer: str
    stop_reason: str | None
    message: str | None
    stats: dict[str, Any] | None = field(default=None)


def prompt_messages(system: str, turns: Sequence[Message], single_turn: bool = False) -> list[Message]:
    """The messages an answer is given: the system prompt (if any), then the conversation's turns,
    which end with the user message to answer.

    single_turn: only that last user message is given (the built-in demo pair, whose models and
    router learned one-question conversations: a follow-up question in a longer prompt was
    answered wrongly, see ModelChoice.single_turn). The earlier turns stay in the conversation."""
    if single_turn:
        turns = [m for m in turns if m.role == "user"][-1:]
    return ([Message("system", system)] if system else []) + list(turns)


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
    flush_s: float = FLUSH_S,
) -> Answer:
    """Generate the next assistant turn after `messages`, storing it under `message_id`.

    thinking: the chat template's switch (None: the model's default; see chat.chat_tokens).
    New pieces are stored and emitted together at most every `flush_s` seconds (see _Flusher).
    Whatever happens (a stop, an error), the message is finished with the text already shown."""
    pair = routing.pair
    writer = _AnswerWriter(history, message_id, pair.small.n_params, pair.large.n_params, emit, flush_s)
    gen: Generation | None = None
    try:
        prompt = chat_tokens(pair.small, messages, thinking=thinking)
        writer.splitter = ThinkSplitter(prompt_opens_think(pair.small, prompt))
        gen = routing.generate(prompt, sampling, settings, cancel)
        for event in gen:
            if isinstance(event, DraftEvent):
                writer.draft(event)
            else:
                writer.add(event)
    finally:
        stored = False
        try:
            writer.close()
            stored = True
        finally:  # a failed last store still finishes the message, as failed, with the text stored before
            answer = writer.finish(gen if stored else None)
    return answer


class _AnswerWriter:
    """Turns TokenEvents into pieces and live figures, and DraftEvents into provisional text
    (handed to a _Flusher), and finishes the stored message."""

    def __init__(self, history: History, message_id: int, p_small: int, p_large: int,
                 emit: Callable[[Progress], None], flush_s: float) -> None:
        self.history, self.message_id = history, message_id
        self.p_small, self.p_large = p_small, p_large
        self.splitter = ThinkSplitter()
        self.parts: dict[str, list[str]] = {THINK: [], ANSWER: []}
        self.n, self.large, self.source = 0, 0, "small"
        self.first_at, self.rate, self.active = 0.0, 0.0, p_small / 1e9
        self.draft_text = ""  # the provisional text past the committed text
        self.flusher = _Flusher(self._store, emit, flush_s)

    def draft(self, event: DraftEvent) -> None:
        """The draft grew or was cut: show it in place of the provisional text before."""
        self.draft_text = event.text
        self.flusher.add((), self._figures(), self._provisional())

    def _provisional(self) -> Provisional:
        """The draft split into think and answer text as the committed text goes on (a copy of
        the splitter reads it; a possible tag start at its end is left out)."""
        if not self.draft_text:
            return ()
        return tuple(copy.copy(self.splitter).feed(self.draft_text))

    def add(self, event: TokenEvent) -> None:
        self.n += 1
        self.large += event.source == "large"
        self.source = event.source
        now = perf_counter()
        self.first_at = self.first_at or now
        pieces = [Piece(event.index, event.source, part, text) for part, text in self.splitter.feed(event.text)]
        self.rate = (self.n - 1) / (now - self.first_at) if self.n > 1 and now > self.first_at else 0.0
        self.active = (self.p_small + self.large / self.n * self.p_large) / 1e9
        self.draft_text = after_commit(self.draft_text, event.text)
        self.flusher.add(pieces, self._figures(), self._provisional())

    def close(self) -> None:
        """Store and emit what is pending, with the text the think splitter still held back (a
        possible tag start); nothing is emitted after this."""
        tail = [Piece(self.n, self.source, part, text) for part, text in self.splitter.flush()]
        self.flusher.close(tail, self._figures())

    def finish(self, gen: "Generation | None") -> Answer:
        think, answer = "".join(self.parts[THINK]).strip(), "".join(self.parts[ANSWER]).strip()
        stats = gen.stats.as_dict() if gen is not None and gen.stats is not None else None
        stop_reason = gen.stop_reason if gen is not None else None
        message = gen.message if gen is not None else None
        self.history.finish_answer(self.message_id, answer, think, stop_reason or "error", stats,
                                   message if stop_reason == "error" else None)
        return Answer(think, answer, stop_reason, message, stats)

    def _figures(self) -> tuple[int, int, float, float]:
        return self.n, self.large, self.rate, self.active

    def _store(self, pieces: Sequence[Piece], first_idx: int) -> int:
        """Commit pieces (one transaction); only stored text counts toward the finished answer."""
        idx = self.history.add_pieces(self.message_id, first_idx, pieces)
        for p in pieces:
            self.parts[p.part].append(p.text)
        return idx


class _Flusher:
    """Stores new pieces and emits them as one Progress, at most every `interval` seconds.

    Per token, a commit and a UI update took CPU and the GIL from the decode loop (with the
    Markdown's redraws, the app ran at 0.88 of `r2r generate`'s tokens/s with SmolLM2 and 0.45
    with the demo pair: scripts/chat_speed.py, docs/chat.md); batched, they cost little. A flush
    happens in the worker when it adds a piece and the last flush is at least `interval` old, else
    from a helper thread once it is due, so that text written before a long model call does not
    wait for the next token. Each flush stores, then emits, under one lock: the UI is never told
    about a piece that is not committed, and Progress messages arrive in order. A failed store is
    raised in the worker (at its next add, or at close)."""

    def __init__(self, store: Callable[[Sequence[Piece], int], int], emit: Callable[[Progress], None],
                 interval: float) -> None:
        self.store, self.emit, self.interval = store, emit, interval
        self.lock = threading.Condition()
        self.pending: list[Piece] = []
        self.figures: tuple[int, int, float, float] | None = None  # the latest, if not yet emitted
        self.provisional: Provisional = ()  # the latest draft text (emitted with the figures)
        self.next_idx = 0  # the next free piece index of the stored message
        self.last = float("-inf")  # when the last flush started
        self.closed = False
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def add(self, pieces: Sequence[Piece], figures: tuple[int, int, float, float],
            provisional: Provisional = ()) -> None:
        with self.lock:
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            self.pending.extend(pieces)
            self.figures, self.provisional = figures, provisional
            if perf_counter() - self.last >= self.interval:
                self._flush()
            elif self.thread is None:
                self.thread = threading.Thread(target=self._run, name="r2r-chat-flush", daemon=True)
                self.thread.start()
            else:
                self.lock.notify()

    def close(self, tail: Sequence[Piece], figures: tuple[int, int, float, float]) -> None:
        with self.lock:
            self.closed = True
            self.lock.notify()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            self.error = None  # raised in the worker already, or superseded by this last store
            self.pending.extend(tail)
            if self.provisional:  # what was never checked goes away with the answer's end
                self.provisional, self.figures = (), figures
            if self.pending:
                self.figures = figures
            if self.figures is not None:
                self._flush()

    def _run(self) -> None:
        """The helper thread: flush pending figures once they are `interval` old, until closed."""
        with self.lock:
            while not self.closed:
                if self.figures is None or self.error is not None:
                    self.lock.wait()
                    continue
                wait = self.last + self.interval - perf_counter()
                if wait > 0:
                    self.lock.wait(wait)
                    continue
                try:
                    self._flush()
                except BaseException as e:  # a HistoryError: the worker raises it
                    self.error = e

    def _flush(self) -> None:
        """Store the pending pieces, then emit them with the latest figures (lock held)."""
        self.last = perf_counter()
        pieces, figures = tuple(self.pending), self.figures
        assert figures is not None
        if pieces:
            self.next_idx = self.store(pieces, self.next_idx)
        self.pending, self.figures = [], None
        self.emit(Progress(pieces, *figures, provisional=self.provisional))
