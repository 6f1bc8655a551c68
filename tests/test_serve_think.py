"""The server's think split: streamed in any pieces, it gives what the whole text gives."""

from __future__ import annotations

import random

import pytest

from r2r_local.serve.think import CONTENT, REASONING, ThinkSplit, split
from serve_server import Server

R1 = "Let me add.\n7+9=16</think>\n\nSo the answer is 16."
DEMO = "<think>347+589: units 7+9=16 write 6 carry 1.</think>\nSo 347+589 = 936."


@pytest.mark.parametrize("text,opened,expected", [
    (DEMO, False, ("347+589: units 7+9=16 write 6 carry 1.", "So 347+589 = 936.")),
    (R1, True, ("Let me add.\n7+9=16", "So the answer is 16.")),
    ("  Hello there.", False, ("", "  Hello there.")),  # no think section: the text is left as it is
    ("<think>\n\nunfinished thoughts", False, ("unfinished thoughts", "")),
    ("<think>a</think>b<think>c</think>", False, ("a", "b<think>c</think>")),  # one section only
    ("x < y and <thin", False, ("", "x < y and <thin")),
])
def test_whole_texts(text, opened, expected):
    assert split(text, opened) == expected


def _streamed(text: str, opened: bool, cuts: list[int]) -> tuple[str, str]:
    splitter, parts, start = ThinkSplit(opened), [], 0
    for end in [*cuts, len(text)]:
        parts += splitter.feed(text[start:end])
        start = end
    parts += splitter.flush()
    assert all(p in (REASONING, CONTENT) and t for p, t in parts)
    return "".join(t for p, t in parts if p == REASONING), "".join(t for p, t in parts if p == CONTENT)


@pytest.mark.parametrize("text,opened", [(DEMO, False), (R1, True), ("a <th</think>", True), ("<<think>>", False)])
def test_any_streaming_gives_the_whole_split(text, opened):
    rng = random.Random(0)
    every_char = list(range(1, len(text)))
    assert _streamed(text, opened, every_char) == split(text, opened)
    for _ in range(200):
        cuts = sorted(rng.sample(every_char, rng.randint(0, min(8, len(every_char)))))
        assert _streamed(text, opened, cuts) == split(text, opened)


def test_a_tag_split_across_tokens_never_shows():
    splitter = ThinkSplit()
    assert splitter.feed("<thi") == []
    assert splitter.feed("nk>pla") == [(REASONING, "pla")]
    assert splitter.feed("n</th") == [(REASONING, "n")]
    assert splitter.feed("ink> done") == [(CONTENT, "done")]


def test_the_thinking_switch_reaches_qwen3s_template(tmp_path):
    """chat_template_kwargs.enable_thinking=false: Qwen3's template writes an empty think section
    into the prompt (the tiny qwen3 pair has the real template), as `r2r generate --no-think` does."""
    import openai

    from r2r_local.shapes import get_shape
    from r2r_local.shapes.writer import write_shape_model

    small, large = (str(write_shape_model(get_shape(f"test-tiny-qwen3-{size}"), "Q8_0", tmp_path / f"{size}.gguf").path)
                    for size in ("small", "large"))
    s = Server("--small", small, "--large", large, "--n-ctx", "256", "--router", "random:0.3", home=tmp_path)
    try:
        client = openai.OpenAI(base_url=s.v1, api_key="unused", max_retries=0)

        def prompt_tokens(**kwargs: bool) -> int:
            extra = {"chat_template_kwargs": kwargs} if kwargs else {}
            return client.chat.completions.create(model="x", messages=[{"role": "user", "content": "What is 2+2?"}],
                                                  max_tokens=4, extra_body=extra).usage.prompt_tokens

        default = prompt_tokens()
        assert prompt_tokens(enable_thinking=True) == default
        assert 4 <= prompt_tokens(enable_thinking=False) - default <= 6  # <think>, "\n\n", </think>, "\n\n"
    finally:
        assert s.stop() == 0, s.log
