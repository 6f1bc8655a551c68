"""The shipped demo pair (models/demo/): files match the manifest, both load in llama.cpp, and
the large model answers fixed problems through its own chat template rendered with jinja2."""

from __future__ import annotations

import hashlib
import re

import pytest

from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import ModelSpec
from r2r_local.demo import demo_pair, load_manifest, task, template
from r2r_local.demo.evaluate import evaluate, greedy

jinja2 = pytest.importorskip("jinja2")

FIXED = ["347+589", "What is 347 + 589?", "Add 12 and 9999.", "what is 4321 plus 678?", "55 + 45"]


@pytest.fixture(scope="module")
def pair():
    return demo_pair()


@pytest.fixture(scope="module")
def large(pair):
    with LlamaCppBackend(ModelSpec(str(pair.large), n_ctx=512, threads=2, role="large")) as be:
        yield be


def test_files_match_manifest(pair):
    manifest = load_manifest()
    for role, path in (("small", pair.small), ("large", pair.large)):
        entry = manifest["models"][role]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert path.stat().st_size == entry["size_bytes"]
    small, large = manifest["models"]["small"], manifest["models"]["large"]
    assert large["n_params"] >= 8 * small["n_params"]
    total = sum(m["size_bytes"] for m in manifest["models"].values())
    assert total <= 16 * 2**20


def test_both_load_and_share_the_tokenizer(pair, large):
    with LlamaCppBackend(ModelSpec(str(pair.small), n_ctx=512, role="small")) as small:
        assert small.vocab() == large.vocab()
        assert small.chat_template == large.chat_template == template.CHAT_TEMPLATE
        assert small.n_params * 8 <= large.n_params
    assert large.meta("tokenizer.ggml.pre") == "qwen2"
    ids = large.tokenize(" units tens hundreds thousands", add_special=False, parse_special=False)
    assert len(ids) == 4


def _prompt_from_gguf_template(backend, message: str) -> str:
    env = jinja2.Environment()
    return env.from_string(backend.chat_template).render(
        messages=[{"role": "user", "content": message}], add_generation_prompt=True
    )


@pytest.mark.parametrize("message", FIXED)
def test_large_answers_fixed_problems(large, message):
    a, b = (int(x) for x in re.findall(r"\d+", message))
    rendered = _prompt_from_gguf_template(large, message)
    assert rendered == template.prompt(message)
    large.slot.truncate(0)
    text, _ = greedy(large, message)
    problem = task.Problem(a, b, message)
    assert task.is_correct(problem, text), text
    assert task.check_trace(problem, text), text
    assert text.startswith("<think>") and f"= {a + b}" in text.split("</think>")[1]


def test_evaluate_reports_accuracy(large):
    res = evaluate(large, task.problems(99, 10))
    assert res.n == 10 and 0 <= res.correct <= 10 and res.n_tokens > 0
    assert res.to_json()["accuracy"] == round(res.correct / 10, 4)
