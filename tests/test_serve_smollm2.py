"""`r2r serve` with SmolLM2 on both sides: the server's tokens equal `r2r generate`'s, a client
that goes away frees the engine at once, and a full queue answers 429 while the rest goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from serve_server import ROOT, THREADS, Server, metric

FLAGS = ("--router", "random:0.5", "--n-ctx", "512")
STORY = [{"role": "user", "content": "Write a long story about a cat."}]


@pytest.fixture(scope="module")
def server(smollm2, tmp_path_factory):
    s = Server("--small", str(smollm2), "--large", str(smollm2), *FLAGS, "--max-queue", "2",
               home=tmp_path_factory.mktemp("home"))
    yield s
    assert s.stop() == 0, s.log


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=300)


def generate(smollm2, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", "generate", "--small", str(smollm2), "--large",
                           str(smollm2), *FLAGS, "--threads", str(THREADS), "--json", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_server_writes_what_generate_writes_token_for_token(smollm2, client):
    prompt = "What is the capital of France?"
    local = generate(smollm2, "--prompt", prompt, "--max-tokens", "40")
    r = client.chat.completions.create(model="x", messages=[{"role": "user", "content": prompt}], max_tokens=40,
                                       temperature=0, extra_body={"return_tokens": True})
    assert r.model_extra["r2r"]["tokens"] == [t["id"] for t in local["tokens"]]
    assert r.choices[0].message.content == local["text"]
    assert r.usage.prompt_tokens == local["config"]["prompt_tokens"]
    assert r.model_extra["r2r"]["large_calls"] > 0  # the large model did take part


def test_a_raw_completion_writes_what_generate_raw_writes(smollm2, client):
    prompt = "The three primary colors are"
    local = generate(smollm2, "--raw", "--prompt", prompt, "--max-tokens", "24")
    r = client.completions.create(model="x", prompt=prompt, max_tokens=24, extra_body={"return_tokens": True})
    assert r.model_extra["r2r"]["tokens"] == [t["id"] for t in local["tokens"]]
    assert r.choices[0].text == local["text"]


def test_developer_is_openais_new_name_for_system(client):
    def prompt_tokens(*messages: dict) -> int:
        return client.chat.completions.create(model="x", messages=list(messages), max_tokens=1).usage.prompt_tokens

    ask = {"role": "user", "content": "Hi"}
    system = prompt_tokens({"role": "system", "content": "Answer in French."}, ask)
    # (SmolLM2's template writes a system line of its own when none is given)
    assert prompt_tokens({"role": "developer", "content": "Answer in French."}, ask) == system != prompt_tokens(ask)


def _counts(server: Server) -> tuple[float, float, float]:
    text = httpx.get(server.url + "/metrics").text
    return (metric(text, "r2r_requests_total", outcome="cancelled"),
            metric(text, "r2r_tokens_total", source="small") + metric(text, "r2r_tokens_total", source="large"),
            metric(text, "r2r_cancel_seconds_sum"))


def test_a_streaming_client_that_leaves_frees_the_engine_at_once(server, client):
    cancelled, tokens, cancel_s = _counts(server)
    stream = client.chat.completions.create(model="x", messages=STORY, max_tokens=400, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()  # the connection goes away after the first token
    nxt = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
    wait = nxt.model_extra["r2r"]["queue_wait_s"]
    after_cancelled, after_tokens, after_cancel_s = _counts(server)
    abandoned = after_tokens - tokens - nxt.usage.completion_tokens
    step = 1 / nxt.model_extra["r2r"]["tokens_per_s"]
    print(f"\nstream left after its first token: it wrote {abandoned:.0f} tokens; the engine was free "
          f"{1000 * (after_cancel_s - cancel_s):.1f} ms after the cancel; the next request waited {1000 * wait:.1f} ms "
          f"(one token step: {1000 * step:.1f} ms)")
    assert after_cancelled == cancelled + 1  # stopped by the cancel, not by running out
    assert abandoned < 400


def test_a_waiting_client_that_leaves_is_cancelled_too(server, client):
    cancelled, tokens, cancel_s = _counts(server)
    with pytest.raises(httpx.ReadTimeout):  # 400 tokens of a 135M model take far longer than 0.3 s on a CPU
        httpx.post(server.v1 + "/chat/completions", json={"messages": STORY, "max_tokens": 400}, timeout=0.3)
    nxt = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
    after_cancelled, after_tokens, after_cancel_s = _counts(server)
    wait = nxt.model_extra["r2r"]["queue_wait_s"]
    # (a cancel while the models read the prompt lands at the end of the prompt chunk being read)
    print(f"\nnon-streaming client gone after 0.3 s: the engine was free {1000 * (after_cancel_s - cancel_s):.1f} ms "
          f"after the cancel; the next request waited {1000 * wait:.1f} ms")
    assert after_cancelled == cancelled + 1 and after_tokens - tokens - nxt.usage.completion_tokens < 400


def test_a_full_queue_answers_429_and_the_rest_goes_on(server, client):
    stream = client.chat.completions.create(model="x", messages=STORY, max_tokens=400, stream=True)
    next(c for c in stream if c.choices and c.choices[0].delta.content)  # the engine is busy now
    answers: list = []
    waiting = [threading.Thread(target=lambda: answers.append(client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "Hi"}], max_tokens=4))) for _ in range(2)]
    for t in waiting:
        t.start()
    deadline = time.monotonic() + 60
    while metric(httpx.get(server.url + "/metrics").text, "r2r_queue_depth") < 2:
        assert time.monotonic() < deadline, "the two requests never queued"
        time.sleep(0.05)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert refused.value.body == {"message": "the server is busy: 2 requests are already waiting (retry later)",
                                  "type": "rate_limit_error", "param": None, "code": "queue_full"}
    stream.close()
    for t in waiting:
        t.join(300)
    assert len(answers) == 2 and all(a.choices[0].finish_reason in ("stop", "length") for a in answers)
    assert httpx.get(server.url + "/health").json()["waiting"] == 0


def test_ctrl_c_stops_a_running_generation_and_exits_cleanly(smollm2, tmp_path):
    s = Server("--small", str(smollm2), "--large", str(smollm2), "--n-ctx", "512", home=tmp_path)
    lines: list[str] = []

    def read() -> None:
        body = {"messages": STORY, "max_tokens": 400, "stream": True}
        with httpx.stream("POST", s.v1 + "/chat/completions", json=body, timeout=120) as r:
            lines.extend(line for line in r.iter_lines() if line)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 60
    while metric(httpx.get(s.url + "/metrics").text, "r2r_busy") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert s.stop() == 0, s.log
    reader.join(60)
    assert json.loads(lines[-1][len("data: "):]) == {"error": {
        "message": "the server is shutting down", "type": "server_error", "param": None, "code": "shutting_down"}}
    assert s.log.endswith("r2r serve: stopped\n") and "Traceback" not in s.log
