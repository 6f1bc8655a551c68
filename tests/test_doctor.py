"""`r2r doctor` as a user runs it on this CPU-only machine (a fresh interpreter, an empty config)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from r2r_local.doctor import FIX_LLAMA_CUDA, FIX_ORT_GPU
from r2r_local.gpu import query_gpus
from r2r_local.router.onnx_probe import tiny_model_bytes
from r2r_local.units import format_bytes
from router_files import linear_router
from shape_headers import R1_1_5B, R1_32B, write_header_only

pytestmark = pytest.mark.skipif(bool(query_gpus().gpus), reason="these expectations are for a machine without a GPU")


def doctor(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, R2R_CONFIG_DIR=str(tmp_path / "cfg"), R2R_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", "doctor", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def r1_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("r1")
    return (str(write_header_only(d / "small.gguf", R1_1_5B, full_size=True)), str(write_header_only(d / "large.gguf", R1_32B, full_size=True)))


def test_report_on_a_cpu_only_machine(tmp_path):
    proc = doctor(tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "no GPU found" in out
    assert "CPU-only build" in out
    assert FIX_LLAMA_CUDA not in out and FIX_ORT_GPU not in out  # GPU builds are no fix without a GPU
    assert "nothing to do on a machine without an NVIDIA GPU" in out
    assert "CUDA session: no" in out
    assert "no small model configured" in out and "r2r models pull" in out
    assert "Traceback" not in proc.stderr and "onnxruntime" not in proc.stderr  # the probe stays quiet


def test_strict_exits_nonzero_when_a_problem_was_found(tmp_path):
    assert doctor(tmp_path, "--strict").returncode == 1


def test_json_report(tmp_path):
    proc = doctor(tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["llama_cpp"]["gpu_offload"] is False and doc["llama_cpp"]["version"] == "0.3.36"
    assert "CPU" in doc["llama_cpp"]["system_info"]
    assert doc["gpus"]["devices"] == [] and doc["gpus"]["detail"].startswith("no GPU found")
    assert doc["onnxruntime"]["cuda_ok"] is False
    assert doc["fit"] is None and doc["ok"] is False
    fixes = {f["fix"] for f in doc["findings"]}
    assert FIX_LLAMA_CUDA not in fixes and FIX_ORT_GPU not in fixes


def test_fit_plan_for_the_r1_pair_on_an_assumed_card(tmp_path, r1_files):
    small, large = r1_files
    proc = doctor(tmp_path, "--small", small, "--large", large, "--assume-free-gb", "12", "--json")
    doc = json.loads(proc.stdout)
    assert doc["fit"]["assumed_free"] and doc["fit"]["small"]["gpu_layers"] == 29
    assert 0 < doc["fit"]["large"]["gpu_layers"] < 64
    assert doc["models"]["large"]["n_layer"] == 64
    text = doctor(tmp_path, "--small", small, "--large", large, "--assume-free-gb", "12").stdout
    assert f"large: {doc['fit']['large']['gpu_layers']}/64 layers on GPU" in text
    assert f"--large-gpu-layers {doc['fit']['large']['gpu_layers']}" in text


def test_layer_flags_are_checked_against_the_card(tmp_path, r1_files):
    small, large = r1_files
    doc = json.loads(doctor(tmp_path, "--small", small, "--large", large, "--assume-free-gb", "12",
                            "--large-gpu-layers", "-1", "--json").stdout)
    assert doc["fit"]["source"] == "flags" and doc["fit"]["large"]["gpu_layers"] == 65
    assert any(line.startswith("warning: the layers asked for need") for line in doc["fit"]["lines"])


def test_configured_layers_are_checked_as_a_load_would_use_them(tmp_path, r1_files):
    small, large = r1_files
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.toml").write_text(f'[models]\nsmall = "{small}"\nlarge = "{large}"\n'
                                                  "large_gpu_layers = 3\n")
    doc = json.loads(doctor(tmp_path, "--assume-free-gb", "12", "--json").stdout)
    assert doc["fit"]["large"]["gpu_layers"] == 3 and doc["fit"]["small"]["gpu_layers"] == 29
    doc = json.loads(doctor(tmp_path, "--assume-free-gb", "12", "--large-gpu-layers", "5", "--json").stdout)
    assert doc["fit"]["large"]["gpu_layers"] == 5  # the flag wins


def test_a_card_too_small_is_a_problem_with_a_fix_not_a_crash(tmp_path, r1_files):
    small, large = r1_files
    proc = doctor(tmp_path, "--small", small, "--large", large, "--assume-free-gb", "1.5")
    assert proc.returncode == 0, proc.stderr
    assert "small model does not fit" in proc.stdout and "--small-gpu-layers 0" in proc.stdout


def test_no_gpu_plan_without_an_assumed_card(tmp_path, r1_files):
    small, large = r1_files
    doc = json.loads(doctor(tmp_path, "--small", small, "--large", large, "--json").stdout)
    assert doc["fit"]["source"] == "no-gpu" and doc["fit"]["large"]["gpu_layers"] == 0


def test_gpu_builds_are_suggested_where_a_gpu_is_found(tmp_path, monkeypatch):
    """The same CPU-only llama.cpp and CPU onnxruntime on a machine whose driver lists a GPU."""
    import r2r_local.gpu as gpu
    from r2r_local.doctor import diagnose

    card = gpu.GpuInfo(index=0, name="test card", total_bytes=24 * 10**9, free_bytes=20 * 10**9, source="test")
    monkeypatch.setattr(gpu, "query_gpus", lambda: gpu.GpuQuery(gpus=(card,), driver="1", detail="1 GPU"))
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    fixes = {f.fix for f in diagnose().problems}
    assert FIX_LLAMA_CUDA in fixes and any("onnxruntime-gpu" in fix for fix in fixes)


def test_demo_checks_the_shipped_pair(tmp_path):
    doc = json.loads(doctor(tmp_path, "--demo", "--json").stdout)
    assert doc["models"]["small"]["path"] == str(DEMO / "demo-small-q8_0.gguf")
    assert doc["models"]["large"]["path"] == str(DEMO / "demo-large-q8_0.gguf")
    assert doc["models"]["router"]["spec"] == str(DEMO / "router.onnx") and doc["models"]["source"].endswith("(--demo)")
    assert doc["ok"] and doc["fit"] is not None
    text = doctor(tmp_path, "--demo").stdout
    small_bytes = (DEMO / "demo-small-q8_0.gguf").stat().st_size
    assert f"file {format_bytes(small_bytes)}, qwen2" in text and " KB, qwen2" in text and "0.00 GB" not in text
    proc = doctor(tmp_path, "--demo", "--small", str(DEMO / "demo-small-q8_0.gguf"))
    assert proc.returncode == 1 and "--demo uses the built-in pair" in proc.stderr


def test_a_bad_model_path_is_reported(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf")
    proc = doctor(tmp_path, "--small", str(bad), "--large", str(bad))
    assert proc.returncode == 0 and "not a GGUF file" in proc.stdout


def test_the_probe_model_is_valid_onnx_and_runs():
    import onnx
    import onnxruntime as ort

    model = onnx.load_from_string(tiny_model_bytes())
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Add"]
    sess = ort.InferenceSession(tiny_model_bytes(), providers=["CPUExecutionProvider"])
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    assert np.array_equal(sess.run(None, {"x": x})[0], 2 * x)


def test_a_big_float32_router_on_the_cpu_gets_the_int8_hint(tmp_path):
    router = tmp_path / "router.onnx"
    with router.open("wb") as f:  # doctor reads only the size and the sidecar: a sparse file will do
        f.truncate(225_000_000)
    side = {"format": "r2r-local-router", "version": 1, "threshold": 0.5, "d": 1536, "precision": "fp32"}
    router.with_suffix(".json").write_text(json.dumps(side))
    proc = doctor(tmp_path, "--router", str(router))
    assert proc.returncode == 0, proc.stderr
    assert "225 MB of float32 weights read on the CPU" in proc.stdout
    assert f"python scripts/export.py router-int8 {router} {tmp_path / 'router-int8.onnx'}" in proc.stdout
    router.with_suffix(".json").write_text(json.dumps(side | {"precision": "int8"}))
    proc = doctor(tmp_path, "--router", str(router), "--json")
    doc = json.loads(proc.stdout)
    assert doc["models"]["router"]["precision"] == "int8"
    assert not any("float32 weights" in f["what"] for f in doc["findings"])


def _diagnose(tmp_path, monkeypatch, config: str | None = None, **kw):
    from r2r_local.doctor import diagnose

    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    if config is not None:
        (tmp_path / "cfg").mkdir(exist_ok=True)
        (tmp_path / "cfg" / "config.toml").write_text(config)
    return [f.what for f in diagnose(**kw).problems]


DEMO = Path(__file__).resolve().parents[1] / "models" / "demo"


@pytest.mark.parametrize("edit,fragment", [
    (lambda d: d[:100_000], "the file is truncated"),
    (lambda d: d[:4] + (99).to_bytes(4, "little") + d[8:], "GGUF version 99"),
])
def test_a_truncated_or_unsupported_gguf_is_a_problem(tmp_path, monkeypatch, edit, fragment):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(edit((DEMO / "demo-small-q8_0.gguf").read_bytes()))
    problems = _diagnose(tmp_path, monkeypatch, small=str(bad), large=str(DEMO / "demo-large-q8_0.gguf"))
    assert any(fragment in p and str(bad) in p for p in problems), problems


def _router_case(tmp_path, case: str) -> str:
    path = tmp_path / "r.onnx"
    linear_router(path, 64 if case != "wrong-d" else 32)
    if case == "corrupt":
        path.write_bytes(b"\x08\x01garbage" * 10)
    if case == "sidecar":
        path.with_suffix(".json").write_text(json.dumps({"threshold": 0.5, "d": 64, "small_model": "x"}))
    return str(path)


@pytest.mark.parametrize("case,fragment", [("corrupt", "not a loadable ONNX model"), ("wrong-d", "hidden size 32"),
                                           ("sidecar", "'small_model' must be an object")])
def test_a_bad_router_is_a_problem(tmp_path, monkeypatch, case, fragment):
    router = _router_case(tmp_path, case)
    problems = _diagnose(tmp_path, monkeypatch, small=str(DEMO / "demo-small-q8_0.gguf"),
                         large=str(DEMO / "demo-large-q8_0.gguf"), router=router)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("line,fragment", [('router = "random:abc"', "'abc' is not a number"),
                                           ("threads = 0", "models.threads must be between 1 and 1024"),
                                           ("small_gpu_layers = -7", "models.small_gpu_layers must be >= -1"),
                                           ("n_ctx = 5", "models.n_ctx must be between 256")])
def test_bad_config_values_are_each_a_problem(tmp_path, monkeypatch, line, fragment):
    problems = _diagnose(tmp_path, monkeypatch, config=f'[models]\n{line}\nlarge_gpu_layers = -5\n')
    assert any(fragment in p and "config.toml" in p for p in problems), problems
    assert any("models.large_gpu_layers" in p for p in problems)  # every bad value, not only the first
