"""The status line: state, router and threshold, large-model share, tok/s, activated parameters.

It fits its width: the least useful parts go first (the session share, then the activated
parameters, tok/s, the word "answer", the share itself), so the state and the router with its
threshold stay visible down to narrow terminals. A changed threshold is highlighted for a moment,
and while the prompt is read (the engine reports no progress then) the seconds spent are counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.timer import Timer
from textual.widget import Widget

from r2r_local.units import format_params

READING = "reading prompt"
FLASH_S = 2.0  # how long a changed threshold stays highlighted
SEP = " │ "


@dataclass(frozen=True)
class StatusFigures:
    """What the status line shows; None means "not measured yet" (or "not for this answer")."""

    answer_share: float | None = None
    session_share: float | None = None
    tokens_per_s: float | None = None
    activated_params_b: float | None = None
    router: str = "-"
    threshold: float | None = None
    state: str = "loading"
    marking: bool = True


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _segments(f: StatusFigures, elapsed_s: int | None) -> dict[str, list[str]]:
    """Each part of the line with its variants, longest first; "" drops the part."""
    rate = "-" if f.tokens_per_s is None else f"{f.tokens_per_s:.1f}"
    active = "-" if f.activated_params_b is None else format_params(f.activated_params_b * 1e9)
    threshold = "" if f.threshold is None else f" thr {f.threshold:.2f}"
    state = f.state if elapsed_s is None else f"{f.state} {elapsed_s} s"
    large = f"large {_pct(f.answer_share)}"
    return {
        "large": [f"{large} answer · {_pct(f.session_share)} session", f"{large} answer", large, ""],
        "rate": [f"{rate} tok/s", ""],
        "active": [f"{active} active", ""],
        "router": [f"{f.router}{threshold}"],
        "state": [state],
        "marks": ["" if f.marking else "marks off"],
    }


# What gives way first when the line is too wide: (part, how many variants to step down).
SHORTEN = ["large", "active", "rate", "large", "marks", "large"]


def fit_status(f: StatusFigures, width: int, elapsed_s: int | None = None) -> str:
    """The status line for `width` cells: parts shortened and dropped in SHORTEN's order, then the
    router's name cut (its threshold kept), then the line itself cut with an ellipsis."""
    segments = _segments(f, elapsed_s)
    chosen = {name: 0 for name in segments}

    def line() -> str:
        return SEP.join(t for name, t in ((n, segments[n][chosen[n]]) for n in segments) if t)

    for name in SHORTEN:
        if len(line()) <= width:
            return line()
        chosen[name] = min(chosen[name] + 1, len(segments[name]) - 1)
    text = line()
    if len(text) > width and f.router in text:
        cut = max(1, len(f.router) - (len(text) - width) - 1)
        text = text.replace(f.router, f.router[:cut] + "…", 1)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def format_status(f: StatusFigures) -> str:
    """The whole line, nothing left out (for logs and wide terminals)."""
    return fit_status(f, 10_000)


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    StatusBar > .status-bar--changed { text-style: reverse bold; }
    """
    COMPONENT_CLASSES = {"status-bar--changed"}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.figures = StatusFigures()
        self._reading_since: float | None = None
        self._ticker: Timer | None = None
        self._flash_until = 0.0

    def show(self, figures: StatusFigures) -> None:
        old, self.figures = self.figures, figures
        if figures.threshold is not None and old.threshold is not None and figures.threshold != old.threshold:
            self._flash_until = time.monotonic() + FLASH_S
            self.set_timer(FLASH_S + 0.05, self.refresh)
        reading = figures.state == READING
        if reading and old.state != READING:
            self._reading_since = time.monotonic()
            self._ticker = self.set_interval(1.0, self.refresh)
        elif not reading:
            self._reading_since = None
            if self._ticker is not None:
                self._ticker.stop()
                self._ticker = None
        self.refresh()

    @property
    def threshold_changed(self) -> bool:
        """Whether the threshold is highlighted now (it changed less than FLASH_S ago)."""
        return time.monotonic() < self._flash_until

    def render(self) -> Text:
        width = self.content_size.width or 10_000
        elapsed = None if self._reading_since is None else int(time.monotonic() - self._reading_since)
        text = Text(fit_status(self.figures, width, elapsed or None), no_wrap=True, overflow="ellipsis")
        if self.threshold_changed and self.figures.threshold is not None:
            mark = f"thr {self.figures.threshold:.2f}"
            at = text.plain.find(mark)
            if at >= 0:
                text.stylize(self.get_component_rich_style("status-bar--changed"), at, at + len(mark))
        return text
