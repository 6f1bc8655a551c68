"""The status line: large-model share (this answer, session), tok/s, activated parameters, router."""

from __future__ import annotations

from dataclasses import dataclass

from textual.widgets import Static


@dataclass(frozen=True)
class StatusFigures:
    """What the status line shows; None means "not measured yet"."""

    answer_share: float | None = None
    session_share: float | None = None
    tokens_per_s: float | None = None
    activated_params_b: float | None = None
    router: str = "-"
    threshold: float | None = None
    state: str = "loading"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def format_status(f: StatusFigures) -> str:
    rate = "-" if f.tokens_per_s is None else f"{f.tokens_per_s:.1f}"
    active = "-" if f.activated_params_b is None else f"{f.activated_params_b:.3g}B"
    threshold = "" if f.threshold is None else f" thr {f.threshold:.2f}"
    return (f"large {_pct(f.answer_share)} answer · {_pct(f.session_share)} session │ {rate} tok/s │ "
            f"{active} active │ {f.router}{threshold} │ {f.state}")


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(format_status(StatusFigures()), **kwargs)  # type: ignore[arg-type]
        self.figures = StatusFigures()

    def show(self, figures: StatusFigures) -> None:
        self.figures = figures
        self.update(format_status(figures))
