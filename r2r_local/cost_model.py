"""A cost model of the decoding modes: tokens/s from per-call costs and agreement rates.

Used to project measured per-call costs to rates a pair has elsewhere (the R2R paper's 89%
identical tokens and 12.4% routed tokens, say) and to check that projection against modes
measured in the same run (scripts/spec_table.py). Every figure it gives is a projection and is
labelled as such where it is reported.

The model, per mode (t_s: one small step, t_r: one router decision, L(k): one large call that
evaluates k tokens, La(k): the same with an output at each of them, t_t: the loop's own cost per
committed token — sampling, text, bookkeeping — added to every mode):

- small: 1 / t_s.  large: 1 / L(1).
- r2r at share s (each token escalated independently with probability s): one small step and
  one router decision per token, and a call of the tokens since the last one:
  1 / (t_s + t_r + s * L(1/s)) with L linear (L(k) = a + b k), which is exact on average.
- spec:K at acceptance A (each drafted token kept independently with probability A until the
  first rejection): K small calls (K - 1 drafting steps and the refill) and one La(K + 1) per
  round, (1 - A^(K+1)) / (1 - A) tokens per round.
- r2r+verify at share s and agreement A on the tokens the router let through: drafts run to the
  next escalated token (n ~ Geometric(s)); one La(n) checks them; the first unescalated token the
  large model rejects ends the round there (it is replaced, the rest dropped). Simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Costs:
    """Seconds per call. A large call of k tokens costs a + b k (last output only), or
    a_all + b_all k with an output at every one of them (what spec:K and verify ask for);
    t_token: the loop's own seconds per committed token."""

    t_small: float
    t_router: float
    a: float
    b: float
    a_all: float
    b_all: float
    t_token: float = 0.0

    def large(self, k: float) -> float:
        return self.a + self.b * k

    def large_all(self, k: float) -> float:
        return self.a_all + self.b_all * k


def line(k1: float, t1: float, k2: float, t2: float) -> tuple[float, float]:
    """(a, b) of the line through (k1, t1) and (k2, t2): the cost of a call of k tokens."""
    b = (t2 - t1) / (k2 - k1)
    return t1 - b * k1, b


def tokens_per_s(costs: Costs, mode: str, *, share: float = 0.0, agree: float = 1.0,
                 rounds: int = 200_000, seed: int = 0) -> float:
    """The model's tokens/s of `mode` ("small", "large", "r2r", "r2r+verify" or "spec:K")."""
    return 1.0 / (_seconds_per_token(costs, mode, share, agree, rounds, seed) + costs.t_token)


def _seconds_per_token(costs: Costs, mode: str, share: float, agree: float, rounds: int, seed: int) -> float:
    if mode == "small":
        return costs.t_small
    if mode == "large":
        return costs.large(1)
    if mode == "r2r":
        return costs.t_small + costs.t_router + share * costs.large(1.0 / share)
    if mode.startswith("spec:"):
        k = int(mode.split(":")[1])
        per_round = k * costs.t_small + costs.large_all(k + 1)
        kept = k + 1 if agree >= 1.0 else (1.0 - agree ** (k + 1)) / (1.0 - agree)
        return per_round / kept
    if mode == "r2r+verify":
        return _verify(costs, share, agree, rounds, seed)
    raise ValueError(f"no cost model for mode {mode!r}")


def _verify(costs: Costs, share: float, agree: float, rounds: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    n = rng.geometric(share, rounds)  # proposals up to and including the escalated one
    first_no = rng.geometric(1.0 - agree, rounds) if agree < 1.0 else np.full(rounds, np.iinfo(np.int64).max)
    committed = np.where(first_no <= n - 1, first_no, n)  # kept ones and the correction, or all n
    seconds = n * (costs.t_small + costs.t_router) + costs.a_all + costs.b_all * n
    return float(seconds.sum() / committed.sum())
