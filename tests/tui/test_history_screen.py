"""The history list: stored titles shown literally whatever brackets they hold, two lines a
conversation that never wrap, the pair each conversation used."""

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
        lines = [options.render_line(y).text for y in range(2 * len(TITLES))]
        running = app.is_running
    history.close()
    assert running
    shown = "\n".join(lines)
    for title in TITLES:
        assert title in shown, (title, lines)


async def test_long_titles_do_not_wrap_and_each_conversation_names_its_pair(tmp_path):
    history = History(tmp_path / "h.db")
    long_title = "Explain, step by step and with examples, " * 4 + "the end"
    c = history.new_conversation(long_title, models="small a.gguf · large b.gguf")
    for text in ("one", "two", "three", "four"):
        history.add_user(c, text)
    history.new_conversation("Short", models="built-in demo pair (addition)")
    app = _Host(history)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        options = app.screen.query_one(OptionList)
        lines = [options.render_line(y).text.rstrip() for y in range(4)]
    history.close()
    # newest first: "Short", then the long one; each two lines, the long title cut with an ellipsis
    assert lines[0].strip() == "Short" and lines[1].strip().endswith("0 messages · built-in demo pair (addition)")
    assert lines[2].strip().startswith("Explain, step by step") and lines[2].strip().endswith("…")
    assert lines[3].strip().endswith("4 messages · small a.gguf · large b.gguf")
