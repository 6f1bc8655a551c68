"""ChatApp's first run: the welcome view's choices become a load (the demo pair) or a pull and then
a load (a known pair); a mixin, so that Textual dispatches the view's and the workers' messages
to it like to the app's own methods.

While the view shows, `self.first_run` holds its offers and `_welcoming` is True; at most one
pull runs (`_pull`), followed by a thread that relays its output and a timer that reads its
progress from the disk. Leaving the view puts the usual load panel in its place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work

from r2r_local.errors import R2RError

from r2r_tui.key_bar import CHAT_KEYS, KeyBar
from r2r_tui.load_panel import LoadPanel
from r2r_tui.loader import Loader
from r2r_tui.messages import PullDone, PullLine, Surveyed
from r2r_tui.prompt_input import PromptInput
from r2r_tui.pull import Pull
from r2r_tui.welcome import WELCOME_KEYS, WelcomeView

if TYPE_CHECKING:
    from r2r_tui.app import ChatApp

PROGRESS_EVERY_S = 0.5
NO_PAIR_YET = "no model pair yet: choose one in the welcome view (d starts the built-in demo pair)"


class FirstRunFlow:
    """The welcome view's side of the app."""

    def _show_welcome(self: ChatApp) -> None:
        self._welcoming = self._surveying = True
        keys = self.query_one(KeyBar)
        keys.entries = WELCOME_KEYS
        keys.refresh()
        self.query_one(WelcomeView).choices.focus()
        self._show_status("choose a pair")
        self._survey()

    @work(thread=True, exit_on_error=False, group="survey")
    def _survey(self: ChatApp) -> None:
        assert self.first_run is not None
        try:
            machine, pairs = self.first_run.survey()
        except R2RError as e:
            self.post_message(Surveyed(None, [], f"the known pairs could not be listed: {e}"))
        except Exception as e:  # a bug: the demo line still works
            self.post_message(Surveyed(None, [], f"the known pairs could not be listed: {type(e).__name__}: {e}"))
        else:
            self.post_message(Surveyed(machine, pairs))
        finally:
            self._surveying = False

    def on_surveyed(self: ChatApp, event: Surveyed) -> None:
        if self._welcoming:
            self.query_one(WelcomeView).show_pairs(event.machine, event.pairs, event.error)

    def action_demo(self: ChatApp) -> None:
        if not self._welcoming or self.first_run is None:
            return
        if self._pull is not None:
            self.notify("a download is running: Esc stops it first", severity="warning")
            return
        self._leave_welcome(self.first_run.demo)

    def action_choose(self: ChatApp) -> None:
        """The key line's "enter": the highlighted choice, as Enter in the list."""
        if self._welcoming:
            self.query_one(WelcomeView).choices.action_select()

    def on_welcome_view_demo_chosen(self: ChatApp, event: WelcomeView.DemoChosen) -> None:
        self.action_demo()

    def on_welcome_view_pair_chosen(self: ChatApp, event: WelcomeView.PairChosen) -> None:
        if self._pull is not None:
            self.notify("a download is running: Esc stops it first", severity="warning")
            return
        assert self.first_run is not None
        try:
            pull = Pull(event.name, self.first_run.pull_argv(event.name))
        except OSError as e:
            self.notify(f"r2r models pull could not start: {e}", severity="error", markup=False)
            return
        self._pull = pull
        self.query_one(WelcomeView).pull_started(event.name)
        self._pull_timer = self.set_interval(PROGRESS_EVERY_S, self._show_pull_progress)
        self._show_status("downloading")
        self._follow_pull(pull)

    @work(thread=True, exit_on_error=False, group="pull")
    def _follow_pull(self: ChatApp, pull: Pull) -> None:
        last = ""
        for line in pull.lines():
            last = line
            self.post_message(PullLine(line))
        self.post_message(PullDone(pull.name, pull.wait(), pull.stopped, last))

    def _show_pull_progress(self: ChatApp) -> None:
        if self._pull is not None and self._welcoming:
            self.query_one(WelcomeView).pull_progress(*self._pull.progress())

    def on_pull_line(self: ChatApp, event: PullLine) -> None:
        if self._welcoming:
            self.query_one(WelcomeView).pull_line(event.text)

    def on_pull_done(self: ChatApp, event: PullDone) -> None:
        self._show_pull_progress()
        self._pull = None
        if self._pull_timer is not None:
            self._pull_timer.stop()
        if not self._welcoming or self.first_run is None:
            return
        view = self.query_one(WelcomeView)
        if event.returncode == 0:
            view.pull_ended(True, f"{event.name} is set up: loading it")
            self._leave_welcome(self.first_run.pulled)
            return
        if event.stopped:
            message = f"download of {event.name} stopped; choosing it again starts it over"
        else:
            message = f"r2r models pull {event.name} failed: {event.last_line or f'exit code {event.returncode}'}"
            self.notify(message, title="Download failed", severity="error", timeout=30, markup=False)
        view.pull_ended(False, message)
        self._show_status("choose a pair")

    def stop_pull(self: ChatApp) -> None:
        """End a running pull (Esc, or the app closing); its reader thread then reports it."""
        if self._pull is not None:
            self._pull.stop()

    def _leave_welcome(self: ChatApp, loader: Loader) -> None:
        """The view goes, the load panel comes, and `loader` loads the chosen pair."""
        self._welcoming = False
        self.query_one(WelcomeView).remove()
        self.chat.mount(LoadPanel(id="load"))
        keys = self.query_one(KeyBar)
        keys.entries = CHAT_KEYS
        keys.refresh()
        self.query_one(PromptInput).focus()
        self._loader = loader
        self._start_loading()

    def _no_pair_yet(self: ChatApp) -> bool:
        """Say so, and move to the view's choices, when a message is sent before a pair is chosen."""
        if not self._welcoming:
            return False
        self.notify(NO_PAIR_YET, severity="warning")
        self.query_one(WelcomeView).choices.focus()
        return True
