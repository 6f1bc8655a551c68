"""Token sampling: one pure function used for both models.

The engine draws one uniform number `u` per position and hands the same `u` to whichever model
chooses the token there. Because the choice is a deterministic function of (logits, params, u),
a run is reproducible from its seed, and when both models produce the same distribution they
choose the same token whatever the router did (the routed-equals-single-model invariant holds
for sampling, not only for greedy decoding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from r2r_local.config import SamplingParams

if TYPE_CHECKING:
    from r2r_local.backends import Dist

_TOP_P_FIRST_GUESS = 64


def sample(logits: np.ndarray, params: SamplingParams, u: float) -> int:
    """Choose a token id.

    logits: float32 [n_vocab], raw scores; u: uniform in [0, 1).
    Greedy (temperature 0) returns the first index of the maximum, as llama.cpp does.
    """
    if params.greedy:
        return int(np.argmax(logits))
    ids, probs = _candidates(logits, params)
    cdf = np.cumsum(probs)
    pick = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    return int(ids[min(pick, len(ids) - 1)])


def _candidates(logits: np.ndarray, params: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and their unnormalised probabilities after temperature, top-k and top-p.

    Returned ids are sorted by descending probability whenever a filter is active, so that
    the result does not depend on how ties in the vocabulary order fall.
    """
    scaled = logits.astype(np.float64) / params.temperature
    n = scaled.shape[0]
    if params.top_k and params.top_k < n:
        ids = np.argpartition(-scaled, params.top_k - 1)[: params.top_k]
    else:
        ids = np.arange(n)
    weights = np.exp(scaled[ids] - scaled[ids].max())
    if params.top_p >= 1.0:
        if len(ids) < n:
            order = np.lexsort((ids, -weights))
            return ids[order], weights[order]
        return ids, weights
    return _nucleus(ids, weights, params.top_p)


def _nucleus(ids: np.ndarray, weights: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest prefix (by descending weight) whose mass reaches top_p.

    Sorting 150k logits per token costs ~10 ms, so the head is found by partitioning with a
    growing k; the result is the same as a full sort.
    """
    total = weights.sum()
    k = min(_TOP_P_FIRST_GUESS, len(ids))
    while True:
        head = np.argpartition(-weights, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
        head = head[np.lexsort((ids[head], -weights[head]))]
        mass = np.cumsum(weights[head])
        if mass[-1] >= top_p * total or k == len(ids):
            cut = int(np.searchsorted(mass, top_p * total, side="left")) + 1
            head = head[: min(cut, len(head))]
            return ids[head], weights[head]
        k = min(k * 4, len(ids))


def choose(dist: "Dist", params: SamplingParams, u: float) -> int:
    """Choose a token from a model's distribution: dense logits, or a top-K-only distribution
    (a remote server's log-probabilities; sampling is then truncated to those K tokens)."""
    if dist.logits is not None:
        return sample(dist.logits, params, u)
    ids, logprobs = dist.top_ids, dist.top_logprobs
    if ids is None or logprobs is None or len(ids) == 0:
        raise ValueError("a distribution needs logits or top-K log-probabilities")
    order = np.argsort(ids, kind="stable")  # vocabulary order, as dense logits are: same u, same token
    return int(ids[order][sample(np.asarray(logprobs, dtype=np.float32)[order], params, u)])


def probabilities(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """float64 [n]: the distribution `sample` draws from (temperature, top-k, top-p applied);
    greedy is one-hot on the argmax."""
    probs = np.zeros(logits.shape[0], dtype=np.float64)
    if params.greedy:
        probs[int(np.argmax(logits))] = 1.0
        return probs
    ids, weights = _candidates(logits, params)
    probs[ids] = weights / weights.sum()
    return probs


def accept_draft(token: int, p_small: np.ndarray, p_large: np.ndarray, u_accept: float, u: float) -> int:
    """Speculative sampling's rule: keep the small model's `token` with probability
    min(1, p_large/p_small), else draw from max(0, p_large - p_small) normalised (with `u`; both
    numbers independent of the one that drew `token`).
    The result is distributed as p_large whatever p_small is. Returns the token chosen."""
    q, p = p_large[token], p_small[token]
    if p > 0 and u_accept < min(1.0, q / p):
        return token
    residual = np.maximum(p_large - p_small, 0.0)
    total = residual.sum()
    if total <= 0:  # the two distributions are equal: the draft would always have been kept
        return token
    cdf = np.cumsum(residual)
    return int(min(np.searchsorted(cdf, u * total, side="right"), len(cdf) - 1))
