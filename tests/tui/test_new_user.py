"""What a new user meets in r2r-chat at 80x24: a history file that cannot be used, the status line
(it fits, tells the prompt is being read, shows the figures of the answer on screen), the key line,
nothing to regenerate, and a conversation reopened on another model pair. Real models: the built-in
demo pair where speed matters, SmolLM2 where an answer must run long enough to be stopped."""

from __future__ import annotations

import pytest

from pilot_helpers import answered, loaded, make_app, send, wait_until
from r2r_local.config import GenerationSettings
from r2r_tui.answer_view import AssistantMessage
from r2r_tui.history_screen import HistoryScreen
from r2r_tui.key_bar import KeyBar
from r2r_tui.status_bar import READING
from r2r_tui.store import History

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
QUESTION = "Q: 347+589="


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def _random_bytes(path):
    path.write_bytes(bytes((i * 97 + 13) % 256 for i in range(4096)))
    return path


@pytest.mark.parametrize("kind", ["random bytes", "directory"])
async def test_chatting_works_when_the_history_file_cannot_be_used(tmp_path, kind):
    path = _random_bytes(tmp_path / "h.db") if kind == "random bytes" else tmp_path
    before = path.read_bytes() if path.is_file() else None
    app = make_app(demo=True, max_tokens=200, history=path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        notes = _notes(app)
        await send(pilot, QUESTION)
        await answered(pilot)
        answer = app.last_answer
        later = _notes(app)[len(notes):]
        saved = app.history.saved
    assert answer is not None and answer.answer and answer.stop_reason == "eos"
    assert later == [] and not saved
    [note] = notes
    what = f"history {path} is not an SQLite database" if kind == "random bytes" else \
        f"history {path} is a directory, not a file; name a file, such as {path / 'history.sqlite3'}"
    assert note.startswith(what) and "Chatting works, but nothing of this session is saved" in note
    assert "--history" in note
    if before is not None:
        assert path.read_bytes() == before  # the file is left as it was


async def test_the_status_and_key_lines_fit_80_columns_and_show_a_threshold_change():
    app = make_app(demo=True, router="entropy:1.5", max_tokens=200)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, QUESTION)
        await answered(pilot)
        status = str(app.status.render())
        keys = app.query_one(KeyBar).shown
        await pilot.press("f9")
        raised, flashing = str(app.status.render()), app.status.threshold_changed
        await pilot.press("f3")
        await pilot.pause(0.1)
        small, notes = str(app.status.render()), _notes(app)
    assert len(status) <= 78 and status.endswith("│ entropy:1.5 thr 1.50 │ ready") and " active" in status
    assert "e-" not in status and "0.000" not in status  # parameter counts in units (e.g. "271K active")
    assert keys.endswith("^q quit") and "esc stop" in keys and len(keys) <= 80
    assert raised.endswith("thr 1.75 │ ready") and flashing
    assert small.endswith("│ small only │ ready") and notes == []  # the status line says it: no toast over it


async def test_the_status_says_the_prompt_is_read_before_the_first_token():
    app = make_app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        states: list[str] = []
        show = app.status.show
        app.status.show = lambda figures: (states.append(figures.state), show(figures))
        await send(pilot, QUESTION)
        await answered(pilot)
    first_writing = states.index("writing")
    assert states[0] == READING and READING not in states[first_writing:] and states[-1] == "ready"


async def test_nothing_to_regenerate_is_said():
    app = make_app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        notes, generating = _notes(app), app.generating
    assert notes == ["nothing to regenerate yet: send a message first"] and not generating


async def test_a_conversation_reopened_on_another_pair_says_so():
    history = History()
    c = history.new_conversation("Old chat", models="small a.gguf · large b.gguf")
    history.add_user(c, "Hello")
    app = make_app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        await pilot.pause(0.1)
        notes = _notes(app)
    assert notes == ["This conversation was written with small a.gguf · large b.gguf; it goes on with "
                     "built-in demo pair (addition)."]


async def test_the_figures_are_those_of_the_answer_on_screen():
    """A stopped regeneration shows the kept answer's figures again; a new chat is ready, figures cleared."""
    app = make_app(max_tokens=12)  # SmolLM2: slow enough for Esc to land mid-answer
    async with app.run_test(size=(100, 32)) as pilot:
        await loaded(pilot)
        await send(pilot, "Write a long story about a dragon.")
        await answered(pilot)
        first = app.last_answer.stats
        app.settings = GenerationSettings(max_tokens=400)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(list(app.query(AssistantMessage))) == 2
                         and len(list(app.query(AssistantMessage))[-1].pieces) >= 3)
        await pilot.press("escape")
        await answered(pilot)
        dropped, kept = app.last_answer, app.status.figures
        await pilot.press("ctrl+n")
        await pilot.pause(0.1)
        new = app.status.figures
    assert dropped.stop_reason == "cancelled" and dropped.stats["n_tokens"] != first["n_tokens"]
    assert (kept.answer_share, kept.tokens_per_s, kept.activated_params_b) == (
        first["large_share"], first["tokens_per_s"], first["activated_params_b"])
    assert kept.state == "stopped"
    assert new.state == "ready" and (new.answer_share, new.tokens_per_s, new.activated_params_b) == (None,) * 3
