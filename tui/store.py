"""Conversation history in SQLite, written while tokens stream.

Streamed pieces are committed (a batch at a time) before the UI is told about them, so a crash
loses nothing that was already on screen: an answer left incomplete is rebuilt from its pieces
when the conversation is reopened. The schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]`
takes a database from version i to i+1.

A regenerated answer is written beside the one it replaces (`replaces` names it) and takes its
place only when it finishes normally, in one transaction: a stopped, failed or crashed
regeneration leaves the old answer as the conversation's, and reading skips the unfinished row
(deleted once it is stale, when the conversation gets its next answer: see `start_answer`).
Every sqlite or JSON problem surfaces as HistoryError (a stored `stats` that is not a JSON
object reads as None).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from r2r_local.errors import R2RError

FILE_NAME = "history.sqlite3"
MEMORY = ":memory:"  # the path of a history that is not saved (History.unsaved)

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
    # A regeneration in progress: the id of the assistant message it is to replace (NULL otherwise).
    "ALTER TABLE messages ADD COLUMN replaces INTEGER",
    # Why an answer stopped early, one line (a large model's server gone, say): shown again on reopening.
    "ALTER TABLE messages ADD COLUMN stop_message TEXT",
]
SCHEMA_VERSION = len(MIGRATIONS)
# Concurrent openers (two r2r-chat instances) wait for each other this long instead of failing.
BUSY_TIMEOUT_S = 10.0
# A regeneration that ends like this is dropped and the answer it was to replace is kept.
REGENERATION_DROPPED = frozenset({"cancelled", "error", "interrupted"})
# An unfinished regeneration older than this was cut off (a crash, a failed last write): no answer
# is written for an hour, so no running r2r-chat can still be writing it.
STALE_REGENERATION_S = 3600.0


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
    "interrupted" and content/think were rebuilt from the pieces). stop_message: the one-line
    reason of an answer that stopped early (None otherwise)."""

    id: int
    role: str
    content: str
    think: str = ""
    complete: bool = True
    stop_reason: str | None = None
    router: str | None = None
    stats: dict[str, Any] | None = None
    pieces: list[Piece] = field(default_factory=list)
    stop_message: str | None = None

    @property
    def failed_empty(self) -> bool:
        """An answer that failed or was cut off before any answer text: the live session never
        made it a turn, so a reopened one does not either (and a regenerate replaces it)."""
        return self.role == "assistant" and not self.content and self.stop_reason in ("error", "interrupted")


def default_path() -> Path:
    from r2r_local.config import data_dir

    return data_dir() / FILE_NAME


class History:
    """One SQLite file; safe to call from the UI thread and one generation worker."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.saved = str(path) != MEMORY  # False: an in-memory history that ends with the app
        self._lock = threading.Lock()
        if self.saved and self.path.is_dir():
            raise HistoryError(f"history {self.path} is a directory, not a file; name a file, such as "
                               f"{self.path / FILE_NAME}")
        try:
            if self.saved:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path if self.saved else MEMORY, timeout=BUSY_TIMEOUT_S,
                                       check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise HistoryError(f"history {self.path}: {e}") from None
        try:
            # The busy timeout first: switching to WAL and migrating both wait on a concurrent opener.
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._use_wal()
            # WAL + NORMAL: each commit survives a crash of the app (not a power cut) cheaply.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except (sqlite3.Error, HistoryError) as e:
            self._db.close()
            if isinstance(e, HistoryError):
                raise
            if isinstance(e, sqlite3.DatabaseError) and "not a database" in str(e):
                raise HistoryError(f"history {self.path} is not an SQLite database ({e})") from None
            raise HistoryError(f"history {self.path}: {e}") from None

    @classmethod
    def unsaved(cls) -> "History":
        """A history in memory: everything works, nothing outlives the app (when the file cannot be used)."""
        return cls(MEMORY)

    def _use_wal(self) -> None:
        """Switch to WAL; sqlite answers "locked" at once (no busy wait) when another opener is
        switching at the same moment, so that one case is retried until the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION in one transaction.

        The version is read again after BEGIN IMMEDIATE has taken the write lock, so two processes
        opening a new file at once serialise: the second sees the first one's tables."""
        if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"history {self.path} has schema version {version}, newer than this r2r-chat "
                    f"understands ({SCHEMA_VERSION}); upgrade r2r-local"
                )
            if version == 0:
                tables = [r[0] for r in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
                if tables:
                    raise HistoryError(f"history {self.path} is not an r2r-chat history (an old or foreign "
                                       f"database with tables {', '.join(sorted(tables))}); choose another file")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[target - 1]):
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # a failed BEGIN leaves none, and its error is the one to show
                self._db.execute("ROLLBACK")
            raise

    def _run(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args))
            except sqlite3.Error as e:
                raise HistoryError(f"history {self.path}: {e}") from None

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query, fetched under the lock (a damaged file fails while fetching too)."""
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as e:
                raise HistoryError(f"history {self.path}: {e}") from None

    def _transaction(self, steps: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run steps(db) in one write transaction: all of it is stored, or none."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = steps(self._db)
                    self._db.execute("COMMIT")
                    return result
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise HistoryError(f"history {self.path}: {e}") from None

    @property
    def schema_version(self) -> int:
        return self._rows("PRAGMA user_version")[0][0]

    # --- writing ------------------------------------------------------------------------------

    def new_conversation(self, title: str, system: str = "", models: str = "") -> int:
        now = time.time()
        cur = self._run("INSERT INTO conversations (title, system, models, created, updated) VALUES (?, ?, ?, ?, ?)",
                        (title, system, models, now, now))
        return int(cur.lastrowid)

    def set_system(self, conversation: int, system: str) -> None:
        self._run("UPDATE conversations SET system = ?, updated = ? WHERE id = ?", (system, time.time(), conversation))

    def delete_conversation(self, conversation: int) -> None:
        self._run("DELETE FROM conversations WHERE id = ?", (conversation,))

    def add_user(self, conversation: int, text: str) -> int:
        return self._add_message(conversation, "user", text, complete=True)

    def start_answer(self, conversation: int, router: str, replaces: int | None = None) -> int:
        """An empty, incomplete assistant message; pieces are added as they stream.

        replaces: the answer this one regenerates; it stays the conversation's answer until
        `finish_answer` ends this one normally.

        Unfinished regenerations of this conversation older than STALE_REGENERATION_S are deleted
        with their pieces first: they are hidden and would never be cleaned otherwise. Only old
        ones, and only here: a second r2r-chat may have this conversation open and be writing a
        regeneration right now, which a cleanup on open or of every unfinished row would delete
        under it."""
        return self._add_message(conversation, "assistant", "", complete=False, router=router, replaces=replaces,
                                 drop_stale=True)

    def _add_message(self, conversation: int, role: str, text: str, *, complete: bool,
                     router: str | None = None, replaces: int | None = None, drop_stale: bool = False) -> int:
        now = time.time()

        def steps(db: sqlite3.Connection) -> int:
            if drop_stale:
                db.execute("DELETE FROM messages WHERE conversation_id = ? AND replaces IS NOT NULL "
                           "AND complete = 0 AND created < ?", (conversation, now - STALE_REGENERATION_S))
            cur = db.execute("INSERT INTO messages (conversation_id, role, content, complete, router, replaces, "
                             "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (conversation, role, text, int(complete), router, replaces, now))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation))
            return int(cur.lastrowid)

        return self._transaction(steps)

    def add_pieces(self, message: int, first_idx: int, pieces: Iterable[Piece]) -> int:
        """Append pieces, all committed in one transaction (or none); returns the next free piece index."""
        rows = [(message, first_idx + k, p.token, p.source, p.part, p.text) for k, p in enumerate(pieces)]
        if rows:
            self._transaction(lambda db: db.executemany(
                "INSERT INTO pieces (message_id, idx, token, source, part, text) VALUES (?, ?, ?, ?, ?, ?)", rows))
        return first_idx + len(rows)

    def finish_answer(self, message: int, content: str, think: str, stop_reason: str | None,
                      stats: dict[str, Any] | None, stop_message: str | None = None) -> bool:
        """Store the finished answer (stop_message: why it stopped early, one line). A regeneration
        (see `start_answer`) that ends normally replaces its old answer; one that ends in
        REGENERATION_DROPPED is deleted and the old answer kept. Returns whether this answer is
        now part of the conversation."""
        encoded = json.dumps(stats) if stats is not None else None

        def steps(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT replaces FROM messages WHERE id = ?", (message,)).fetchone()
            old = row[0] if row is not None else None
            if old is not None and stop_reason in REGENERATION_DROPPED:
                db.execute("DELETE FROM messages WHERE id = ?", (message,))
                return False
            if old is not None:
                db.execute("DELETE FROM messages WHERE id = ?", (old,))
            db.execute("UPDATE messages SET content = ?, think = ?, complete = 1, stop_reason = ?, stats = ?, "
                       "stop_message = ?, replaces = NULL WHERE id = ?",
                       (content, think, stop_reason, encoded, stop_message, message))
            return True

        return self._transaction(steps)

    def delete_message(self, message: int) -> None:
        self._run("DELETE FROM messages WHERE id = ?", (message,))

    # --- reading ------------------------------------------------------------------------------

    def conversations(self) -> list[StoredConversation]:
        """Newest first (n_messages leaves out regenerations still in progress)."""
        rows = self._rows(
            "SELECT c.id, c.title, c.system, c.models, c.created, c.updated, COUNT(m.id) "
            "FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id AND m.replaces IS NULL "
            "GROUP BY c.id ORDER BY c.updated DESC, c.id DESC")
        return [StoredConversation(*row) for row in rows]

    def conversation(self, conversation: int) -> StoredConversation | None:
        return next((c for c in self.conversations() if c.id == conversation), None)

    def messages(self, conversation: int) -> list[StoredMessage]:
        """The conversation's messages in order; an interrupted answer is rebuilt from its pieces.

        A regeneration that has not finished (in progress elsewhere, or cut off by a crash) is
        left out: the answer it was to replace is still the conversation's."""
        rows = self._rows("SELECT id, role, content, think, complete, stop_reason, router, stats, stop_message FROM messages "
                          "WHERE conversation_id = ? AND replaces IS NULL ORDER BY id", (conversation,))
        pieces: dict[int, list[Piece]] = {}
        for mid, token, source, part, text in self._rows(
                "SELECT p.message_id, p.token, p.source, p.part, p.text FROM pieces p "
                "JOIN messages m ON m.id = p.message_id WHERE m.conversation_id = ? "
                "ORDER BY p.message_id, p.idx", (conversation,)):
            pieces.setdefault(mid, []).append(Piece(token, source, part, text))
        out = []
        for mid, role, content, think, complete, stop_reason, router, stats, stop_message in rows:
            own = pieces.get(mid, [])
            if not complete:
                think = "".join(p.text for p in own if p.part == "think").strip()
                content = "".join(p.text for p in own if p.part == "answer").strip()
                stop_reason = "interrupted"
            out.append(StoredMessage(mid, role, content, think, bool(complete), stop_reason, router,
                                     _stats(stats), own, stop_message))
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _stats(text: str | None) -> dict[str, Any] | None:
    """Stored stats as a dict; None when absent or not a JSON object (a damaged row is no error)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
