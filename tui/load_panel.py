"""Model loading: the steps so far while the pair loads, or the error (file and reason) if it failed."""

from __future__ import annotations

from time import monotonic

from rich.text import Text
from textual.widgets import Static


class LoadPanel(Static):
    DEFAULT_CSS = """
    LoadPanel {
        height: auto;
        padding: 0 1;
        margin: 1 0;
        border: round $primary;
        border-title-color: $primary;
    }
    LoadPanel.-error { border: round $error; border-title-color: $error; }
    LoadPanel.-done { display: none; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps: list[str] = []
        self.error: tuple[str, str] | None = None
        self._step_started = monotonic()
        self.border_title = "Loading models"

    def on_mount(self) -> None:
        # A large model takes minutes to load: the current step counts its seconds.
        self._ticker = self.set_interval(1.0, self._show)

    def add_step(self, text: str) -> None:
        self.steps.append(text)
        self._step_started = monotonic()
        self._show()

    def _show(self) -> None:
        out = Text()
        for i, step in enumerate(self.steps):
            last = i == len(self.steps) - 1
            if last:
                out.append(f"… {step} ({monotonic() - self._step_started:.0f} s)")
            else:
                out.append(f"✓ {step}\n")
        self.update(out)

    def done(self) -> None:
        self._ticker.stop()
        self.add_class("-done")

    def fail(self, title: str, message: str) -> None:
        self._ticker.stop()
        self.error = (title, message)
        self.border_title = title
        self.add_class("-error")
        out = Text()
        out.append(message, style="bold")
        out.append("\nThe app stays open: browse the history (ctrl+o), or quit (ctrl+q) and fix the "
                   "models in the config file or the flags.")
        self.update(out)
