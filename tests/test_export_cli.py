"""scripts/export.py on bad input: one line on stderr naming the file, non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "export.py"


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_gguf_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    assert_one_line_error(run("gguf", str(missing), str(tmp_path / "o.gguf")), str(missing), "no such folder")


def test_gguf_folder_without_config(tmp_path):
    assert_one_line_error(run("gguf", str(tmp_path), str(tmp_path / "o.gguf")), str(tmp_path), "no config.json")


def test_gguf_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    assert_one_line_error(run("gguf", str(tmp_path), str(tmp_path / "o.gguf")), "config.json", "GPT2LMHeadModel")


def test_gguf_broken_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    assert_one_line_error(run("gguf", str(tmp_path), str(tmp_path / "o.gguf")), "config.json", "not valid JSON")


def test_gguf_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "max_position_embeddings": 128}))
    proc = run("gguf", str(tmp_path), str(tmp_path / "o.gguf"))
    assert_one_line_error(proc, str(tmp_path), "model.safetensors")


def test_quantize_not_a_gguf(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model at all")
    assert_one_line_error(run("quantize", str(bogus), str(tmp_path / "q.gguf"), "Q8_0"), str(bogus), "not a GGUF")


def test_quantize_missing_file(tmp_path):
    missing = tmp_path / "missing.gguf"
    assert_one_line_error(run("quantize", str(missing), str(tmp_path / "q.gguf"), "Q8_0"), str(missing), "not found")


def test_quantize_unknown_type(tmp_path):
    proc = run("quantize", str(tmp_path / "x.gguf"), str(tmp_path / "q.gguf"), "Q9_9")
    assert_one_line_error(proc, "Q9_9", "unknown quantization type")


def test_unknown_outtype_is_a_usage_error(tmp_path):
    proc = run("gguf", str(tmp_path), str(tmp_path / "o.gguf"), "--outtype", "q8_0")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_quantize_real_model(tmp_path):
    """The happy path on the shipped small demo model: prints what it wrote."""
    from r2r_local.demo.paths import demo_pair

    try:
        src = demo_pair().small
    except Exception as e:  # the demo pair is committed; a checkout without it skips
        pytest.skip(str(e))
    dst = tmp_path / "small-q4_0.gguf"
    proc = run("quantize", str(src), str(dst), "q4_0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {dst} (") and "Q4_0" in proc.stdout
    assert dst.read_bytes()[:4] == b"GGUF"
