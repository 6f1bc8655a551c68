"""Qwen3's think section: its own think token ids, its template's thinking switch, and both in
`r2r generate` (the chat app's side is in tests/tui/test_app_pilot.py).

The models are shape-true GGUFs (r2r_local/shapes) loaded by llama.cpp: one-layer models with the
full-size R1 and Qwen3 vocabularies, where the ids are the real ones, and the tiny qwen3 pair."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from settings import THREADS
from r2r_local.chat import (Message, chat_tokens, has_thinking_switch, prompt_opens_think, render_template,
                            think_tokens)
from r2r_local.config import ModelSpec
from r2r_local.errors import ConfigError
from r2r_local.shapes import get_shape, load_table, shape_from_dict
from r2r_local.shapes.tokenizers import KINDS
from r2r_local.shapes.writer import write_shape_model

ASK = [Message("user", "What is 2+2?")]


def test_qwen3_template_switch_writes_an_empty_think_section():
    template = KINDS["qwen3"].chat_template
    default = render_template(template, ASK)
    assert default == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert render_template(template, ASK, enable_thinking=True) == default
    assert render_template(template, ASK, enable_thinking=False) == default + "<think>\n\n</think>\n\n"


@pytest.mark.parametrize("template,switch", [(KINDS["qwen3"].chat_template, True), (KINDS["r1"].chat_template, False),
                                             (None, False), ("{{ raise_exception('no') }}", False)])
def test_which_templates_have_the_switch(template, switch):
    assert has_thinking_switch(template) is switch


def _one_layer(kind: str, tmp_path) -> str:
    """A one-layer model of the real 0.6B (Qwen3) or 1.5B (R1) vocabulary: the real special ids."""
    table = load_table()
    name = {"qwen3": "qwen3-0.6b", "r1": "r1-1.5b"}[kind]
    small = {"hidden_size": 32, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "ffn_size": 64, "context_length": 256}
    if kind == "qwen3":
        small["head_dim"] = 16
    shape = shape_from_dict(f"mini-{kind}", {**table["models"][name], **small}, table["families"])
    return str(write_shape_model(shape, "Q8_0", tmp_path / f"{kind}.gguf").path)


@pytest.fixture(scope="module")
def full_vocab(tmp_path_factory):
    d = tmp_path_factory.mktemp("vocab")
    return {kind: _one_layer(kind, d) for kind in ("qwen3", "r1")}


def _backend(path: str):
    from r2r_local.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(ModelSpec(path, n_ctx=256, threads=THREADS))


def test_each_model_has_its_own_think_ids(full_vocab):
    with _backend(full_vocab["qwen3"]) as q3, _backend(full_vocab["r1"]) as r1:
        assert (think_tokens(q3).open, think_tokens(q3).close) == (151667, 151668)
        assert (think_tokens(r1).open, think_tokens(r1).close) == (151648, 151649)


def test_where_the_prompt_leaves_the_model(full_vocab):
    """R1's prompt opens the section; Qwen3's leaves it to the model, or with thinking off closes
    the empty one it writes; R1 cannot be told not to think."""
    with _backend(full_vocab["qwen3"]) as q3, _backend(full_vocab["r1"]) as r1:
        assert prompt_opens_think(r1, chat_tokens(r1, ASK))
        assert not prompt_opens_think(q3, chat_tokens(q3, ASK))
        off = chat_tokens(q3, ASK, thinking=False)
        assert not prompt_opens_think(q3, off)
        assert off[:len(chat_tokens(q3, ASK))] == chat_tokens(q3, ASK) and 151667 in off and 151668 in off
        assert chat_tokens(q3, ASK, thinking=True) == chat_tokens(q3, ASK)
        with pytest.raises(ConfigError, match="no thinking switch"):
            chat_tokens(r1, ASK, thinking=False)


def test_text_fallback_when_the_vocabulary_splits_the_tags(smollm2):
    with _backend(str(smollm2)) as b:
        assert think_tokens(b) is None  # SmolLM2 has no <think> token
        assert prompt_opens_think(b, b.tokenize("Assistant: <think>\n", add_special=False, parse_special=True))
        assert not prompt_opens_think(b, chat_tokens(b, ASK))


# --- r2r generate ------------------------------------------------------------------------------

def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory):
    d = tmp_path_factory.mktemp("q3")
    return [str(write_shape_model(get_shape(f"test-tiny-qwen3-{size}"), "Q8_0", d / f"{size}.gguf").path)
            for size in ("small", "large")]


def _generate(small: str, large: str, *extra: str) -> subprocess.CompletedProcess:
    return r2r("generate", "--small", small, "--large", large, "--threads", str(THREADS), "--n-ctx", "256",
               "--router", "random:0.3", "--prompt", "What is 2+2?", "--max-tokens", "4", *extra)


def test_generate_turns_qwen3_thinking_off(tiny_qwen3):
    docs = {}
    for flag in ("", "--no-think", "--think"):
        proc = _generate(*tiny_qwen3, "--json", *([flag] if flag else []))
        assert proc.returncode == 0, proc.stderr
        docs[flag] = json.loads(proc.stdout)["config"]
    assert [docs[f]["thinking"] for f in ("", "--no-think", "--think")] == [None, False, True]
    assert all(doc["think_tokens"] == [1024, 1025] for doc in docs.values())  # the tiny family's ids
    # thinking off adds the template's empty section: <think>, "\n\n", </think>, "\n\n" at most 6 tokens
    assert 4 <= docs["--no-think"]["prompt_tokens"] - docs[""]["prompt_tokens"] <= 6
    assert docs["--think"]["prompt_tokens"] == docs[""]["prompt_tokens"]


def test_generate_refuses_a_switch_the_model_does_not_have(smollm2, tiny_qwen3):
    proc = _generate(str(smollm2), str(smollm2), "--no-think")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "no thinking switch" in proc.stderr
    proc = _generate(*tiny_qwen3, "--raw", "--think")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "--raw" in proc.stderr
