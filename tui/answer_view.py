"""An assistant turn: its think block, then the answer.

With source marking on, the answer is shown as text with the large model's tokens coloured;
with marking off it is rendered as Markdown. (Textual's Markdown widget has no way to colour
arbitrary character ranges, so the two views are separate and a key switches between them.)
"""

from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static

from r2r_tui.store import Piece
from r2r_tui.think import ANSWER, THINK
from r2r_tui.think_block import ThinkBlock

LARGE_STYLE = "bold #ff9f1a"
THINK_LARGE_STYLE = "#ff9f1a"


def marked_text(pieces: Iterable[Piece], part: str, large_style: str | None) -> Text:
    """The pieces of one part as Rich Text, the large model's pieces styled (leading space dropped)."""
    text = Text()
    started = False
    for p in pieces:
        if p.part != part:
            continue
        chunk = p.text
        if not started:
            chunk = chunk.lstrip()
            started = bool(chunk)
        if chunk:
            text.append(chunk, style=large_style if (p.source == "large" and large_style) else None)
    text.rstrip()
    return text


class AssistantMessage(Vertical):
    DEFAULT_CSS = """
    AssistantMessage { height: auto; margin: 1 0 0 0; padding: 0 1; }
    AssistantMessage > .answer-text { height: auto; }
    AssistantMessage > Markdown { height: auto; margin: 0; padding: 0; display: none; }
    AssistantMessage.-markdown > .answer-text { display: none; }
    AssistantMessage.-markdown > Markdown { display: block; }
    AssistantMessage > .answer-note { color: $text-muted; height: auto; }
    """

    def __init__(self, message_id: int, *, marking: bool = True, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.message_id = message_id
        self.pieces: list[Piece] = []
        self.marking = marking
        self.think_block = ThinkBlock()
        self.text_view = Static(classes="answer-text")
        self.markdown = Markdown()
        self.note = Static(classes="answer-note")
        self.n_think_tokens = 0
        self.done = False
        self.shown_answer = Text()
        self._markdown_pending = False
        self.set_class(not marking, "-markdown")

    def compose(self) -> ComposeResult:
        yield self.think_block
        yield self.text_view
        yield self.markdown
        yield self.note

    def on_mount(self) -> None:
        self._render_all()

    @property
    def answer(self) -> str:
        return marked_text(self.pieces, ANSWER, None).plain

    @property
    def large_answer_text(self) -> list[str]:
        """The answer's spans shown in the large model's colour, in order (what marking shows)."""
        text = self.shown_answer
        return [text.plain[s.start:s.end] for s in text.spans if str(s.style) == LARGE_STYLE]

    def add_pieces(self, pieces: Iterable[Piece]) -> None:
        new = list(pieces)
        if not new:
            return
        self.pieces.extend(new)
        tokens = {p.token for p in new if p.part == THINK}
        self.n_think_tokens += len(tokens)
        if any(p.part == THINK for p in new) or any(p.part == ANSWER for p in new):
            self._render_all()

    def finish(self, note: str = "") -> None:
        self.done = True
        self.note.update(Text(note))
        self._render_all()

    def set_marking(self, marking: bool) -> None:
        self.marking = marking
        self.set_class(not marking, "-markdown")
        self._render_all()

    def _render_all(self) -> None:
        think = marked_text(self.pieces, THINK, THINK_LARGE_STYLE if self.marking else None)
        answer_started = any(p.part == ANSWER and p.text.strip() for p in self.pieces)
        if think.plain:
            was_done = self.think_block.title.startswith("Thought")
            self.think_block.show_text(think, self.n_think_tokens, answer_started or self.done)
            if (answer_started or self.done) and not was_done:
                self.think_block.collapsed = True
        if self.marking:
            self.shown_answer = marked_text(self.pieces, ANSWER, LARGE_STYLE)
            self.text_view.update(self.shown_answer)
        elif self.done:
            self.markdown.update(self.answer)
        elif not self._markdown_pending:
            # Re-parsing Markdown on every token is wasteful: refresh it ten times a second.
            self._markdown_pending = True
            self.set_timer(0.1, self._refresh_markdown)

    def _refresh_markdown(self) -> None:
        self._markdown_pending = False
        if not self.marking:
            self.markdown.update(self.answer)
