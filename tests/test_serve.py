"""`r2r serve` on the demo pair, through the real `openai` client (and httpx where a client
cannot say what a test needs): models, chat and text completions, streaming, metrics, the queue."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import httpx
import openai
import pytest

from r2r_local.demo.task import EVAL_SEED, extract_answer, problems
from r2r_local.serve.think import split
from serve_server import ROOT, Server, metric

DEMO_ID = "demo-small-q8_0+demo-large-q8_0"
ASK = [{"role": "user", "content": "347+589"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server("--demo", home=tmp_path_factory.mktemp("home"))
    yield s
    assert s.stop() == 0, s.log


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=120)


def test_the_start_line_says_where_and_what(server):
    line = next(line for line in server.lines if "listening on" in line)
    assert line.startswith(f"r2r serve: listening on {server.url}/v1 (model {DEMO_ID}: ")
    assert "small demo-small-q8_0.gguf, large demo-large-q8_0.gguf, router router.onnx@0.171, r2r" in line


def test_models_lists_the_pair_and_its_single_model_modes(client):
    ids = [m.id for m in client.models.list()]
    assert ids[:3] == [DEMO_ID, f"{DEMO_ID}:small", f"{DEMO_ID}:large"]  # then the checked modes (test_serve_modes)
    assert client.models.retrieve(f"{DEMO_ID}:large").id == f"{DEMO_ID}:large"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_a_chat_completion_answers_with_usage_and_the_routing_figures(client):
    r = client.chat.completions.create(model="gpt-4o", messages=ASK, temperature=0)
    message = r.choices[0].message
    assert message.content == "So 347+589 = 936."
    assert message.model_extra["reasoning_content"].startswith("347+589: units 7+9=16 write 6 carry 1;")
    assert r.choices[0].finish_reason == "stop" and r.model == DEMO_ID  # any name gets the served pair
    assert r.usage.prompt_tokens == 15 and r.usage.completion_tokens > 40
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    routing = r.model_extra["r2r"]
    assert routing["router"] == "router.onnx" and routing["policy"] == "r2r"
    assert routing["threshold"] == pytest.approx(0.1706, abs=1e-4)
    assert 0 < routing["large_tokens"] < r.usage.completion_tokens and routing["large_calls"] >= 1
    assert routing["large_share"] == pytest.approx(routing["large_tokens"] / r.usage.completion_tokens)
    # activated parameters: P_small + share x P_large, in billions (demo: 154,560 and 2,285,184)
    assert routing["activated_params_b"] == pytest.approx((154_560 + routing["large_share"] * 2_285_184) / 1e9)


def test_the_per_mode_ids_decode_with_one_model(client):
    large = client.chat.completions.create(model=f"{DEMO_ID}:large", messages=ASK)
    small = client.chat.completions.create(model=f"{DEMO_ID}:small", messages=ASK)
    assert large.model == f"{DEMO_ID}:large" and large.model_extra["r2r"]["policy"] == "large"
    assert large.model_extra["r2r"]["large_share"] == 1.0 and large.model_extra["r2r"]["router"] is None
    assert small.model_extra["r2r"]["large_tokens"] == 0
    assert small.model_extra["r2r"]["activated_params_b"] == 154_560 / 1e9


def test_text_parts_are_understood(client):
    parts = client.chat.completions.create(model="x", messages=[
        {"role": "user", "content": [{"type": "text", "text": "347+"}, {"type": "text", "text": "589"}]}])
    assert parts.choices[0].message.content == "So 347+589 = 936." and parts.usage.prompt_tokens == 15


def test_a_request_threshold_changes_the_routing(client):
    everything = client.chat.completions.create(model="x", messages=ASK, extra_body={"threshold": 0.0})
    assert everything.model_extra["r2r"]["threshold"] == 0.0
    assert everything.model_extra["r2r"]["large_share"] == 1.0


def test_streamed_text_equals_the_whole_response_and_usage_comes_last(client):
    whole = client.chat.completions.create(model="x", messages=ASK, temperature=0)
    chunks = list(client.chat.completions.create(model="x", messages=ASK, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert content == whole.choices[0].message.content
    assert reasoning == whole.choices[0].message.model_extra["reasoning_content"]
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop" and "r2r" in finish[0].model_extra
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens == whole.usage.completion_tokens
    assert usage.model_extra["r2r"]["large_tokens"] == whole.model_extra["r2r"]["large_tokens"]
    # the conversation was read before: only its last token is read again
    assert usage.usage.prompt_tokens_details.cached_tokens == whole.usage.prompt_tokens - 1


def test_without_include_usage_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="x", messages=ASK, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage is None


def test_text_completion_from_token_ids_is_the_raw_answer(client):
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.chat import Message, chat_tokens
    from r2r_local.config import ModelSpec

    with LlamaCppBackend(ModelSpec(str(ROOT / "models/demo/demo-small-q8_0.gguf"), n_ctx=256, threads=1)) as small:
        ids = chat_tokens(small, [Message("user", "347+589")])
    text = client.completions.create(model="x", prompt=ids, max_tokens=200)
    chat = client.chat.completions.create(model="x", messages=ASK)
    raw = text.choices[0].text
    assert raw.startswith("<think>") and extract_answer(raw) == 936
    assert split(raw) == (chat.choices[0].message.model_extra["reasoning_content"], chat.choices[0].message.content)
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="x", prompt=ids, max_tokens=200,
                                                                             stream=True))
    assert streamed == raw


def test_limits_and_stops_give_openai_finish_reasons(client):
    cut = client.chat.completions.create(model="x", messages=ASK, max_completion_tokens=5)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 5
    stopped = client.chat.completions.create(model="x", messages=ASK, stop=["hundreds"])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.model_extra["reasoning_content"].endswith("carry 1; ")
    chunks = list(client.chat.completions.create(model="x", messages=ASK, stop=["hundreds"], stream=True))
    assert "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks) == \
        stopped.choices[0].message.model_extra["reasoning_content"]


def test_earlier_think_sections_are_not_fed_back(client):
    turn = [{"role": "user", "content": "12+30"}]
    with_think = client.chat.completions.create(model="x", messages=[
        *turn, {"role": "assistant", "content": "<think>12+30: long thoughts</think>\nSo 12+30 = 42."}, *ASK])
    without = client.chat.completions.create(model="x", messages=[
        *turn, {"role": "assistant", "content": "So 12+30 = 42."}, *ASK])
    assert with_think.usage.prompt_tokens == without.usage.prompt_tokens
    assert with_think.choices[0].message.content == without.choices[0].message.content


def test_metrics_count_the_tokens_served(server, client):
    before = httpx.get(server.url + "/metrics").text
    served, large = 0, 0
    for prompt in ("12+30", "999+1", "Add 5 and 70."):
        r = client.chat.completions.create(model="x", messages=[{"role": "user", "content": prompt}])
        served, large = served + r.usage.completion_tokens, large + r.model_extra["r2r"]["large_tokens"]
    after = httpx.get(server.url + "/metrics")
    assert after.headers["content-type"].startswith("text/plain")

    def grew(name: str, **labels: str) -> float:
        return metric(after.text, name, **labels) - metric(before, name, **labels)

    assert grew("r2r_tokens_total", source="small") == served - large
    assert grew("r2r_tokens_total", source="large") == large
    assert grew("r2r_requests_total", outcome="stop") == 3 and metric(after.text, "r2r_queue_depth") == 0
    assert metric(after.text, "r2r_phase_seconds_total", phase="small") > 0


def test_health(server):
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["model"] == DEMO_ID


def _ask_streaming(client: openai.OpenAI, text: str, barrier: threading.Barrier, out: dict, i: int) -> None:
    barrier.wait()
    try:
        chunks = list(client.chat.completions.create(model="x", messages=[{"role": "user", "content": text}],
                                                     stream=True, stream_options={"include_usage": True}))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        out[i] = (content, chunks[-1].model_extra["r2r"])
    except openai.RateLimitError as e:
        out[i] = e
    except Exception as e:  # noqa: BLE001 - reported by the test
        out[i] = e


def _run_clients(client: openai.OpenAI, n: int) -> tuple[list, dict]:
    asked = problems(EVAL_SEED, n)
    barrier, out = threading.Barrier(n), {}
    threads = [threading.Thread(target=_ask_streaming, args=(client, p.message, barrier, out, i))
               for i, p in enumerate(asked)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return asked, out


def test_eight_streaming_clients_all_answer_right_in_arrival_order(client):
    asked, out = _run_clients(client, 8)
    assert all(isinstance(out[i], tuple) for i in range(8)), out
    for i, p in enumerate(asked):
        assert extract_answer("</think>" + out[i][0]) == p.answer, (p, out[i][0])
    routings = sorted((r for _, r in out.values()), key=lambda r: r["arrival"])
    assert [r["started"] for r in routings] == sorted(r["started"] for r in routings)  # first come, first run


def test_with_a_queue_bound_of_two_the_surplus_gets_429(tmp_path_factory):
    s = Server("--demo", "--max-queue", "2", home=tmp_path_factory.mktemp("home"))
    try:
        client = openai.OpenAI(base_url=s.v1, api_key="unused", max_retries=0, timeout=120)
        asked, out = _run_clients(client, 8)
        rejected = [e for e in out.values() if isinstance(e, openai.RateLimitError)]
        answered = {i: v for i, v in out.items() if isinstance(v, tuple)}
        assert len(rejected) + len(answered) == 8, out
        for e in rejected:
            assert int(e.response.headers["retry-after"]) >= 1 and e.body["code"] == "queue_full"
        for i, (content, _) in answered.items():
            assert extract_answer("</think>" + content) == asked[i].answer
        if rejected:  # whoever got a 429 saw the engine busy and two waiting: those three were answered
            assert len(answered) >= 3
        print(f"\n8 clients, --max-queue 2: {len(answered)} answered, {len(rejected)} got 429")
        after = client.chat.completions.create(model="x", messages=ASK)
        assert after.choices[0].message.content == "So 347+589 = 936."
        metrics = httpx.get(s.url + "/metrics").text
        assert metric(metrics, "r2r_requests_total", outcome="rejected") == len(rejected)
    finally:
        assert s.stop() == 0, s.log


def test_a_non_loopback_host_without_a_key_is_refused_in_one_line():
    proc = serve_cli("--demo", "--host", "0.0.0.0")
    assert proc.returncode == 1
    assert proc.stderr == ("r2r: error: --host 0.0.0.0 is reachable from other machines: set an API key "
                           "(--api-key or R2R_API_KEY), or pass --insecure-no-api-key to run without one\n")


def serve_cli(*args: str, code: str = "") -> subprocess.CompletedProcess:
    """`r2r serve ARGS` in a fresh interpreter (after `code`), without R2R_API_KEY."""
    env = {k: v for k, v in os.environ.items() if k != "R2R_API_KEY"}
    run = f"import sys\n{code}\nfrom r2r_local.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", run, "serve", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env=env)


@pytest.mark.parametrize("args,message", [
    (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
    (["--max-queue", "-1"], "--max-queue must be between 0 and 100000, got -1"),
    (["--api-key", " "], "the API key (--api-key) is empty"),
    (["--host", "::"], "--host :: is reachable from other machines: set an API key (--api-key or R2R_API_KEY), "
                       "or pass --insecure-no-api-key to run without one"),
])
def test_bad_server_flags_are_one_line_before_loading(args, message):
    proc = serve_cli("--demo", *args)
    assert (proc.returncode, proc.stderr) == (1, f"r2r: error: {message}\n")


def test_a_taken_port_is_one_line_before_loading():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve_cli("--demo", "--port", str(port))
    assert proc.returncode == 1
    assert proc.stderr == f"r2r: error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"


def test_without_the_serve_extra_the_command_names_it():
    proc = serve_cli("--demo", code="sys.modules['uvicorn'] = None")
    assert (proc.returncode, proc.stderr) == (1, "r2r: error: r2r serve needs the serve extra (uvicorn missing): "
                                                 "pip install 'r2r-local[serve]'\n")


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
                                           ("localhost", True), ("0.0.0.0", False), ("::", False),
                                           ("192.168.1.5", False), ("example.com", False)])
def test_loopback_hosts(host, loopback):
    from r2r_local.serve.server import is_loopback

    assert is_loopback(host) is loopback


def test_the_runtime_imports_no_server_stack():
    probe = "import sys, r2r_local, r2r_local.cli; r2r_local.cli.build_parser(); print(' '.join(sys.modules))"
    mods = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split())
    server_stack = ("starlette", "uvicorn", "fastapi", "pydantic", "prometheus_client", "openai", "httpx")
    assert not {m for m in mods if m.split(".")[0] in server_stack}
