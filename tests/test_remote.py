"""The large model behind a real llama-server (`--large http://HOST:PORT`): the same tokens as the
in-process large model, catch-ups that send only new tokens, the incomplete-UTF-8 quirk, faults.

Needs the llama-server of scripts/build_llama_server.sh (skipped, saying so, without it)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gguf_edit import copy_with_vocab
from llama_server import FailingProxy, LlamaServer, free_port
from settings import THREADS
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import ModelSpec
from r2r_local.decode import Request
from r2r_local.demo import demo_pair
from r2r_local.pair import load_pair

PROMPT = "Name three colours and say why the sky is blue."


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args, "--threads", str(THREADS)],
                          capture_output=True, text=True, timeout=600)


def generate_json(*args: str) -> dict:
    proc = r2r("generate", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("r2r: error: "), proc.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def remote_pair(smollm2, smollm2_server):
    spec = dict(n_ctx=2048, threads=THREADS)
    pair = load_pair(ModelSpec(str(smollm2), role="small", **spec),
                     ModelSpec(smollm2_server.url, role="large", **spec))
    yield pair
    pair.close()


MODES = {"llm": ["--router", "llm"], "random": ["--router", "random:0.3", "--seed", "3"], "spec4": ["--spec", "4"]}


def assert_served_gives_the_in_process_tokens(smollm2, url: str, mode: list[str]) -> None:
    """SmolLM2 on both sides, the large one behind `url` (either engine) or in-process."""
    common = ["--small", str(smollm2), "--prompt", PROMPT, "--max-tokens", "48", *mode]
    remote = generate_json(*common, "--large", url)
    local = generate_json(*common, "--large", str(smollm2))
    assert [t["id"] for t in remote["tokens"]] == [t["id"] for t in local["tokens"]]
    assert remote["text"] == local["text"] and len(remote["tokens"]) >= 20
    assert remote["stats"]["large_tokens"] == local["stats"]["large_tokens"] > 0
    if "random:0.3" in mode:  # catch-ups of several tokens at once happened
        assert remote["stats"]["mean_catch_up"] > 1


def assert_demo_served_gives_the_in_process_tokens(url: str) -> None:
    for problem in ("12+30", "47+85"):
        remote = generate_json("--demo", "--large", url, "--router", "llm", "--prompt", problem)
        local = generate_json("--demo", "--router", "llm", "--prompt", problem)
        assert [t["id"] for t in remote["tokens"]] == [t["id"] for t in local["tokens"]]
        assert remote["stats"]["large_share"] == 1.0 and remote["text"] == local["text"]


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_remote_large_gives_the_in_process_tokens_smollm2(smollm2, smollm2_server, mode):
    assert_served_gives_the_in_process_tokens(smollm2, smollm2_server.url, mode)


def test_demo_with_a_served_large_model_gives_the_in_process_tokens():
    server = LlamaServer(demo_pair().large)
    try:
        assert_demo_served_gives_the_in_process_tokens(server.url)
    finally:
        server.stop()


def test_a_catch_up_evaluates_only_the_new_tokens(remote_pair):
    slot = remote_pair.large.slot
    slot.truncate(0)
    prompt = remote_pair.small.tokenize("A catch-up test: one two three four five six", add_special=False,
                                        parse_special=False)
    slot.decode(prompt)
    slot.decode([1000, 1001, 1002])
    assert (slot.last_timings["prompt_n"], slot.last_timings["cache_n"]) == (3, len(prompt))
    slot.truncate(len(prompt) + 1)
    dist = slot.decode([2000, 2001])
    assert (slot.last_timings["prompt_n"], slot.last_timings["cache_n"]) == (2, len(prompt) + 1)
    assert slot.tokens == prompt + [1000, 2000, 2001]
    local = remote_pair.small.slot
    local.truncate(0)
    logits = local.decode(slot.tokens).logits
    assert int(dist.top_ids[0]) == int(np.argmax(logits))
    assert len(dist.top_ids) == 100 and np.all(np.diff(dist.top_logprobs) <= 0)


def test_decode_all_gives_one_distribution_per_output(remote_pair):
    slot, local = remote_pair.large.slot, remote_pair.small.slot
    tokens = remote_pair.small.tokenize("Counting: one, two, three, four", add_special=False, parse_special=False)
    slot.truncate(0)
    local.truncate(0)
    dists = slot.decode_all(tokens, outputs=4)
    expected = local.decode_all(tokens, outputs=4)
    assert [int(d.top_ids[0]) for d in dists] == [int(np.argmax(d.logits)) for d in expected]
    assert slot.tokens == tokens


def test_a_token_that_leaves_incomplete_utf8_is_still_read(remote_pair):
    """The server sends no probabilities when its sampled token is an unfinished UTF-8 sequence;
    the slot bans it and asks again, and gets the raw log-probabilities (the token still first)."""
    small, slot = remote_pair.small, remote_pair.large.slot
    prompt = small.tokenize("東京東京東京東京", add_special=False, parse_special=False)
    small.slot.truncate(0)
    expected = int(np.argmax(small.slot.decode(prompt).logits))
    with pytest.raises(UnicodeDecodeError):
        small.token_bytes(expected).decode("utf-8")
    answers = []
    request = slot._client.request

    def spy(method, path, body=None):
        answer = request(method, path, body)
        answers.append(answer)
        return answer

    slot._client.request = spy
    try:
        slot.truncate(0)
        dist = slot.decode(prompt)
    finally:
        del slot._client.request
    assert len(answers) >= 2 and all("completion_probabilities" not in a for a in answers[:-1])
    banned = [a["tokens"][0] for a in answers[:-1]]
    assert len(set(banned)) == len(banned) and banned[0] == expected
    assert int(dist.top_ids[0]) == expected


def test_a_server_that_is_not_there_is_refused_in_one_line(smollm2):
    url = f"http://127.0.0.1:{free_port()}"
    proc = r2r("generate", "--small", str(smollm2), "--large", url, "--prompt", "hi")
    line = one_line_error(proc)
    assert url in line and "connection refused" in line


def test_a_server_killed_mid_generation_stops_it_with_one_line(smollm2):
    server = LlamaServer(smollm2)
    spec = dict(n_ctx=2048, threads=THREADS)
    pair = load_pair(ModelSpec(str(smollm2), role="small", **spec), ModelSpec(server.url, role="large", **spec))
    try:
        router = pair.router("llm")
        prompt = chat_tokens(pair.small, [Message("user", PROMPT)])
        gen = pair.generate(Request(prompt, router))
        seen = []
        for event in gen:
            seen.append(event)
            if len(seen) == 5:
                server.stop()
        # the generation stops with what was written kept and a one-line reason
        assert len(seen) == 5 and gen.stop_reason == "error" and gen.text == "".join(e.text for e in seen)
        assert server.url in gen.message and "\n" not in gen.message
    finally:
        server.stop()
        pair.close()


def test_a_500_mid_generation_stops_it_keeping_the_text(smollm2, smollm2_server):
    proxy = FailingProxy(smollm2_server.url, "/completion", fail_after=6)
    try:
        proc = r2r("generate", "--small", str(smollm2), "--large", proxy.url, "--router", "llm", "--prompt", PROMPT)
    finally:
        proxy.stop()
    line = one_line_error(proc)
    assert "HTTP 500" in line and "stand-in failure" in line
    assert len(proc.stdout.strip()) > 0  # the tokens written before the failure stay on screen
    assert "stop: error" in proc.stderr  # the summary of what was written, then the reason


def test_a_server_failing_at_start_is_refused(smollm2, smollm2_server):
    proxy = FailingProxy(smollm2_server.url, "/health", fail_after=0)
    try:
        proc = r2r("generate", "--small", str(smollm2), "--large", proxy.url, "--prompt", "hi")
    finally:
        proxy.stop()
    assert "HTTP 500" in one_line_error(proc)


def test_a_server_with_another_tokenizer_is_refused(smollm2, tmp_path):
    def swap(tokens):
        tokens = list(tokens)
        tokens[1000], tokens[1001] = tokens[1001], tokens[1000]
        return tokens

    server = LlamaServer(copy_with_vocab(smollm2, tmp_path / "swapped.gguf", edit_tokens=swap))
    try:
        proc = r2r("generate", "--small", str(smollm2), "--large", server.url, "--prompt", "hi")
    finally:
        server.stop()
    line = one_line_error(proc)
    assert str(smollm2) in line and server.url in line and "token 1000" in line


def test_a_served_model_with_padding_rows_pairs_and_gives_the_in_process_tokens(smollm2, tmp_path):
    """Like an in-process pair (Qwen2.5-0.5B's 151936 rows next to R1-7B's 152064), the served
    vocabulary may be longer by padding rows only; they are never chosen."""
    padded = copy_with_vocab(smollm2, tmp_path / "padded.gguf", pad_to=49152 + 128)
    server = LlamaServer(padded)
    try:
        common = ["--small", str(smollm2), "--prompt", PROMPT, "--max-tokens", "24", "--router", "random:0.3"]
        remote = generate_json(*common, "--large", server.url)
        local = generate_json(*common, "--large", str(padded))
    finally:
        server.stop()
    assert [t["id"] for t in remote["tokens"]] == [t["id"] for t in local["tokens"]]
    assert remote["config"]["n_shared_vocab"] == local["config"]["n_shared_vocab"] == 49152
    assert remote["stats"]["large_tokens"] == local["stats"]["large_tokens"] > 0


def test_demo_small_with_another_models_server_is_refused(smollm2_server):
    line = one_line_error(r2r("generate", "--demo", "--large", smollm2_server.url, "--prompt", "1+1"))
    assert "different vocabularies" in line and smollm2_server.url in line and "not padding" in line


def test_sampled_spec_with_a_served_large_model_is_refused(smollm2, smollm2_server):
    proc = r2r("generate", "--small", str(smollm2), "--large", smollm2_server.url, "--spec", "4",
               "--temperature", "0.7", "--prompt", "hi")
    assert "top tokens only" in one_line_error(proc)
