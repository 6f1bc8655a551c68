"""r2r-chat's first run (no pair given or configured), driven like a user with Textual Pilot: the
welcome view and its choices. The demo pair is real; so is `r2r models pull`, run as the child
process the app starts, with a stand-in for huggingface_hub (tests/tui/fake_hub: no network here)
serving the demo GGUFs under their published sizes and sha256."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import OptionList, ProgressBar

from pilot_helpers import answered, options, send, wait_until
from settings import THREADS
from r2r_local.catalog import load_catalog, local_path
from r2r_local.config import load_user_config
from r2r_local.pair_fit import Machine, fit_known_pairs
from r2r_tui.app import ChatApp
from r2r_tui.first_run import NO_PAIR_YET
from r2r_tui.key_bar import KeyBar
from r2r_tui.load_panel import LoadPanel
from r2r_tui.loader import ChatOptions, FirstRun, core_loader, first_run_for, pull_argv
from r2r_tui.prompt_input import PromptInput
from r2r_tui.store import History
from r2r_tui.welcome import DEMO_ID, WelcomeView

pytestmark = pytest.mark.anyio
SIZE = (100, 40)
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"
MACHINE = Machine("Test GPU", 24 * 10**9, 64 * 10**9)
CATALOG = """
[pairs.demo-pull]
description = "the demo pair, served by a stand-in hub"
small = "small"
large = "large"
{files}
"""
FILE = """
[files.{role}]
kind = "gguf"
repo = "test/demo"
file = "{file}"
revision = "r1"
size = {size}
sha256 = "{sha256}"
"""


def _survey():
    return MACHINE, fit_known_pairs(MACHINE)


def welcome_app(**first_run) -> ChatApp:
    """The app as r2r-chat builds it on a first run, judging the pairs against MACHINE."""
    chat = ChatOptions(threads=THREADS, n_ctx=1024)
    assert first_run_for(chat) is not None  # nothing names a pair: a first run
    offers = dict(demo=core_loader(options(demo=True, n_ctx=1024)), pulled=core_loader(chat), survey=_survey,
                  pull_argv=pull_argv) | first_run
    return ChatApp(core_loader(chat), first_run=FirstRun(**offers))


def _texts(view: WelcomeView) -> list[str]:
    choices = view.choices
    return [choices.get_option_at_index(i).prompt.plain for i in range(choices.option_count)]


async def _surveyed(pilot) -> WelcomeView:
    view = pilot.app.query_one(WelcomeView)
    await wait_until(pilot, lambda: bool(view.pairs), timeout=60)
    await pilot.pause(0.05)
    return view


async def test_a_first_run_opens_on_the_welcome_view():
    app = welcome_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await _surveyed(pilot)
        texts = _texts(view)
        machine = str(view.query_one("#welcome-machine").render())
        state = (app.loaded, app._loading, list(app.query(LoadPanel)), app.focused is view.choices,
                 view.choices.highlighted, view.choices.get_option_at_index(0).id)
        keys, status = app.query_one(KeyBar).shown, app.status.figures.state
    expected = fit_known_pairs(MACHINE)
    assert [p.name for p in expected] == list(load_catalog()) and len(texts) == 1 + len(expected)
    assert texts[0].startswith("▶ Start the built-in demo pair now") and "347+589" in texts[0]
    for text, pair in zip(texts[1:], expected):
        assert text.startswith(pair.name + "  ")
        assert f"{pair.size_text()} · r2r models pull {pair.name}" in text and pair.verdict in text
    assert machine == f"This machine: {MACHINE.line()}"
    assert state == (None, False, [], True, 0, DEMO_ID)  # nothing loads until a choice is made
    assert keys.startswith("d demo enter start / download") and keys.endswith("^q quit")
    assert status == "choose a pair"


@pytest.mark.parametrize("key", ["d", "enter", "the key line's enter"])
async def test_one_key_starts_the_demo_pair_which_adds(key):
    app = welcome_app()
    async with app.run_test(size=SIZE) as pilot:
        await _surveyed(pilot)
        if key.startswith("the key line"):
            await app.run_action("choose")  # what a click on the key line's "enter" runs
        else:
            await pilot.press(key)
        await wait_until(pilot, lambda: app.loaded is not None or any(p.error for p in app.query(LoadPanel)))
        assert app.loaded is not None, app.query_one(LoadPanel).error
        after = (list(app.query(WelcomeView)), app.focused, app.query_one(KeyBar).shown)
        await send(pilot, "347+589")
        await answered(pilot)
        answer, source = app.last_answer.answer, app.loaded.choice.source
    assert after[0] == [] and isinstance(after[1], PromptInput) and after[2].startswith("esc stop ^r regen")
    assert source == "demo" and answer.strip().endswith("936.") and "347+589 = 936" in answer


async def test_a_message_before_a_choice_says_how_to_get_a_pair():
    app = welcome_app()
    async with app.run_test(size=SIZE) as pilot:
        await _surveyed(pilot)
        app.query_one(PromptInput).focus()
        await send(pilot, "hello")
        await pilot.pause(0.1)
        notes = [n.message for n in app._notifications]
        focused, kept = app.focused, app.query_one(PromptInput).text
    assert notes == [NO_PAIR_YET] and isinstance(focused, OptionList) and kept == "hello"
    assert History().conversations() == []


@pytest.fixture
def hub(tmp_path, monkeypatch) -> dict:
    """A known-models table with one pair, the demo GGUFs, served by the stand-in hub."""
    manifest = json.loads((DEMO / "manifest.json").read_text())["models"]
    files = "".join(FILE.format(role=role, file=f"gguf/{m['file']}", size=m["size_bytes"], sha256=m["sha256"])
                    for role, m in manifest.items())
    known = tmp_path / "known.toml"
    known.write_text(CATALOG.format(files=files))
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(known))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent / "fake_hub"))
    monkeypatch.setenv("FAKE_HUB_SOURCE", str(DEMO))
    monkeypatch.setenv("FAKE_HUB_CHUNK_S", "0.05")
    pair = load_catalog()["demo-pull"]
    return {"small": local_path(pair.small), "large": local_path(pair.large),
            "total": sum(m["size_bytes"] for m in manifest.values())}


async def _choose_the_pair(pilot) -> WelcomeView:
    view = await _surveyed(pilot)
    await pilot.press("down")
    await pilot.press("enter")
    # the pull has started (a failing one may already be over when this first looks)
    await wait_until(pilot, lambda: pilot.app._pull is not None or bool(view.log_lines))
    return view


async def test_a_pair_is_downloaded_from_the_app_with_a_progress_bar_then_loaded(hub):
    app = welcome_app()
    seen: list[tuple[int, int]] = []
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(WelcomeView)
        show = view.pull_progress
        view.pull_progress = lambda done, total: (seen.append((done, total)), show(done, total))
        await _choose_the_pair(pilot)
        bar = view.query_one(ProgressBar)
        shown = bar.display
        await wait_until(pilot, lambda: app.loaded is not None or any(p.error for p in app.query(LoadPanel)),
                         timeout=120)
        assert app.loaded is not None, (app.query_one(LoadPanel).error, view.log_lines)
        choice, log = app.loaded.choice, list(view.log_lines)
        await send(pilot, "347+589")
        await answered(pilot)
        answer = app.last_answer.answer
    assert shown and seen[-1] == (hub["total"], hub["total"])
    assert any(0 < done < hub["total"] for done, _ in seen)  # the bar moved while the files came in
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert (choice.small.path, choice.large.path, choice.source) == (str(hub["small"]), str(hub["large"]), "config")
    config = load_user_config()
    assert (config["small"], config["large"]) == (str(hub["small"]), str(hub["large"]))
    assert log[0] == "r2r models pull demo-pull: starting" and log[-1] == "demo-pull is set up: loading it"
    assert any("sha256 matches the published hash" in line for line in log)
    assert answer.strip()


async def test_a_failed_download_says_why_and_the_choices_stay(hub, monkeypatch):
    monkeypatch.setenv("FAKE_HUB_FAIL", "offline: no route to the hub")
    app = welcome_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await _choose_the_pair(pilot)
        await wait_until(pilot, lambda: app._pull is None, timeout=120)
        await pilot.pause(0.05)
        log, failed = view.log_lines[-1], view.has_class("-failed")
        notes = [n.message for n in app._notifications]
        await pilot.press("d")  # the demo is still one key away
        await wait_until(pilot, lambda: app.loaded is not None, timeout=60)
    assert log == ("r2r models pull demo-pull failed: r2r: error: download of test/demo/gguf/demo-small-q8_0.gguf "
                   "failed: OSError: offline: no route to the hub")
    assert failed and notes == [log] and not hub["small"].exists()


async def test_esc_stops_a_download_and_quitting_ends_one(hub, monkeypatch):
    monkeypatch.setenv("FAKE_HUB_CHUNK_S", "2")
    app = welcome_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await _choose_the_pair(pilot)
        pull = app._pull
        await wait_until(pilot, lambda: pull.progress()[0] > 0, timeout=60)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app._pull is None, timeout=30)
        await pilot.pause(0.05)
        stopped = (pull.proc.returncode, view.log_lines[-1], list(app.query(WelcomeView)) == [view])
        left = list(hub["small"].parents[1].rglob("*.incomplete"))
        await pilot.press("enter")  # choosing it again starts again
        await wait_until(pilot, lambda: app._pull is not None and app._pull.progress()[0] > 0, timeout=60)
        second = app._pull
    assert left == []  # the stopped download's partial file is gone (the hub would not resume it)
    assert stopped == (-15, "download of demo-pull stopped; choosing it again starts it over", True)
    assert second.proc.poll() is not None  # the app closed: its child went with it
    assert not hub["small"].exists() and list(hub["small"].parents[1].rglob("*.incomplete")) == []


async def test_at_80x24_the_view_fits_and_its_list_scrolls_inside_it():
    app = welcome_app()
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _surveyed(pilot)
        machine = view.query_one("#welcome-machine").region
        fits = (view.outer_size.height <= app.chat.size.height, app.chat.max_scroll_y)
        choices = view.choices
        for _ in range(choices.option_count - 1):
            await pilot.press("down")
        await pilot.pause(0.05)
        last = (choices.highlighted, choices.scroll_y > 0)
    assert fits == (True, 0) and machine.height == 1 and machine.y < 24
    assert last == (choices.option_count - 1, True)


def test_a_partial_file_from_before_the_pull_is_neither_counted_nor_removed(hub):
    import sys

    from r2r_tui.pull import Pull

    stale = hub["small"].parents[1] / ".cache" / "huggingface" / "download" / "gguf" / "old.abc.incomplete"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x" * 1000)
    pull = Pull("demo-pull", [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(30)"])
    assert next(pull.lines()) == "working"
    assert pull.progress() == (0, hub["total"])
    fresh = stale.with_name("new.def.incomplete")
    fresh.write_bytes(b"y" * 300)
    assert pull.progress() == (300, hub["total"])
    pull.stop()
    assert pull.wait() == -15 and stale.exists() and not fresh.exists()
