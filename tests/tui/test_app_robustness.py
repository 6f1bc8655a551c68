"""r2r-chat when things go wrong: history errors, failed and regenerated answers, quitting while a
worker runs. Real generation on the built-in demo pair (fast); a blocking stand-in for the engine
only where the test needs a worker stuck inside llama.cpp, which the tiny models never are."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import r2r_tui.app as app_module
import r2r_tui.streaming as streaming
from pilot_helpers import answered, loaded, make_app, send, wait_until
from r2r_local.config import MAX_SEED, GenerationSettings, SamplingParams
from r2r_local.errors import R2RError
from r2r_tui.answer_view import AssistantMessage
from r2r_tui.history_screen import HistoryScreen
from r2r_tui.messages import AnswerDone
from r2r_tui.prompt_input import PromptInput
from r2r_tui.store import History, HistoryError
from r2r_tui.streaming import Answer
from r2r_tui.system_prompt_screen import SystemPromptScreen
from r2r_tui.user_message import UserMessage

pytestmark = pytest.mark.anyio
SIZE = (100, 32)
QUESTION = "Q: 347+589="


def _shown(app) -> list[AssistantMessage]:
    return [v for v in app.query(AssistantMessage) if v.display]


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def _fail(*args, **kwargs):
    raise HistoryError("history h.db: database disk image is malformed")


async def _reopen_latest(pilot) -> None:
    app = pilot.app
    await pilot.press("ctrl+o")
    await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
    await pilot.pause(0.1)


async def test_history_errors_on_the_ui_thread_are_notified_and_the_app_keeps_running(monkeypatch):
    app = make_app(demo=True, max_tokens=64)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        history = app.history
        await send(pilot, QUESTION)
        await answered(pilot)
        turns, conversation = list(app.turns), app.conversation
        # stats that are not a JSON object: reopened without figures, no error
        history._run("UPDATE messages SET stats = '[1, 2]' WHERE role = 'assistant'")
        await _reopen_latest(pilot)
        assert app.turns == turns and app.status.figures.state.startswith("reopened") is False
        history._run("UPDATE messages SET stats = 'not json' WHERE role = 'assistant'")
        await _reopen_latest(pilot)
        assert app.turns == turns
        # a damaged file: reopening keeps the conversation on screen
        with monkeypatch.context() as patch:  # undo() would also drop conftest's private dirs
            patch.setattr(history, "messages", _fail)
            await _reopen_latest(pilot)
            assert app.turns == turns and app.conversation == conversation and len(_shown(app)) == 1
        # the history list cannot be read
        with monkeypatch.context() as patch:  # undo() would also drop conftest's private dirs
            patch.setattr(history, "conversations", _fail)
            await pilot.press("ctrl+o")
            await pilot.pause(0.1)
            assert not isinstance(app.screen, HistoryScreen)
        # the system prompt cannot be stored: it stays what the history holds
        with monkeypatch.context() as patch:  # undo() would also drop conftest's private dirs
            patch.setattr(history, "set_system", _fail)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, SystemPromptScreen))
            for ch in "Be brief.":
                await pilot.press(ch)
            await pilot.press("ctrl+s")
            await pilot.pause(0.1)
            assert app.system == ""
        # a regenerate that cannot be stored keeps the answer
        with monkeypatch.context() as patch:  # undo() would also drop conftest's private dirs
            patch.setattr(history, "start_answer", _fail)
            await pilot.press("ctrl+r")
            await pilot.pause(0.1)
            assert app.turns == turns and len(_shown(app)) == 1 and not app.generating
        notes = _notes(app)
        assert app.is_running
    assert len([n for n in notes if "malformed" in n]) == 4


async def test_a_stopped_regeneration_keeps_the_old_answer_everywhere():
    app = make_app(max_tokens=16)  # SmolLM2: slow enough for Esc to land mid-answer
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, "Write a long story about a dragon.")
        await answered(pilot)
        old_answer, turns = app.last_answer.answer, list(app.turns)
        app.settings = GenerationSettings(max_tokens=400)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(list(app.query(AssistantMessage))) == 2
                         and len(list(app.query(AssistantMessage))[-1].pieces) >= 3)
        during = [(m.role, m.content) for m in History().messages(app.conversation)]
        await pilot.press("escape")
        await answered(pilot)
        stopped = app.last_answer.stop_reason
        views = [v.answer for v in _shown(app)]
        live_turns = list(app.turns)
        stored = [(m.role, m.content) for m in History().messages(app.conversation)]
        await _reopen_latest(pilot)
        reopened = list(app.turns), [v.answer for v in _shown(app)]
    assert stopped == "cancelled"
    assert during == stored == [("user", turns[0].content), ("assistant", old_answer)]
    assert views == [old_answer] and live_turns == turns
    assert reopened == (turns, [old_answer])


async def test_a_regeneration_that_ends_normally_replaces_the_old_answer():
    app = make_app(demo=True, max_tokens=64)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, QUESTION)
        await answered(pilot)
        first = app.turn_ids[-1]
        await pilot.press("ctrl+r")
        await answered(pilot)
        ids, views = list(app.turn_ids), [v.message_id for v in app.query(AssistantMessage)]
        stored = [(m.id, m.role) for m in History().messages(app.conversation)]
    assert len(ids) == 2 and ids[-1] != first and views == [ids[-1]]
    assert stored == [(ids[0], "user"), (ids[1], "assistant")]


async def test_regenerating_at_the_largest_seed_wraps_the_seed_and_keeps_running(monkeypatch):
    """--seed 4294967295 is valid; the regenerate's seed + 1 wraps to 0 instead of failing."""
    real, seeds = streaming.stream_answer, []

    def recording(*args):
        seeds.append(args[6].seed)  # (engine, messages, history, mid, emit, cancel, sampling, settings)
        return real(*args)

    monkeypatch.setattr(app_module, "stream_answer", recording)
    app = make_app(demo=True, max_tokens=64, sampling=SamplingParams(seed=MAX_SEED - 1))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, QUESTION)
        await answered(pilot)
        first = app.turn_ids[-1]
        await pilot.press("ctrl+r")
        await answered(pilot, timeout=60)  # the demo pair answers in well under a second
        running, ids = app.is_running, list(app.turn_ids)
        views = [v.message_id for v in _shown(app)]
        rows = app.history._rows("SELECT id, role FROM messages ORDER BY id")
    assert seeds == [MAX_SEED - 1, 0]
    assert running and len(ids) == 2 and ids[-1] != first and views == [ids[-1]]
    assert rows == [(ids[0], "user"), (ids[1], "assistant")]  # no row left behind


def _fail_the_first_answer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The first answer fails before any token (the engine raises); later ones run as usual."""
    real, calls = streaming.chat_tokens, []

    def fail_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise R2RError("the engine failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(streaming, "chat_tokens", fail_once)


async def test_a_failed_answer_is_not_a_turn_and_regenerate_replaces_it(monkeypatch):
    _fail_the_first_answer(monkeypatch)
    app = make_app(demo=True, max_tokens=64)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, QUESTION)
        await answered(pilot)
        failed_turns = list(app.turns)
        await _reopen_latest(pilot)
        reopened_turns = list(app.turns)
        await pilot.press("ctrl+r")  # after the reopen: the failed row is replaced
        await answered(pilot)
        live = list(app.turns)
        stored = [(m.role, m.stop_reason) for m in History().messages(app.conversation)]
        views = len(list(app.query(AssistantMessage)))
        await _reopen_latest(pilot)
        reopened = list(app.turns)
    assert [t.role for t in failed_turns] == ["user"] and reopened_turns == failed_turns
    assert [t.role for t in live] == ["user", "assistant"] and reopened == live and views == 1
    assert stored == [("user", None), ("assistant", live and app.last_answer.stop_reason)]


async def test_after_a_failure_reopening_rebuilds_the_live_turns(monkeypatch):
    _fail_the_first_answer(monkeypatch)
    app = make_app(demo=True, max_tokens=64)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, QUESTION)
        await answered(pilot)
        await send(pilot, "Q: 12+30=")
        await answered(pilot)
        live = list(app.turns)
        await _reopen_latest(pilot)
        reopened = list(app.turns)
    assert [t.role for t in live] == ["user", "user", "assistant"] and reopened == live


async def test_a_user_message_whose_answer_cannot_be_stored_is_taken_back(monkeypatch):
    app = make_app(demo=True, max_tokens=64)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        with monkeypatch.context() as patch:  # undo() would also drop conftest's private dirs
            patch.setattr(app.history, "start_answer", _fail)
            await send(pilot, QUESTION)
            await pilot.pause(0.1)
            taken_back = (list(app.turns), len(list(app.query(UserMessage))), app.query_one(PromptInput).text)
        app.query_one(PromptInput).text = ""
        await send(pilot, QUESTION)
        await answered(pilot)
        stored = [m.role for m in History().messages(app.conversation)]
    assert taken_back == ([], 0, QUESTION)
    assert stored == ["user", "assistant"]


def _blocking_stream(seconds: float, honour_cancel: bool):
    """A stand-in for stream_answer stuck in one long llama.cpp call (a prompt read)."""
    running = threading.Event()

    def stream(engine, messages, history, mid, emit, cancel, sampling, settings, thinking=None, flush_s=None):
        running.set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (honour_cancel and cancel.is_set()):
            time.sleep(0.01)
        running.clear()
        return Answer("", "", "cancelled", None, None)

    stream.running = running
    return stream


def _record_closes(app, stream) -> list[bool]:
    """Wrap Loaded.close: record, for each call, whether the generation worker was still running."""
    closes: list[bool] = []
    loaded = app.loaded
    real_close = loaded.close

    def close():
        closes.append(stream.running.is_set())
        real_close()

    loaded.close = close
    return closes


async def test_quitting_while_the_worker_is_inside_llama_cpp_leaves_the_models_alone(monkeypatch):
    stream = _blocking_stream(6.0, honour_cancel=False)
    monkeypatch.setattr(app_module, "stream_answer", stream)
    app = make_app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        pair = app.loaded
        closes = _record_closes(app, stream)
        await send(pilot, QUESTION)
        await wait_until(pilot, stream.running.is_set)
        started = time.monotonic()
    unmount_s = time.monotonic() - started
    at_exit = list(closes)
    await wait_until(None, lambda: not stream.running.is_set(), timeout=10)
    pair.close()
    assert at_exit == [] and unmount_s < 5


async def test_a_late_finishing_worker_does_not_mark_the_next_answer_done(monkeypatch):
    """The first worker posts AnswerDone and ends a moment later; the second answer starts in
    between. At quit the second one is still inside llama.cpp: the models must stay open."""
    stream = _blocking_stream(6.0, honour_cancel=False)
    real = streaming.stream_answer
    calls = []

    def first_real_then_blocking(*args):
        calls.append(1)
        return real(*args) if len(calls) == 1 else stream(*args)

    monkeypatch.setattr(app_module, "stream_answer", first_real_then_blocking)
    app = make_app(demo=True, max_tokens=16)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        pair = app.loaded
        closes = _record_closes(app, stream)
        real_post = app.post_message

        def late_post(message):
            posted = real_post(message)
            if isinstance(message, AnswerDone) and threading.current_thread() is not threading.main_thread():
                time.sleep(1.0)  # the worker's own end comes after the UI took the answer
            return posted

        app.post_message = late_post
        await send(pilot, QUESTION)
        await wait_until(pilot, lambda: app.last_answer is not None)
        await pilot.press("ctrl+r")
        await wait_until(pilot, stream.running.is_set)
        await asyncio.sleep(1.5)  # the first worker has ended by now
    at_exit = list(closes)
    await wait_until(None, lambda: not stream.running.is_set(), timeout=10)
    pair.close()
    assert at_exit == []


async def test_enter_during_an_answer_warns_once(monkeypatch):
    stream = _blocking_stream(30.0, honour_cancel=True)
    monkeypatch.setattr(app_module, "stream_answer", stream)
    app = make_app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, QUESTION)
        await wait_until(pilot, stream.running.is_set)
        app.query_one(PromptInput).text = "again"
        for _ in range(30):
            await pilot.press("enter")
        await pilot.pause(0.1)
        warnings = [n for n in _notes(app) if "being written" in n]
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.generating)
    assert len(warnings) == 1
