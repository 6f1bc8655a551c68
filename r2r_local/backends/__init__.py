"""The model/slot seam between the decoding core and a model runtime (docs/design.md, "Seams").

A `Model` is a loaded model and its tokenizer; it declares what it can give (`Capabilities`)
instead of being probed. A `Slot` is one sequence's KV cache of that model: a llama.cpp context
today, a server's prefix cache tomorrow. It holds `tokens` (what the cache has evaluated, a prefix
of the sequence being decoded) and evaluates tokens appended after them in one batched call,
returning a `Dist` at each of the last `outputs` positions. The vocabulary the two models of a
pair share is applied once, in the slot (`limit_vocab`): every `Dist` is over those tokens only.

Templates, stops, sampling and statistics live above this seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

# Tokens evaluated per llama.cpp call: a longer batch is split into calls of this many, from its
# first token. The decoder reads a prompt in chunks of the same size (checking for a cancel between
# them), so the splits, and the numbers, are what one call would give.
N_BATCH = 512


@dataclass(frozen=True)
class Dist:
    """A model's next-token distribution after one position.

    logits: float32 [n_shared] raw scores over the shared vocabulary (dense models);
    hidden: float32 [n_embd], the input of the LM head (after the final norm), or None when not
    asked for or not available. Top-K-only models (a remote server) give top_ids int64 [K] and
    top_logprobs float32 [K] (descending) instead of `logits`.
    """

    logits: np.ndarray | None
    hidden: np.ndarray | None = None
    top_ids: np.ndarray | None = None
    top_logprobs: np.ndarray | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a model can give, declared by its backend.

    hidden: the final hidden state at an output position (the neural router needs it);
    dense: full logits (False: only `top_k` log-probabilities per position);
    concurrent: its slot may evaluate while the other model of the pair evaluates (threads);
    served: it runs behind a server, and its slot keeps `counters` (metering.ServedCounters) of
    its calls; may_escalate is not here: it is the router's.
    """

    hidden: bool = True
    dense: bool = True
    top_k: int = 0
    concurrent: bool = True
    served: bool = False


@dataclass(frozen=True)
class VocabEntry:
    """One vocabulary row as the tokenizer knows it: its text and whether it is padding."""

    text: bytes
    padding: bool


class Slot(Protocol):
    """One sequence's cache. Invariant: `tokens` is exactly what the cache has evaluated."""

    tokens: list[int]
    n_ctx: int

    @property
    def n_past(self) -> int: ...

    def decode(self, tokens: Sequence[int], *, hidden: bool = False) -> Dist:
        """Evaluate `tokens` at positions n_past.. in one batched call (advancing n_past) and
        return the distribution after the last one. Raises DecodeError on failure."""
        ...

    def decode_all(self, tokens: Sequence[int], *, outputs: int) -> list[Dist]:
        """Like `decode`, with a Dist after each of the last `outputs` tokens (no hidden states)."""
        ...

    def truncate(self, n_past: int) -> None:
        """Drop cached positions >= n_past."""
        ...

    def enable_hidden(self) -> None:
        """Make `decode(..., hidden=True)` possible from now on (may empty the cache)."""
        ...

    def limit_vocab(self, n_shared: int) -> None:
        """Give distributions over the first `n_shared` tokens only (the pair's shared vocabulary)."""
        ...

    def set_abort(self, check: "Callable[[], bool] | None") -> None:
        """While set, a long evaluation (a prompt chunk) stops part-way when `check()` is true and
        raises DecodeCancelled; None removes it (single steps run without it: it costs)."""
        ...


class Model(Protocol):
    """A loaded model: tokenizer, metadata, capabilities and its slot."""

    path: str
    n_vocab: int
    n_embd: int
    n_params: int
    n_ctx: int
    chat_template: str | None
    bos_token: int | None
    eos_token: int | None
    add_bos: bool
    caps: Capabilities
    slot: Slot
    cpu_threads: int  # threads it computes with on this machine's CPU (0: all on a GPU or elsewhere)

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]: ...

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token contributes to the output text (control tokens give b"")."""
        ...

    def token_text(self, token: int) -> str:
        """The token's text as written in templates (control tokens rendered), e.g. '<|im_end|>'."""
        ...

    def is_eog(self, token: int) -> bool: ...

    def vocab(self) -> list[VocabEntry]: ...

    def embedding_row(self, token: int) -> np.ndarray:
        """float32 [n_embd]: the input embedding of `token`."""
        ...

    def close(self) -> None: ...
