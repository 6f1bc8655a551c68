"""What a request gives back: committed tokens as events (and, when asked for, the uncommitted
draft as DraftEvents), the text, the stop and the statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator, Iterator, Sequence

from r2r_local.chat import Utf8Stream
from r2r_local.config import GenerationSettings
from r2r_local.metering import DraftEvent, Meter, Stats, TokenEvent


@dataclass
class Generation:
    """A generation in progress: iterate it for TokenEvents (and DraftEvents, for a request with
    show_drafts); afterwards read the result fields. `events` keeps the TokenEvents only.

    stop_reason: "eos" | "stop" | "max_tokens" | "context_full" | "cancelled" | "error" (a model
    failed mid-generation; the text so far is kept); message: a one-line explanation when the
    stop is something the user should know about. committed: the
    prompt and the generated tokens fed back to the models (a stop's last token is not).
    """

    _events: Iterator[TokenEvent | DraftEvent]
    committed: list[int] = field(default_factory=list)
    events: list[TokenEvent] = field(default_factory=list)
    text: str = ""
    stop_reason: str | None = None
    message: str | None = None
    stats: Stats | None = None

    def __iter__(self) -> Iterator[TokenEvent | DraftEvent]:
        for event in self._events:
            if type(event) is TokenEvent:
                self.events.append(event)
            yield event

    def run(self) -> "Generation":
        """Consume the whole generation and return self."""
        for _ in self:
            pass
        return self


class Committer:
    """Commits the chosen tokens of one generation: checks the stops, streams the event, extends
    the committed sequence. Calling it is a generator that yields the token's event and returns
    True when the generation must stop there (the token is then not added to the sequence).
    Detokenizing, stop strings and statistics see committed tokens only."""

    def __init__(self, committed: list[int], model, n_ctx: int, gen: Generation, meter: Meter,
                 settings: GenerationSettings) -> None:
        self.committed, self.model, self.n_ctx = committed, model, n_ctx
        self.gen, self.meter, self.settings = gen, meter, settings
        self.utf8, self.pieces = Utf8Stream(), []

    def __call__(self, token: int, source: str, p: float | None, t_small: float, t_router: float,
                 t_large: float = 0.0, caught_up: int = 0) -> Generator[TokenEvent, None, bool]:
        gen, meter, settings = self.gen, self.meter, self.settings
        meter.add_step(t_small, t_router, t_large, caught_up)
        if self.model.is_eog(token):
            gen.stop_reason = "eos"
            return True
        text = self.utf8.feed(self.model.token_bytes(token))
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
        if len(self.committed) + 1 > self.n_ctx:
            gen.stop_reason = "context_full"
            gen.message = f"stopped: the context of {self.n_ctx} tokens is full (raise --n-ctx)"
            return True
        self.committed.append(token)
        return False

    def draft(self, tokens: Sequence[int], cut: bool = False) -> DraftEvent:
        """The event showing `tokens` (drafted past the committed ones) as provisional text; an
        end-of-generation token shows nothing."""
        data = b"".join(self.model.token_bytes(t) for t in tokens if not self.model.is_eog(t))
        return DraftEvent(self.utf8.peek(data), cut)

    def finish(self, params_small: int, params_large: int) -> None:
        """The generation's text and statistics (meter.time_decode set by then)."""
        gen = self.gen
        self.pieces.append(self.utf8.flush())
        gen.text = "".join(self.pieces)
        if gen.stop_reason == "stop":
            gen.text = _before_stop(gen.text, self.settings.stop)
        gen.stats = self.meter.stats(params_small, params_large)


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
