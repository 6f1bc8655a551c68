"""The decoding loop against scripted models: cache bookkeeping, stops and limits.

The real-model invariants are in test_routed_smollm2.py; here each model is a tiny deterministic
function of the sequence so every position's expected choice is known. Runs without
llama-cpp-python.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from r2r_local.backends import Capabilities, Dist
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import Decoder, Request, routed
from r2r_local.errors import PromptTooLongError
from r2r_local.router import Decision
from r2r_local.router.baselines import LargeOnly, SmallOnly

V, EOS = 16, 0


class Scripted:
    """Next token = rule(sequence); pieces are letters; records every decode call. A model that
    is its own slot (one sequence)."""

    caps = Capabilities()
    cpu_threads = 1

    def __init__(self, rule, n_ctx=64):
        self.rule, self.n_ctx = rule, n_ctx
        self.n_vocab, self.n_embd, self.n_params = V, 4, 1000
        self.tokens: list[int] = []
        self.calls: list[int] = []

    @property
    def slot(self):
        return self

    @property
    def n_past(self):
        return len(self.tokens)

    def decode(self, tokens, *, hidden=False):
        self.tokens.extend(tokens)
        self.calls.append(len(tokens))
        logits = np.zeros(V, dtype=np.float32)
        logits[self.rule(self.tokens)] = 10.0
        return Dist(logits, np.ones(4, dtype=np.float32) if hidden else None)

    def decode_all(self, tokens, *, outputs):
        """Outputs after each of the last `outputs` tokens, in one recorded call."""
        self.calls.append(len(tokens))
        start, dists = len(self.tokens), []
        for i, token in enumerate(tokens):
            self.tokens.append(token)
            if i >= len(tokens) - outputs:
                logits = np.zeros(V, dtype=np.float32)
                logits[self.rule(self.tokens)] = 10.0
                dists.append(Dist(logits))
        assert len(self.tokens) == start + len(tokens)
        return dists

    def enable_hidden(self):
        pass

    def limit_vocab(self, n_shared):
        pass

    def set_abort(self, check):
        pass

    def truncate(self, n_past):
        assert 0 <= n_past <= self.n_past
        del self.tokens[n_past:]

    def is_eog(self, token):
        return token == EOS

    def token_bytes(self, token):
        return bytes([ord("a") + token])

    def embedding_row(self, token):
        return np.zeros(4, dtype=np.float32)


class EveryThird:
    name, needs_hidden, threshold, may_escalate = "every-third", False, None, True

    def __init__(self):
        self.n = 0

    def decide(self, step, threshold=None):
        self.n += 1
        return Decision(self.n % 3 == 0, 0.5)


def count_up(seq):
    return seq[-1] % (V - 1) + 1  # never EOS


def count_up_by_two(seq):
    return (seq[-1] + 1) % (V - 1) + 1


class Runner:
    """A Decoder with one router and one routed policy, as the tests drive it; `sequence` is the
    last generation's committed tokens."""

    def __init__(self, small, large, router, *, overlap=False, ahead=False):
        self.decoder, self.router = Decoder(small, large), router
        self.policy = routed(overlap=overlap, ahead=ahead)
        self.small, self.large, self.sequence = small, large, []

    def generate(self, prompt, sampling=SamplingParams(), settings=GenerationSettings(), cancel=None):
        gen = self.decoder.generate(Request(prompt, self.router, self.policy, sampling=sampling, settings=settings,
                                            cancel=cancel))
        self.sequence = gen.committed
        return gen


def make(router, small_rule=count_up, large_rule=count_up_by_two, n_ctx=64, overlap=False):
    small, large = Scripted(small_rule, n_ctx), Scripted(large_rule, n_ctx)
    return Runner(small, large, router, overlap=overlap), small, large


def test_escalated_positions_get_the_large_models_choice_after_one_catch_up():
    engine, small, large = make(EveryThird())
    gen = engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=6)).run()
    sources = [e.source for e in gen.events]
    assert sources == ["small", "small", "large"] * 2
    ids = [e.id for e in gen.events]
    assert ids[:3] == [4, 5, 7]  # 3->4 small, 4->5 small, 5->7 large
    # the large model read the prompt but its last token at prefill; each call then catches up 3
    assert [e.caught_up for e in gen.events] == [0, 0, 3, 0, 0, 3]
    assert large.calls == [2, 3, 3] and gen.stats.large_calls == 2 and gen.stats.mean_catch_up == 3
    assert small.n_past == len(engine.sequence) == 3 + 5  # the last token is never fed
    assert large.n_past <= len(engine.sequence)


def test_small_only_never_touches_the_large_model():
    engine, _, large = make(SmallOnly())
    engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=5)).run()
    assert large.calls == [] and large.tokens == []


def test_eos_stops_without_emitting_it():
    engine, *_ = make(SmallOnly(), small_rule=lambda s: EOS if len(s) >= 5 else 3)
    gen = engine.generate([1, 2], SamplingParams(), GenerationSettings(max_tokens=50)).run()
    assert [e.id for e in gen.events] == [3, 3, 3] and gen.stop_reason == "eos"


def test_stop_string_cuts_the_text():
    engine, *_ = make(SmallOnly())
    gen = engine.generate([1], SamplingParams(), GenerationSettings(max_tokens=50, stop=("def",))).run()
    assert gen.stop_reason == "stop" and gen.text == "c"  # tokens 2, 3, 4, 5 = "cdef"


def test_full_context_stops_with_a_message_not_a_crash():
    engine, small, _ = make(LargeOnly(), n_ctx=10)
    gen = engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=50)).run()
    assert gen.stop_reason == "context_full" and "context of 10 tokens is full" in gen.message
    assert len(gen.events) == 8 and small.n_past == 10  # the 8th token fills no cache slot


def test_prompt_longer_than_context_is_refused():
    engine, *_ = make(SmallOnly(), n_ctx=8)
    with pytest.raises(PromptTooLongError, match="8 tokens but the context holds 8"):
        engine.generate(list(range(1, 9))).run()


def test_cancel_stops_at_once_and_keeps_what_was_written():
    engine, *_ = make(SmallOnly())
    cancel = threading.Event()
    gen = engine.generate([1], SamplingParams(), GenerationSettings(max_tokens=50), cancel)
    for event in gen:
        if event.index == 2:
            cancel.set()
    assert gen.stop_reason == "cancelled" and len(gen.events) == 3 and gen.text == "cde"


def test_a_new_prompt_reuses_the_common_prefix():
    engine, small, large = make(LargeOnly())
    engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=4)).run()
    small.calls.clear()
    gen = engine.generate([1, 2, 3, 9, 9], SamplingParams(), GenerationSettings(max_tokens=1)).run()
    assert gen.stats.cached_prompt_tokens == 3 and small.calls == [2]


def test_a_backend_shared_by_two_engines_is_never_trusted_past_its_real_contents():
    engine, small, large = make(LargeOnly())
    engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=3)).run()
    other = Runner(large, large, SmallOnly())  # "large alone" on the same backend
    other.generate([1, 2, 9, 9], SamplingParams(), GenerationSettings(max_tokens=3)).run()
    assert large.tokens[:4] == [1, 2, 9, 9]
    large.calls.clear()
    gen = engine.generate([1, 2, 3, 4, 5], SamplingParams(), GenerationSettings(max_tokens=1)).run()
    assert large.calls == [2, 1]  # re-read from the real common prefix [1, 2] (prefill 3, 4), not from 5
    assert gen.events[0].id == count_up_by_two(large.tokens)


# --- overlap: the small model's step on its proposal runs while the router decides -------------

SCENARIOS = {  # name: (make kwargs, prompt, settings)
    "disagreeing large": (dict(router=EveryThird()), [1, 2, 3], GenerationSettings(max_tokens=9)),
    "agreeing large": (dict(router=EveryThird(), large_rule=count_up), [1, 2, 3], GenerationSettings(max_tokens=9)),
    "large only": (dict(router=LargeOnly()), [1], GenerationSettings(max_tokens=7)),
    "eos chosen by the large model": (dict(router=EveryThird(), large_rule=lambda s: EOS), [1, 2], GenerationSettings(max_tokens=9)),
    "eos proposed by the small model": (dict(router=SmallOnly(), small_rule=lambda s: EOS if len(s) >= 5 else 3), [1, 2],
                                        GenerationSettings(max_tokens=50)),
    "stop string": (dict(router=EveryThird()), [1], GenerationSettings(max_tokens=50, stop=("ef",))),
    "full context": (dict(router=EveryThird(), n_ctx=10), [1, 2, 3], GenerationSettings(max_tokens=50)),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_overlap_changes_nothing_but_the_timing(name):
    kwargs, prompt, settings = SCENARIOS[name]
    runs = {}
    for overlap in (False, True):
        kw = dict(kwargs, router=type(kwargs["router"])())  # a fresh router: EveryThird counts calls
        engine, small, large = make(**kw, overlap=overlap)
        gen = engine.generate(prompt, SamplingParams(), settings).run()
        assert small.tokens == engine.sequence  # no speculative position left behind
        assert large.tokens == engine.sequence[: large.n_past]
        runs[overlap] = ([(e.id, e.source, e.caught_up) for e in gen.events], gen.text, gen.stop_reason, large.calls)
    assert runs[True] == runs[False]


def test_overlap_keeps_the_step_when_the_large_model_agrees_and_redoes_it_when_not():
    engine, small, _ = make(EveryThird(), large_rule=count_up, overlap=True)
    gen = engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=6)).run()
    assert small.calls == [3, 1, 1, 1, 1, 1]  # prompt, then one step per kept token (the last is never fed)
    assert gen.stats.redone_steps == 0
    engine, small, _ = make(EveryThird(), overlap=True)
    gen = engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=6)).run()
    # the 3rd token's speculative step was on the small model's 6, the large model chose 7: redone
    assert small.calls == [3, 1, 1, 1, 1, 1, 1] and gen.stats.redone_steps == 1


def test_overlap_is_off_when_one_backend_plays_both_parts():
    shared = Scripted(count_up)
    assert not Decoder(shared, shared).concurrent


class Slow(Scripted):
    """A Scripted backend whose steps take time and which records any two steps at once."""

    def __init__(self, rule):
        super().__init__(rule)
        self.busy, self.clashes = threading.Lock(), 0

    def decode(self, tokens, *, hidden=False):
        if not self.busy.acquire(blocking=False):
            self.clashes += 1
            self.busy.acquire()
        try:
            import time

            time.sleep(0.02)
            return super().decode(tokens, hidden=hidden)
        finally:
            self.busy.release()

    def truncate(self, n_past):
        if self.busy.locked():
            self.clashes += 1
        super().truncate(n_past)


def test_a_generation_abandoned_at_a_yield_never_races_the_next_one():
    small, large = Slow(count_up), Scripted(count_up_by_two)
    engine = Runner(small, large, EveryThird(), overlap=True)
    events = iter(engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=20)))
    next(events)
    next(events)  # a speculative step on the third proposal is now running in the worker
    gen = engine.generate([1, 2, 3, 9], SamplingParams(), GenerationSettings(max_tokens=4)).run()
    assert small.clashes == 0
    assert len(gen.events) == 4 and small.tokens == engine.sequence
