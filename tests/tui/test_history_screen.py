"""The history list shows stored titles literally, whatever brackets they hold."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import OptionList

from r2r_tui.history_screen import HistoryScreen
from r2r_tui.store import History

pytestmark = pytest.mark.anyio

TITLES = ["What is [/] in Rich?", "regex [^a-z]+ vs [/\\]", "arr[/2]", "Explain a[i][j] in C", "list[int]",
          "[red]error[/red]", "[b]bold[/b] and [link=x]y[/link]"]


class _Host(App[None]):
    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history

    def on_mount(self) -> None:
        self.push_screen(HistoryScreen(self.history.conversations()))


async def test_titles_with_brackets_are_shown_literally(tmp_path):
    history = History(tmp_path / "h.db")
    for title in TITLES:
        history.new_conversation(title)
    app = _Host(history)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.1)
        options = app.screen.query_one(OptionList)
        lines = [options.render_line(y).text for y in range(len(TITLES))]
        running = app.is_running
    history.close()
    assert running
    shown = "\n".join(lines)
    for title in TITLES:
        assert title in shown, (title, lines)
