"""The seam between the routed loop and a model runtime.

A backend owns one model and one KV cache holding a prefix of the committed sequence. It
evaluates tokens appended at `n_past` and returns the logits (and, when asked, the final hidden
state) of the last one. Templates, stops, sampling and statistics live above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

# Tokens evaluated per llama.cpp call: a longer batch is split into calls of this many, from its
# first token. The engine reads a prompt in chunks of the same size (checking for a cancel between
# them), so the splits, and the numbers, are what one call would give.
N_BATCH = 512


@dataclass(frozen=True)
class Output:
    """What one evaluation returns for the last evaluated position.

    logits: float32 [n_vocab] raw scores; hidden: float32 [n_embd], the input of the LM head
    (after the final norm), or None when not requested.
    """

    logits: np.ndarray
    hidden: np.ndarray | None


@dataclass(frozen=True)
class VocabEntry:
    """One vocabulary row as the tokenizer knows it: its text and whether it is padding."""

    text: bytes
    padding: bool


class Backend(Protocol):
    """A loaded model with one KV cache."""

    path: str
    n_vocab: int
    n_embd: int
    n_params: int
    n_ctx: int
    tokens: list[int]  # the cache's contents; n_past == len(tokens)
    n_past: int
    chat_template: str | None
    bos_token: int | None
    add_bos: bool

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]: ...

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token contributes to the output text (control tokens give b"")."""
        ...

    def token_text(self, token: int) -> str:
        """The token's text as written in templates (control tokens rendered), e.g. '<|im_end|>'."""
        ...

    def is_eog(self, token: int) -> bool: ...

    def vocab(self) -> list[VocabEntry]: ...

    def decode(self, tokens: Sequence[int], *, hidden: bool = False) -> Output:
        """Evaluate `tokens` at positions n_past.. in one batched call; advance n_past.

        Only the last position produces output; raises DecodeError on failure.
        """
        ...

    def enable_hidden(self) -> None:
        """Make `decode(..., hidden=True)` possible from now on (may empty the cache)."""
        ...

    def truncate(self, n_past: int) -> None:
        """Drop cached positions >= n_past."""
        ...

    def embedding_row(self, token: int) -> np.ndarray:
        """float32 [n_embd]: the input embedding of `token`."""
        ...

    def close(self) -> None: ...
