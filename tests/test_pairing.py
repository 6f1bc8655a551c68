"""Pairs are checked on real GGUFs: SmolLM2 copied with padding rows added, or with two real
tokens swapped (a different tokenizer in all but name)."""

from __future__ import annotations

import pytest

from settings import THREADS
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import GenerationSettings, ModelSpec, SamplingParams
from r2r_local.decode import Request
from r2r_local.errors import VocabMismatchError
from r2r_local.pair import load_pair

from gguf_edit import copy_with_vocab

PAD_TO = 49152 + 128


@pytest.fixture(scope="module")
def padded(smollm2, tmp_path_factory):
    return copy_with_vocab(smollm2, tmp_path_factory.mktemp("g") / "padded.gguf", pad_to=PAD_TO)


def _specs(small, large):
    return ModelSpec(str(small), n_ctx=256, threads=THREADS, role="small"), ModelSpec(str(large), n_ctx=256, threads=THREADS, role="large")


@pytest.mark.parametrize("padded_side", ["large", "small"])
def test_padding_only_difference_loads_and_routes(smollm2, padded, padded_side):
    small, large = (smollm2, padded) if padded_side == "large" else (padded, smollm2)
    pair = load_pair(*_specs(small, large))
    try:
        assert {pair.small.n_vocab, pair.large.n_vocab} == {49152, PAD_TO} and pair.n_shared == 49152
        tokens = chat_tokens(pair.small, [Message("user", "Say hello.")])
        settings = GenerationSettings(max_tokens=24)
        routed = pair.generate(Request(tokens, pair.router("llm"), sampling=SamplingParams(), settings=settings)).run()
        alone = pair.generate(Request(tokens, pair.router("slm"), sampling=SamplingParams(), settings=settings)).run()
        assert routed.stats.large_share == 1.0
        assert [e.id for e in routed.events] == [e.id for e in alone.events]
        assert all(e.id < 49152 for e in routed.events)
    finally:
        pair.close()


def test_a_real_vocabulary_difference_is_refused(smollm2, tmp_path):
    def swap(tokens):
        tokens = list(tokens)
        tokens[1000], tokens[1001] = tokens[1001], tokens[1000]
        return tokens

    other = copy_with_vocab(smollm2, tmp_path / "swapped.gguf", edit_tokens=swap)
    with pytest.raises(VocabMismatchError) as err:
        load_pair(*_specs(smollm2, other))
    assert str(smollm2) in str(err.value) and str(other) in str(err.value) and "token 1000" in str(err.value)
