"""The demo pair answers each message on its own (its models learned one-question conversations);
real pairs are given the whole conversation. Real models: the demo pair in the app."""

from __future__ import annotations

import pytest

from pilot_helpers import answered, loaded, make_app, send
from r2r_local.chat import Message
from r2r_local.demo import task
from r2r_tui.loader import SINGLE_TURN_NOTE, ChatOptions, resolve_choice
from r2r_tui.store import History
from r2r_tui.streaming import prompt_messages
from r2r_tui.turns import SINGLE_TURN_NOTICE

SIZE = (100, 32)
TURNS = [Message("user", "555+666"), Message("assistant", "So 555+666 = 1221."), Message("user", "777+888")]


def _prompt_text(app) -> str:
    small = app.loaded.pair.small
    return "".join(small.token_text(t) for t in small.slot.tokens)


def test_a_single_turn_prompt_is_the_latest_user_message_alone():
    assert prompt_messages("Be brief.", TURNS) == [Message("system", "Be brief."), *TURNS]
    assert prompt_messages("", TURNS) == TURNS
    assert prompt_messages("Be brief.", TURNS, single_turn=True) == [Message("system", "Be brief."), TURNS[-1]]
    assert prompt_messages("", TURNS[:1], single_turn=True) == TURNS[:1]


def test_only_the_demo_pair_is_single_turn(smollm2):
    demo = resolve_choice(ChatOptions(demo=True))
    default = resolve_choice(ChatOptions(small=str(smollm2), large=str(smollm2)))  # a real pair
    assert demo.single_turn and demo.header == f"built-in demo pair (addition) · {SINGLE_TURN_NOTE}"
    assert demo.description == "built-in demo pair (addition)"  # what the history stores is unchanged
    assert not default.single_turn and default.header == default.description


@pytest.mark.anyio
async def test_a_follow_up_question_to_the_demo_pair_is_answered_right():
    """The issue's case: 555+666, then 777+888 in the same conversation (1585 before, not 1665)."""
    app = make_app(demo=True, max_tokens=200)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        header = str(app.query_one("#models").render())
        answers, prompts = [], []
        for question in ("555+666", "777+888", "What is 4321 + 987?"):
            await send(pilot, question)
            await answered(pilot)
            answers.append(app.last_answer.answer)
            prompts.append(_prompt_text(app))
        notes = [n.message for n in app._notifications]
        turns = list(app.turns)
        stored = [(m.role, m.content) for m in History().messages(app.conversation)]
    assert [task.extract_answer("</think>" + a) for a in answers] == [1221, 1665, 5308]
    # each answer was given its own question only; the conversation keeps (and stores) all turns
    assert "777+888" in prompts[1] and "555+666" not in prompts[1] and "1221" not in prompts[1]
    assert "4321" in prompts[2] and "777+888" not in prompts[2]
    assert [m.role for m in turns] == ["user", "assistant"] * 3 and stored == [(m.role, m.content) for m in turns]
    # and the app says so: on the models line, and once in the conversation, at its first follow-up
    assert SINGLE_TURN_NOTE in header
    assert notes.count(SINGLE_TURN_NOTICE) == 1
