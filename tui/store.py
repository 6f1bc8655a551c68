"""Conversation history in SQLite, written while tokens stream.

Every streamed piece is committed before the UI is told about it, so a crash loses nothing
that was already on screen: an answer left incomplete is rebuilt from its pieces when the
conversation is reopened. The schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]`
takes a database from version i to i+1.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from r2r_local.errors import R2RError

FILE_NAME = "history.sqlite3"

MIGRATIONS: list[str] = [
    """
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
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(R2RError):
    """The history database cannot be opened or written."""

    title = "History unavailable"


@dataclass(frozen=True)
class Piece:
    """A run of streamed text: which model wrote it and whether it is think or answer text."""

    token: int
    source: str
    part: str
    text: str


@dataclass(frozen=True)
class StoredConversation:
    id: int
    title: str
    system: str
    models: str
    created: float
    updated: float
    n_messages: int


@dataclass(frozen=True)
class StoredMessage:
    """role "user" or "assistant"; an assistant message has its think section apart.

    complete is False for an answer whose stream never finished (then stop_reason is
    "interrupted" and content/think were rebuilt from the pieces)."""

    id: int
    role: str
    content: str
    think: str = ""
    complete: bool = True
    stop_reason: str | None = None
    router: str | None = None
    stats: dict[str, Any] | None = None
    pieces: list[Piece] = field(default_factory=list)


def default_path() -> Path:
    from r2r_local.config import data_dir

    return data_dir() / FILE_NAME


class History:
    """One SQLite file; safe to call from the UI thread and one generation worker."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise HistoryError(f"history {self.path}: {e}") from None
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: each commit survives a crash of the app (not a power cut) cheaply.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise HistoryError(f"history {self.path}: {e}") from None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"history {self.path} has schema version {version}, newer than this r2r-chat "
                f"understands ({SCHEMA_VERSION}); upgrade r2r-local"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(MIGRATIONS[target - 1]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _run(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args))
            except sqlite3.Error as e:
                raise HistoryError(f"history {self.path}: {e}") from None

    @property
    def schema_version(self) -> int:
        return self._run("PRAGMA user_version").fetchone()[0]

    # --- writing ------------------------------------------------------------------------------

    def new_conversation(self, title: str, system: str = "", models: str = "") -> int:
        now = time.time()
        cur = self._run("INSERT INTO conversations (title, system, models, created, updated) VALUES (?, ?, ?, ?, ?)",
                        (title, system, models, now, now))
        return int(cur.lastrowid)

    def set_system(self, conversation: int, system: str) -> None:
        self._run("UPDATE conversations SET system = ?, updated = ? WHERE id = ?", (system, time.time(), conversation))

    def add_user(self, conversation: int, text: str) -> int:
        return self._add_message(conversation, "user", text, complete=True)

    def start_answer(self, conversation: int, router: str) -> int:
        """An empty, incomplete assistant message; pieces are added as they stream."""
        return self._add_message(conversation, "assistant", "", complete=False, router=router)

    def _add_message(self, conversation: int, role: str, text: str, *, complete: bool,
                     router: str | None = None) -> int:
        now = time.time()
        cur = self._run("INSERT INTO messages (conversation_id, role, content, complete, router, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (conversation, role, text, int(complete), router, now))
        self._run("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation))
        return int(cur.lastrowid)

    def add_pieces(self, message: int, first_idx: int, pieces: Iterable[Piece]) -> int:
        """Append pieces (committed at once); returns the next free piece index."""
        idx = first_idx
        rows = []
        for p in pieces:
            rows.append((message, idx, p.token, p.source, p.part, p.text))
            idx += 1
        if rows:
            with self._lock:
                try:
                    self._db.executemany("INSERT INTO pieces (message_id, idx, token, source, part, text) "
                                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
                except sqlite3.Error as e:
                    raise HistoryError(f"history {self.path}: {e}") from None
        return idx

    def finish_answer(self, message: int, content: str, think: str, stop_reason: str | None,
                      stats: dict[str, Any] | None) -> None:
        self._run("UPDATE messages SET content = ?, think = ?, complete = 1, stop_reason = ?, stats = ? WHERE id = ?",
                  (content, think, stop_reason, json.dumps(stats) if stats is not None else None, message))

    def delete_message(self, message: int) -> None:
        self._run("DELETE FROM messages WHERE id = ?", (message,))

    # --- reading ------------------------------------------------------------------------------

    def conversations(self) -> list[StoredConversation]:
        """Newest first."""
        rows = self._run(
            "SELECT c.id, c.title, c.system, c.models, c.created, c.updated, COUNT(m.id) "
            "FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id "
            "GROUP BY c.id ORDER BY c.updated DESC, c.id DESC").fetchall()
        return [StoredConversation(*row) for row in rows]

    def conversation(self, conversation: int) -> StoredConversation | None:
        return next((c for c in self.conversations() if c.id == conversation), None)

    def messages(self, conversation: int) -> list[StoredMessage]:
        """The conversation's messages in order; an interrupted answer is rebuilt from its pieces."""
        rows = self._run("SELECT id, role, content, think, complete, stop_reason, router, stats FROM messages "
                         "WHERE conversation_id = ? ORDER BY id", (conversation,)).fetchall()
        pieces: dict[int, list[Piece]] = {}
        for mid, token, source, part, text in self._run(
                "SELECT p.message_id, p.token, p.source, p.part, p.text FROM pieces p "
                "JOIN messages m ON m.id = p.message_id WHERE m.conversation_id = ? "
                "ORDER BY p.message_id, p.idx", (conversation,)).fetchall():
            pieces.setdefault(mid, []).append(Piece(token, source, part, text))
        out = []
        for mid, role, content, think, complete, stop_reason, router, stats in rows:
            own = pieces.get(mid, [])
            if not complete:
                think = "".join(p.text for p in own if p.part == "think").strip()
                content = "".join(p.text for p in own if p.part == "answer").strip()
                stop_reason = "interrupted"
            out.append(StoredMessage(mid, role, content, think, bool(complete), stop_reason, router,
                                     json.loads(stats) if stats else None, own))
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
