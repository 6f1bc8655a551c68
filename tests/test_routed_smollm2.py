"""The engine's sharpest test (docs/design.md, "The loop"): with the same model on both sides and
greedy sampling, every router yields that model's own greedy output — and that output is what
llama-cpp-python's own generation loop produces."""

from __future__ import annotations

import numpy as np
import pytest

from settings import THREADS
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import Request, routed

N_TOKENS = 64
PROMPTS = ["What is the capital of France?", "Write a short poem about the sea."]


@pytest.fixture(scope="module")
def reference(smollm2, pair):
    """llama-cpp-python's own greedy loop (high-level Llama) over the same prompt tokens."""
    import llama_cpp

    llm = llama_cpp.Llama(str(smollm2), n_ctx=512, n_threads=THREADS, flash_attn=True, verbose=False)
    out = {}
    for prompt in PROMPTS:
        tokens = chat_tokens(pair.small, [Message("user", prompt)])
        gen = []
        for t in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0):
            if pair.small.is_eog(t) or len(gen) == N_TOKENS:
                break
            gen.append(t)
        out[prompt] = gen
    llm.close()
    return out


def _generate(pair, router, tokens, sampling=SamplingParams(), settings=GenerationSettings(max_tokens=N_TOKENS),
              **variant):
    return pair.generate(Request(tokens, router, routed(**variant), sampling=sampling, settings=settings)).run()


def _run(pair, router_spec, prompt):
    tokens = chat_tokens(pair.small, [Message("user", prompt)])
    return _generate(pair, pair.router(router_spec, seed=1), tokens)


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("router", ["slm", "llm", "random:0.3", "entropy:1.0"])
def test_every_router_gives_the_models_own_greedy_output(pair, reference, router, prompt):
    gen = _run(pair, router, prompt)
    assert [e.id for e in gen.events] == reference[prompt]
    assert gen.text == "".join(e.text for e in gen.events)


@pytest.fixture(scope="module")
def pair_1t(smollm2):
    """SmolLM2 on both sides with one llama.cpp thread each: the engines below step both models
    at once from two threads, which makes multi-threaded llama.cpp spin against itself (docs/decoding.md)."""
    from r2r_local.config import ModelSpec
    from r2r_local.pair import load_pair

    spec = dict(n_ctx=512, threads=1)
    p = load_pair(ModelSpec(str(smollm2), role="small", **spec), ModelSpec(str(smollm2), role="large", **spec))
    yield p
    p.close()


@pytest.mark.parametrize("variant,router", [("overlap", "random:0.3"), ("overlap", "entropy:1.0"),
                                            ("ahead", "llm"), ("ahead", "entropy:1.0"),
                                            ("overlap+ahead", "llm"), ("overlap+ahead", "entropy:1.0")])
def test_variants_keep_the_models_own_greedy_output(pair_1t, reference, variant, router):
    pair = pair_1t
    router = pair.router(router, seed=1)
    for prompt in PROMPTS:
        tokens = chat_tokens(pair.small, [Message("user", prompt)])
        gen = _generate(pair, router, tokens, **{v: True for v in variant.split("+")})
        assert [e.id for e in gen.events] == reference[prompt]
        assert pair.small.slot.tokens == gen.committed  # nothing uncommitted left in the small cache


def test_large_share_follows_the_router(pair):
    prompt = PROMPTS[0]
    shares = {r: _run(pair, r, prompt).stats for r in ["slm", "llm", "random:0.3"]}
    assert all(s.n_tokens == N_TOKENS for s in shares.values())
    assert shares["slm"].large_share == 0.0 and shares["slm"].large_calls == 0
    assert shares["llm"].large_share == 1.0 and shares["llm"].large_calls == N_TOKENS
    assert abs(shares["random:0.3"].large_share - 0.3) <= 0.1
    r = shares["random:0.3"]
    assert r.mean_catch_up > 1.0  # the large model catches up several tokens per call
    assert r.activated_params_b == pytest.approx((1 + r.large_share) * pair.small.n_params / 1e9)


def test_entropy_router_escalates_uncertain_tokens_only(pair):
    gen = _run(pair, "entropy:1.0", PROMPTS[1])
    assert 0 < gen.stats.large_tokens < gen.stats.n_tokens


def test_sampled_generation_is_reproducible_and_router_independent(pair):
    """One u per position, shared by both models: with identical models, sampling also gives
    the same tokens whatever the router does."""
    sampling = SamplingParams(temperature=0.9, top_p=0.95, seed=42)
    tokens = chat_tokens(pair.small, [Message("user", PROMPTS[1])])
    runs = []
    for router in ["slm", "llm", "random:0.5"]:
        gen = _generate(pair, pair.router(router, seed=3), tokens, sampling, GenerationSettings(max_tokens=40))
        runs.append([e.id for e in gen.events])
    assert runs[0] == runs[1] == runs[2]
    other = _generate(pair, pair.router("slm"), tokens, SamplingParams(temperature=0.9, top_p=0.95, seed=43),
                      GenerationSettings(max_tokens=40))
    assert [e.id for e in other.events] != runs[0]


def test_cache_prefix_is_reused_between_turns(pair):
    router = pair.router("random:0.5", seed=2)
    first = chat_tokens(pair.small, [Message("user", PROMPTS[0])])
    gen1 = _generate(pair, router, first, settings=GenerationSettings(max_tokens=16))
    follow = first + [e.id for e in gen1.events] + pair.small.tokenize(
        "<|im_end|>\n<|im_start|>user\nAnd of Spain?<|im_end|>\n<|im_start|>assistant\n",
        add_special=False, parse_special=True)
    gen2 = _generate(pair, router, follow, settings=GenerationSettings(max_tokens=16))
    assert gen2.stats.cached_prompt_tokens == len(first) + 15  # the last generated token was never fed
    fresh = _generate(pair, pair.router("slm"), follow, settings=GenerationSettings(max_tokens=16))
    assert [e.id for e in gen2.events] == [e.id for e in fresh.events]


def test_hidden_state_reproduces_the_logits(pair, smollm2):
    """hidden . W_out^T equals the logits: argmax equal, max abs difference reported."""
    from gguf import GGUFReader
    from gguf.quants import dequantize, quantize
    from gguf.constants import GGMLQuantizationType as Q

    reader = GGUFReader(smollm2)
    names = {t.name: t for t in reader.tensors}
    head = names.get("output.weight", names["token_embd.weight"])  # SmolLM2 ties them
    w = dequantize(head.data, head.tensor_type).astype(np.float64)
    small = pair.small.slot
    small.enable_hidden()
    small.truncate(0)
    out = small.decode(chat_tokens(pair.small, [Message("user", PROMPTS[0])]), hidden=True)
    ref = w @ out.hidden.astype(np.float64)
    assert int(np.argmax(ref)) == int(np.argmax(out.logits))
    plain = float(np.abs(ref - out.logits).max())
    # The CPU head multiplies Q8_0 weights by a Q8_0-quantized activation: do the same.
    hq = dequantize(quantize(out.hidden.reshape(1, -1), Q.Q8_0), Q.Q8_0).reshape(-1).astype(np.float64)
    exact = float(np.abs(w @ hq - out.logits).max())
    print(f"\nhidden . W_out vs logits: max abs diff {plain:.4g} (float h), {exact:.3g} (Q8_0 h)")
    assert exact < 1e-3
    assert plain < 1.0


@pytest.mark.parametrize("mode,router", [("spec:1", None), ("spec:4", None), ("r2r+verify", "llm"),
                                         ("r2r+verify", "entropy:1.0"), ("r2r+audit", "random:0.3")])
def test_drafting_policies_keep_the_models_own_greedy_output(pair, reference, mode, router):
    from r2r_local.decode import policy_for_mode

    for prompt in PROMPTS:
        tokens = chat_tokens(pair.small, [Message("user", prompt)])
        request = Request(tokens, pair.router(router, seed=1) if router else None, policy_for_mode(mode),
                          settings=GenerationSettings(max_tokens=N_TOKENS))
        gen = pair.generate(request).run()
        assert [e.id for e in gen.events] == reference[prompt]
        assert gen.stats.missed_divergences == 0  # the same model on both sides never disagrees
