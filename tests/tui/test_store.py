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


def _open_and_write(path: str, start, n: int) -> str:
    """One of several processes opening a new history at the same moment (see the test below)."""
    start.wait()
    try:
        h = History(path)
        c = h.new_conversation(f"from {n}")
        h.add_user(c, "hello")
        h.close()
        return "ok"
    except HistoryError as e:
        return str(e)


def test_several_processes_opening_a_new_file_at_once_all_succeed(tmp_path):
    import multiprocessing

    n = 6
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            results = pool.starmap(_open_and_write, [(str(tmp_path / "new.db"), start, i) for i in range(n)])
    assert results == ["ok"] * n
    h = History(tmp_path / "new.db")
    assert h.schema_version == SCHEMA_VERSION and len(h.conversations()) == n


def test_dev_null_names_the_real_problem_not_a_rollback():
    with pytest.raises(HistoryError) as err:
        History("/dev/null")
    assert "/dev/null" in str(err.value) and "rollback" not in str(err.value)


def test_a_foreign_database_is_refused_as_not_a_history(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY, whatever TEXT)")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="not an r2r-chat history") as err:
        History(path)
    assert str(path) in str(err.value) and "already exists" not in str(err.value)


# The schema as r2r-chat 0.1 wrote it (store.py's MIGRATIONS[0] at 6fc5df1), written out here so
# that an edit to today's migration 0 cannot make this test build the file it expects.
V1_SCHEMA = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    system TEXT NOT NULL DEFAULT '',
    models TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL DEFAULT '',
    think TEXT NOT NULL DEFAULT '',
    complete INTEGER NOT NULL DEFAULT 1,
    stop_reason TEXT,
    router TEXT,
    stats TEXT,
    created REAL NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE TABLE pieces (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    token INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('small', 'large')),
    part TEXT NOT NULL CHECK (part IN ('think', 'answer')),
    text TEXT NOT NULL,
    PRIMARY KEY (message_id, idx)
);
PRAGMA user_version = 1;
INSERT INTO conversations VALUES (1, 'old', 'Be brief.', 'demo', 1.0, 2.0);
INSERT INTO messages (id, conversation_id, role, content, created) VALUES (1, 1, 'user', 'What is 2+2?', 1.0);
INSERT INTO messages VALUES (2, 1, 'assistant', '4.', 'add', 1, 'eos', 'random:0.3',
                             '{"n_tokens": 3, "large_share": 0.5}', 1.5);
INSERT INTO pieces VALUES (2, 0, 10, 'small', 'think', 'add'), (2, 1, 11, 'large', 'answer', '4'),
                          (2, 2, 12, 'small', 'answer', '.');
INSERT INTO messages (id, conversation_id, role, content, created) VALUES (3, 1, 'user', 'And 3+3?', 1.6);
INSERT INTO messages (id, conversation_id, role, complete, router, created)
    VALUES (4, 1, 'assistant', 0, 'slm', 1.7);
INSERT INTO pieces VALUES (4, 0, 20, 'small', 'think', 'hmm '), (4, 1, 21, 'large', 'answer', ' 6');
"""


def test_a_version_1_file_opens_and_keeps_its_data(tmp_path):
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()
    h = History(path)
    assert h.schema_version == SCHEMA_VERSION
    [conv] = h.conversations()
    assert (conv.id, conv.title, conv.system, conv.models, conv.n_messages) == (1, "old", "Be brief.", "demo", 4)
    user, answer, again, cut = h.messages(1)
    assert (user.role, user.content, again.content) == ("user", "What is 2+2?", "And 3+3?")
    assert (answer.content, answer.think, answer.complete, answer.stop_reason, answer.router, answer.stats) == \
        ("4.", "add", True, "eos", "random:0.3", {"n_tokens": 3, "large_share": 0.5})
    assert answer.pieces == [Piece(10, "small", "think", "add"), Piece(11, "large", "answer", "4"),
                             Piece(12, "small", "answer", ".")]
    # the interrupted answer is rebuilt from its pieces, as version 1 did
    assert (cut.content, cut.think, cut.complete, cut.stop_reason, cut.router) == ("6", "hmm", False, "interrupted", "slm")
    assert [p.token for p in cut.pieces] == [20, 21]
    # and the migrated file takes a regeneration of it
    new = h.start_answer(1, "slm", replaces=cut.id)
    h.finish_answer(new, "6.", "", "eos", None)
    assert [m.content for m in h.messages(1)] == ["What is 2+2?", "4.", "And 3+3?", "6."]


def test_stats_that_are_not_a_json_object_read_as_none(tmp_path):
    h = History(tmp_path / "h.db")
    c = h.new_conversation("s")
    ids = []
    for stats in ("not json {", "[1, 2]", "42", '{"n_tokens": 3}'):
        a = h.start_answer(c, "slm")
        h.finish_answer(a, "x", "", "eos", None)
        h._run("UPDATE messages SET stats = ? WHERE id = ?", (stats, a))
        ids.append(a)
    assert [m.stats for m in h.messages(c)] == [None, None, None, {"n_tokens": 3}]


def test_a_damaged_file_raises_history_errors_on_reading(tmp_path):
    path = tmp_path / "d.db"
    h = History(path)
    c = h.new_conversation("x")
    for _ in range(300):
        h.add_user(c, "hello world " * 50)
    h.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with open(path, "r+b") as f:
        f.seek(4096 * 2)
        f.write(b"\xff" * 4096 * 3)
    h = History(path)
    with pytest.raises(HistoryError, match="malformed"):
        h.messages(c)
    with pytest.raises(HistoryError, match="malformed"):
        h.conversations()


def _answered(h: History, c: int, text: str, replaces: int | None = None, stop: str = "eos") -> tuple[int, bool]:
    a = h.start_answer(c, "slm", replaces=replaces)
    h.add_pieces(a, 0, [Piece(0, "small", "answer", text)])
    return a, h.finish_answer(a, text, "", stop, None)


def test_a_regeneration_replaces_the_old_answer_only_when_it_finishes_normally(tmp_path):
    h = History(tmp_path / "h.db")
    c = h.new_conversation("r")
    h.add_user(c, "q")
    old, _ = _answered(h, c, "old answer")
    for stop in ("cancelled", "error"):
        new, kept = _answered(h, c, "new", replaces=old, stop=stop)
        assert not kept and [m.content for m in h.messages(c)] == ["q", "old answer"]
    new, kept = _answered(h, c, "new answer", replaces=old, stop="max_tokens")
    assert kept and [(m.id, m.content) for m in h.messages(c)] == [(h.messages(c)[0].id, "q"), (new, "new answer")]
    assert h.conversations()[0].n_messages == 2


def test_a_crash_mid_regeneration_keeps_the_old_answer(tmp_path):
    path = tmp_path / "h.db"
    h = History(path)
    c = h.new_conversation("r")
    h.add_user(c, "q")
    old, _ = _answered(h, c, "old answer")
    h.close()
    code = textwrap.dedent(f"""
        import os
        from r2r_tui.store import History, Piece
        h = History({str(path)!r})
        a = h.start_answer({c}, "slm", replaces={old})
        h.add_pieces(a, 0, [Piece(0, "small", "answer", "half a new")])
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    h = History(path)
    assert [(m.role, m.content, m.stop_reason) for m in h.messages(c)] == [("user", "q", None),
                                                                          ("assistant", "old answer", "eos")]
    assert h.conversations()[0].n_messages == 2


def test_a_new_answer_deletes_the_conversations_stale_unfinished_regenerations(tmp_path):
    import time

    from r2r_tui.store import STALE_REGENERATION_S

    h = History(tmp_path / "h.db")
    c, other = h.new_conversation("r"), h.new_conversation("o")
    h.add_user(c, "q")
    old, _ = _answered(h, c, "old answer")
    interrupted = h.start_answer(c, "slm")  # a plain answer cut off: shown as interrupted, kept
    stale, running = h.start_answer(c, "slm", replaces=old), h.start_answer(c, "slm", replaces=old)
    h.add_user(other, "q2")
    elsewhere = h.start_answer(other, "slm", replaces=_answered(h, other, "a2")[0])
    for mid in (interrupted, stale, running, elsewhere):
        h.add_pieces(mid, 0, [Piece(0, "small", "answer", "half")])
    long_ago = time.time() - STALE_REGENERATION_S - 60
    h._run("UPDATE messages SET created = ? WHERE id IN (?, ?, ?)", (long_ago, interrupted, stale, elsewhere))
    new = h.start_answer(c, "slm")
    rows = {r[0] for r in h._rows("SELECT id FROM messages")}
    pieces = {r[0] for r in h._rows("SELECT message_id FROM pieces")}
    # `running` may be another r2r-chat's regeneration in progress; `elsewhere` waits for its own conversation
    assert stale not in rows and stale not in pieces
    assert {interrupted, running, elsewhere, new} <= rows and {interrupted, running, elsewhere} <= pieces
    assert [m.content for m in h.messages(c)] == ["q", "old answer", "half", ""]


def test_failed_empty_answers_are_marked(tmp_path):
    h = History(tmp_path / "h.db")
    c = h.new_conversation("f")
    h.add_user(c, "q")
    a = h.start_answer(c, "slm")
    h.finish_answer(a, "", "", "error", None)
    b, _ = _answered(h, c, "partial", stop="error")
    cancelled, _ = _answered(h, c, "", stop="cancelled")
    assert [m.failed_empty for m in h.messages(c)] == [False, True, False, False]
