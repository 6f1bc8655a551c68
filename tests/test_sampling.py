import numpy as np
import pytest

from r2r_local.config import SamplingParams
from r2r_local.errors import ConfigError
from r2r_local.sampling import sample


def test_greedy_takes_first_maximum():
    logits = np.array([0.0, 3.0, 1.0, 3.0], dtype=np.float32)
    assert sample(logits, SamplingParams(), 0.99) == 1


def test_same_u_same_token_and_u_spans_the_distribution():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=1000).astype(np.float32)
    params = SamplingParams(temperature=0.8, seed=1)
    assert sample(logits, params, 0.4) == sample(logits.copy(), params, 0.4)
    picks = {sample(logits, params, u) for u in np.linspace(0, 0.999, 200)}
    assert len(picks) > 20


def test_sampling_matches_softmax_frequencies():
    logits = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float32))
    params = SamplingParams(temperature=1.0)
    us = np.random.default_rng(3).random(20000)
    counts = np.bincount([sample(logits, params, u) for u in us], minlength=3) / len(us)
    assert np.allclose(counts, [0.5, 0.3, 0.2], atol=0.015)


def test_top_k_keeps_only_the_k_best():
    logits = np.array([5.0, 4.0, 3.0, 2.0, 1.0], dtype=np.float32)
    params = SamplingParams(temperature=5.0, top_k=2)
    assert {sample(logits, params, u) for u in np.linspace(0, 0.999, 100)} == {0, 1}


def test_top_p_keeps_the_smallest_head_reaching_p():
    probs = np.array([0.05, 0.6, 0.25, 0.1], dtype=np.float64)
    params = SamplingParams(temperature=1.0, top_p=0.8)
    picks = {sample(np.log(probs).astype(np.float32), params, u) for u in np.linspace(0, 0.999, 200)}
    assert picks == {1, 2}


def test_top_p_over_a_large_vocabulary_matches_a_full_sort():
    rng = np.random.default_rng(7)
    logits = (rng.normal(size=50000) * 0.3).astype(np.float32)  # flat: the head needs many tokens
    params = SamplingParams(temperature=1.0, top_p=0.5)
    p = np.exp(logits.astype(np.float64) - logits.max())
    order = np.lexsort((np.arange(len(p)), -p))
    mass = np.cumsum(p[order]) / p.sum()
    head = set(order[: int(np.searchsorted(mass, 0.5)) + 1].tolist())
    picks = {sample(logits, params, u) for u in np.linspace(0, 0.999, 300)}
    assert picks <= head and len(picks) > 100


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_p": 0.0}, {"top_p": 1.5},
                                    {"top_k": -1}, {"seed": -2}, {"temperature": float("nan")}])
def test_invalid_values_are_refused(kwargs):
    with pytest.raises(ConfigError):
        SamplingParams(**kwargs)
