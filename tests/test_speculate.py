"""Drafts verified in one large call (r2r_local/decode/speculate.py) on scripted models:
speculative decoding equals the large model alone; verify equals the plain loop where routing
cannot miss anything, and corrects what it misses; caches stay a prefix of the committed tokens
through every kind of stop."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import LARGE, Decoder, Request, policy_for_mode, routed
from r2r_local.errors import ConfigError
from r2r_local.router.baselines import LargeOnly, SmallOnly

from test_ahead import ByToken, sometimes_agrees
from test_engine_scripted import EOS, V, Scripted, count_up, count_up_by_two


def run(policy, router=None, *, small_rule=count_up, large_rule=sometimes_agrees, prompt=(1, 2), n_ctx=64,
        settings=GenerationSettings(max_tokens=30), sampling=SamplingParams(), cancel_at=None):
    small, large = Scripted(small_rule, n_ctx), Scripted(large_rule, n_ctx)
    decoder, cancel = Decoder(small, large), threading.Event()
    gen = decoder.generate(Request(list(prompt), router, policy, sampling=sampling, settings=settings, cancel=cancel))
    for event in gen:
        if cancel_at is not None and event.index == cancel_at:
            cancel.set()
    # nothing drafted is left in either cache: both hold a prefix of the committed tokens (a kept
    # draft token committed just before a stop may not have been fed back: at most one)
    proposer = large if policy.proposer == "large" else small
    assert proposer.tokens == gen.committed[: len(proposer.tokens)]
    assert len(proposer.tokens) >= len(gen.committed) - 1
    assert large.tokens == gen.committed[: len(large.tokens)]
    return gen, small, large


STOPS = {
    "long run": {},
    "eos from the large model": dict(large_rule=lambda s: EOS if len(s) > 12 else sometimes_agrees(s)),
    "eos drafted by the small model": dict(small_rule=lambda s: EOS if len(s) > 15 else count_up(s)),
    "stop string": dict(settings=GenerationSettings(max_tokens=30, stop=("jk",))),
    "token limit": dict(settings=GenerationSettings(max_tokens=7)),
    "full context": dict(n_ctx=14),
    "cancelled": dict(cancel_at=5),
}


@pytest.mark.parametrize("k", [1, 3, 8])
@pytest.mark.parametrize("name", list(STOPS))
def test_speculative_decoding_gives_the_large_models_own_output(name, k):
    alone, *_ = run(LARGE, **STOPS[name])
    spec, small, large = run(policy_for_mode(f"spec:{k}"), **STOPS[name])
    assert [e.id for e in spec.events] == [e.id for e in alone.events]
    assert (spec.text, spec.stop_reason) == (alone.text, alone.stop_reason)


def test_speculative_decoding_calls_the_large_model_once_per_draft():
    gen, small, large = run(policy_for_mode("spec:4"), large_rule=count_up, settings=GenerationSettings(max_tokens=20))
    # the large model always agrees: each call verifies 4 drafts and adds its own next token
    assert gen.stats.large_calls == 4 and gen.stats.draft_kept == 16 and gen.stats.rewinds == 0
    assert [e.source for e in gen.events[:5]] == ["small"] * 4 + ["large"]


@pytest.mark.parametrize("router", [LargeOnly, SmallOnly, ByToken])
@pytest.mark.parametrize("name", list(STOPS))
def test_verify_equals_the_plain_loop_where_the_large_model_agrees_on_everything_unescalated(name, router):
    """With llm (everything judged) and slm (nothing judged) nothing can be missed; with a
    step-only router and a large model that agrees wherever it is not asked, neither."""
    kw = dict(STOPS[name])
    if router is ByToken:
        kw["large_rule"] = count_up
    plain, *_ = run(policy_for_mode("r2r"), router(), **kw)
    verified, *_ = run(policy_for_mode("r2r+verify"), router(), **kw)
    summary = lambda g: ([(e.id, e.source) for e in g.events], g.text, g.stop_reason)  # noqa: E731
    assert summary(verified) == summary(plain)


def test_verify_corrects_a_divergence_the_router_missed():
    plain, *_ = run(policy_for_mode("r2r+audit"), ByToken(), large_rule=count_up_by_two)
    verified, *_ = run(policy_for_mode("r2r+verify"), ByToken(), large_rule=count_up_by_two)
    assert plain.stats.missed_divergences > 0  # counted in the plain loop (audit) ...
    assert verified.stats.missed_divergences > 0 and verified.stats.rewinds > 0  # ... corrected here
    assert [e.id for e in verified.events] != [e.id for e in plain.events]
    # every token the large model wrote in the verified run is its own choice after what precedes it
    ids = [1, 2] + [e.id for e in verified.events]
    judged = [i for i, e in enumerate(verified.events) if e.source == "large"]
    assert judged and all(ids[2 + i] == count_up_by_two(ids[: 2 + i]) for i in judged)


def test_sampled_speculative_decoding_follows_the_large_models_distribution():
    """Small and large disagree in distribution; over many seeds the first sampled token's
    frequencies match the large model's probabilities, not the small model's."""
    p_small = np.array([0.7, 0.2, 0.1])
    p_large = np.array([0.2, 0.3, 0.5])

    class Dist3(Scripted):
        def __init__(self, probs):
            super().__init__(count_up)
            self.logp = np.log(probs)

        def _logits(self):
            logits = np.full(V, -1e9, dtype=np.float32)
            logits[1:4] = self.logp
            return logits

        def decode(self, tokens, *, hidden=False):
            out = super().decode(tokens, hidden=hidden)
            return type(out)(self._logits(), out.hidden)

        def decode_all(self, tokens, *, outputs):
            return [type(d)(self._logits()) for d in super().decode_all(tokens, outputs=outputs)]

    counts = np.zeros(3)
    for seed in range(3000):
        decoder = Decoder(Dist3(p_small), Dist3(p_large))
        gen = decoder.generate(Request([5], policy=policy_for_mode("spec:2"), settings=GenerationSettings(max_tokens=1),
                                       sampling=SamplingParams(temperature=1.0, seed=seed))).run()
        counts[gen.events[0].id - 1] += 1
    freq = counts / counts.sum()
    assert np.abs(freq - p_large).max() < 0.035, freq


def test_a_verify_margin_above_the_large_models_lead_leaves_the_plain_loops_output():
    # the scripted large model leads with 10 nats (logit 10 against 0) wherever it disagrees
    plain, *_ = run(policy_for_mode("r2r"), ByToken(), large_rule=count_up_by_two)
    tolerant, *_ = run(routed(verify=True, margin=20.0), ByToken(), large_rule=count_up_by_two)
    strict, *_ = run(routed(verify=True, margin=5.0), ByToken(), large_rule=count_up_by_two)
    verified, *_ = run(policy_for_mode("r2r+verify"), ByToken(), large_rule=count_up_by_two)
    assert [e.id for e in tolerant.events] == [e.id for e in plain.events]
    assert tolerant.stats.missed_divergences == 0
    assert [e.id for e in strict.events] == [e.id for e in verified.events] != [e.id for e in plain.events]
    assert strict.stats.missed_divergences == verified.stats.missed_divergences > 0


@pytest.mark.parametrize("kw", [dict(margin=1.0), dict(verify=True, margin=-1.0), dict(verify=True, margin=float("nan"))])
def test_a_verify_margin_is_refused_without_verify_or_out_of_range(kw):
    with pytest.raises(ConfigError):
        routed(**kw)


def test_the_lead_is_read_from_top_k_log_probabilities_too():
    from r2r_local.backends import Dist
    from r2r_local.decode.speculate import _lead

    top = Dist(None, top_ids=np.array([7, 3, 5], dtype=np.int64),
               top_logprobs=np.array([-0.1, -2.6, -4.0], dtype=np.float32))
    assert _lead(top, 7, 3) == pytest.approx(2.5) and _lead(top, 7, 9) == float("inf")
    dense = Dist(np.array([0.0, 4.0, 1.5], dtype=np.float32))
    assert _lead(dense, 1, 2) == pytest.approx(2.5)
