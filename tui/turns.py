"""What an answer's end does to the live turns and the screen (ChatApp's half that keeps them).

The turns (`turns`, `turn_ids`) are what the next answer is given: an answer joins them once it
ends with text, a regeneration takes its old answer's place only when it ends normally (else the
old one shows again), a user message whose answer could not be written goes back into the
prompt box, and a reopened conversation gets exactly the turns its live session had.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from r2r_local.chat import Message

from r2r_tui.answer_view import AssistantMessage
from r2r_tui.messages import AnswerDone, AnswerFailed
from r2r_tui.prompt_input import PromptInput
from r2r_tui.store import REGENERATION_DROPPED, HistoryError, StoredMessage
from r2r_tui.streaming import prompt_messages
from r2r_tui.user_message import UserMessage

if TYPE_CHECKING:
    from r2r_tui.app import ChatApp


@dataclass
class Generation:
    """One answer being written. done is set by its worker once it no longer uses the models.

    replaces: the stored answer a regeneration is to replace (kept if this one is dropped);
    user: (text, stored id, widget) of the user message this answer follows, on a fresh send."""

    message_id: int
    cancel: threading.Event
    done: threading.Event
    replaces: int | None = None
    user: tuple[str, int, UserMessage] | None = None


SINGLE_TURN_NOTICE = ("The demo pair answers each message on its own: the earlier turns stay in this "
                      "conversation but are not sent with it (its models learned one-question conversations).")


class TurnKeeping:
    """ChatApp's handlers for finished and failed answers, taking back, and reopening; a mixin,
    so that Textual dispatches AnswerDone and AnswerFailed to it like to the app's own methods."""

    _single_turn_noted: int | None = None  # the conversation whose left-out turns were last noted

    def _prompt(self: ChatApp, turns: list[Message]) -> list[Message]:
        """The messages the next answer is given (see streaming.prompt_messages). A single-turn
        pair leaves the earlier turns out, and says so once per conversation when there are some."""
        single = self.loaded is not None and self.loaded.choice.single_turn
        if single and len(turns) > 1 and self._single_turn_noted != self.conversation:
            self._single_turn_noted = self.conversation
            self.notify(SINGLE_TURN_NOTICE, title="Each message on its own", timeout=12, markup=False)
        return prompt_messages(self.system, turns, single)

    def _finished(self: ChatApp, mid: int) -> Generation | None:
        """The generation that wrote `mid`, no longer current."""
        gen = self._gen
        if gen is None or gen.message_id != mid:
            return None
        self._gen = None
        self._busy_noted = 0.0
        return gen

    def on_answer_done(self: ChatApp, event: AnswerDone) -> None:
        gen = self._finished(event.message_id)
        answer = event.answer
        self.last_answer = answer
        stats = answer.stats or {}
        self._session[0] += stats.get("n_tokens", 0)
        self._session[1] += stats.get("large_tokens", 0)
        view = self._view(event.message_id)
        state = "stopped" if answer.stop_reason == "cancelled" else "ready"
        if gen is not None and gen.replaces is not None and (answer.stop_reason or "error") in REGENERATION_DROPPED:
            self._keep_replaced(gen, view, state)  # the store dropped the new answer
            self.notify("regeneration stopped: the previous answer is kept", severity="warning")
            return
        if gen is not None and gen.replaces is not None:
            self._drop_replaced(gen)
        self.turns.append(Message("assistant", answer.answer))
        self.turn_ids.append(event.message_id)
        if view is not None:
            view.stats = stats
            view.finish(note(answer.stop_reason, answer.message, stats))
        self._show_stats(stats, state)
        if answer.message:
            self.notify(answer.message, severity="warning", markup=False)

    def on_answer_failed(self: ChatApp, event: AnswerFailed) -> None:
        gen = self._finished(event.message_id)
        view = self._view(event.message_id)
        self._show_status("error")
        if gen is not None and gen.replaces is not None:  # the store dropped the new answer
            self._keep_replaced(gen, view, "error")
            self.notify(f"{event.message}; the previous answer is kept", title=event.title, severity="error",
                        timeout=20, markup=False)
            return
        if (event.prompt_too_long and gen is not None and gen.user is not None and view is not None
                and not view.pieces and self._take_back(gen.user, event.message_id)):
            n_ctx = self.loaded.pair.decoder.n_ctx if self.loaded is not None else "?"
            self.notify(f"The message does not fit the context of {n_ctx} tokens: it is back in the prompt box. "
                        "ctrl+n starts a new conversation; --n-ctx raises the limit.",
                        title=event.title, severity="error", timeout=30, markup=False)
            return
        if view is not None:
            view.finish(f"[{event.title}: {event.message}]")
            if view.answer:
                self.turns.append(Message("assistant", view.answer))
                self.turn_ids.append(event.message_id)
            else:
                self._last_failed = event.message_id  # not a turn; a regenerate replaces it
        self.notify(event.message, title=event.title, severity="error", timeout=20, markup=False)

    def _keep_replaced(self: ChatApp, gen: Generation, view: AssistantMessage | None, state: str) -> None:
        """A dropped regeneration: its view goes, the answer it was to replace shows again, and so
        do that answer's figures (not the dropped attempt's)."""
        if view is not None:
            view.remove()
        old = self._view(gen.replaces) if gen.replaces is not None else None
        if old is not None:
            old.display = True
        self._show_stats((old.stats if old is not None else None) or {}, state)

    def _drop_replaced(self: ChatApp, gen: Generation) -> None:
        """A regeneration that ended normally: the answer it replaced leaves the screen and the turns."""
        old = self._view(gen.replaces) if gen.replaces is not None else None
        if old is not None:
            old.remove()
        if self.turn_ids[-1:] == [gen.replaces]:
            self.turns.pop()
            self.turn_ids.pop()
        if self._last_failed == gen.replaces:
            self._last_failed = None

    def _take_back(self: ChatApp, user: tuple[str, int, UserMessage], answer: int | None = None) -> bool:
        """Remove a user message that got no answer (and its stored empty answer) from the history and
        the screen, and put its text back into the prompt box. False if the history refused."""
        text, mid, widget = user
        history = self._require_history()
        try:
            if answer is not None:
                history.delete_message(answer)
            history.delete_message(mid)
            if self.conversation is not None and not history.messages(self.conversation):
                history.delete_conversation(self.conversation)
                self.conversation = None
        except HistoryError as e:
            self._error(e)
            return False
        view = self._view(answer) if answer is not None else None
        if view is not None:
            view.remove()
        widget.remove()
        if self.turn_ids[-1:] == [mid]:
            self.turns.pop()
            self.turn_ids.pop()
        prompt = self.query_one(PromptInput)
        prompt.text = text + ("\n" + prompt.text if prompt.text.strip() else "")
        prompt.focus()
        return True

    def _open_conversation(self: ChatApp, conversation: int | None) -> None:
        if conversation is None or self.history is None:
            return
        try:  # everything is read before the current conversation leaves the screen
            stored = self.history.conversation(conversation)
            messages = self.history.messages(conversation) if stored is not None else []
        except HistoryError as e:
            self._error(e)
            return
        if stored is None:
            return
        self.action_new_chat()
        self.conversation, self.system = stored.id, stored.system
        pair = self.loaded.choice.description if self.loaded is not None else ""
        if stored.models and pair and stored.models != pair:
            self.notify(f"This conversation was written with {stored.models}; it goes on with {pair}.",
                        title="Another model pair", severity="warning", timeout=10, markup=False)
        last_stats: dict | None = None
        for m in messages:
            self._show_stored(m)
            if m.role == "assistant":
                last_stats = m.stats
        self._last_failed = messages[-1].id if messages and messages[-1].failed_empty else None
        if last_stats:
            self._show_stats(last_stats, "reopened")
        self.chat.anchor()  # the end of the conversation, once its Markdown has been laid out

    def _show_stored(self: ChatApp, m: StoredMessage) -> None:
        """Show a stored message; it becomes a turn exactly when the live session made it one."""
        if not m.failed_empty:
            self.turns.append(Message(m.role, m.content))
            self.turn_ids.append(m.id)
        if m.role == "user":
            self.chat.mount(UserMessage(m.content))
            return
        view = AssistantMessage(m.id, marking=self.marking)
        view.stats = m.stats
        self.chat.mount(view)
        view.add_pieces(m.pieces)
        view.finish(note(m.stop_reason, m.stop_message, m.stats or {}))


def note(stop_reason: str | None, message: str | None, stats: dict) -> str:
    if stop_reason == "cancelled":
        return "[stopped]"
    if stop_reason == "error":  # a model failed mid-answer (a large model's server gone): the text stays
        return f"[cut: {message}]" if message else "[failed]"
    if stop_reason == "interrupted":
        return "[interrupted: the app closed while this answer was written]"
    if stop_reason == "max_tokens":
        return "[stopped at the token limit]"
    if stop_reason == "context_full":
        return f"[{message or 'stopped: the context is full'}]"
    return ""
