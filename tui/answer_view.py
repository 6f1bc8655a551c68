"""An assistant turn: its think block, then the answer rendered as Markdown.

With source marking on, the large model's words are coloured inside the Markdown (see
marked_markdown.py); the think text is shown as plain text, coloured the same way.

Provisional text (a draft the large model has not checked yet: spec:K, routed+verify) is shown
dimmed after the committed text: at the end of the think text, or under the answer's Markdown in
a line of its own, so that redrawing it (it grows, or is cut where the large model corrects it)
never lays the committed Markdown out again. It is never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from time import thread_time
from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from r2r_tui.marked_markdown import MarkedMarkdown, marked_source
from r2r_tui.store import Piece
from r2r_tui.streaming import Provisional
from r2r_tui.think import ANSWER, THINK
from r2r_tui.think_block import ThinkBlock

THINK_LARGE_STYLE = "#ff9f1a"
PROVISIONAL_STYLE = "dim italic"
# While an answer streams, its Markdown is redrawn at most every REFRESH_S, and after a redraw
# waits REDRAW_SPACING times the UI thread's CPU time that redraw took, until the screen showed it
# (at most MAX_REFRESH_S): a redraw and the layout it starts hold the GIL that the decode loop
# needs, so the more a redraw costs (a longer answer, a fuller screen), the rarer it gets.
REFRESH_S = 0.08
REDRAW_SPACING = 30
MAX_REFRESH_S = 1.0


def marked_text(pieces: Iterable[Piece], part: str, large_style: str | None) -> Text:
    """The pieces of one part as Rich Text, the large model's pieces styled (leading space dropped)."""
    text = Text()
    started = False
    for p in pieces:
        if p.part != part:
            continue
        chunk = p.text if started else p.text.lstrip()
        started = started or bool(chunk)
        if chunk:
            text.append(chunk, style=large_style if (p.source == "large" and large_style) else None)
    text.rstrip()
    return text


class AssistantMessage(Vertical):
    DEFAULT_CSS = """
    AssistantMessage { height: auto; margin: 1 0 0 0; padding: 0 1; }
    AssistantMessage > MarkedMarkdown { height: auto; margin: 0; padding: 0; }
    AssistantMessage > .answer-note { color: $text-muted; height: auto; }
    AssistantMessage > .provisional { height: auto; display: none; }
    AssistantMessage > .provisional.-shown { display: block; }
    """

    def __init__(self, message_id: int, *, marking: bool = True, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.message_id = message_id
        self.pieces: list[Piece] = []
        self.marking = marking
        self.think_block = ThinkBlock()
        self.markdown = MarkedMarkdown()
        self.note = Static(classes="answer-note")
        self.provisional: Provisional = ()  # the unchecked draft shown after the committed text
        self.provisional_view = Static(classes="provisional")
        self.drafts_shown = 0  # updates that showed provisional text
        self.cuts_shown = 0  # updates that cut the provisional text back with nothing committed (a correction)
        self.n_think_tokens = 0
        self.stats: dict | None = None  # the finished answer's figures (the core's Stats as a dict)
        self.done = False
        self.shown_source = ""  # the Markdown source last rendered (marks included)
        self._dirty = False
        self._pumping = False
        self._appended = False  # the Markdown shown was appended to since it was last laid out whole

    def compose(self) -> ComposeResult:
        yield self.think_block
        yield self.markdown
        yield self.provisional_view
        yield self.note

    def on_mount(self) -> None:
        self._render_all()

    @property
    def answer(self) -> str:
        return marked_source(self.pieces, ANSWER, False)

    @property
    def rendered(self) -> bool:
        """Whether the Markdown on screen shows every piece received so far."""
        return self.markdown.ready and not self._dirty and not self._pumping

    @property
    def large_answer_text(self) -> list[str]:
        """The answer's texts shown in the large model's colour, in order (what marking shows)."""
        return self.markdown.large_spans()

    def add_pieces(self, pieces: Iterable[Piece], provisional: Provisional = ()) -> None:
        """New committed pieces, and the provisional text after them (it replaces the one shown)."""
        new = list(pieces)
        if not new and provisional == self.provisional:
            return
        self.pieces.extend(new)
        self.n_think_tokens += len({p.token for p in new if p.part == THINK})
        self.drafts_shown += bool(provisional)
        old, now = "".join(t for _, t in self.provisional), "".join(t for _, t in provisional)
        self.cuts_shown += not new and len(now) < len(old) and old.startswith(now)
        self.provisional = provisional
        self._render_all()

    def finish(self, note: str = "") -> None:
        self.done = True
        self.provisional = ()
        self.note.update(Text(note))
        self._render_all()

    def set_marking(self, marking: bool) -> None:
        self.marking = marking
        self._render_all()

    def _render_all(self) -> None:
        think = marked_text(self.pieces, THINK, THINK_LARGE_STYLE if self.marking else None)
        answer_started = any(p.part == ANSWER and p.text.strip() for p in self.pieces)
        draft = {part: "".join(t for p, t in self.provisional if p == part) for part in (THINK, ANSWER)}
        if draft[THINK]:
            think.append(draft[THINK] if think.plain else draft[THINK].lstrip(), style=PROVISIONAL_STYLE)
        shown = draft[ANSWER].strip()
        self.provisional_view.update(Text(shown, style=PROVISIONAL_STYLE))
        self.provisional_view.set_class(bool(shown), "-shown")
        if think.plain:
            was_done = self.think_block.title.startswith("Thought")
            self.think_block.show_text(think, self.n_think_tokens, answer_started or self.done)
            if (answer_started or self.done) and not was_done:
                self.think_block.collapsed = True
        self._dirty = True
        if self.markdown.ready and not self._pumping:
            self._pumping = True
            # The function, not a coroutine object: a worker that never starts (the app quits)
            # must not leave a coroutine behind that was never awaited.
            self.run_worker(self._pump, group="markdown")

    def on_marked_markdown_ready(self, event: MarkedMarkdown.Ready) -> None:
        event.stop()
        self._render_all()

    async def _pump(self) -> None:
        """Redraw the Markdown until it shows everything; while streaming, spaced as REFRESH_S says.

        One update at a time: Textual's Markdown.update must not overlap with itself."""
        try:
            while self._dirty:
                self._dirty = False
                cpu = thread_time()
                source = marked_source(self.pieces, ANSWER, self.marking)
                if source != self.shown_source or (self.done and self._appended):
                    await self._show(source)
                if not self.done:
                    await self._refreshed()  # the layout and drawing it started count too
                    spent = thread_time() - cpu
                    await asyncio.sleep(min(MAX_REFRESH_S, max(REFRESH_S, REDRAW_SPACING * spent)))
        finally:
            self._pumping = False

    async def _refreshed(self) -> None:
        """Wait until the screen has been refreshed (at most MAX_REFRESH_S)."""
        done = asyncio.Event()
        if self.call_after_refresh(done.set):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), MAX_REFRESH_S)

    async def _show(self, source: str) -> None:
        """While streaming, a source that extends the one shown is appended (Textual parses again
        from the last block only, instead of laying the whole answer out anew: that cost grows with
        the answer and slowed the decode loop); otherwise, and once the answer is done, the whole
        source is laid out, so a finished answer looks exactly as Markdown.update draws it."""
        shown, self.shown_source = self.shown_source, source
        if not self.done and shown and source.startswith(shown):
            self._appended = True
            await self.markdown.append(source[len(shown):])
        else:
            self._appended = False
            await self.markdown.update(source)
