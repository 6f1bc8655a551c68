"""Synthetic agreement (`spec:K@A`, `r2r+verify@A`), the benchmark knob for shape-true random
models: the large model keeps each checked small-model token with probability A, whatever the
tokens, while every call is the real one. Scripted models (tests/test_engine_scripted.py)."""

from __future__ import annotations

import pytest

from r2r_local.config import GenerationSettings
from r2r_local.decode import policy_for_mode
from r2r_local.errors import ConfigError
from r2r_local.router.baselines import RandomRouter

from test_engine_scripted import count_up, count_up_by_two
from test_speculate import run

LONG = GenerationSettings(max_tokens=40)


def acceptance(stats) -> float:
    """Kept drafted tokens over checked ones (a rejection checks one token and ends the draft)."""
    return stats.draft_kept / (stats.draft_kept + stats.rewinds)


def test_full_agreement_keeps_every_draft_even_where_the_models_disagree():
    # count_up_by_two never agrees with count_up: without @A spec:4 would reject every draft
    gen, *_ = run(policy_for_mode("spec:4@1"), large_rule=count_up_by_two, settings=GenerationSettings(max_tokens=20))
    assert gen.stats.rewinds == 0 and gen.stats.draft_kept == 16 and gen.stats.large_calls == 4
    assert [e.source for e in gen.events[:5]] == ["small"] * 4 + ["large"]


def test_no_agreement_rejects_the_first_draft_of_every_call():
    gen, *_ = run(policy_for_mode("spec:4@0"), large_rule=count_up, settings=GenerationSettings(max_tokens=20))
    # the large model's own token is written even where it equals the draft (a synthetic "no")
    assert gen.stats.draft_kept == 0 and gen.stats.rewinds == gen.stats.large_calls == 20
    assert {e.source for e in gen.events} == {"large"}


@pytest.mark.parametrize("a", [0.3, 0.7, 0.9])
def test_the_acceptance_rate_is_the_agreement_asked_for(a):
    kept = checked = 0
    for seed_prompt in range(40):  # different prompts give different positions, so other coins
        gen, *_ = run(policy_for_mode(f"spec:6@{a}"), prompt=(1, 2 + seed_prompt % 5, 3 + seed_prompt),
                      n_ctx=256, settings=GenerationSettings(max_tokens=120))
        kept, checked = kept + gen.stats.draft_kept, checked + gen.stats.draft_kept + gen.stats.rewinds
    assert checked > 1000
    assert abs(kept / checked - a) < 0.04


def test_verify_with_agreement_rewinds_only_tokens_the_router_let_through():
    plain, *_ = run(policy_for_mode("r2r"), RandomRouter(0.2, seed=5), settings=LONG)
    full, *_ = run(policy_for_mode("r2r+verify@1"), RandomRouter(0.2, seed=5), settings=LONG)
    none, *_ = run(policy_for_mode("r2r+verify@0"), RandomRouter(0.2, seed=5), settings=LONG)
    # full agreement: nothing the router let through is corrected: the plain loop's tokens and
    # calls (the escalated positions are judged for real, as in the plain loop)
    assert [e.id for e in full.events] == [e.id for e in plain.events]
    assert full.stats.missed_divergences == 0
    assert full.stats.large_calls == plain.stats.large_calls
    # no agreement: a call that checked an unescalated token corrects its first one
    assert none.stats.missed_divergences > 0 and none.stats.large_calls > plain.stats.large_calls
    assert none.stats.missed_divergences == sum(e.caught_up > 1 for e in none.events if e.source == "large")


@pytest.mark.parametrize("mode", ["r2r@0.5", "large@0.5", "spec:4@1.5", "spec:4@x", "r2r+verify@-0.1", "r2r+audit@1"])
def test_agreement_is_refused_where_it_means_nothing(mode):
    with pytest.raises(ConfigError) as e:
        policy_for_mode(mode)
    assert "@" in str(e.value) and "\n" not in str(e.value)


def test_the_mode_name_keeps_the_agreement():
    assert policy_for_mode("spec:4@0.89").name == "spec:4@0.89"
    assert policy_for_mode("r2r+verify@0.89").agree == 0.89
    assert policy_for_mode("spec:4").agree is None
