"""Routers: given one proposed token of the small model, escalate it to the large model or not.

A router is one method, `decide(step) -> Decision`. Features are computed lazily from the
`Step` so that a baseline that only needs the logits never pays for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np


@dataclass(frozen=True)
class Step:
    """What the small model produced at one position.

    logits: float32 [n_shared] raw scores over the vocabulary both models share;
    hidden: float32 [n_embd] final hidden state (input of the head), or None when the router
    did not ask for it; token: the token the small model proposes; embedding: token id ->
    float32 [n_embd] row of the small model's input embedding table.
    """

    logits: np.ndarray
    hidden: np.ndarray | None
    token: int
    embedding: Callable[[int], np.ndarray]


@dataclass(frozen=True)
class Decision:
    """escalate: send this position to the large model; p: the router's probability, if it has one."""

    escalate: bool
    p: float | None = None


class Router(Protocol):
    """name: how it is shown; needs_hidden: it reads `Step.hidden`; threshold: its own default
    threshold (None: it has none); may_escalate: False for a router that never escalates (the
    large model then never reads the prompt)."""

    name: str
    needs_hidden: bool
    threshold: float | None
    may_escalate: bool

    def decide(self, step: Step, threshold: float | None = None) -> Decision:
        """Decide on one proposal; `threshold` (a request's) replaces the router's own when given."""
        ...


from r2r_local.router.baselines import parse_router  # noqa: E402  (re-export)

__all__ = ["Decision", "Router", "Step", "parse_router"]
