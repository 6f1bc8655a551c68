"""Typed messages the workers post to the app (Textual delivers them on the UI thread)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from r2r_tui.loader import Loaded
from r2r_tui.streaming import Answer, Progress


@dataclass
class LoadStep(Message):
    """The loader reached a new stage (one line of text)."""

    text: str


@dataclass
class ModelsLoaded(Message):
    loaded: Loaded


@dataclass
class LoadFailed(Message):
    """Loading failed: title and one-line message of the R2RError (file and reason)."""

    title: str
    message: str


@dataclass
class AnswerProgress(Message):
    """New pieces of the answer stored under `message_id`, with live figures."""

    message_id: int
    progress: Progress


@dataclass
class AnswerDone(Message):
    message_id: int
    answer: Answer


@dataclass
class AnswerFailed(Message):
    """prompt_too_long: the error was PromptTooLongError (the conversation does not fit the context)."""

    message_id: int
    title: str
    message: str
    prompt_too_long: bool = False
