"""Driving r2r-chat in tests: the app on a real pair (SmolLM2 on both sides unless the test names
another, or --demo), typing, waiting for answers."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from settings import THREADS


def options(**kw):
    """ChatOptions as the test gives them; with no pair named (and no demo), SmolLM2 on both sides,
    named explicitly (r2r-chat itself has no default pair)."""
    from r2r_local.defaults import smollm2_path
    from r2r_tui.loader import ChatOptions

    if not (kw.get("demo") or kw.get("small") or kw.get("large")):
        kw["small"] = kw["large"] = str(smollm2_path())
    kw.setdefault("threads", THREADS)
    kw.setdefault("n_ctx", 1024)
    return ChatOptions(**kw)


def make_app(max_tokens: int = 48, **kw):
    """The app as r2r-chat builds it, on the pair `options` makes of `kw` (SmolLM2 on both sides
    unless a pair or demo=True is given)."""
    from r2r_local.config import GenerationSettings
    from r2r_tui.app import ChatApp
    from r2r_tui.loader import core_loader

    system = kw.pop("system", "")
    history = kw.pop("history", None)
    extra = {"sampling": kw.pop("sampling")} if "sampling" in kw else {}
    return ChatApp(core_loader(options(**kw)), history=history, system=system,
                   settings=GenerationSettings(max_tokens=max_tokens), **extra)


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 120.0, step: float = 0.02) -> None:
    """Let the app run until condition() holds (the models are real, so no fixed sleeps).

    asyncio.sleep, not pilot.pause: pause waits for the app to be idle, which it never is while
    an answer streams."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        await asyncio.sleep(step)


async def loaded(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.loaded is not None or app.query_one("LoadPanel").error is not None)
    assert app.loaded is not None, app.query_one("LoadPanel").error


async def send(pilot, text: str) -> None:
    """Type `text` into the prompt like a user and press Enter.

    Enter is pressed in a task: pilot.press returns only when the app is idle, i.e. after the
    whole answer, and the tests want to watch it stream. `answered` awaits that task."""
    for ch in text:
        await pilot.press(ch)
    pilot.enter_task = asyncio.create_task(pilot.press("enter"))
    await asyncio.sleep(0.05)


async def answered(pilot, timeout: float = 180.0) -> None:
    app = pilot.app
    task = getattr(pilot, "enter_task", None)
    if task is not None:
        await asyncio.wait_for(task, timeout)
    await wait_until(pilot, lambda: not app.generating, timeout)
    await pilot.pause(0.05)
