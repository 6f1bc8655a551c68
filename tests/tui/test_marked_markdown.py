"""Markdown with the large model's words coloured: the syntax still parses, the marks never show."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.content import Content, Span
from textual.widgets.markdown import MarkdownBlock, MarkdownFence

from r2r_tui.marked_markdown import END, LARGE_STYLE, START, MarkedMarkdown, apply_marks, marked_source, wrappable
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


TRICKY = [
    "# Title #\n\nSetext\n===\n\nOther\n---\n\n***\n\n- a\n+ b\n* c\n\n1. one\n2) two\n10. ten\n",
    "> quote with *em* and **strong** and _u_ and __uu__ and ~~gone~~.\n> > nested - item\n",
    "Intra**word**emphasis, **.**, *(x)*, _a_b_, foo*bar*, 2*3*4, a_b_c and **\"q\"**.\n",
    "Code `a + b == c` and ``x ` y`` and `+`.\n\n```python\ndef f(x):\n    return x + 1  # → ok\n```\n\n~~~\n*not em* [no](link)\n~~~\n",
    "    indented code * _ [x]\n\nafter\n",
    "| a | b |\n|---|:-:|\n| 1 + 1 | = 2 |\n| x | y! |\n",
    "[link](http://x.org/a_b) ![img](i.png) <http://auto.link> <b>html</b> &amp; &#35; \\* \\_ \\\\.\n",
    "[ref]: http://example.com \"T\"\n\nSee [ref] and [x][ref]. Mail me@x.org, www.site.com, file.py.\n",
    "<div>\n*raw* html block\n</div>\n\nAfter: a - b + c = d, 3.14, !, ==, →, ...\n",
    "- item\n  ```\n  code in item\n  ```\n- [ ] task\n- [x] done\n\n1986. A year\n1.5 is not a list\n",
    "Line with hard break  \nnext\\\nlast. Trailing #\n\n- - -\n\n_ _ _\n\n+ plus\n\n+5 not a list\n= not setext\n",
    "a **b.** c, (**d**), **e**.f, __g__h, 'q' \"r\", x^2, 100%, $5, @, {}, ;:?\n",
    "[a link](/path/x \"its title\") and [b](</p q> 'single') and [c](/u (paren)).\n",
    "a\n\nb x<y c\n\nd e\n",
    "x<y and <b\ntitle=\"<\">z</b> and <!-- it's < --> and 1 < 2 > 0 and a<b>c\n",
    "a <i\n\nb> c <http://x.y/it's> <irc:a'b> <!DOCTYPE it's> <?p x<y ?> d\n",
    "> ```python\n> def f(x):\n>     return x\n> ```\n\n- ```bash\n  ls -l\n  ```\n1. ~~~js\n   var a = 1;\n   ~~~\n",
    "> > ```c\n> > int x;\n> > ```\n\n- > ```py\n  > y\n  > ```\n",
    "<!-- a\n\nb -->\nc d\n\n<pre>\ne\n\nf</pre>\ng h\n\n- <!x y\n\n  z> w\n",
    "a <!--1--->b--->c and <!-- x -->y\n",
    "<div>\n```\ncode *x* _y_\n```\n</div>\n\n*em* and _u_ after\n",  # raw HTML is off: a real fence
    "<<The History of Rome: From the Founding>> by **Livy**, <i>vol</i> 1\n",
]


def _tokens(source: str):
    """The markdown-it token stream, marks stripped, adjacent text joined (what Textual renders)."""
    from r2r_tui.marked_markdown import parser, strip_marks

    def flat(tokens):
        out = []
        for t in tokens:
            attrs = {k: strip_marks(str(v)) for k, v in (t.attrs or {}).items()}
            row = (t.type, t.tag, t.nesting, strip_marks(t.content) if not t.children else "",
                   t.markup, t.info, tuple(sorted(attrs.items())))  # info: a fence's lexer, taken as is
            if t.type == "text" and out and out[-1][0] == "text":
                prev = out.pop()
                row = ("text", "", 0, prev[3] + row[3], "", "", ())
            out.append(row)
            if t.children:
                out += flat(t.children)
        return out

    return flat(parser().parse(source))


def _all_large(doc: str, every: int) -> list[Piece]:
    """The document cut into pieces of `every` characters, alternately large and small (every=0:
    all large)."""
    if every == 0:
        return [Piece(0, "large", "answer", doc)]
    return [Piece(i, "large" if (i // every) % 2 == 0 else "small", "answer", doc[i:i + every])
            for i in range(0, len(doc), every)]


@pytest.mark.parametrize("doc", TRICKY)
@pytest.mark.parametrize("every", [0, 1, 2, 3])
def test_marks_never_change_how_the_markdown_parses(doc, every):
    pieces = _all_large(doc, every)
    marked = marked_source(pieces, "answer", True)
    assert _tokens(marked) == _tokens(marked_source(pieces, "answer", False))


def test_marks_never_change_how_random_markdown_parses():
    """Random soups of Markdown syntax (seeded), each in four ways of being split between the models."""
    import random

    rng = random.Random(0)
    alphabet = list("ab1 *_~`[]()<>!#-+=.:|\\&\"'\n>") + ["  ", "\n\n", "1. ", "- ", "```\n", "http://x.y", "→",
                                                          "<b>", "    ", "\n===\n", "\n---\n", "|---|\n",
                                                          "x<y", "<i\n", "=\"<\">", "> ```py\n", "- ~~~\n"]
    for _ in range(400):
        doc = "".join(rng.choice(alphabet) for _ in range(rng.randint(5, 60)))
        for every in (0, 1, 2, 3):
            pieces = _all_large(doc, every)
            assert _tokens(marked_source(pieces, "answer", True)) == _tokens(marked_source(pieces, "answer", False)), doc


def test_punctuation_and_symbols_of_the_large_model_are_marked():
    pieces = [Piece(0, "small", "answer", "So 2"), Piece(1, "large", "answer", " +"), Piece(2, "small", "answer", " 2"),
              Piece(3, "large", "answer", " ="), Piece(4, "small", "answer", " 4"), Piece(5, "large", "answer", "."),
              Piece(6, "small", "answer", " a"), Piece(7, "large", "answer", " =="), Piece(8, "small", "answer", " b"),
              Piece(9, "large", "answer", "!"), Piece(10, "small", "answer", " x"), Piece(11, "large", "answer", " →"),
              Piece(12, "small", "answer", " y")]
    src = marked_source(pieces, "answer", True)
    assert src == (f"So 2 {START}+{END} 2 {START}={END} 4{START}.{END} a {START}=={END} b{START}!{END} "
                   f"x {START}→{END} y")


@pytest.mark.anyio
async def test_large_text_in_fenced_code_is_coloured():
    pieces = [Piece(0, "small", "answer", "Code:\n\n```python\n"), Piece(1, "large", "answer", "x = 1"),
              Piece(2, "small", "answer", " + y\n```\n")]
    app = _Doc(marked_source(pieces, "answer", True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        md = app.query_one(MarkedMarkdown)
        [fence] = md.query(MarkdownFence)
        code_spans = md.large_code_spans()
        shown = fence._highlighted_code
        screen = app.export_screenshot()
    assert fence.code == "x = 1 + y" and fence.lexer == "python"
    assert code_spans == ["x", "=", "1"]
    assert [shown.plain[s.start:s.end] for s in shown.spans if s.style == LARGE_STYLE] == ["x", "=", "1"]
    assert START not in screen and "#ff9f1a" in screen.lower()


def test_a_lone_less_than_sign_leaves_the_rest_of_the_answer_coloured():
    text = "a\n\nb x<y c\n\nd e"
    assert [c for c, ok in zip(text, wrappable(text)) if ok] == list("abxycde")
    text = "p <b\nclass='x'>q</b> r"  # a tag over two lines stays bare
    assert [c for c, ok in zip(text, wrappable(text)) if ok] == list("pqr")


@pytest.mark.anyio
@pytest.mark.parametrize("doc", ["> ```python\n> x = 1\n> ```\n", "- ```python\n  x = 1\n  ```\n"])
async def test_a_fence_inside_a_quote_or_list_item_keeps_its_lexer(doc):
    app = _Doc(marked_source(_all_large(doc, 0), "answer", True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        md = app.query_one(MarkedMarkdown)
        [fence] = md.query(MarkdownFence)
        code_spans = md.large_code_spans()
    assert fence.lexer == "python" and fence.code == "x = 1" and code_spans == ["x", "=", "1"]


@pytest.mark.anyio
@pytest.mark.parametrize("marking", [False, True])
async def test_text_that_looks_like_html_is_shown_as_text(marking):
    """Textual renders no HTML: what the parser took for a tag or an HTML block disappeared."""
    doc = ("<<The History of Rome: From the Founding to the Fall>> is a book.\n\n"
           "Use <div> and <b>x</b> here.\n\n<section>\nraw block\n</section>\n")
    app = _Doc(marked_source(_all_large(doc, 2), "answer", marking))
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.pause(0.2)
        screen = app.export_screenshot()
        texts = [b.marked_content.plain for b in app.query(MarkdownBlock) if getattr(b, "marked_content", None)]
    shown = "\n".join(texts)
    assert "<<The History of Rome: From the Founding to the Fall>> is a book." in shown
    assert "Use <div> and <b>x</b> here." in shown and "<section>" in shown and "</section>" in shown
    assert "&lt;&lt;The" in screen  # the SVG escapes it: the text is on screen
