"""The think/answer split of a streamed answer, tags split anywhere across tokens."""

import pytest

from r2r_tui.think import ThinkSplitter, split_text

TEXT = "<think>\nFirst, 7+9=16.\n</think>\n\nThe answer is **936**."


def _stream(pieces, in_think=False):
    s = ThinkSplitter(in_think)
    out = []
    for p in pieces:
        out += s.feed(p)
    out += s.flush()
    think = "".join(t for part, t in out if part == "think")
    answer = "".join(t for part, t in out if part == "answer")
    return think, answer


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_tags_split_across_tokens_never_show(size):
    pieces = [TEXT[i:i + size] for i in range(0, len(TEXT), size)]
    think, answer = _stream(pieces)
    assert think == "\nFirst, 7+9=16.\n"
    assert answer == "\n\nThe answer is **936**."


def test_prompt_that_opened_the_section():
    think, answer = _stream(["Let me", " add.</th", "ink>", "Done."], in_think=True)
    assert (think, answer) == ("Let me add.", "Done.")


def test_text_without_think_is_all_answer_even_with_a_lone_angle_bracket():
    assert _stream(["2 <", " 3 and <b>x</b> <thin"]) == ("", "2 < 3 and <b>x</b> <thin")


def test_unfinished_think_stays_think():
    assert split_text("<think>still thinking") == ("still thinking", "")
