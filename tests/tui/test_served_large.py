"""r2r-chat with its large model behind a real llama-server that is killed mid-answer (issue 17,
faults): the answer written so far stays on screen, in the turns and in the SQLite history, marked
with a "cut:" line naming the server and the reason, also when the conversation is reopened; the
next message tries the server again (started again on the same port) and is answered."""

from __future__ import annotations

import pytest

from llama_server import LlamaServer, server_binary
from pilot_helpers import answered, loaded, make_app, send, wait_until
from r2r_local.chat import Message
from r2r_local.defaults import smollm2_path
from r2r_tui.answer_view import AssistantMessage
from r2r_tui.history_screen import HistoryScreen
from r2r_tui.store import History

pytestmark = pytest.mark.anyio
SIZE = (110, 36)
LONG = "Write a long story about a dragon who learns to fly."


def _views(app) -> list[AssistantMessage]:
    return [v for v in app.query(AssistantMessage) if v.display]


async def test_an_answer_cut_by_the_server_stays_marked_and_the_next_message_tries_again():
    server_binary()
    server = LlamaServer(smollm2_path())
    try:
        app = make_app(small=str(smollm2_path()), large=server.url, router="llm", max_tokens=300)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await send(pilot, LONG)
            await wait_until(pilot, lambda: bool(_views(app)) and len(_views(app)[-1].pieces) >= 4)
            server.stop()  # killed mid-answer
            await answered(pilot)
            cut = _views(app)[-1]
            cut_note, cut_text, answer = str(cut.note.render()), cut.answer, app.last_answer
            turns = list(app.turns)
            stored = History().messages(app.conversation)[-1]

            server = LlamaServer(smollm2_path(), port=server.port)  # back, where it was
            await send(pilot, "Thank you.")
            await answered(pilot)
            again = app.last_answer
            again_note = str(_views(app)[-1].note.render())

            await pilot.press("ctrl+o")  # reopen the conversation from the history
            await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
            await pilot.press("enter")
            await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
            await pilot.pause(0.2)
            reopened_notes = [str(v.note.render()) for v in _views(app)]
    finally:
        server.stop()
    reason = answer.message
    assert answer.stop_reason == "error" and reason.startswith(f"large model {server.url}: ") and "\n" not in reason
    assert cut_note == f"[cut: {reason}]"
    assert cut_text == answer.answer == stored.content != ""  # the text written before the cut stays
    assert turns[-1] == Message("assistant", answer.answer)  # and is the next message's context
    assert stored.stop_reason == "error" and stored.stop_message == reason
    assert again.stop_reason in ("eos", "max_tokens") and again.answer and again_note in ("", "[stopped at the token limit]")
    assert reopened_notes[0] == cut_note and len(reopened_notes) == 2
