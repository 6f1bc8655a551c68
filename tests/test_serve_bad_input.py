"""Bad input to `r2r serve`: each gets its status and OpenAI's error object (never a traceback),
and the next good request is answered as if nothing happened."""

from __future__ import annotations

import json

import httpx
import pytest

from serve_server import Server, metric

GOOD = {"messages": [{"role": "user", "content": "347+589"}]}
CHAT, TEXT = "/v1/chat/completions", "/v1/completions"
DEMO_CTX, DEMO_VOCAB = 4096, 356


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server("--demo", home=tmp_path_factory.mktemp("home"))
    yield s
    assert s.stop() == 0, s.log
    assert "Traceback" not in s.log


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    s = Server("--demo", env={"R2R_API_KEY": "s3cret-key"}, home=tmp_path_factory.mktemp("home"))
    yield s
    assert s.stop() == 0, s.log
    assert "s3cret-key" not in s.log


def chat(**fields):
    return json.dumps({**GOOD, **fields}).encode()


# (name, method, path, body, status, param, code); param/code None where OpenAI's are null.
CASES = [
    ("malformed JSON", "POST", CHAT, b'{"messages": [', 400, None, "invalid_json"),
    ("not UTF-8", "POST", CHAT, '{"messages": [{"role": "user", "content": "caf\u00e9"}]}'.encode("latin-1"), 400,
     None, "invalid_encoding"),
    ("UTF-16", "POST", CHAT, json.dumps(GOOD).encode("utf-16"), 400, None, "invalid_encoding"),
    ("not an object", "POST", CHAT, b"[1, 2]", 400, None, "invalid_json"),
    ("nested too deeply", "POST", CHAT, b"[" * 200_000 + b"]" * 200_000, 400, None, "invalid_json"),
    ("no messages", "POST", CHAT, b"{}", 400, "messages", "invalid_value"),
    ("messages not a list", "POST", CHAT, chat(messages="347+589"), 400, "messages", "invalid_value"),
    ("empty messages", "POST", CHAT, chat(messages=[]), 400, "messages", "invalid_value"),
    ("unknown role", "POST", CHAT, chat(messages=[{"role": "wizard", "content": "hi"}]), 400, "messages[0].role",
     "invalid_value"),
    ("tool role", "POST", CHAT, chat(messages=[{"role": "tool", "content": "hi"}]), 400, "messages[0].role",
     "invalid_value"),
    ("content a number", "POST", CHAT, chat(messages=[{"role": "user", "content": 5}]), 400, "messages[0].content",
     "invalid_value"),
    ("image content", "POST", CHAT, chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), 400,
     "messages[0].content[0].type", "invalid_value"),
    ("lone surrogate", "POST", CHAT, b'{"messages": [{"role": "user", "content": "\\ud800"}]}', 400, "messages",
     "invalid_value"),
    ("n of 2", "POST", CHAT, chat(n=2), 400, "n", "invalid_value"),
    ("max_tokens a string", "POST", CHAT, chat(max_tokens="5"), 400, "max_tokens", "invalid_value"),
    ("max_tokens true", "POST", CHAT, chat(max_tokens=True), 400, "max_tokens", "invalid_value"),
    ("negative max_tokens", "POST", CHAT, chat(max_tokens=-1), 400, "max_tokens", "invalid_value"),
    ("zero max_completion_tokens", "POST", CHAT, chat(max_completion_tokens=0), 400, "max_completion_tokens",
     "invalid_value"),
    ("huge max_tokens", "POST", CHAT, chat(max_tokens=10**12), 400, "max_tokens", "invalid_value"),
    ("temperature a string", "POST", CHAT, chat(temperature="hot"), 400, "temperature", "invalid_value"),
    ("temperature NaN", "POST", CHAT, b'{"messages": [{"role": "user", "content": "1+1"}], "temperature": NaN}', 400,
     "temperature", "invalid_value"),
    ("temperature 5", "POST", CHAT, chat(temperature=5), 400, "temperature", "invalid_value"),
    ("top_p 0", "POST", CHAT, chat(top_p=0), 400, "top_p", "invalid_value"),
    ("negative seed", "POST", CHAT, chat(seed=-3), 400, "seed", "invalid_value"),
    ("stream a string", "POST", CHAT, chat(stream="yes"), 400, "stream", "invalid_value"),
    ("empty stop", "POST", CHAT, chat(stop=[""]), 400, "stop", "invalid_value"),
    ("tools", "POST", CHAT, chat(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools",
     "invalid_value"),
    ("thinking switch not a bool", "POST", CHAT, chat(chat_template_kwargs={"enable_thinking": "no"}), 400,
     "chat_template_kwargs", "invalid_value"),
    ("thinking switch the template lacks", "POST", CHAT, chat(chat_template_kwargs={"enable_thinking": False}), 400,
     "chat_template_kwargs", "invalid_value"),
    ("threshold 2", "POST", CHAT, chat(threshold=2), 400, "threshold", "invalid_value"),
    ("prompt longer than the context (chat)", "POST", CHAT,
     chat(messages=[{"role": "user", "content": "1+1 " * DEMO_CTX}]), 400, "messages", "context_length_exceeded"),
    ("prompt longer than the context (ids)", "POST", TEXT, json.dumps({"prompt": [5] * DEMO_CTX}).encode(), 400,
     "prompt", "context_length_exceeded"),
    ("token id past the vocabulary", "POST", TEXT, json.dumps({"prompt": [5, DEMO_VOCAB]}).encode(), 400, "prompt[1]",
     "invalid_token"),
    ("negative token id", "POST", TEXT, json.dumps({"prompt": [-1, 5]}).encode(), 400, "prompt[0]", "invalid_token"),
    ("token id a bool", "POST", TEXT, json.dumps({"prompt": [5, True]}).encode(), 400, "prompt", "invalid_value"),
    ("empty prompt", "POST", TEXT, json.dumps({"prompt": ""}).encode(), 400, "prompt", "invalid_value"),
    ("no prompt", "POST", TEXT, b"{}", 400, "prompt", "invalid_value"),
    ("several prompts", "POST", TEXT, json.dumps({"prompt": ["1+1", "2+2"]}).encode(), 400, "prompt",
     "invalid_value"),
    ("echo", "POST", TEXT, json.dumps({"prompt": "1+1", "echo": True}).encode(), 400, "echo", "invalid_value"),
    ("unknown path", "POST", "/v1/embeddings", json.dumps({"input": "x"}).encode(), 404, None, "not_found"),
    ("unknown model", "GET", "/v1/models/gpt-4o", b"", 404, "model", "model_not_found"),
    ("wrong method", "GET", CHAT, b"", 405, None, "method_not_allowed"),
]


def check_error(r: httpx.Response, status: int, param: str | None, code: str | None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error = body["error"]
    assert error["param"] == param and error["code"] == code, error
    assert error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"]
    return error


def good_request_works(server: Server) -> None:
    r = httpx.post(server.url + CHAT, json=GOOD, timeout=120)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "So 347+589 = 936."


@pytest.mark.parametrize("name,method,path,body,status,param,code", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_an_error_object_and_the_server_goes_on(server, name, method, path, body, status, param, code):
    r = httpx.request(method, server.url + path, content=body or None, timeout=120,
                      headers={"content-type": "application/json"} if body else {})
    error = check_error(r, status, param, code)
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    good_request_works(server)


def test_errors_name_the_problem(server):
    r = httpx.post(server.url + CHAT, content=chat(messages=[{"role": "wizard", "content": "hi"}]))
    assert r.json()["error"]["message"] == ("messages[0].role: unknown role 'wizard' (known: system, developer, "
                                            "user, assistant)")
    r = httpx.post(server.url + CHAT, content=chat(messages=[{"role": "user", "content": 5}]))
    assert r.json()["error"]["message"] == ("messages[0].content: wrong type (expected a string or a list of "
                                            "content parts)")
    r = httpx.post(server.url + TEXT, content=json.dumps({"prompt": [5] * DEMO_CTX}).encode())
    assert r.json()["error"]["message"] == (f"the prompt has {DEMO_CTX} tokens but the context holds {DEMO_CTX} "
                                            "(shorten it, or restart the server with a larger --n-ctx)")


def test_a_body_over_the_limit_gets_413_with_or_without_a_length(server):
    big = b'{"messages": [{"role": "user", "content": "' + b"x" * (16 * 2**20) + b'"}]}'
    check_error(httpx.post(server.url + CHAT, content=big, timeout=120), 413, None, "request_too_large")

    def chunked():  # no Content-Length: the limit holds while reading
        for i in range(0, len(big), 2**20):
            yield big[i:i + 2**20]

    check_error(httpx.post(server.url + CHAT, content=chunked(), timeout=120), 413, None, "request_too_large")
    good_request_works(server)


def test_bad_requests_are_counted(server):
    before = metric(httpx.get(server.url + "/metrics").text, "r2r_requests_total", outcome="invalid")
    httpx.post(server.url + CHAT, content=b"{")
    after = metric(httpx.get(server.url + "/metrics").text, "r2r_requests_total", outcome="invalid")
    assert after == before + 1


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Bearer s3cret-ke", "Basic s3cret-key", "s3cret-key"])
def test_a_missing_or_wrong_key_gets_401(keyed, header):
    r = httpx.post(keyed.url + CHAT, json=GOOD, headers={"authorization": header} if header else {})
    check_error(r, 401, None, "invalid_api_key")
    assert r.headers["www-authenticate"] == "Bearer"
    check_error(httpx.get(keyed.url + "/metrics", headers={"authorization": header} if header else {}), 401, None,
                "invalid_api_key")
    ok = httpx.post(keyed.url + CHAT, json=GOOD, headers={"authorization": "Bearer s3cret-key"}, timeout=120)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "So 347+589 = 936."


def test_the_key_is_needed_everywhere_but_health(keyed):
    import openai

    assert httpx.get(keyed.url + "/health").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed.v1, api_key="nope", max_retries=0).models.list()
    assert len(openai.OpenAI(base_url=keyed.v1, api_key="s3cret-key").models.list().data) == 5
