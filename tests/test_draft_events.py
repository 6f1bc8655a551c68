"""Provisional text (Request.show_drafts) on scripted models: the drafts of spec:K and r2r+verify
come as DraftEvents between the committed TokenEvents, a rewind as a cut, and the committed
events are exactly those of a request without the flag."""

from __future__ import annotations

import pytest

from r2r_local.chat import Utf8Stream
from r2r_local.config import GenerationSettings
from r2r_local.decode import Decoder, Request, policy_for_mode
from r2r_local.metering import DraftEvent, TokenEvent, after_commit

from test_ahead import ByToken, sometimes_agrees
from test_engine_scripted import Scripted, count_up, count_up_by_two
from test_speculate import STOPS

MODES = [("spec:1", None), ("spec:4", None), ("r2r+verify", ByToken)]


def generate(mode, router, show, *, small_rule=count_up, large_rule=sometimes_agrees, settings=None, n_ctx=64,
             cancel_at=None):
    import threading

    cancel = threading.Event()
    decoder = Decoder(Scripted(small_rule, n_ctx), Scripted(large_rule, n_ctx))
    request = Request([1, 2], router() if router else None, policy_for_mode(mode),
                      settings=settings or GenerationSettings(max_tokens=30), cancel=cancel, show_drafts=show)
    gen = decoder.generate(request)
    events = []
    for e in gen:
        events.append(e)
        if cancel_at is not None and isinstance(e, TokenEvent) and e.index == cancel_at:
            cancel.set()
    return gen, events


def screen(events):
    """What a consumer shows after each event: (committed text, provisional text)."""
    committed, provisional, out = "", "", []
    for e in events:
        if isinstance(e, DraftEvent):
            provisional = e.text
        else:
            committed += e.text
            provisional = after_commit(provisional, e.text)
        out.append((committed, provisional))
    return out


@pytest.mark.parametrize("mode,router", MODES)
@pytest.mark.parametrize("name", list(STOPS))
def test_the_committed_events_are_those_without_the_flag(mode, router, name):
    kw = STOPS[name]
    plain, plain_events = generate(mode, router, False, **kw)
    shown, events = generate(mode, router, True, **kw)
    assert not any(isinstance(e, DraftEvent) for e in plain_events)
    assert any(isinstance(e, DraftEvent) for e in events)
    assert shown.events == [e for e in events if isinstance(e, TokenEvent)]
    same = lambda g: ([(e.id, e.text, e.source) for e in g.events], g.text, g.stop_reason)  # noqa: E731
    assert same(shown) == same(plain)


@pytest.mark.parametrize("mode,router", MODES)
def test_the_text_shown_ends_as_the_final_text_and_a_rewind_is_cut(mode, router):
    gen, events = generate(mode, router, True, large_rule=count_up_by_two if router else sometimes_agrees)
    views = screen(events)
    assert views[-1] == (gen.text, "")
    assert gen.stats.rewinds > 0
    cuts = [i for i, e in enumerate(events) if isinstance(e, DraftEvent) and e.cut]
    assert len(cuts) == gen.stats.rewinds
    for i in cuts:
        before, after = views[i - 1], views[i]
        # the cut keeps a prefix of the draft shown before it, and takes the rest away
        assert before[1].startswith(after[1]) and len(after[1]) < len(before[1]) and before[0] == after[0]
    # between events the provisional text only grows by drafting or shrinks by a cut or a commit:
    # committed + provisional never jumps to a text that was not the large model's continuation
    for (c0, p0), (c1, p1), e in zip(views, views[1:], events[1:]):
        if isinstance(e, TokenEvent):
            assert c1 + p1 == c0 + p0 or not p1


def test_a_draft_the_large_model_always_keeps_is_never_cut():
    gen, events = generate("spec:4", None, True, large_rule=count_up)
    drafts = [e for e in events if isinstance(e, DraftEvent)]
    assert drafts and not any(e.cut for e in drafts) and gen.stats.rewinds == 0
    # each draft of four shows one more letter each time, all of which are then committed
    assert [e.text for e in drafts[:4]] == ["d", "de", "def", "defg"]
    assert screen(events)[-1] == (gen.text, "")


def test_a_character_split_over_tokens_is_shown_whole_or_not_at_all():
    stream = Utf8Stream()
    assert stream.feed("h\u00e9".encode()[:2]) == "h"  # the first byte of é is held back
    assert stream.peek(b"") == ""
    assert stream.peek("\u00e9".encode()[1:] + b"!") == "\u00e9!"  # the held byte completes it
    assert stream.feed("\u00e9".encode()[1:]) == "\u00e9"  # peeking fed nothing
    assert stream.peek("a\u20ac".encode()[:3]) == "a"  # an incomplete last character is left out
