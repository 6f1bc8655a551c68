"""Markdown with the large model's words coloured: the syntax still parses, the marks never show."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.content import Content, Span
from textual.widgets.markdown import MarkdownBlock, MarkdownFence

from r2r_tui.marked_markdown import END, LARGE_STYLE, START, MarkedMarkdown, apply_marks, marked_source
from r2r_tui.store import Piece

PIECES = [("large", "## Sum"), ("small", "mary\n\n"), ("large", "1."), ("small", " Add **the** "),
          ("large", "units"), ("small", " first\n2. Then `carry"), ("large", " one`"),
          ("small", " and [see](http://x.org/"), ("large", "page"), ("small", ")\n\n```\n"),
          ("large", "code = 1"), ("small", "\n```\n")]


def _pieces():
    return [Piece(i, source, "answer", text) for i, (source, text) in enumerate(PIECES)]


def test_only_letter_and_digit_runs_are_wrapped_and_list_numbers_stay_bare():
    src = marked_source(_pieces(), "answer", True)
    assert src.startswith(f"## {START}Sum{END}mary\n\n1. Add")  # '1.' opens a line: an ordered-list marker
    assert f"{START}units{END} first" in src and f"carry {START}one{END}`" in src
    assert marked_source(_pieces(), "answer", False) == "".join(t for _, t in PIECES).strip()


def test_a_number_opening_a_line_is_coloured_unless_it_is_a_list_marker():
    pieces = [Piece(0, "large", "answer", "\n936"), Piece(1, "small", "answer", " is it.\n"),
              Piece(2, "large", "answer", "42"), Piece(3, "small", "answer", ") no")]
    assert marked_source(pieces, "answer", True) == f"{START}936{END} is it.\n42) no"


def test_apply_marks_moves_the_other_spans():
    content = Content(f"a{START}bc{END}d", spans=[Span(0, 6, "italic")])  # the whole 6 characters
    marked = apply_marks(content)
    assert marked.plain == "abcd"
    assert [(s.start, s.end, s.style) for s in marked.spans] == [(0, 4, "italic"), (1, 3, LARGE_STYLE)]


class _Doc(App):
    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        yield MarkedMarkdown(self.source)


@pytest.mark.anyio
async def test_rendered_document_keeps_its_structure_and_colours_the_large_words():
    app = _Doc(marked_source(_pieces(), "answer", True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        md = app.query_one(MarkedMarkdown)
        assert len(md.query("MarkdownH2")) == 1 and len(md.query("MarkdownOrderedList")) == 1
        [fence] = md.query(MarkdownFence)
        spans = md.large_spans()
        screen = app.export_screenshot()
        texts = [getattr(b, "marked_content", None) for b in md.query(MarkdownBlock)]
    assert fence.code == "code = 1"  # code blocks drop the marks
    assert spans == ["Sum", "units", "one"]  # "page" sits in the link target, which is not shown
    assert START not in screen and END not in screen and "#ff9f1a" in screen.lower()
    assert all(START not in c.plain for c in texts if c is not None)


class _One(App):
    """One Markdown widget, alone in its app: each app registers the CSS of the classes it mounts."""

    CSS = "Markdown { height: auto; }"

    def __init__(self, widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


async def _shape(widget, source: str) -> list[tuple[str, int, int]]:
    app = _One(widget)
    async with app.run_test(size=(80, 40)) as pilot:
        await widget.update(source)
        await pilot.pause(0.2)
        return [(type(w).__name__, w.region.width, w.region.height) for w in widget.walk_children()]


@pytest.mark.anyio
async def test_marked_blocks_lay_out_exactly_like_textuals_own():
    """The block subclasses must keep Textual's CSS (a list item once grew to fill the screen)."""
    from textual.widgets import Markdown

    plain = await _shape(Markdown(), "".join(t for _, t in PIECES))
    marked = await _shape(MarkedMarkdown(), marked_source(_pieces(), "answer", True))
    assert plain == marked and len(plain) > 8
