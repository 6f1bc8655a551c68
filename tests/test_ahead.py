"""Writing ahead (the `ahead` variant of the routed policy): the small model writes on while the
large model catches up in a worker; the committed tokens must be the plain loop's, token for
token, also with overlap on at the same time."""

from __future__ import annotations

import threading
import time

import pytest

from functools import partial

from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.router import Decision

from test_engine_scripted import EOS, Runner, Scripted, count_up, count_up_by_two

Engine = Runner  # the plain loop
AheadEngine = partial(Runner, ahead=True)
BothEngine = partial(Runner, ahead=True, overlap=True)


class SlowLarge(Scripted):
    """The large model takes a while per call, so the small model really writes ahead."""

    def decode(self, tokens, *, hidden=False):
        time.sleep(0.01)
        return super().decode(tokens, hidden=hidden)


class ByToken:
    """Escalate proposals whose id is a multiple of 3: a decision that depends on the step only."""

    name, needs_hidden, threshold, may_escalate = "by-token", False, None, True

    def decide(self, step, threshold=None):
        return Decision(step.token % 3 == 0, 0.5)


def sometimes_agrees(seq):
    return count_up(seq) if len(seq) % 4 else count_up_by_two(seq)


def run(engine_cls, prompt, settings, *, large_rule=sometimes_agrees, small_rule=count_up, n_ctx=64,
        sampling=SamplingParams(), cancel_at=None):
    small, large = Scripted(small_rule, n_ctx), SlowLarge(large_rule, n_ctx)
    engine = engine_cls(small, large, ByToken())
    cancel = threading.Event()
    gen = engine.generate(prompt, sampling, settings, cancel)
    for event in gen:
        if cancel_at is not None and event.index == cancel_at:
            cancel.set()
    assert small.tokens == engine.sequence  # nothing written ahead is left in the small cache
    assert large.tokens == engine.sequence[: large.n_past]
    summary = ([(e.id, e.source, e.caught_up) for e in gen.events], gen.text, gen.stop_reason, gen.message)
    return summary, gen, large


CASES = {
    "long run": dict(prompt=[1, 2], settings=GenerationSettings(max_tokens=40)),
    "large always agrees": dict(prompt=[1, 2], settings=GenerationSettings(max_tokens=40), large_rule=count_up),
    "large never agrees": dict(prompt=[1, 2], settings=GenerationSettings(max_tokens=40), large_rule=count_up_by_two),
    "eos from the large model": dict(prompt=[1, 2], settings=GenerationSettings(max_tokens=40),
                                     large_rule=lambda s: EOS if len(s) > 12 else count_up(s)),
    "eos proposed by the small model": dict(prompt=[1, 2], settings=GenerationSettings(max_tokens=40),
                                            small_rule=lambda s: EOS if len(s) > 15 else count_up(s)),
    "stop string": dict(prompt=[1], settings=GenerationSettings(max_tokens=40, stop=("jk",))),
    "full context": dict(prompt=[1, 2, 3], settings=GenerationSettings(max_tokens=40), n_ctx=14),
    "sampled": dict(prompt=[1, 2], settings=GenerationSettings(max_tokens=30),
                    sampling=SamplingParams(temperature=1.0, seed=3)),
    "cancelled": dict(prompt=[1, 2], settings=GenerationSettings(max_tokens=40), cancel_at=5),
}


@pytest.mark.parametrize("variant", [AheadEngine, BothEngine], ids=["ahead", "overlap+ahead"])
@pytest.mark.parametrize("name", list(CASES))
def test_writing_ahead_commits_the_plain_loops_tokens(name, variant):
    plain, _, large_plain = run(Engine, **CASES[name])
    ahead, _, large_ahead = run(variant, **CASES[name])
    assert ahead == plain
    assert large_ahead.calls == large_plain.calls  # the same catch-up batches: identical large choices


def test_tokens_really_are_written_ahead_and_dropped():
    _, gen, _ = run(AheadEngine, [1, 2], GenerationSettings(max_tokens=40))
    assert gen.stats.draft_kept > 0 and gen.stats.draft_dropped > 0 and gen.stats.rewinds > 0
    _, gen, _ = run(AheadEngine, [1, 2], GenerationSettings(max_tokens=40), large_rule=count_up)
    assert gen.stats.draft_kept > 0 and gen.stats.draft_dropped == 0


def test_a_generation_abandoned_at_a_yield_leaves_nothing_behind():
    small, large = Scripted(count_up), SlowLarge(sometimes_agrees)
    engine = AheadEngine(small, large, ByToken())
    events = iter(engine.generate([1, 2], SamplingParams(), GenerationSettings(max_tokens=40)))
    for _ in range(6):
        next(events)
    gen = engine.generate([1, 2, 9], SamplingParams(), GenerationSettings(max_tokens=5)).run()
    fresh, _, _ = run(AheadEngine, [1, 2, 9], GenerationSettings(max_tokens=5))
    assert [(e.id, e.source) for e in gen.events] == [(i, s) for i, s, _ in fresh[0]]
    assert small.tokens == engine.sequence


def test_one_backend_on_both_sides_runs_the_plain_loop():
    shared = Scripted(count_up)
    engine = AheadEngine(shared, shared, ByToken())
    gen = engine.generate([1, 2], SamplingParams(), GenerationSettings(max_tokens=6)).run()
    assert not engine.decoder.concurrent and len(gen.events) == 6 and gen.stats.draft_kept == 0
