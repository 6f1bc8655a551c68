"""Typed messages the workers post to the app (Textual delivers them on the UI thread)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from r2r_tui.loader import Loaded
from r2r_tui.streaming import Answer, Progress

if TYPE_CHECKING:
    from r2r_local.pair_fit import Machine, PairFit


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


@dataclass
class Surveyed(Message):
    """The first-run survey: this machine and the known pairs (r2r_local.pair_fit), or why it failed."""

    machine: "Machine | None"
    pairs: "list[PairFit]"
    error: str | None = None


@dataclass
class PullLine(Message):
    """One line of output of the running `r2r models pull`."""

    text: str


@dataclass
class PullDone(Message):
    """The pull ended: its exit code (negative: a signal), whether the user stopped it, its last line."""

    name: str
    returncode: int
    stopped: bool
    last_line: str
