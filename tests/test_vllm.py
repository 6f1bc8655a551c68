"""The large model behind vLLM (`--large http://HOST:PORT`), against a STAND-IN for vLLM
(tests/vllm_standin.py: vLLM's documented request/response shapes, answers computed with a real
llama.cpp model; vLLM itself cannot run on the test machine). The same checks as
test_remote.py where they apply: the in-process large model's tokens, catch-ups that reuse the
server's cache, faults in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gguf_edit import UNUSED, USER_DEFINED, copy_with_vocab
from settings import THREADS
from test_remote import (MODES, PROMPT, assert_demo_served_gives_the_in_process_tokens,
                         assert_served_gives_the_in_process_tokens, one_line_error, r2r)
from vllm_standin import VllmStandIn
from r2r_local.backends.vllm import VllmModel
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import ModelSpec
from r2r_local.decode import Request
from r2r_local.demo import demo_pair
from r2r_local.pair import load_pair

@pytest.fixture(scope="module")
def standin(smollm2):
    server = VllmStandIn(smollm2)
    yield server
    server.close()


@pytest.fixture(scope="module")
def vllm_pair(smollm2, standin):
    spec = dict(n_ctx=2048, threads=THREADS)
    pair = load_pair(ModelSpec(str(smollm2), role="small", **spec), ModelSpec(standin.url, role="large", **spec))
    yield pair
    pair.close()


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_vllm_large_gives_the_in_process_tokens_smollm2(smollm2, standin, mode):
    assert_served_gives_the_in_process_tokens(smollm2, standin.url, mode)


def test_demo_with_a_vllm_large_model_gives_the_in_process_tokens():
    server = VllmStandIn(demo_pair().large)
    try:
        assert_demo_served_gives_the_in_process_tokens(server.url)
    finally:
        server.close()


def test_a_catch_up_reuses_the_servers_cache(vllm_pair, standin):
    slot = vllm_pair.large.slot
    slot.truncate(0)
    prompt = vllm_pair.small.tokenize("A catch-up test: one two three four five six", add_special=False,
                                      parse_special=False)
    slot.decode(prompt)
    slot.decode([1000, 1001, 1002])
    assert standin.requests[-1]["prompt"] == prompt + [1000, 1001, 1002]
    assert slot.last_usage["prompt_tokens_details"]["cached_tokens"] == standin.cached[-1] == len(prompt)
    slot.truncate(len(prompt) + 1)
    dist = slot.decode([2000, 2001])
    assert standin.cached[-1] == len(prompt) + 1 and slot.tokens == prompt + [1000, 2000, 2001]
    sent = standin.requests[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["logprobs"], sent["return_tokens_as_token_ids"]) == (1, 0, 20, True)
    local = vllm_pair.small.slot
    local.truncate(0)
    logits = local.decode(slot.tokens).logits
    assert int(dist.top_ids[0]) == int(np.argmax(logits))
    assert len(dist.top_ids) == 20 and np.all(np.diff(dist.top_logprobs) <= 0)


def test_decode_all_gives_one_distribution_per_output(vllm_pair, standin):
    slot, local = vllm_pair.large.slot, vllm_pair.small.slot
    tokens = vllm_pair.small.tokenize("Counting: one, two, three, four", add_special=False, parse_special=False)
    slot.truncate(0)
    local.truncate(0)
    before = len(standin.requests)
    dists = slot.decode_all(tokens, outputs=4)
    expected = local.decode_all(tokens, outputs=4)
    assert [int(d.top_ids[0]) for d in dists] == [int(np.argmax(d.logits)) for d in expected]
    assert len(standin.requests) - before == 4 and slot.tokens == tokens


@pytest.mark.parametrize("pad_type", [UNUSED, USER_DEFINED], ids=["unused", "user-defined"])
def test_a_padded_small_model_pairs_with_the_unpadded_served_one(smollm2, standin, tmp_path, pad_type):
    """vLLM's tokenizer has no padding rows: the pairing skips the small model's."""
    padded = copy_with_vocab(smollm2, tmp_path / "padded.gguf", pad_to=49152 + 64, pad_type=pad_type)
    spec = dict(n_ctx=512, threads=THREADS)
    pair = load_pair(ModelSpec(str(padded), role="small", **spec), ModelSpec(standin.url, role="large", **spec))
    try:
        assert pair.n_shared == 49152 + 64 and pair.large.n_ctx == 512
    finally:
        pair.close()


def test_a_vllm_server_killed_mid_generation_stops_it_with_one_line(smollm2):
    server = VllmStandIn(smollm2)
    spec = dict(n_ctx=2048, threads=THREADS)
    pair = load_pair(ModelSpec(str(smollm2), role="small", **spec), ModelSpec(server.url, role="large", **spec))
    try:
        prompt = chat_tokens(pair.small, [Message("user", PROMPT)])
        gen = pair.generate(Request(prompt, pair.router("llm")))
        seen = []
        for event in gen:
            seen.append(event)
            if len(seen) == 5:
                server.stop()
        assert len(seen) == 5 and gen.stop_reason == "error" and gen.text == "".join(e.text for e in seen)
        assert server.url in gen.message and "\n" not in gen.message
    finally:
        server.close()
        pair.close()


def test_a_500_mid_generation_stops_it_keeping_the_text(smollm2):
    server = VllmStandIn(smollm2, fail_after=6)
    try:
        proc = r2r("generate", "--small", str(smollm2), "--large", server.url, "--router", "llm", "--prompt", PROMPT)
    finally:
        server.close()
    line = one_line_error(proc)
    assert "HTTP 500" in line and "stand-in failure" in line and server.url in line
    assert len(proc.stdout.strip()) > 0 and "stop: error" in proc.stderr


def test_a_server_below_the_top_k_is_refused_naming_max_logprobs(smollm2):
    server = VllmStandIn(smollm2, max_logprobs=5)
    try:
        line = one_line_error(r2r("generate", "--small", str(smollm2), "--large", server.url, "--prompt", "hi"))
    finally:
        server.close()
    assert server.url in line and "--max-logprobs 20" in line and "lower the top-K" in line


def test_an_unknown_engine_is_refused_in_one_line(smollm2):
    server = VllmStandIn(smollm2, owned_by="someone-else")
    try:
        line = one_line_error(r2r("generate", "--small", str(smollm2), "--large", server.url, "--prompt", "hi"))
    finally:
        server.close()
    assert server.url in line and "neither llama-server nor vLLM" in line
    assert "'someone-else'" in line and "GET /props answered HTTP 404" in line


def test_a_vllm_server_with_another_tokenizer_is_refused(smollm2, tmp_path):
    def swap(tokens):
        tokens = list(tokens)
        tokens[1000], tokens[1001] = tokens[1001], tokens[1000]
        return tokens

    server = VllmStandIn(copy_with_vocab(smollm2, tmp_path / "swapped.gguf", edit_tokens=swap))
    try:
        line = one_line_error(r2r("generate", "--small", str(smollm2), "--large", server.url, "--prompt", "hi"))
    finally:
        server.close()
    assert str(smollm2) in line and server.url in line and "token 1000" in line


def test_demo_small_with_another_models_vllm_server_is_refused(standin):
    line = one_line_error(r2r("generate", "--demo", "--large", standin.url, "--prompt", "1+1"))
    assert "different vocabularies" in line and standin.url in line


def test_the_model_asks_the_served_model_id_and_reads_no_bos_from_smollm2(standin):
    model = VllmModel(ModelSpec(standin.url, n_ctx=4096, role="large"))
    try:
        assert (model.model_id, model.n_ctx, model.add_bos) == (standin.model_id, 2048, False)
        assert standin.requests[-1]["model"] == standin.model_id
    finally:
        model.close()


def test_top_k_is_vllms_default_cap_unless_given(standin):
    from r2r_local.server_bounds import ServerBounds

    for bounds, k in ((None, 20), (ServerBounds(top_k=7), 7)):
        model = VllmModel(ModelSpec(standin.url, n_ctx=4096, role="large", server=bounds))
        try:
            assert model.caps.top_k == k and standin.requests[-1]["logprobs"] == k
        finally:
            model.close()


def test_generate_reports_vllm_round_trips_without_a_compute_split(smollm2, standin):
    proc = r2r("generate", "--small", str(smollm2), "--large", standin.url, "--router", "llm", "--prompt", "Hi",
               "--max-tokens", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)["stats"]
    assert stats["large_server_calls"] >= stats["large_calls"] > 0 and stats["ms_round_trip_per_call"] > 0
    assert stats["ms_server_per_call"] is None and stats["ms_overhead_per_call"] is None
