"""ChatApp's key actions (stop, regenerate, new chat, history, system prompt, marks, routing mode,
threshold, thinking switch); a mixin, so that Textual finds `action_*` and `check_action` on the app.

Every action that needs the models is a no-op (or one notification) until they are loaded; the
chat's keys give way to an open dialog's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from r2r_tui.answer_view import AssistantMessage
from r2r_tui.history_screen import HistoryScreen
from r2r_tui.prompt_input import PromptInput
from r2r_tui.store import HistoryError
from r2r_tui.system_prompt_screen import SystemPromptScreen
from r2r_tui.user_message import UserMessage

if TYPE_CHECKING:
    from r2r_tui.app import ChatApp

# Answer modes: F2 routed, F3 small only, F4 large only, F5 routed with verify (the large model
# checks every small-model token at its next call), F7 speculative decoding (spec:K, K from --spec).
MODES = {"router": "routed", "slm": "small only", "llm": "large only", "verify": "routed+verify", "spec": "spec"}
NO_FIGURES: dict[str, float | None] = dict(answer_share=None, tokens_per_s=None, activated_params_b=None)
CHAT_ACTIONS = {"stop", "regenerate", "new_chat", "history", "system_prompt", "toggle_marking",
                "mode", "threshold", "toggle_thinking"}


class ChatActions:
    """The actions ChatApp's BINDINGS name."""

    def check_action(self: ChatApp, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While a dialog (history, system prompt) is open its keys win over the chat's; the
        thinking switch is offered only for a template that has one."""
        if action in CHAT_ACTIONS and len(self.screen_stack) > 1:
            return False
        if action == "toggle_thinking" and not self.thinking_switch:
            return False
        return True

    def action_stop(self: ChatApp) -> None:
        if self._gen is not None:
            self._gen.cancel.set()
        else:
            self.stop_pull()

    def action_regenerate(self: ChatApp) -> None:
        """Write the last answer again; the old one is kept until the new one ends normally."""
        if not self._can_generate():
            return
        if not self.turns:
            self.notify("nothing to regenerate yet: send a message first", severity="warning")
            return
        replaces = self.turn_ids[-1] if self.turns[-1].role == "assistant" else self._last_failed
        self._regenerations += 1
        self._start_answer(replaces=replaces)

    def action_new_chat(self: ChatApp) -> None:
        if self.generating:
            self.notify("an answer is being written: Esc stops it first", severity="warning")
            return
        self.conversation, self.turns, self.turn_ids = None, [], []
        self._last_failed = None
        self.system = self.default_system
        for widget in list(self.query(UserMessage)) + list(self.query(AssistantMessage)):
            widget.remove()
        if self.loaded is not None:
            self._show_status("ready", **NO_FIGURES)
        self.query_one(PromptInput).focus()

    def action_history(self: ChatApp) -> None:
        if self.history is None:
            self.notify("the history database is unavailable", severity="error")
            return
        if self.generating:
            self.notify("an answer is being written: Esc stops it first", severity="warning")
            return
        try:
            conversations = self.history.conversations()
        except HistoryError as e:
            self._error(e)
            return
        self.push_screen(HistoryScreen(conversations), self._open_conversation)

    def action_system_prompt(self: ChatApp) -> None:
        def save(text: str | None) -> None:
            if text is None:
                return
            if self.conversation is not None and self.history is not None:
                try:
                    self.history.set_system(self.conversation, text)
                except HistoryError as e:  # the prompt stays what the history holds
                    self._error(e, suffix="; the system prompt is unchanged")
                    return
            self.system = text
            self.notify("system prompt set" if text else "system prompt cleared")

        self.push_screen(SystemPromptScreen(self.system), save)

    def action_toggle_marking(self: ChatApp) -> None:
        self.marking = not self.marking
        for view in self.query(AssistantMessage):
            view.set_marking(self.marking)
        self._show_status(self.status.figures.state)

    def action_toggle_thinking(self: ChatApp) -> None:
        """Qwen3's switch: off, the template writes an empty think section and the model answers."""
        self.thinking = not (True if self.thinking is None else self.thinking)
        when = " from the next answer" if self.generating else ""
        self.notify(f"thinking {'on' if self.thinking else 'off'}{when}")
        self._show_status(self.status.figures.state.split(" │")[0])

    def action_mode(self: ChatApp, mode: str) -> None:
        if self.loaded is None:
            return
        self.mode = mode
        if self.generating:  # the status line shows the new mode at once; this answer keeps the old one
            self.notify(f"routing: {self.mode_name} from the next answer")
        self._show_status(self.status.figures.state)

    @property
    def mode_name(self: ChatApp) -> str:
        """The mode as the status line and notes name it (spec:K with the app's K)."""
        return f"spec:{self.spec_k}" if self.mode == "spec" else MODES[self.mode]

    def action_threshold(self: ChatApp, direction: int) -> None:
        if self.loaded is None:
            return
        router = self.router
        if self.threshold is None:
            self.notify(f"router {router.name} has no threshold", severity="warning")
            return
        step = 0.25 if router.name.startswith("entropy") else 0.05
        value = max(0.0, self.threshold + direction * step)
        if not router.name.startswith("entropy"):
            value = min(1.0, value)
        self.threshold = round(value, 4)  # from the next answer on: a running answer keeps its own
        self._show_status(self.status.figures.state.split(" │")[0])
