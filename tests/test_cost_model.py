"""The cost model behind the projections (r2r_local/cost_model.py): its closed forms and its
simulated verify mode agree where they must."""

from __future__ import annotations

import pytest

from r2r_local.cost_model import Costs, line, tokens_per_s

COSTS = Costs(t_small=0.002, t_router=0.0001, a=0.013, b=0.0012, a_all=0.013, b_all=0.0012)


def test_a_line_through_two_measured_calls():
    a, b = line(1, 0.0144, 9, 0.0238)
    assert b == pytest.approx(0.0094 / 8) and a + b == pytest.approx(0.0144)


def test_spec_with_every_draft_kept_commits_k_plus_one_per_round():
    assert tokens_per_s(COSTS, "spec:4", agree=1.0) == pytest.approx(5 / (4 * 0.002 + 0.013 + 5 * 0.0012))


def test_spec_with_no_draft_kept_is_one_token_per_call():
    assert tokens_per_s(COSTS, "spec:4", agree=0.0) == pytest.approx(1 / (4 * 0.002 + 0.013 + 5 * 0.0012))


def test_verify_that_never_rejects_costs_what_plain_routing_costs():
    plain = tokens_per_s(COSTS, "r2r", share=0.124)
    assert tokens_per_s(COSTS, "r2r+verify", share=0.124, agree=1.0) == pytest.approx(plain, rel=0.01)


def test_verify_with_every_token_escalated_is_large_with_small_steps():
    expected = 1 / (0.002 + 0.0001 + COSTS.large_all(1))
    assert tokens_per_s(COSTS, "r2r+verify", share=1.0, agree=0.5) == pytest.approx(expected)


def test_rejections_make_verify_slower():
    rates = [tokens_per_s(COSTS, "r2r+verify", share=0.124, agree=a) for a in (1.0, 0.97, 0.89)]
    assert rates[0] > rates[1] > rates[2]


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        tokens_per_s(COSTS, "ahead")
