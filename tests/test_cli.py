"""`r2r generate` as a user runs it: the JSON contract, streaming, and one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from settings import THREADS

from router_files import linear_router

TIMEOUT = 180


def r2r(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, input=stdin)


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def base(smollm2):
    return ["generate", "--small", str(smollm2), "--large", str(smollm2), "--threads", str(THREADS), "--n-ctx", "512"]


def test_json_contract(base):
    proc = r2r(*base, "--router", "random:0.3", "--prompt", "What is 2+2?", "--max-tokens", "24", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"text", "tokens", "stats", "config"}
    assert doc["text"] == "".join(t["text"] for t in doc["tokens"])
    assert all(set(t) == {"id", "text", "source", "p"} and t["source"] in ("small", "large") for t in doc["tokens"])
    stats = doc["stats"]
    for key in ["n_tokens", "large_tokens", "large_share", "large_calls", "tokens_per_s", "activated_params_b",
                "time_small_s", "time_router_s", "time_large_s"]:
        assert key in stats
    assert stats["n_tokens"] == len(doc["tokens"])
    assert stats["large_tokens"] == sum(t["source"] == "large" for t in doc["tokens"])
    assert doc["config"]["router"] == "random:0.3" and doc["config"]["sampling"]["temperature"] == 0.0


def test_streamed_text_equals_the_json_text(base):
    args = [*base, "--prompt", "Name a fruit.", "--max-tokens", "16"]
    streamed, doc = r2r(*args), json.loads(r2r(*args, "--json").stdout)
    assert streamed.returncode == 0 and streamed.stdout == doc["text"] + "\n"
    assert "tokens" in streamed.stderr and "tok/s" in streamed.stderr


def test_raw_prompt_and_prompt_file(base, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    from_file = json.loads(r2r(*base, "--prompt-file", str(f), "--raw", "--max-tokens", "8", "--json").stdout)
    inline = json.loads(r2r(*base, "--prompt", f.read_text(), "--raw", "--max-tokens", "8", "--json").stdout)
    assert from_file["tokens"] == inline["tokens"] and from_file["config"]["raw"] is True


def test_stop_string(base):
    doc = json.loads(r2r(*base, "--prompt", "Count from 1 to 10.", "--max-tokens", "64", "--stop", "5", "--json").stdout)
    assert doc["config"]["stop_reason"] == "stop" and "5" not in doc["text"]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, smollm2):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.gguf").write_bytes(b"")
    (d / "text.gguf").write_text("hello, I am not a model\n")
    data = Path(smollm2).read_bytes()
    (d / "head.gguf").write_bytes(data[:200_000])
    (d / "cut.gguf").write_bytes(data[: len(data) // 2])
    return d


@pytest.mark.parametrize("name,fragment", [
    ("missing.gguf", "file not found"), (".", "is a directory"), ("empty.gguf", "file is empty"),
    ("text.gguf", "not a GGUF file"), ("head.gguf", "truncated or corrupt"), ("cut.gguf", "not within the file bounds"),
])
def test_bad_model_files(base, bad_files, name, fragment):
    path = str(bad_files / name)
    proc = r2r(*base[:2], path, *base[3:], "--prompt", "hi")
    one_line_error(proc, path, fragment, "small model")


def test_bad_routers(base, tmp_path, smollm2):
    one_line_error(r2r(*base, "--router", "foo", "--prompt", "hi"), "unknown router 'foo'")
    one_line_error(r2r(*base, "--router", "random:x", "--prompt", "hi"), "'x' is not a number")
    one_line_error(r2r(*base, "--router", "random:1.5", "--prompt", "hi"), "0 <= P <= 1")
    one_line_error(r2r(*base, "--router", str(tmp_path / "none.onnx"), "--prompt", "hi"), "file not found")
    linear_router(tmp_path / "small.onnx", 64)
    one_line_error(r2r(*base, "--router", str(tmp_path / "small.onnx"), "--prompt", "hi"), "hidden size 64")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01garbage" * 10)
    (tmp_path / "junk.json").write_text(json.dumps({"threshold": 0.5, "d": 576}))
    one_line_error(r2r(*base, "--router", str(tmp_path / "junk.onnx"), "--prompt", "hi"), "not a loadable ONNX model")


@pytest.mark.parametrize("flags,fragment", [
    (["--temperature", "-1"], "temperature must be >= 0"), (["--top-p", "0"], "top-p must be in (0, 1]"),
    (["--top-k", "-2"], "top-k must be >= 0"), (["--max-tokens", "0"], "max-tokens must be >= 1"),
    (["--temperature", "warm"], "invalid float value"), (["--n-ctx", "8"], "n-ctx must be between 256 and"),
    (["--n-ctx", "300"], "must be a multiple of 256 (llama.cpp rounds other lengths up), got 300: use 256 or 512"),
])
def test_invalid_sampling_and_limits(base, flags, fragment):
    one_line_error(r2r(*base, "--prompt", "hi", *flags), fragment)


def test_prompt_longer_than_the_context(base):
    one_line_error(r2r(*base[:-1], "256", "--prompt", "word " * 400), "but the context holds 256")


def test_prompt_file_problems(base, tmp_path):
    one_line_error(r2r(*base, "--prompt-file", str(tmp_path / "nope.txt")), "file not found")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    one_line_error(r2r(*base, "--prompt-file", str(tmp_path / "bin.txt")), "cannot read it as UTF-8")
    one_line_error(r2r(*base, "--prompt", "", "--raw"), "the prompt is empty")


def test_summary_line_counts_params_in_a_unit_that_fits(tmp_path, monkeypatch):
    """The demo pair has ~0.2M and ~1.2M parameters: "440K", not "0.00044B"."""
    import re

    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    proc = r2r("generate", "--demo", "--prompt", "347+589", "--max-tokens", "8", "--threads", str(THREADS))
    assert proc.returncode == 0, proc.stderr
    summary = proc.stderr.strip().splitlines()[-1]
    assert re.search(r", \d{1,3}(\.\d{1,2})?[KM] activated params, ", summary), summary


def test_missing_prompt_is_a_usage_error(base):
    one_line_error(r2r(*base), "--prompt")
