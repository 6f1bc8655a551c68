"""The history list: pick a stored conversation to reopen and continue.

Each conversation takes two lines, neither ever wrapped (what does not fit ends in "…"): its
title, then when it was last written, how many messages it has and the model pair it used."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from r2r_tui.store import StoredConversation


class HistoryScreen(ModalScreen[int | None]):
    """Dismisses with the chosen conversation id, or None."""

    DEFAULT_CSS = """
    HistoryScreen { align: center middle; }
    HistoryScreen > Vertical {
        width: 90%; max-width: 100; height: 80%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    HistoryScreen OptionList { height: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "close")]

    def __init__(self, conversations: list[StoredConversation]) -> None:
        super().__init__()
        self.conversations = conversations

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("History — Enter opens, Esc closes" if self.conversations else "History is empty — Esc closes")
            yield OptionList(*[Option(_line(c), id=str(c.id)) for c in self.conversations])

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.conversations:
            options.highlighted = 0  # the newest: Enter alone reopens it
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))


def _line(c: StoredConversation) -> Content:
    """One option's two lines, shown literally: a title such as "What is [/] in Rich?" is not markup."""
    when = datetime.fromtimestamp(c.updated).strftime("%Y-%m-%d %H:%M")
    title = " ".join(c.title.split()) or "(untitled)"
    count = f"{c.n_messages} message" + ("" if c.n_messages == 1 else "s")
    details = " · ".join(part for part in (when, count, c.models) if part)
    return Content.assemble(title, "\n", (details, "dim"))
