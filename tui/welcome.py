"""The first-run view: no pair is set up, so r2r-chat offers one instead of an error.

First choice (highlighted, and the `d` key): the built-in demo pair, offline, loaded in seconds.
Then every known pair (models/known_models.toml) with what is left to download, whether it fits
this machine (r2r_local.pair_fit: the GPU fit plan, else the RAM) and the `r2r models pull`
command that sets it up; Enter on one runs that command here, with a progress bar (Esc stops).
The view only offers: the app does the loading and the pulling (r2r_tui.first_run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from r2r_tui.key_bar import Keys

if TYPE_CHECKING:
    from r2r_local.pair_fit import Machine, PairFit

DEMO_ID = "demo"
PAIR_PREFIX = "pair:"
INTRO = "No model pair is set up yet: start the demo, or pick a pair to download."
WELCOME_KEYS: tuple[Keys, ...] = (
    Keys((("d", "demo"),), ("demo",), "demo", 9),
    Keys((("enter", "choose"),), ("start / download",), "choose", 8),
    Keys((("esc", "stop"),), ("stop download",), "stop", 6),
    Keys((("^q", "quit"),), ("quit",), "quit", 10),
)
_SIZES = re.compile(r"\s*\([^()]*\bGB\)$")  # "(0.64 GB + 5.03 GB)" ending a description: said below
_MARKS = {True: ("✓", "green"), False: ("✗", "red"), None: ("?", "yellow")}


def demo_prompt() -> Text:
    text = Text("▶ Start the built-in demo pair now", style="bold")
    text.append("\n  offline, in seconds: two tiny models that add numbers (try 347+589)", style="dim")
    return text


def pair_prompt(fit: PairFit) -> Text:
    """Three lines: name and models; size and the command; the fit on this machine."""
    text = Text(fit.name, style="bold")
    text.append(f"  {_SIZES.sub('', fit.description)}")
    text.append(f"\n  {fit.size_text()} · ")
    text.append(fit.pull_command, style="italic")
    mark, colour = _MARKS[fit.fits]
    text.append(f"\n  {mark} ", style=f"bold {colour}")
    text.append(fit.verdict)
    return text


class WelcomeView(Vertical):
    DEFAULT_CSS = """
    WelcomeView {
        height: 100%;
        min-height: 12;
        padding: 0 1;
        border: round $primary;
        border-title-color: $primary;
    }
    WelcomeView #welcome-choices { height: 1fr; border: none; padding: 0; }
    WelcomeView #welcome-machine { color: $text-muted; }
    WelcomeView #welcome-progress { display: none; }
    WelcomeView.-pulling #welcome-progress { display: block; }
    WelcomeView #welcome-log { color: $text-muted; display: none; }
    WelcomeView.-pulling #welcome-log, WelcomeView.-failed #welcome-log { display: block; }
    WelcomeView.-failed #welcome-log { color: $error; }
    """
    BINDINGS = [Binding("d", "app.demo", "demo")]

    @dataclass
    class PairChosen(Message):
        """Enter on a known pair: download and set it up."""

        name: str

    class DemoChosen(Message):
        """Enter on the demo line (the `d` key runs the app's demo action directly)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.border_title = "Welcome to r2r-chat"
        self.pairs: list[PairFit] = []
        self.log_lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(INTRO, id="welcome-intro")
        yield Static("checking this machine and the known pairs…", id="welcome-machine")
        yield ProgressBar(id="welcome-progress", show_eta=False)
        yield Static("", id="welcome-log")
        yield OptionList(Option(demo_prompt(), id=DEMO_ID), id="welcome-choices")

    @property
    def choices(self) -> OptionList:
        return self.query_one("#welcome-choices", OptionList)

    def show_pairs(self, machine: Machine | None, pairs: list[PairFit], error: str | None = None) -> None:
        """Add one option per known pair, and the machine they were judged against."""
        self.pairs = list(pairs)
        self.choices.add_options([Option(pair_prompt(p), id=PAIR_PREFIX + p.name) for p in pairs])
        line = f"This machine: {machine.line()}" if machine is not None else ""
        if error:
            line = f"{line}\n{error}" if line else error
        self.query_one("#welcome-machine", Static).update(Text(line))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id or ""
        if option_id == DEMO_ID:
            self.post_message(self.DemoChosen())
        elif option_id.startswith(PAIR_PREFIX):
            self.post_message(self.PairChosen(option_id[len(PAIR_PREFIX):]))

    # --- a pull in progress ---------------------------------------------------------------------

    def pull_started(self, name: str) -> None:
        self.log_lines = []
        self.remove_class("-failed")
        self.add_class("-pulling")
        self.query_one(ProgressBar).update(total=None, progress=0)
        self._log(f"r2r models pull {name}: starting")

    def pull_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.query_one(ProgressBar).update(total=total, progress=min(done, total))

    def pull_line(self, text: str) -> None:
        self._log(text)

    def pull_ended(self, ok: bool, message: str) -> None:
        self.set_class(not ok, "-failed")
        if not ok:
            self.remove_class("-pulling")
        self._log(message)

    def _log(self, text: str) -> None:
        """The latest two lines of the pull's output (long lines are cut by the view's width)."""
        self.log_lines.append(text)
        self.query_one("#welcome-log", Static).update(Text("\n".join(self.log_lines[-2:])))
