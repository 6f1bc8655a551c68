"""An answer's Markdown while it streams: text that extends what is shown is appended (Textual
parses the last block again instead of laying the whole answer out at every redraw, which slowed
the decode loop), the finished answer is laid out whole, exactly as one update draws it, and a
redraw that cost the UI thread more CPU is followed by a longer wait. Textual's real widgets and
layout; the view is fed pieces directly, like tokens arriving."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

import r2r_tui.answer_view as answer_view
from pilot_helpers import wait_until
from r2r_tui.answer_view import AssistantMessage
from r2r_tui.chat_scroll import ChatScroll
from r2r_tui.marked_markdown import MarkedMarkdown
from r2r_tui.store import Piece

pytestmark = pytest.mark.anyio
DOC = ("Paris grew from a *Celtic* settlement on the Seine. Its **history**:\n\n"
       "1. Romans built Lutetia.\n2. Kings made it a capital.\n\n"
       "```python\nprint('Paris')  # a fence\n```\n\n"
       "> Today it holds 2.1 million people, and the Louvre.\n\nThe end.")


def _pieces(every: int = 5) -> list[Piece]:
    """DOC in chunks of `every` characters (words split across chunks), the large model writing
    two chunks of every three: a large run often goes on in the next chunk."""
    return [Piece(k, "large" if k % 3 else "small", "answer", DOC[i:i + every])
            for k, i in enumerate(range(0, len(DOC), every))]


class _Chat(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatScroll(id="chat")


def _count(monkeypatch) -> dict[str, int]:
    counts = {"update": 0, "append": 0}
    for name in counts:
        real = getattr(MarkedMarkdown, name)

        def counted(self, source, _real=real, _name=name):
            counts[_name] += 1
            return _real(self, source)

        monkeypatch.setattr(MarkedMarkdown, name, counted)
    return counts


async def _drawn(pieces: list[Piece], streamed: bool, pause: float = 0.1) -> tuple[list, list[str], str]:
    """(the blocks' types and sizes, the large model's coloured texts, the source) once finished;
    streamed: 4 pieces at a time, `pause` seconds apart."""
    app = _Chat()
    async with app.run_test(size=(80, 60)) as pilot:
        view = AssistantMessage(1)
        await app.query_one(ChatScroll).mount(view)
        await wait_until(pilot, lambda: view.markdown.ready)
        for k in range(0, len(pieces), 4 if streamed else len(pieces)):
            view.add_pieces(pieces[k:k + (4 if streamed else len(pieces))])
            await pilot.pause(pause if streamed else 0)
        view.finish("")
        await wait_until(pilot, lambda: view.rendered)
        await pilot.pause(0.1)
        md = view.markdown
        return ([(type(w).__name__, w.region.width, w.region.height) for w in md.walk_children()],
                md.large_spans(), md.source)


async def test_a_streamed_answer_is_appended_then_laid_out_whole(monkeypatch):
    monkeypatch.setattr(answer_view, "REDRAW_SPACING", 0)  # a redraw every REFRESH_S at most
    counts = _count(monkeypatch)
    streamed = await _drawn(_pieces(), streamed=True)
    during = dict(counts)
    once = await _drawn(_pieces(), streamed=False)
    assert during["append"] >= 5  # most redraws while streaming append
    assert during["update"] <= during["append"] // 2 + 2  # a whole layout only where marks moved, and at the end
    assert streamed == once and len(once[0]) > 8 and "grew" in once[1]


async def test_a_costlier_redraw_waits_longer(monkeypatch):
    """The UI thread's CPU clock made to advance 20 ms at each reading: every redraw seems to cost
    20 ms, so the next waits REDRAW_SPACING x 20 ms (0.6 s); spacing off, REFRESH_S (0.08 s)."""
    clock, spacing = iter(range(10**6)), answer_view.REDRAW_SPACING
    monkeypatch.setattr(answer_view, "thread_time", lambda: 0.02 * next(clock))
    counts = _count(monkeypatch)
    await _drawn(_pieces(), streamed=True, pause=0.05)  # about 0.9 s of streaming
    costly = counts["update"] + counts["append"]
    monkeypatch.setattr(answer_view, "REDRAW_SPACING", 0)
    counts.update(update=0, append=0)
    await _drawn(_pieces(), streamed=True, pause=0.05)
    spacing_off = counts["update"] + counts["append"]
    assert spacing * 0.02 > 0.5
    assert costly <= 4 and spacing_off >= 6


async def test_provisional_text_is_redrawn_alone_and_never_relays_the_answer(monkeypatch):
    """A draft shows dimmed after the committed text (think text: at its end; answer: under the
    Markdown); growing or cutting it redraws that line only, the committed Markdown is left alone."""
    counts = _count(monkeypatch)
    app = _Chat()
    async with app.run_test(size=(80, 30)) as pilot:
        view = AssistantMessage(1)
        await app.query_one(ChatScroll).mount(view)
        await wait_until(pilot, lambda: view.markdown.ready)
        view.add_pieces([Piece(0, "small", "think", "units 7+9=16;"), Piece(1, "small", "answer", "So 347")],
                        (("answer", "+589 = 93"),))
        await wait_until(pilot, lambda: view.rendered)
        drawn = dict(counts)
        shown = [str(view.provisional_view.render())]
        view.add_pieces([], (("answer", "+589 = 936."),))  # the draft grows
        await wait_until(pilot, lambda: view.rendered)
        shown.append(str(view.provisional_view.render()))
        view.add_pieces([], (("answer", "+5"),))  # the large model cuts it
        await wait_until(pilot, lambda: view.rendered)
        shown.append(str(view.provisional_view.render()))
        assert counts == drawn  # the Markdown was neither updated nor appended to by the draft
        view.add_pieces([Piece(2, "small", "answer", "+5"), Piece(3, "large", "answer", "8")], ())
        await wait_until(pilot, lambda: view.rendered)
        hidden = not view.provisional_view.has_class("-shown")
    assert shown == ["+589 = 93", "+589 = 936.", "+5"] and hidden
    assert (view.drafts_shown, view.cuts_shown) == (3, 1) and view.answer == "So 347+58"


async def test_a_draft_of_think_text_is_shown_dimmed_at_the_end_of_the_think_block():
    app = _Chat()
    async with app.run_test(size=(80, 30)) as pilot:
        view = AssistantMessage(1)
        await app.query_one(ChatScroll).mount(view)
        await wait_until(pilot, lambda: view.markdown.ready)
        view.add_pieces([Piece(0, "small", "think", "units 7+9=16;")], (("think", " tens 4+8"),))
        await pilot.pause()
        with_draft = view.think_block.plain
        spans = [(str(sp.style), sp.start) for sp in view.think_block.text_view.visual.spans]
        view.add_pieces([Piece(1, "small", "think", " tens 4")], ())
        await pilot.pause()
    assert with_draft == "units 7+9=16; tens 4+8" and view.think_block.plain == "units 7+9=16; tens 4"
    assert spans == [(answer_view.PROVISIONAL_STYLE, len("units 7+9=16;"))]  # only the draft is dimmed
    assert not view.provisional_view.has_class("-shown")
