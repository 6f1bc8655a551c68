"""`r2r serve`'s per-request modes that check drafts (`<id>:verify`, `<id>:spec:K`) on the demo
pair, through the real `openai` client: listed, answered with only checked text (streamed chunks
equal the whole answer and `r2r generate --verify / --spec K`), bad K refused in OpenAI's shape."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import openai
import pytest

from r2r_local.serve.think import split
from serve_server import ROOT, THREADS, Server

DEMO_ID = "demo-small-q8_0+demo-large-q8_0"
# A problem where both modes rewind drafts (2 rewinds each, measured with r2r generate --json).
PROBLEM = "4821+979"
MODES = {"verify": ("--verify",), "spec:4": ("--spec", "4")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server("--demo", home=tmp_path_factory.mktemp("home"))
    yield s
    assert s.stop() == 0, s.log


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=120)


def generate(*flags: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", "generate", "--demo", "--threads", str(THREADS),
                           "--json", "--prompt", PROBLEM, *flags], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_models_lists_the_checked_modes(client):
    ids = [m.id for m in client.models.list()]
    assert ids == [DEMO_ID] + [f"{DEMO_ID}:{m}" for m in ("small", "large", "verify", "spec:4")]
    assert client.models.retrieve(f"{DEMO_ID}:spec:7").id == f"{DEMO_ID}:spec:7"  # any K in range is served
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(f"{DEMO_ID}:spec:65")


@pytest.mark.parametrize("mode", list(MODES))
def test_a_checked_mode_streams_only_checked_text(client, mode):
    local = generate(*MODES[mode])
    assert local["stats"]["rewinds"] > 0  # drafts were cut: text that was never final was not sent
    ask = dict(model=f"{DEMO_ID}:{mode}", messages=[{"role": "user", "content": PROBLEM}], temperature=0)
    whole = client.chat.completions.create(**ask, extra_body={"return_tokens": True})
    chunks = list(client.chat.completions.create(**ask, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    message = whole.choices[0].message
    assert (reasoning, content) == (message.model_extra["reasoning_content"], message.content)
    assert (reasoning, content) == split(local["text"])
    assert whole.model_extra["r2r"]["tokens"] == [t["id"] for t in local["tokens"]]
    assert whole.model == f"{DEMO_ID}:{mode}" and whole.model_extra["r2r"]["policy"] == local["config"]["policy"]


@pytest.mark.parametrize("suffix", ["spec:0", "spec:65", "spec:04", "spec:x", "spec", "fast"])
def test_a_mode_the_server_does_not_have_is_refused_in_openais_shape(server, client, suffix):
    name = f"{DEMO_ID}:{suffix}"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": PROBLEM}])
    r = httpx.post(server.v1 + "/chat/completions", json={"model": name, "messages": [{"role": "user", "content": "1+1"}]})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model" and error["type"] == "invalid_request_error"
    assert error["message"] == (f"no model '{name}' here: the modes of {DEMO_ID} are :small, :large, :verify and "
                                ":spec:K with 1 <= K <= 64")
