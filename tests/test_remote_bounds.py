"""A large model behind a real llama-server (issue 17): the request bounds in use (top-K, a
timeout on a server that stops answering) and exactness against the server's own greedy
completion of the same token prompt.

Needs the llama-server of scripts/build_llama_server.sh (skipped, saying so, without it)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time

from llama_server import LlamaServer, server_binary
from settings import THREADS
from test_remote import PROMPT, generate_json
from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import ModelSpec
from r2r_local.decode import Request
from r2r_local.demo import demo_pair
from r2r_local.pair import load_pair
from r2r_local.server_bounds import ServerBounds

GUARD_S = 120  # no test here may wait longer than this for a generation: a hang fails it


def served_pair(small, url: str, bounds: ServerBounds):  # type: ignore[no-untyped-def]
    spec = dict(n_ctx=2048, threads=THREADS)
    return load_pair(ModelSpec(str(small), role="small", **spec),
                     ModelSpec(url, role="large", server=bounds, **spec))


def test_the_top_k_bound_is_what_the_server_is_asked_for(smollm2, smollm2_server):
    pair = served_pair(smollm2, smollm2_server.url, ServerBounds(top_k=7))
    try:
        prompt = pair.small.tokenize("One, two, three,", add_special=False, parse_special=False)
        assert len(pair.large.slot.decode(prompt).top_ids) == 7
    finally:
        pair.close()
    doc = generate_json("--small", str(smollm2), "--large", smollm2_server.url, "--router", "llm", "--prompt", PROMPT,
                        "--max-tokens", "8", "--large-top-k", "7", "--large-timeout", "30", "--large-retries", "1")
    assert doc["config"]["large"]["server"] == {"timeout_s": 30.0, "retries": 1, "top_k": 7}
    assert len(doc["tokens"]) == 8 and doc["stats"]["large_tokens"] == 8


def run_guarded(target) -> None:  # type: ignore[no-untyped-def]
    """Run `target` in a thread; fail (instead of hanging the suite) if it takes over GUARD_S."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as e:  # raised again in the test's thread
            errors.append(e)

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(GUARD_S)
    assert not worker.is_alive(), f"still running after {GUARD_S} s: a hang"
    if errors:
        raise errors[0]


def test_a_server_that_stops_answering_times_out_and_the_next_request_succeeds(smollm2):
    """SIGSTOP freezes the server mid-generation: its socket still accepts, nothing answers. With
    --large-timeout 2 and no retries the generation stops about 2 s later, text kept, one line."""
    server = LlamaServer(smollm2)
    pair = served_pair(smollm2, server.url, ServerBounds(timeout_s=2.0, retries=0))
    router = pair.router("llm")
    prompt = chat_tokens(pair.small, [Message("user", PROMPT)])
    seen, stopped_at, ended_at = [], [0.0], [0.0]
    gen = pair.generate(Request(prompt, router))

    def generate() -> None:
        for event in gen:
            seen.append(event)
            if len(seen) == 5:
                os.kill(server.proc.pid, signal.SIGSTOP)
                stopped_at[0] = time.monotonic()
        ended_at[0] = time.monotonic()

    try:
        run_guarded(generate)
        assert len(seen) == 5 and gen.stop_reason == "error" and gen.text == "".join(e.text for e in seen)
        assert gen.message == f"large model {server.url}: no answer within 2 s"
        assert 2.0 <= ended_at[0] - stopped_at[0] < 6.0
        os.kill(server.proc.pid, signal.SIGCONT)
        again = pair.generate(Request(prompt, router))
        run_guarded(again.run)
        assert again.stop_reason != "error" and again.text.startswith(gen.text) and len(again.events) > 5
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        pair.close()
        server.stop()


def server_greedy(url: str, prompt: list[int], n_predict: int) -> dict:
    """llama-server's own greedy completion of the token prompt (no prefix cache: read anew)."""
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD_S)
    body = {"prompt": prompt, "n_predict": n_predict, "temperature": 0, "top_k": 1, "return_tokens": True,
            "cache_prompt": False}
    conn.request("POST", "/completion", json.dumps(body), {"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def assert_same_as_server(url: str, small_path, cli_args: list[str], text: str, n: int) -> str:
    """r2r generate --router llm with the served large model gives the server's greedy tokens.
    The server lists the end-of-generation token it stopped on; r2r stops on it without writing
    it. Returns the server's stop type ("eos" or "limit")."""
    small = LlamaCppBackend(ModelSpec(str(small_path), n_ctx=2048, threads=THREADS))
    try:
        prompt = chat_tokens(small, [Message("user", text)])  # as r2r generate builds it, BOS included
        answer = server_greedy(url, prompt, n)
        expected = answer["tokens"]
        if answer["stop_type"] == "eos":
            assert small.is_eog(expected[-1])
            expected = expected[:-1]
    finally:
        small.close()
    doc = generate_json(*cli_args, "--large", url, "--router", "llm", "--prompt", text, "--max-tokens", str(n))
    assert doc["config"]["prompt_tokens"] == len(prompt)
    assert [t["id"] for t in doc["tokens"]] == expected
    assert doc["config"]["stop_reason"] == {"eos": "eos", "limit": "max_tokens"}[answer["stop_type"]]
    return answer["stop_type"]


def test_generate_reproduces_the_servers_own_greedy_completion_smollm2(smollm2, smollm2_server):
    stops = {assert_same_as_server(smollm2_server.url, smollm2, ["--small", str(smollm2)], text, n)
             for text, n in (("Say hi.", 64), (PROMPT, 24))}
    assert stops == {"eos", "limit"}  # one answer ends on its own, one at the token limit


def test_generate_reproduces_the_servers_own_greedy_completion_demo():
    server_binary()
    pair = demo_pair()
    server = LlamaServer(pair.large)
    try:
        for problem in ("12+30", "47+85", "908+376"):
            assert assert_same_as_server(server.url, pair.small, ["--demo"], problem, 96) == "eos"
    finally:
        server.stop()
