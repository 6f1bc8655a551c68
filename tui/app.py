"""`r2r-chat`: chat in the terminal with routed decoding (a small model writes, a router escalates).

The app is handed a Loader (see r2r_tui.loader) and never loads models itself; with no pair set
up it is handed a FirstRun instead and opens on the welcome view (r2r_tui.first_run). Generation
runs in a thread worker that stores every piece in the history before posting it to the UI.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import Static

from r2r_local.chat import Message
from r2r_local.config import DEFAULT_MAX_TOKENS, MAX_SEED, GenerationSettings, SamplingParams
from r2r_local.errors import PromptTooLongError, R2RError

from r2r_tui.actions import NO_FIGURES, ChatActions
from r2r_tui.answer_view import AssistantMessage
from r2r_tui.chat_scroll import ChatScroll
from r2r_tui.first_run import FirstRunFlow
from r2r_tui.key_bar import KeyBar
from r2r_tui.load_panel import LoadPanel
from r2r_tui.loader import FirstRun, Loaded, Loader
from r2r_tui.loading import ModelLoading
from r2r_tui.messages import AnswerDone, AnswerFailed, AnswerProgress
from r2r_tui.prompt_input import PromptInput
from r2r_tui.pull import Pull
from r2r_tui.status_bar import READING, StatusBar
from r2r_tui.store import History, HistoryError
from r2r_tui.streaming import FLUSH_S, Answer, Routing, stream_answer
from r2r_tui.turns import Generation, TurnKeeping
from r2r_tui.user_message import UserMessage
from r2r_tui.welcome import WelcomeView

UNSAVED_NOTE = (". Chatting works, but nothing of this session is saved; to keep your conversations, start "
                "r2r-chat again with --history naming a file it can write.")
# At quit the generation worker gets this long to stop; one still inside llama.cpp after it keeps
# the models (closing them under it would crash the process, which is exiting anyway).
UNMOUNT_WAIT_S = 2.0


class ChatApp(FirstRunFlow, ModelLoading, ChatActions, TurnKeeping, App[None]):
    TITLE = "r2r-chat"
    CSS = """
    #models { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    #chat { height: 1fr; padding: 0 1; }
    ToastRack { margin-bottom: 5; }  /* above the prompt box, the status line and the keys */
    """
    BINDINGS = [
        Binding("escape", "stop", "stop", priority=True),
        Binding("ctrl+r", "regenerate", "regen", priority=True),
        Binding("ctrl+n", "new_chat", "new", priority=True),
        Binding("ctrl+o", "history", "history", priority=True),
        Binding("ctrl+s", "system_prompt", "system", priority=True),
        Binding("ctrl+t", "toggle_marking", "marks", priority=True),
        Binding("f2", "mode('router')", "routed", priority=True),
        Binding("f3", "mode('slm')", "small", priority=True),
        Binding("f4", "mode('llm')", "large", priority=True),
        Binding("f5", "mode('verify')", "verify", priority=True),
        Binding("f7", "mode('spec')", "spec", priority=True),
        Binding("f8", "threshold(-1)", "thr-", priority=True),
        Binding("f9", "threshold(1)", "thr+", priority=True),
        Binding("f6", "toggle_thinking", "think", priority=True),  # shown for a template with the switch
    ]

    def __init__(self, loader: Loader, *, history: History | Path | str | None = None, system: str = "",
                 sampling: SamplingParams = SamplingParams(),
                 settings: GenerationSettings = GenerationSettings(max_tokens=DEFAULT_MAX_TOKENS),
                 thinking: bool | None = None, first_run: FirstRun | None = None, mode: str = "router",
                 spec_k: int = 4) -> None:
        super().__init__()
        self._loader = loader
        self.first_run = first_run  # given: open on the welcome view, `loader` unused
        self._welcoming = False  # the welcome view shows
        self._surveying = False  # the welcome view's survey worker runs
        self._pull: Pull | None = None  # the running `r2r models pull`
        self._pull_timer: Timer | None = None
        self._history_arg = history
        self.history: History | None = None
        self.loaded: Loaded | None = None
        self.sampling, self.settings = sampling, settings
        self.default_system = system
        self.system = system
        self.conversation: int | None = None
        self.turns: list[Message] = []
        self.turn_ids: list[int] = []
        self.marking = True
        self.mode = mode  # a key of MODES: what the next answer is decoded with
        self.spec_k = spec_k  # the draft length of the spec mode (F7)
        self.flush_s = FLUSH_S  # an answer's text is stored and shown at most this often
        self._gen: Generation | None = None  # the answer being written
        self._last_done: threading.Event | None = None  # the latest generation worker's `done`
        self._loading = False  # the load worker runs
        self._last_failed: int | None = None  # a stored answer that failed without text, ending the conversation
        self._busy_noted = 0.0  # when "an answer is being written" was last shown
        self._regenerations = 0
        self._session = [0, 0]  # tokens, large tokens over the answers of this run
        self.last_answer: Answer | None = None
        self._shutting_down = False
        self.router = None  # the configured router (Router), set once the models are loaded
        self.threshold: float | None = None  # the routed answers' threshold (F8/F9), per request
        # The chat template's thinking switch (Qwen3's enable_thinking): None = the model's default.
        self.thinking = thinking
        self.thinking_switch = False  # whether the loaded small model's template has the switch

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("r2r-chat", id="models")
        with ChatScroll(id="chat"):
            yield WelcomeView() if self.first_run is not None else LoadPanel(id="load")
        yield PromptInput(id="prompt")
        yield StatusBar(id="status")
        yield KeyBar(id="keys")

    @property
    def generating(self) -> bool:
        return self._gen is not None

    @property
    def workers_in_flight(self) -> bool:
        """Whether a worker thread (loading, the first run's survey or pull, or an answer that did
        not stop) still runs."""
        answering = self._last_done is not None and not self._last_done.is_set()
        return self._loading or self._surveying or self._pull is not None or answering

    @property
    def chat(self) -> ChatScroll:
        return self.query_one("#chat", ChatScroll)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    def on_mount(self) -> None:
        self.query_one(PromptInput).focus()
        try:
            self.history = self._history_arg if isinstance(self._history_arg, History) else History(self._history_arg)
        except HistoryError as e:  # chatting still works, in a history that lives as long as the app
            self.history = History.unsaved()
            self._error(e, timeout=60, suffix=UNSAVED_NOTE)
        if self.first_run is not None:
            self._show_welcome()
        else:
            self._start_loading()

    def _error(self, e: R2RError, timeout: float = 20, suffix: str = "") -> None:
        """One notification for an error (its text shown literally, never as markup)."""
        self.notify(str(e) + suffix, title=e.title, severity="error", timeout=timeout, markup=False)

    # --- sending and streaming ------------------------------------------------------------------

    @on(PromptInput.Submitted)
    def _send(self, event: PromptInput.Submitted) -> None:
        if not self._can_generate():
            return
        history = self._require_history()
        try:
            if self.conversation is None:
                title = " ".join(event.text.split())[:80]
                self.conversation = history.new_conversation(title, self.system, self.loaded.choice.description)
            mid = history.add_user(self.conversation, event.text)
        except HistoryError as e:  # nothing is sent that could not be stored; the prompt is kept
            self._error(e)
            return
        self.query_one(PromptInput).clear()
        self.turns.append(Message("user", event.text))
        self.turn_ids.append(mid)
        view = UserMessage(event.text)
        self.chat.mount(view)
        self._last_failed = None
        if not self._start_answer(user=(event.text, mid, view)):
            self._take_back((event.text, mid, view))

    def _can_generate(self) -> bool:
        if self.generating:
            now = time.monotonic()
            if now - self._busy_noted > self.NOTIFICATION_TIMEOUT:  # one toast, not one per key press
                self._busy_noted = now
                self.notify("an answer is being written: Esc stops it", severity="warning")
            return False
        if self.loaded is None:
            if not self._no_pair_yet():
                self.notify("no models are loaded", severity="error")
            return False
        if self.history is None:
            self.notify("the history database is unavailable", severity="error")
            return False
        return True

    def _require_history(self) -> History:
        assert self.history is not None  # checked by _can_generate
        return self.history

    def _start_answer(self, *, replaces: int | None = None, user: tuple[str, int, UserMessage] | None = None) -> bool:
        """Store an empty answer and start writing it; False (and a notification) if it cannot be stored.

        replaces: regenerate this stored answer; it stays (hidden) until the new one ends normally."""
        assert self.loaded is not None and self.conversation is not None
        routing = self._routing()
        turns = self.turns[:-1] if replaces is not None and self.turn_ids[-1:] == [replaces] else self.turns
        messages = self._prompt(turns)
        # Each regenerate adds 1 to the seed, wrapping inside the seed range (--seed 4294967295 is
        # valid), and before anything is stored or hidden: nothing below may fail half-way.
        sampling = replace(self.sampling, seed=(self.sampling.seed + self._regenerations) % MAX_SEED)
        try:
            mid = self._require_history().start_answer(self.conversation, routing.label, replaces=replaces)
        except HistoryError as e:
            self._error(e)
            return False
        old = self._view(replaces) if replaces is not None else None
        if old is not None:
            old.display = False
        view = AssistantMessage(mid, marking=self.marking)
        self.chat.mount(view)
        self.chat.anchor()  # follow the answer as it grows, until the user scrolls away
        gen = self._gen = Generation(mid, threading.Event(), threading.Event(), replaces, user)
        self._last_done = gen.done
        self._busy_noted = 0.0
        self._show_status(READING, **NO_FIGURES)
        self._generate(routing, messages, gen, sampling)
        return True

    def _routing(self) -> Routing:
        """This answer's decoding: the mode's policy, and the router and threshold for routed ones
        (verify: the configured router, each of its small-model tokens checked by the large model)."""
        from r2r_local.decode import LARGE, SMALL, policy_for_mode, routed

        assert self.loaded is not None
        if self.mode in ("router", "verify"):
            policy = self.loaded.policy if self.mode == "router" else routed(verify=True)
            return Routing(self.loaded.pair, policy, self.router, self.threshold)
        if self.mode == "spec":
            return Routing(self.loaded.pair, policy_for_mode(f"spec:{self.spec_k}"))
        return Routing(self.loaded.pair, SMALL if self.mode == "slm" else LARGE)

    @work(thread=True, exit_on_error=False, group="generate")
    def _generate(self, routing: Routing, messages: list[Message], gen: Generation, sampling: SamplingParams) -> None:
        mid = gen.message_id
        try:
            answer = stream_answer(routing, messages, self._require_history(), mid,
                                   lambda progress: self.post_message(AnswerProgress(mid, progress)),
                                   gen.cancel, sampling, self.settings, self.thinking, self.flush_s)
        except R2RError as e:
            self.post_message(AnswerFailed(mid, e.title, str(e), isinstance(e, PromptTooLongError)))
        except Exception as e:  # a bug: shown, the conversation kept
            self.post_message(AnswerFailed(mid, "Internal error", f"{type(e).__name__}: {e}"))
        else:
            self.post_message(AnswerDone(mid, answer))
        finally:
            gen.done.set()  # this generation's own event: a later answer's worker is not affected

    def _view(self, mid: int) -> AssistantMessage | None:
        return next((v for v in self.query(AssistantMessage) if v.message_id == mid), None)

    def on_answer_progress(self, event: AnswerProgress) -> None:
        view = self._view(event.message_id)
        if view is not None:
            view.add_pieces(event.progress.pieces, event.progress.provisional)
        p = event.progress
        tokens, large = self._session[0] + p.n_tokens, self._session[1] + p.large_tokens
        self._show_status("writing", answer_share=p.large_tokens / p.n_tokens if p.n_tokens else 0.0,
                          session_share=large / tokens if tokens else None,
                          tokens_per_s=p.tokens_per_s or None, activated_params_b=p.activated_params_b)

    # --- status ---------------------------------------------------------------------------------

    def _show_status(self, state: str, **figures: float | None) -> None:
        router = self.router if self.loaded is not None else None
        if self.mode not in ("router", "verify"):
            name, threshold = self.mode_name, None
        elif router is not None:
            name, threshold = _router_label(router, self.threshold), self.threshold
            name += "+verify" if self.mode == "verify" else ""
        else:
            name, threshold = "-", None
        state = state.split(" │ think")[0]  # a state read back from the status line keeps no old suffix
        if self.thinking is not None:
            state += f" │ think {'on' if self.thinking else 'off'}"
        current = self.status.figures
        self.status.show(replace(current, router=name, threshold=threshold, state=state, marking=self.marking,
                                 **figures))

    def _show_stats(self, stats: dict, state: str) -> None:
        tokens, large = self._session
        self._show_status(state, answer_share=stats.get("large_share"),
                          session_share=large / tokens if tokens else None,
                          tokens_per_s=stats.get("tokens_per_s"), activated_params_b=stats.get("activated_params_b"))

    # --- shutdown -------------------------------------------------------------------------------

    def on_unmount(self) -> None:
        self._shutting_down = True
        self.stop_pull()
        if self._gen is not None:
            self._gen.cancel.set()
        # The worker stops within one token (or prompt chunk); the models and the history must
        # outlive it. One still inside llama.cpp keeps them: the process is exiting.
        if self._last_done is not None and not self._last_done.wait(timeout=UNMOUNT_WAIT_S):
            return
        if self.loaded is not None:
            self.loaded.close()
            self.loaded = None
        if self.history is not None and not isinstance(self._history_arg, History):
            self.history.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The r2r-chat console script (r2r_tui.cli.main), for `python -m r2r_tui.app`."""
    from r2r_tui.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())


def _router_label(router, threshold: float | None) -> str:
    """How the status line names a router: an .onnx router by its file name; a random or entropy
    router by the threshold in force (its spec)."""
    kind = router.name.partition(":")[0]
    if kind in ("random", "entropy") and threshold is not None:
        return f"{kind}:{threshold:g}"
    return Path(router.name).name
