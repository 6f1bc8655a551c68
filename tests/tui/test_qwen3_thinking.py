"""r2r-chat's thinking switch (F6, --think/--no-think) on a model whose template has one: the tiny
shape-true Qwen3 pair (Qwen3's special tokens and a ChatML template with enable_thinking), and
on SmolLM2, whose template has none."""

from __future__ import annotations

import pytest

from pilot_helpers import answered, loaded, make_app, options, send
from r2r_local.config import GenerationSettings
from r2r_local.shapes import get_shape
from r2r_local.shapes.writer import write_shape_model
from r2r_tui.answer_view import AssistantMessage

pytestmark = pytest.mark.anyio
SIZE = (100, 32)
EMPTY_THINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def qwen3_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("q3")
    return {size: str(write_shape_model(get_shape(f"test-tiny-qwen3-{size}"), "Q8_0", d / f"{size}.gguf").path)
            for size in ("small", "large")}


def _sequence_text(app) -> str:
    small = app.loaded.pair.small
    return "".join(small.token_text(t) for t in small.slot.tokens)


def _shown(app) -> set[str]:
    """The actions the footer shows (bindings of the screen that check_action allows)."""
    return {b.action for _, b, enabled, _ in app.active_bindings.values() if enabled}


async def test_f6_turns_qwen3_thinking_off_and_on(qwen3_pair):
    app = make_app(router="random:0.3", max_tokens=6, **qwen3_pair)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.thinking_switch and app.thinking is None and "toggle_thinking" in _shown(app)
        await pilot.press("f6")
        status_off = str(app.status.render())
        await send(pilot, "hello")
        await answered(pilot)
        first = _sequence_text(app)
        view = list(app.query(AssistantMessage))[-1]
        await pilot.press("f6")
        status_on = str(app.status.render())
        await send(pilot, "again")
        await answered(pilot)
        second = _sequence_text(app)
    assert "think off" in status_off and "think on" in status_on
    # off: the template wrote the empty section and the answer came after it, none of it think text
    assert EMPTY_THINK in first and view.think_block.plain == ""
    # on again: the second turn's generation prompt is the bare one (the model opens the section)
    assert second.count(EMPTY_THINK) == 0 and second.count("<|im_start|>assistant\n") == 2


async def test_no_switch_on_a_template_without_one():
    """SmolLM2's template has no enable_thinking: F6 is not offered and does nothing; --no-think
    is answered with a warning and the model's own behaviour."""
    from r2r_tui.app import ChatApp
    from r2r_tui.loader import core_loader

    app = ChatApp(core_loader(options()), settings=GenerationSettings(max_tokens=4), thinking=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.pause(0.05)
        shown = _shown(app)
        await pilot.press("f6")
        notes = [n.message for n in app._notifications]
        assert not app.thinking_switch and app.thinking is None
    assert "toggle_thinking" not in shown and "toggle_marking" in shown
    assert any("no thinking switch" in m for m in notes)
