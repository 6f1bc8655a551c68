"""One request's tokens: the committed sequence and the draft suffix (docs/design.md, "The loop").

Invariant: committed tokens are never taken back; drafted tokens always can be. Each model's
cache holds a prefix of committed + draft. The uniform number that chooses the token at a
generated position depends only on (seed, position), so a position drafted, dropped and chosen
again draws the same number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Drafted:
    """A token the small model proposed past the committed sequence, waiting for a judgment.

    p: the router's probability; escalated: the large model must judge this position (its own
    choice replaces the token when they differ); t_small/t_router: seconds spent on it."""

    token: int
    p: float | None
    escalated: bool
    t_small: float = 0.0
    t_router: float = 0.0


class Draws:
    """One uniform number per generated position, drawn from the seed in position order."""

    def __init__(self, seed: int | list[int] | None) -> None:
        self._rng, self._values = np.random.default_rng(seed), []

    def __getitem__(self, i: int) -> float:
        try:
            return self._values[i]
        except IndexError:  # drawn in blocks, in position order: the same numbers as one by one
            values = self._values
            while len(values) <= i:
                values.extend(float(x) for x in self._rng.random(64))
            return values[i]


class Transcript:
    """committed: prompt + generated tokens (list[int]); draft: list[Drafted] after them."""

    def __init__(self, prompt: list[int], seed: int | None) -> None:
        self.committed = prompt
        self.n_prompt = len(prompt)
        self.draft: list[Drafted] = []
        self.draws = Draws(seed)
        # speculative sampling's own numbers, independent of the one that drew the draft token
        self.accept_draws = Draws(None if seed is None else [seed, 1])
        self.residual_draws = Draws(None if seed is None else [seed, 2])
        self.agree_draws = Draws([0 if seed is None else seed, 3])  # synthetic agreement (benchmarks)

    @property
    def n_generated(self) -> int:
        """Generated tokens committed so far (the index of the next committed position)."""
        return len(self.committed) - self.n_prompt

    @property
    def end(self) -> int:
        """Length of committed + draft: where the next proposal goes."""
        return len(self.committed) + len(self.draft)

    def u(self, position: int) -> float:
        """The uniform number of the absolute sequence position `position`."""
        return self.draws[position - self.n_prompt]

    def u_accept(self, position: int) -> tuple[float, float]:
        """Speculative sampling's two numbers at `position` (accept, and draw from the residual),
        independent of `u`, which drew the draft token there."""
        i = position - self.n_prompt
        return self.accept_draws[i], self.residual_draws[i]

    def reconcile(self, index: int, token: int) -> bool:
        """The large model chose `token` at draft[index]. Keep the draft when it agrees there
        (True); otherwise write its token there and drop everything after (False)."""
        entry = self.draft[index]
        if entry.token == token:
            return True
        entry.token = token
        del self.draft[index + 1:]
        return False

    def take(self, n: int) -> list[Drafted]:
        """Remove and return the first n drafted tokens (to be committed in order)."""
        out, self.draft = self.draft[:n], self.draft[n:]
        return out
