"""Handing a job's items from the engine's worker thread to the request's event loop.

At most one wakeup of the loop is pending at a time: while the loop has not yet run, further
items only join the box, and the loop takes them all at once. When the engine writes tokens
faster than the loop turns them into chunks, chunks carry several tokens and neither side pays
a wakeup per token (measured in docs/serve.md, "Speed").
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """put() from any thread; take() in the loop's own thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._pending = False  # a wakeup is scheduled and has not run yet
        self._ready = asyncio.Event()

    def put(self, item: T) -> None:
        """Add `item`; raises RuntimeError once the loop is closed."""
        self._items.append(item)
        with self._lock:
            if self._pending:
                return
            self._pending = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._pending = False
        self._ready.set()

    async def take(self) -> list[T]:
        """Every item put so far and not yet taken (at least one; waits for it)."""
        while not self._items:
            self._ready.clear()
            if self._items:
                break
            await self._ready.wait()
        out = []
        while self._items:
            out.append(self._items.popleft())
        return out
