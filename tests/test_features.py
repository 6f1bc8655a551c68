"""Router features: topk_logits must equal a full sort's head exactly, whatever the logits hold."""

from __future__ import annotations

import numpy as np
import pytest

from r2r_local.router.features import TOPK, entropy, topk_logits


def full_sort_head(x: np.ndarray, k: int = TOPK) -> np.ndarray:
    return np.sort(x)[::-1][:k].astype(np.float32)


@pytest.mark.parametrize("n", [7, 100, 101, 6399, 6400, 49152, 151936])
def test_topk_equals_the_head_of_a_full_sort(n):
    rng = np.random.default_rng(n)
    for scale in (0.01, 3.0, 30.0):
        x = (rng.standard_normal(n) * scale).astype(np.float32)
        got = topk_logits(x)
        assert got.dtype == np.float32 and got.shape == (min(n, TOPK),)
        np.testing.assert_array_equal(got, full_sort_head(x))


def test_topk_with_ties_and_masked_logits():
    rng = np.random.default_rng(5)
    ties = rng.integers(0, 4, size=151936).astype(np.float32)  # ~38k copies of the top value
    np.testing.assert_array_equal(topk_logits(ties), np.full(TOPK, 3.0, np.float32))
    masked = rng.standard_normal(151936).astype(np.float32)
    masked[rng.random(151936) < 0.9] = -np.inf  # most of the vocabulary masked out
    np.testing.assert_array_equal(topk_logits(masked), full_sort_head(masked))
    constant = np.full(151936, 2.5, np.float32)
    np.testing.assert_array_equal(topk_logits(constant), np.full(TOPK, 2.5, np.float32))


def test_topk_when_the_sampled_guess_is_too_high():
    # Only every 16th logit is large: the guess from that sample keeps too few, so the full
    # partition must decide, and the answer is still exact.
    x = np.zeros(151936, np.float32)
    x[::16] = np.linspace(10, 20, x[::16].shape[0], dtype=np.float32)
    np.testing.assert_array_equal(topk_logits(x), full_sort_head(x))
    # The k largest all off the sampled positions: the guess is low, still exact.
    y = np.random.default_rng(9).standard_normal(151936).astype(np.float32)
    y[1:1600:16] = 50 + np.arange(100, dtype=np.float32)
    np.testing.assert_array_equal(topk_logits(y), full_sort_head(y))


def test_topk_other_k():
    x = np.random.default_rng(2).standard_normal(151936).astype(np.float32)
    for k in (1, 20, 1000):
        np.testing.assert_array_equal(topk_logits(x, k), full_sort_head(x, k))
    assert topk_logits(x, 0).shape == (0,)


def test_entropy_of_uniform_and_peaked_logits():
    assert entropy(np.zeros(1000, np.float32)) == pytest.approx(np.log(1000))
    assert entropy(np.array([0.0, -1e4, -1e4], np.float32)) == pytest.approx(0.0, abs=1e-9)
