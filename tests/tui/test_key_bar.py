"""The key line fits its width: labels shorten, then the least needed keys go; ^q quit stays."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from r2r_tui.key_bar import CHAT_KEYS, KeyBar, fit_keys


def _text(width: int) -> str:
    return "".join(t for t, _, _ in fit_keys(CHAT_KEYS, width))


def test_wide_terminals_get_every_key_with_its_own_label():
    assert _text(200) == ("esc stop ^r regen ^n new ^o history ^s system ^t marks f2 routed f3 small f4 large "
                          "f5 verify f7 spec f8 thr- f9 thr+ ^q quit")


def test_at_80_columns_labels_shorten_and_only_the_least_needed_key_goes():
    assert _text(80) == "esc stop ^r regen ^n new ^o history ^s system f2/f3/f4 mode f8/f9 thr ^q quit"


@pytest.mark.parametrize("width", [100, 80, 60, 40, 20])
def test_every_width_fits_and_keeps_quit_and_stop(width):
    text = _text(width)
    assert len(text) <= width and "^q quit" in text and "esc stop" in text


class _Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    def compose(self) -> ComposeResult:
        yield KeyBar()

    def action_mode(self, mode: str) -> None:
        self.ran.append(f"mode {mode}")

    def action_history(self) -> None:
        self.ran.append("history")


@pytest.mark.anyio
async def test_a_click_on_a_key_runs_its_action():
    app = _Host()
    async with app.run_test(size=(80, 3)) as pilot:
        bar = app.query_one(KeyBar)
        await pilot.pause()
        shown = bar.shown
        await pilot.click(KeyBar, offset=(shown.index("f3"), 0))
        await pilot.click(KeyBar, offset=(shown.index("history"), 0))
    assert shown == _text(80) and app.ran == ["mode slm", "history"]
