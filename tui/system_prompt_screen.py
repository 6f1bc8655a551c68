"""Editing the system prompt of the current conversation."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, TextArea


class SystemPromptScreen(ModalScreen[str | None]):
    """Dismisses with the new system prompt (ctrl+s) or None (Esc)."""

    DEFAULT_CSS = """
    SystemPromptScreen { align: center middle; }
    SystemPromptScreen > Vertical {
        width: 90%; max-width: 100; height: auto; max-height: 80%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    SystemPromptScreen TextArea { height: 10; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel"),
                Binding("ctrl+s", "save", "save", priority=True)]

    def __init__(self, system: str) -> None:
        super().__init__()
        self.system = system

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("System prompt — ctrl+s saves, Esc cancels (applies from the next answer)")
            area = TextArea(self.system, soft_wrap=True, id="system-text")
            area.cursor_blink = False
            yield area

    def action_save(self) -> None:
        self.dismiss(self.query_one("#system-text", TextArea).text.strip())
