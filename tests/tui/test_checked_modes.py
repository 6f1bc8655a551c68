"""r2r-chat's modes whose drafts the large model checks: F5 routed+verify and F7 spec:K. Real models
(the demo pair in the app, `r2r generate` beside it): the answer is `r2r generate`'s with the same
mode, the history stores the committed text only, and the draft shows as provisional text that a
correction cuts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pilot_helpers import answered, loaded, make_app, send, wait_until
from r2r_tui.cli import parse_args
from r2r_tui.store import History
from r2r_tui.think import split_text
from settings import THREADS

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
SIZE = (100, 32)
# Both modes rewind drafts on this problem (2 rewinds each with `r2r generate --json`).
PROBLEM = "4821+979"
MODES = {"f5": ("verify", ("--verify",), "/router.onnx+verify"), "f7": ("spec:4", ("--spec", "4"), "spec:4")}


def generate(*flags: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", "generate", "--demo", "--threads", str(THREADS),
                           "--json", "--prompt", PROBLEM, *flags], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.anyio
@pytest.mark.parametrize("key", list(MODES))
async def test_a_checked_mode_answers_as_generate_and_stores_only_committed_text(key):
    name, flags, label = MODES[key]
    local = generate(*flags)
    assert local["stats"]["rewinds"] > 0
    app = make_app(demo=True, max_tokens=200)
    app.flush_s = 0.0  # every draft shown: the tiny models write a whole answer within one flush interval
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(key)
        status = app.status.figures.router
        await send(pilot, PROBLEM)
        await wait_until(pilot, lambda: app.query("AssistantMessage") and app.query("AssistantMessage")[-1].provisional)
        await answered(pilot)
        view = app.query("AssistantMessage")[-1]
        shown_after = (view.provisional, view.provisional_view.has_class("-shown"))
        [_, stored] = History().messages(app.conversation)
        answer = app.last_answer
    assert status.startswith(name if key == "f7" else "router.onnx+verify")
    think, text = split_text(local["text"])
    assert (answer.think, answer.answer) == (think, text.strip()) and "= 5800" in text
    # the history holds the committed text only: its pieces are the generated text, tags aside
    assert (stored.content, stored.think) == (answer.answer, answer.think) and stored.router.endswith(label)
    assert "".join(p.text for p in stored.pieces) == local["text"].replace("<think>", "").replace("</think>", "")
    # provisional text was shown, a correction cut it, and none is left once the answer is done
    assert view.drafts_shown > 0 and view.cuts_shown >= 1
    assert shown_after == ((), False)


def test_the_flags_pick_the_mode_to_start_in():
    assert parse_args(["--verify"])[1]["mode"] == "verify"
    assert (parse_args(["--spec", "8"])[1]["mode"], parse_args(["--spec", "8"])[1]["spec_k"]) == ("spec", 8)
    assert (parse_args([])[1]["mode"], parse_args([])[1]["spec_k"]) == ("router", 4)
