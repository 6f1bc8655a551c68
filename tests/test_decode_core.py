"""The decoding core's pieces without any real model: the transcript, per-position draws,
top-K sampling, policies as request arguments, and the large model alone booked as its own."""

from __future__ import annotations

import numpy as np
import pytest

from r2r_local.backends import Dist
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import LARGE, SMALL, Decoder, Request, policy_for_mode, routed
from r2r_local.decode.transcript import Drafted, Draws, Transcript
from r2r_local.errors import ConfigError
from r2r_local.router.baselines import EntropyRouter, RandomRouter
from r2r_local.sampling import choose

from test_engine_scripted import EveryThird, Scripted, count_up, count_up_by_two


def test_draws_depend_only_on_seed_and_position():
    a, b = Draws(7), Draws(7)
    late = b[5]  # drawn out of order
    assert [a[i] for i in range(6)][5] == late and a[2] == b[2]
    assert Draws(8)[0] != a[0]


def test_reconcile_keeps_an_agreeing_draft_and_cuts_at_the_first_disagreement():
    t = Transcript([1, 2], seed=0)
    t.draft = [Drafted(5, None, True), Drafted(6, None, False), Drafted(7, None, False)]
    assert t.reconcile(0, 5) and [d.token for d in t.draft] == [5, 6, 7]
    assert not t.reconcile(1, 9) and [d.token for d in t.draft] == [5, 9]
    assert [d.token for d in t.take(1)] == [5] and [d.token for d in t.draft] == [9]
    assert t.end == 3 and t.n_generated == 0 and t.u(2) == Draws(0)[0]


def test_choose_samples_a_top_k_distribution_with_the_same_rule_as_dense_logits():
    ids = np.array([40, 7, 99], dtype=np.int64)
    logprobs = np.log(np.array([0.6, 0.3, 0.1], dtype=np.float32))
    dense = np.full(100, -np.inf, dtype=np.float32)
    dense[ids] = logprobs
    for u in (0.0, 0.5, 0.7, 0.95):
        for params in (SamplingParams(), SamplingParams(temperature=1.0, seed=1)):
            top = choose(Dist(None, top_ids=ids, top_logprobs=logprobs), params, u)
            assert top == choose(Dist(dense), params, u)
    assert choose(Dist(None, top_ids=ids, top_logprobs=logprobs), SamplingParams(), 0.3) == 40  # greedy: the top one
    with pytest.raises(ValueError):
        choose(Dist(None), SamplingParams(), 0.5)


def _decoder(n_ctx=64):
    small, large = Scripted(count_up, n_ctx), Scripted(count_up_by_two, n_ctx)
    return Decoder(small, large), small, large


def test_the_large_model_alone_is_booked_as_the_large_models_work():
    decoder, small, large = _decoder()
    gen = decoder.generate(Request([1, 2, 3], policy=LARGE, settings=GenerationSettings(max_tokens=5))).run()
    assert [e.id for e in gen.events] == [5, 7, 9, 11, 13] and small.calls == []
    assert {e.source for e in gen.events} == {"large"} and all(e.caught_up == 1 for e in gen.events)
    s = gen.stats
    assert (s.large_tokens, s.large_calls, s.mean_catch_up, s.time_small_s) == (5, 5, 1.0, 0.0)
    assert s.time_large_s > 0 and s.large_share == 1.0


def test_the_small_model_alone_never_touches_the_large_one():
    decoder, small, large = _decoder()
    gen = decoder.generate(Request([1, 2, 3], policy=SMALL, settings=GenerationSettings(max_tokens=4))).run()
    assert [e.id for e in gen.events] == [4, 5, 6, 7] and large.calls == [] and gen.stats.large_tokens == 0


def test_a_requests_threshold_is_its_own_and_leaves_the_router_unchanged():
    router = RandomRouter(0.0, seed=1)
    decoder, *_ = _decoder()
    settings = GenerationSettings(max_tokens=20)
    everything = decoder.generate(Request([1], router, threshold=1.0, settings=settings)).run()
    nothing = decoder.generate(Request([1], router, settings=settings)).run()
    assert everything.stats.large_share == 1.0 and nothing.stats.large_share == 0.0
    assert router.threshold == 0.0
    entropy = EntropyRouter(100.0)
    gen = decoder.generate(Request([1], entropy, threshold=0.0, settings=settings)).run()
    assert gen.stats.large_share == 1.0 and entropy.threshold == 100.0


def test_a_routed_policy_needs_a_router_and_modes_have_names():
    decoder, *_ = _decoder()
    with pytest.raises(ConfigError, match="needs a router"):
        decoder.generate(Request([1, 2]))
    assert policy_for_mode("overlap+ahead") == routed(overlap=True, ahead=True)
    assert routed(ahead=True).name == "r2r+ahead" and policy_for_mode("large") is LARGE
    with pytest.raises(ConfigError, match="unknown mode"):
        policy_for_mode("fast")


def test_requests_on_one_decoder_share_nothing_but_the_caches():
    """Two requests with different routers and policies in turn: each gets what it would get alone."""
    decoder, *_ = _decoder()
    settings = GenerationSettings(max_tokens=9)
    alone = [e.id for e in _decoder()[0].generate(Request([1, 2], EveryThird(), settings=settings)).run().events]
    decoder.generate(Request([1, 2, 5], policy=LARGE, settings=settings)).run()
    again = decoder.generate(Request([1, 2], EveryThird(), settings=settings)).run()
    assert [e.id for e in again.events] == alone
