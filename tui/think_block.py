"""The reasoning section of an answer (<think>...</think>), streamed into a collapsible block."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Collapsible, Static


class ThinkBlock(Collapsible):
    DEFAULT_CSS = """
    ThinkBlock { display: none; border: none; padding: 0; margin: 0; background: transparent; }
    ThinkBlock.-has-text { display: block; }
    ThinkBlock Contents { padding: 0 0 0 2; }
    ThinkBlock .think-text { color: $text-muted; }
    """

    def __init__(self, **kwargs: object) -> None:
        self.text_view = Static(classes="think-text")
        super().__init__(self.text_view, title="Thinking…", collapsed=False, **kwargs)  # type: ignore[arg-type]
        self.plain = ""

    def show_text(self, text: Text, n_tokens: int, done: bool) -> None:
        """Show the think text so far; `done` once the answer has started (the block then folds)."""
        self.plain = text.plain
        if self.plain.strip():
            self.add_class("-has-text")
        count = f"{n_tokens} token" + ("" if n_tokens == 1 else "s")
        self.title = f"Thought ({count})" if done else f"Thinking… ({count})"
        self.text_view.update(text)
