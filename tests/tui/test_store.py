"""The SQLite history on a real file: round trips, schema versions, and nothing lost on a crash."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from r2r_tui.store import SCHEMA_VERSION, History, HistoryError, Piece, default_path


def test_default_location_is_the_data_dir(user_dirs):
    h = History()
    assert h.path == default_path() == user_dirs / "data" / "history.sqlite3"
    assert h.path.exists() and h.schema_version == SCHEMA_VERSION
    h.close()


def test_round_trip_keeps_pieces_think_and_stats(tmp_path):
    h = History(tmp_path / "h.db")
    c = h.new_conversation("What is 2+2?", system="Be brief.", models="m")
    u = h.add_user(c, "What is 2+2?")
    a = h.start_answer(c, "random:0.3")
    idx = h.add_pieces(a, 0, [Piece(0, "small", "think", "add"), Piece(1, "large", "answer", "4")])
    h.add_pieces(a, idx, [Piece(2, "small", "answer", ".")])
    h.finish_answer(a, "4.", "add", "eos", {"n_tokens": 3, "large_share": 1 / 3})
    h.close()

    h = History(tmp_path / "h.db")
    [conv] = h.conversations()
    assert (conv.title, conv.system, conv.n_messages) == ("What is 2+2?", "Be brief.", 2)
    user, answer = h.messages(c)
    assert (user.id, user.role, user.content) == (u, "user", "What is 2+2?")
    assert (answer.content, answer.think, answer.stop_reason, answer.router) == ("4.", "add", "eos", "random:0.3")
    assert answer.stats == {"n_tokens": 3, "large_share": 1 / 3}
    assert [p.source for p in answer.pieces] == ["small", "large", "small"]
    h.delete_message(a)
    assert [m.role for m in h.messages(c)] == ["user"]
    assert sqlite3.connect(tmp_path / "h.db").execute("SELECT COUNT(*) FROM pieces").fetchone() == (0,)


def test_a_crash_mid_answer_loses_nothing_already_written(tmp_path):
    """A separate process writes pieces and dies without closing anything (os._exit)."""
    path = tmp_path / "h.db"
    code = textwrap.dedent(f"""
        import os
        from r2r_tui.store import History, Piece
        h = History({str(path)!r})
        c = h.new_conversation("story")
        h.add_user(c, "Tell me a story")
        a = h.start_answer(c, "slm")
        idx = 0
        for i, word in enumerate(["<ignored>", "Once", " upon", " a", " time"][1:]):
            idx = h.add_pieces(a, idx, [Piece(i, "large" if i == 1 else "small", "answer", word)])
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    h = History(path)
    [conv] = h.conversations()
    user, answer = h.messages(conv.id)
    assert answer.complete is False and answer.stop_reason == "interrupted"
    assert answer.content == "Once upon a time"
    assert [p.source for p in answer.pieces] == ["small", "large", "small", "small"]


def test_a_newer_schema_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "h.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError, match="newer than this r2r-chat") as err:
        History(path)
    assert str(path) in str(err.value)


def test_a_file_that_is_not_a_database_is_an_error_naming_it(tmp_path):
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError) as err:
        History(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_migrations_run_once_and_keep_data(tmp_path):
    path = tmp_path / "h.db"
    h = History(path)
    h.new_conversation("kept")
    h.close()
    h = History(path)  # a second open must not re-run the migration (it would fail on CREATE TABLE)
    assert [c.title for c in h.conversations()] == ["kept"] and h.schema_version == SCHEMA_VERSION
