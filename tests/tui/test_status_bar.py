"""The status line fits its width by dropping the least useful parts, shows parameter counts in
units that fit, highlights a changed threshold and counts the seconds spent reading a prompt."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from r2r_tui.status_bar import READING, StatusBar, StatusFigures, fit_status, format_status

FIGURES = StatusFigures(answer_share=0.051, session_share=0.0512, tokens_per_s=205.24, activated_params_b=0.000271,
                        router="router.onnx", threshold=0.17, state="ready")


def test_the_whole_line_names_every_figure_with_units_that_fit():
    assert format_status(FIGURES) == ("large 5.1% answer · 5.1% session │ 205.2 tok/s │ 271K active │ "
                                      "router.onnx thr 0.17 │ ready")
    assert "1.5B active" in format_status(StatusFigures(activated_params_b=1.5))
    assert "2.4M active" in format_status(StatusFigures(activated_params_b=0.0024))


@pytest.mark.parametrize("width", [78, 70, 60, 50, 40, 30])
def test_router_threshold_and_state_stay_visible_as_the_line_narrows(width):
    line = fit_status(FIGURES, width)
    assert len(line) <= width
    assert line.endswith("router.onnx thr 0.17 │ ready")


def test_parts_go_in_order_of_use():
    assert fit_status(FIGURES, 78) == "large 5.1% answer │ 205.2 tok/s │ 271K active │ router.onnx thr 0.17 │ ready"
    assert fit_status(FIGURES, 62) == "large 5.1% answer │ 205.2 tok/s │ router.onnx thr 0.17 │ ready"
    assert fit_status(FIGURES, 61) == "large 5.1% answer │ router.onnx thr 0.17 │ ready"
    assert fit_status(FIGURES, 48) == "large 5.1% answer │ router.onnx thr 0.17 │ ready"
    assert fit_status(FIGURES, 45) == "large 5.1% │ router.onnx thr 0.17 │ ready"
    assert fit_status(FIGURES, 30) == "router.onnx thr 0.17 │ ready"
    # narrower still: the router's name is cut, its threshold kept
    assert fit_status(FIGURES, 22) == "rout… thr 0.17 │ ready"


def test_marking_off_and_the_seconds_of_reading_a_prompt():
    off = StatusFigures(router="entropy:1.5", threshold=1.5, state=READING, marking=False)
    assert format_status(off).endswith("entropy:1.5 thr 1.50 │ reading prompt │ marks off")
    assert fit_status(off, 200, elapsed_s=7).endswith("│ reading prompt 7 s │ marks off")


class _Bar(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar()


@pytest.mark.anyio
async def test_a_changed_threshold_is_highlighted_for_a_moment(monkeypatch):
    import r2r_tui.status_bar as status_bar

    monkeypatch.setattr(status_bar, "FLASH_S", 0.3)
    app = _Bar()
    async with app.run_test(size=(80, 3)) as pilot:
        bar = app.query_one(StatusBar)
        bar.show(FIGURES)
        await pilot.pause()
        before = bar.threshold_changed
        bar.show(StatusFigures(**{**FIGURES.__dict__, "threshold": 0.22}))
        await pilot.pause()
        during, text = bar.threshold_changed, bar.render()
        styled = [text.plain[s.start:s.end] for s in text.spans if "reverse" in str(s.style)]
        await pilot.pause(0.5)
        after = bar.threshold_changed
    assert (before, during, after) == (False, True, False)
    assert styled == ["thr 0.22"]


@pytest.mark.anyio
async def test_reading_a_prompt_counts_seconds_until_the_state_changes():
    app = _Bar()
    async with app.run_test(size=(80, 3)) as pilot:
        bar = app.query_one(StatusBar)
        bar.show(StatusFigures(router="x", state=READING))
        await pilot.pause(2.2)
        reading = str(bar.render())
        bar.show(StatusFigures(router="x", state="writing"))
        await pilot.pause()
        writing = str(bar.render())
    assert reading.endswith("reading prompt 2 s") and writing.endswith("│ writing")
