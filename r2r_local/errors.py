"""The error hierarchy: every error a user can cause carries one line that says what is wrong.

The CLI prints `str(error)` on one line and exits non-zero; the TUI shows `title` and the message.
"""

from __future__ import annotations


class R2RError(Exception):
    """Base of all errors meant for the user: the message is one line, no traceback needed."""

    title = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(R2RError):
    """A setting, flag or spec has an invalid value."""

    title = "Invalid setting"


class ModelLoadError(R2RError):
    """A model file is missing, unreadable, not a GGUF, or llama.cpp refused it."""

    title = "Model failed to load"


class VocabMismatchError(R2RError):
    """The small and large models do not share one tokenizer."""

    title = "Models do not pair"


class RouterError(R2RError):
    """A router file is missing, corrupt or does not fit the small model."""

    title = "Router failed to load"


class PromptTooLongError(R2RError):
    """The prompt does not fit into the context window."""

    title = "Prompt too long"


class DecodeError(R2RError):
    """llama.cpp failed to evaluate a batch."""

    title = "Decoding failed"


class DecodeCancelled(DecodeError):
    """An evaluation stopped part-way because its abort check said so (a cancel); the slot holds
    what it held before the call."""
