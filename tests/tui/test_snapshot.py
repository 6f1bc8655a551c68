"""Snapshot of the main screen: a reopened conversation (think block folded, large-model tokens
coloured, the stored figures in the status bar) on the real SmolLM2 pair. Update deliberately with
`pytest tests/tui/test_snapshot.py --snapshot-update` and look at the SVG report before committing."""

from __future__ import annotations

from pilot_helpers import loaded, make_app, wait_until
from seed import seed_conversation
from r2r_tui.answer_view import AssistantMessage
from r2r_tui.history_screen import HistoryScreen
from r2r_tui.store import History


def test_main_screen(snap_compare):
    seed_conversation(History())
    app = make_app()

    async def reopen(pilot) -> None:
        await loaded(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(list(app.query(AssistantMessage))))
        await wait_until(pilot, lambda: all(v.rendered for v in app.query(AssistantMessage)))
        app.clear_notifications()  # "written with another pair" (the seed's): tested in test_new_user.py
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(100, 30), run_before=reopen)
