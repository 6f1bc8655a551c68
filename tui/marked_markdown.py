"""Markdown in which the large model's words are coloured.

The source handed to Textual's Markdown widget carries two private-use characters around each
run of letters and digits that the large model wrote; every block strips them from its text and
colours what was between them. Only letter/digit runs are wrapped, so Markdown's own syntax
(`#`, `-`, `*`, backticks, an ordered list's number at the start of a line) is never split and
parses as usual. Code blocks drop the marks (they show uncoloured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from textual.content import Content, Span
from textual.events import Mount
from textual.message import Message
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownBlock, MarkdownFence

from r2r_tui.store import Piece

START, END = "\ue000", "\ue001"
LARGE_STYLE = "bold #ff9f1a"


def marked_source(pieces: Iterable[Piece], part: str, marking: bool) -> str:
    """The text of one part; with `marking`, the large model's letter/digit runs wrapped in marks.

    Leading and trailing whitespace is dropped. A number that opens a line and is followed by
    "." or ")" may be an ordered-list marker, so it stays bare."""
    chunks = [(p.text, p.source == "large") for p in pieces if p.part == part]
    text = "".join(t for t, _ in chunks)
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    if not marking:
        return text
    large = [flag for t, flag in chunks for _ in t][lead:lead + len(text)]
    out: list[str] = []
    line_blank = True  # only spaces or tabs so far on the current line
    i = 0
    while i < len(text):
        if not (large[i] and text[i].isalnum()):
            out.append(text[i])
            line_blank = text[i] == "\n" or (line_blank and text[i] in " \t")
            i += 1
            continue
        j = i
        while j < len(text) and large[j] and text[j].isalnum():
            j += 1
        run = text[i:j]
        list_marker = line_blank and run.isdigit() and text[j:j + 1] in (".", ")")
        out.append(run if list_marker else START + run + END)
        line_blank, i = False, j
    return "".join(out)


def strip_marks(text: str) -> str:
    return text.replace(START, "").replace(END, "")


def apply_marks(content: Content) -> Content:
    """Content without the marks, with LARGE_STYLE spans where they were (other spans kept)."""
    text = content.plain
    if START not in text and END not in text:
        return content
    index = [0] * (len(text) + 1)
    chars: list[str] = []
    marks: list[Span] = []
    opened: int | None = None
    for i, ch in enumerate(text):
        index[i] = len(chars)
        if ch == START:
            opened = len(chars)
        elif ch == END:
            if opened is not None and len(chars) > opened:
                marks.append(Span(opened, len(chars), LARGE_STYLE))
            opened = None
        else:
            chars.append(ch)
    index[len(text)] = len(chars)
    spans = [Span(index[s.start], index[s.end], s.style) for s in content.spans if index[s.end] > index[s.start]]
    return Content("".join(chars), spans=spans + marks)


def _marked_token_to_content(self: MarkdownBlock, token):  # type: ignore[no-untyped-def]
    """MarkdownBlock._token_to_content, then the marks turned into colour (kept as `marked_content`)."""
    for child in token.children or []:
        for key in ("href", "src"):
            if isinstance(child.attrs.get(key), str):
                child.attrs[key] = strip_marks(child.attrs[key])
    self.marked_content = apply_marks(MarkdownBlock._token_to_content(self, token))
    return self.marked_content


def _marked_class(cls: type[MarkdownBlock]) -> type[MarkdownBlock]:
    """A subclass of one of Markdown's block classes that reads marked text.

    A plain one-base subclass, so that Textual's CSS inheritance (which follows the first base)
    still finds the block's own DEFAULT_CSS."""
    if issubclass(cls, MarkdownFence):
        def __init__(self, markdown: Markdown, token, code: str) -> None:  # type: ignore[no-untyped-def]
            cls.__init__(self, markdown, token, strip_marks(code))

        return type(cls.__name__, (cls,), {"__init__": __init__})
    return type(cls.__name__, (cls,), {"_token_to_content": _marked_token_to_content, "marked_content": None})


class MarkedMarkdown(Markdown):
    """Textual's Markdown, reading sources made by `marked_source`.

    Posts `Ready` once mounted: Markdown clears itself when it mounts, so an update sent
    earlier would be lost."""

    BLOCKS = {name: _marked_class(cls) for name, cls in Markdown.BLOCKS.items()}

    @dataclass
    class Ready(Message):
        markdown: "MarkedMarkdown"

    ready = False

    def _on_mount(self, event: Mount) -> None:
        # Textual runs every class's _on_mount, this one first: Markdown's own (which renders the
        # initial source) runs after it, so readiness is declared once that handler is done.
        self.call_next(self._became_ready)

    def _became_ready(self) -> None:
        self.ready = True
        self.post_message(self.Ready(self))

    def large_spans(self) -> list[str]:
        """The texts shown in the large model's colour, in document order."""
        out = []
        for block in self.query(MarkdownBlock):
            content = getattr(block, "marked_content", None)
            if content is not None:
                out += [content.plain[s.start:s.end] for s in content.spans if s.style == LARGE_STYLE]
        return out
