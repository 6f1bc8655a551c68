"""Markdown in which the large model's text is coloured, and HTML is shown as the text it is.

Raw HTML is off in the parser (`parser`): a model's `<<Title>>`, `<div>` or `a<b>c` is text to
show, never markup to hide (Textual renders no HTML: what markdown-it took for a tag vanished).

The source handed to Textual's Markdown widget carries two private-use characters around each
run of non-whitespace characters that the large model wrote; every block strips them from its
text and colours what was between them. A mark must never change how the Markdown parses, so a
character is left bare where it may be syntax (see `wrappable`):
- Markdown's own punctuation: \\ ` * _ ~ [ ] ( ) < > | & # and quotes are never wrapped, nor is any other
  punctuation right beside one of them (a mark there would change how `*`, `_` or `~` flank);
- a line's block markers (indentation, `>`, list markers such as `-`, `+`, `*`, `1.`, `2)`,
  heading `#`s), lines made only of `-`, `=`, `*`, `_`, `:`, `|`, `+` (rules, setext
  underlines, table delimiter rows) and fence lines (also one after a `>` or list marker: its info
  string names the lexer);
- a link destination, an escaped character, an entity (`&amp;`), an autolink or anything shaped
  like an HTML tag (a `<...>` closed within its paragraph; a lone `<` as in `x<y` is no tag), any word
  that linkify may turn into a link (`://`, `@`, `www.`, `name.tld`), and, in a document
  with a link reference definition, that line and every `[label]`.
Everything else the large model wrote is coloured: words, numbers, `+`, `=`, `.`, `==`, `!`,
`→`. Inside a fenced code block (opened at the margin) every non-whitespace character is
wrapped, since code is literal; the fence block strips the marks and lays the colour over its
syntax highlighting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from markdown_it import MarkdownIt
from markdown_it.common.html_re import HTML_TAG_RE
from textual.content import Content, Span
from textual.events import Mount
from textual.message import Message
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownBlock, MarkdownFence

from r2r_tui.store import Piece

START, END = "\ue000", "\ue001"
LARGE_STYLE = "bold #ff9f1a"


def marked_source(pieces: Iterable[Piece], part: str, marking: bool) -> str:
    """The text of one part; with `marking`, the large model's wrappable runs wrapped in marks.

    Leading and trailing whitespace is dropped."""
    chunks = [(p.text, p.source == "large") for p in pieces if p.part == part]
    text = "".join(t for t, _ in chunks)
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    if not marking:
        return text
    large = [flag for t, flag in chunks for _ in t][lead:lead + len(text)]
    ok = wrappable(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        if not (large[i] and ok[i]):
            out.append(text[i])
            i += 1
            continue
        j = i
        while j < len(text) and large[j] and ok[j]:
            j += 1
        out.append(START + text[i:j] + END)
        i = j
    return "".join(out)


SYNTAX = frozenset("\\`*_~[]()<>|&#\"'")  # quotes: they open link titles
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_PREFIX = re.compile(r"^(?:[ \t]*(?:>|(?:[-+*]|\d{1,9}[.)]|#{1,6})(?=[ \t]|$)))*[ \t]*")
_STRUCTURAL = re.compile(r"^[ \t]*[-=*_:|+][-=*_:|+ \t]*$")
_FENCE_MARK = re.compile(r"`{3,}|~{3,}")  # a fence after a container's prefix (`> ```py`, `- ~~~`)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:", re.MULTILINE)
# A `<...>` that markdown-it may read as an autolink, or that looks like HTML: its own patterns, any
# `<` + letter (or / ! ?) closed by a `>` before the next `<`, and a `<!--` up to the last `>` (a
# mark in `--->` would complete the comment). Matched one paragraph at a time (inline syntax never
# crosses a blank line), so a lone `x<y` leaves the rest of the answer alone.
_HTML_INLINE = re.compile("|".join((HTML_TAG_RE.pattern, r"<[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^<>\x00-\x20]*>",
                                    r"<!--[\s\S]*>", r"<[A-Za-z/!?][^<>]*>")))
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
_LABEL = re.compile(r"\[[^\[\]\n]*\]")
_BARE = re.compile(r"\]\((?:<[^<>\n]*>|[^\s()]*)|\\.|&#?\w+;|\S*(?:://|@|www\.|\w\.[A-Za-z]{2,})\S*", re.DOTALL)


def wrappable(text: str) -> list[bool]:
    """For each character of a Markdown source: whether marks around it leave the parse unchanged
    (the parse of `parser`, raw HTML off)."""
    ok = [False] * len(text)
    labels = bool(_REFERENCE.search(text))  # then a mark in a [label] could break the reference
    tags = _tags(text)
    fence: tuple[str, int] | None = None  # the open fence's character and length
    pos = 0
    for line in text.split("\n"):
        start, end = pos, pos + len(line)
        pos = end + 1
        if fence is not None:
            close = _FENCE.match(line)
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= fence[1] \
                    and not line[close.end():].strip():
                fence = None
                continue
            for k in range(start, end):
                ok[k] = not text[k].isspace()
            continue
        if not line.strip():
            continue
        opened = _FENCE.match(line)
        if opened:  # never wrapped; only a fence at the margin is surely not inside a list item
            if not line[0].isspace() and not (opened.group(1)[0] == "`" and "`" in line[opened.end():]):
                fence = (opened.group(1)[0], len(opened.group(1)))
            continue
        if _STRUCTURAL.match(line):
            continue
        if labels and _REFERENCE.match(line):
            continue
        prefix = _PREFIX.match(line).end()
        if _FENCE_MARK.match(line, prefix):  # its info string names the lexer: never wrapped
            continue
        _inline(text, start + prefix, end, ok, labels, tags)
    return ok


def _tags(text: str) -> set[int]:
    """The positions inside a possible HTML tag or autolink, searched within each paragraph.

    A match is tried at every `<`, overlaps included: one that markdown-it never makes (it may
    split the lines into other blocks) must not hide one that it does."""
    out: set[int] = set()
    start = 0
    for blank in [*_BLANK_LINES.finditer(text), None]:
        end = blank.start() if blank is not None else len(text)
        at = text.find("<", start, end)
        while at != -1:
            m = _HTML_INLINE.match(text, at, end)
            if m is not None:
                out.update(range(m.start(), m.end()))
            at = text.find("<", at + 1, end)
        start = blank.end() if blank is not None else end
    return out


def _inline(text: str, a: int, b: int, ok: list[bool], labels: bool, tags: set[int]) -> None:
    bare: set[int] = set()
    for pattern in (_BARE, _LABEL) if labels else (_BARE,):
        for m in pattern.finditer(text, a, b):
            bare.update(range(m.start(), m.end()))
    for k in range(a, b):
        c = text[k]
        if c.isspace() or k in bare or k in tags or c in SYNTAX:
            continue
        if c.isalnum():
            ok[k] = True
            continue
        before = text[k - 1] if k > 0 else "\n"
        after = text[k + 1] if k + 1 < len(text) else "\n"
        ok[k] = before not in SYNTAX and after not in SYNTAX


# The marks as markdown-it percent-encodes them in a link target.
_ENCODED = ("%EE%80%80", "%EE%80%81")


def strip_marks(text: str) -> str:
    for mark in (START, END) + _ENCODED:
        text = text.replace(mark, "")
    return text


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
            token.info = strip_marks(token.info)  # the lexer's name, should a mark ever reach it
            self.marked_code = apply_marks(Content(code))
            cls.__init__(self, markdown, token, self.marked_code.plain)
            self._highlighted_code = self._highlighted_code.add_spans(self.marked_code.spans)

        def notify_style_update(self) -> None:  # type: ignore[no-untyped-def]
            cls.notify_style_update(self)  # highlights again (without the colour)...
            self._highlighted_code = self._highlighted_code.add_spans(self.marked_code.spans)
            self.set_content(self._highlighted_code)  # ...so the colour goes back on

        return type(cls.__name__, (cls,), {"__init__": __init__, "notify_style_update": notify_style_update})
    return type(cls.__name__, (cls,), {"_token_to_content": _marked_token_to_content, "marked_content": None})


def parser() -> MarkdownIt:
    """Textual's own Markdown parser ("gfm-like": tables, strikethrough, linkify), raw HTML off."""
    return MarkdownIt("gfm-like", {"html": False})


class MarkedMarkdown(Markdown):
    """Textual's Markdown, reading sources made by `marked_source` with `parser`.

    Posts `Ready` once mounted: Markdown clears itself when it mounts, so an update sent
    earlier would be lost."""

    BLOCKS = {name: _marked_class(cls) for name, cls in Markdown.BLOCKS.items()}

    @dataclass
    class Ready(Message):
        markdown: "MarkedMarkdown"

    ready = False

    def __init__(self, markdown: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("parser_factory", parser)
        super().__init__(markdown, **kwargs)  # type: ignore[arg-type]

    def _on_mount(self, event: Mount) -> None:
        # Textual runs every class's _on_mount, this one first: Markdown's own (which renders the
        # initial source) runs after it, so readiness is declared once that handler is done.
        self.call_next(self._became_ready)

    def _became_ready(self) -> None:
        self.ready = True
        self.post_message(self.Ready(self))

    def large_spans(self) -> list[str]:
        """The texts shown in the large model's colour outside code blocks, in document order."""
        return self._spans("marked_content")

    def large_code_spans(self) -> list[str]:
        """The texts shown in the large model's colour inside code blocks, in document order."""
        return self._spans("marked_code")

    def _spans(self, attribute: str) -> list[str]:
        out = []
        for block in self.query(MarkdownBlock):
            content = getattr(block, attribute, None)
            if content is not None:
                out += [content.plain[s.start:s.end] for s in content.spans if s.style == LARGE_STYLE]
        return out
