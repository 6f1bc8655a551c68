"""A reader who scrolled up while an answer streams stays where they are until they scroll back
to the end, also when the content shrinks under them (the think block folding as the answer starts).

The answer view is fed pieces directly: what is tested is the scrolling, with Textual's real layout."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from r2r_tui.answer_view import AssistantMessage
from r2r_tui.chat_scroll import ChatScroll
from r2r_tui.store import Piece

pytestmark = pytest.mark.anyio


class _Chat(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatScroll(id="chat")


async def _stream(pilot, view: AssistantMessage, part: str, n: int, start: int) -> int:
    """Add n pieces of a few words each (a paragraph break every third), like tokens arriving."""
    for k in range(n):
        text = f"{part}{k} " * 6 + ("\n\n" if k % 3 == 2 else "")
        view.add_pieces([Piece(start + k, "small", part, text)])
        await pilot.pause(0.02)
    for _ in range(100):  # redraws are paced by their cost (answer_view): wait until all is shown
        if view.rendered:
            break
        await pilot.pause(0.05)
    await pilot.pause(0.3)
    return start + n


async def _wheel(pilot, chat: ChatScroll, notches: int) -> None:
    """Mouse wheel notches over the chat (negative: up), through Textual's own handlers."""
    for _ in range(abs(notches)):
        if notches < 0:
            chat._scroll_up_for_pointer(animate=False)
        else:
            chat._scroll_down_for_pointer(animate=False)
        await pilot.pause(0.05)


@pytest.mark.parametrize("first_part", ["answer", "think"])
async def test_a_reader_who_scrolled_up_is_not_carried_back_down(first_part):
    app = _Chat()
    async with app.run_test(size=(80, 24)) as pilot:
        chat = app.query_one(ChatScroll)
        view = AssistantMessage(1)
        await chat.mount(view)
        chat.anchor()
        at = await _stream(pilot, view, first_part, 60, 0)
        assert chat.max_scroll_y > 10 and chat.scroll_y == chat.max_scroll_y and chat.following
        await _wheel(pilot, chat, -1)
        held = chat.scroll_y
        at = await _stream(pilot, view, "answer", 40, at)  # after think text: the think block folds
        assert not chat.following
        if first_part == "answer":
            assert chat.scroll_y == held < chat.max_scroll_y
        else:  # the fold took the text above away: the view is where the fold left it, not at the end
            assert chat.scroll_y < chat.max_scroll_y - 10
        # scrolling back to the end follows the answer again
        await _wheel(pilot, chat, chat.max_scroll_y)
        assert chat.following
        await _stream(pilot, view, "answer", 12, at)
        assert chat.scroll_y == chat.max_scroll_y
