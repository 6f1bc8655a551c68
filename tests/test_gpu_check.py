"""The prepared GPU check's pieces that can run here: the summary arithmetic and a clear stop on a
machine without a GPU (the reference router's size is tested in test_reference_router.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"modes": {"small": {"tokens_per_s": 200.0, "large_share": 0.0},
                   "large": {"tokens_per_s": 30.0, "large_share": 1.0},
                   "r2r": {"tokens_per_s": 99.0, "large_share": 0.124, "ideal_tokens_per_s": 110.0,
                           "time_router_s": 0.5}}}
ROUTER = {"per_router": {"torch-cuda-graph": {"router_plus_features_ms": 0.5}}}  # scripts/router_cost.py --json


def summary(tmp_path: Path, bench: dict, router: dict | None = None) -> subprocess.CompletedProcess:
    if router is None:
        return summary_with(tmp_path, bench)
    (tmp_path / "router.json").write_text(json.dumps(router))
    return summary_with(tmp_path, bench, str(tmp_path / "router.json"))


def test_summary_figures(tmp_path):
    proc = summary(tmp_path, BENCH, ROUTER)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "speedup of r2r over the large model alone: 3.30x (goal >= 3x: met)" in out
    assert "efficiency against the ideal: 99.0 / 110.0 tok/s = 0.90" in out
    assert "share: 12.4%" in out and "time_router_s=0.5" in out
    # 0.5 ms of a 5 ms small step
    assert "router (torch-cuda-graph) plus features per token: 0.500 ms = 0.10 of one small-model step" in out


def test_summary_names_a_missing_bench_field(tmp_path):
    bench = json.loads(json.dumps(BENCH))
    del bench["modes"]["r2r"]["ideal_tokens_per_s"]
    proc = summary(tmp_path, bench)
    assert proc.returncode == 3 and "modes.r2r.ideal_tokens_per_s" in proc.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_gpu_check_stops_clearly_without_a_gpu():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "FAILED: nvidia-smi not found" in proc.stderr


def _summary_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check_summary", ROOT / "scripts" / "gpu_check_summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_expected_catch_up_cost_of_a_random_router():
    mod = _summary_module()
    # constant cost: the expectation is that cost; linear cost a + b k: a + b E[K] = a + b / p
    assert mod.expected_call_cost({1: 0.02, 8: 0.02}, 0.124) == pytest.approx(0.02, rel=1e-6)
    linear = {1: 0.010 + 0.002, 4: 0.010 + 0.008, 16: 0.010 + 0.032}
    assert mod.expected_call_cost(linear, 0.124) == pytest.approx(0.010 + 0.002 / 0.124, rel=1e-6)
    # a step between k=8 and k=9 (another matrix kernel): interpolation stays on the measured points
    step = {1: 0.014, 8: 0.016, 9: 0.024, 16: 0.026}
    assert mod.call_cost(step, 8) == 0.016 and mod.call_cost(step, 9) == 0.024
    assert mod.call_cost(step, 4) == pytest.approx(0.014 + 0.002 * 3 / 7)
    assert mod.call_cost(step, 32) == pytest.approx(0.026 + 0.002 * 16 / 7)


def test_summary_projects_the_nominal_share(tmp_path):
    bench = json.loads(json.dumps(BENCH))
    bench["modes"]["r2r"]["ideal_parts"] = {"t_small_step_s": 0.005, "t_router_s": 0.0}
    curve = tmp_path / "curve.json"
    curve.write_text(json.dumps({"results": [{"catch_up": {"1": {"median_ms": 40.0}, "16": {"median_ms": 40.0}}}]}))
    proc = summary_with(tmp_path, bench, "--catch-up", str(curve))
    assert proc.returncode == 0, proc.stderr
    # 1 / (0.005 + 0.124 * 0.040) = 100.4 tok/s = 3.35x of 30 tok/s; the run measured 99.0 of its 100.4 ideal
    assert "projected ideal at this run's share 0.124: 100.4 tok/s (measured 99.0, 0.99 of it)" in proc.stdout
    assert "PROJECTION (not a measurement) at the nominal share 0.124: ideal 100.4 tok/s = 3.35x" in proc.stdout
    curve.write_text(json.dumps({"results": [{"median_ms": 1.0}]}))
    proc = summary_with(tmp_path, bench, "--catch-up", str(curve))
    assert proc.returncode == 3 and "has no catch-up times" in proc.stderr


def summary_with(tmp_path: Path, bench: dict, *extra: str) -> subprocess.CompletedProcess:
    b = tmp_path / "bench.json"
    b.write_text(json.dumps(bench))
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check_summary.py"), str(b), *extra],
                          capture_output=True, text=True, timeout=60)


def test_summary_help_and_bad_files_are_one_line(tmp_path):
    script = [sys.executable, str(ROOT / "scripts" / "gpu_check_summary.py")]
    proc = subprocess.run([*script, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: gpu_check_summary.py") and not proc.stderr
    proc = subprocess.run([*script, str(tmp_path / "none.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr == f"gpu_check_summary: {tmp_path / 'none.json'}: No such file or directory\n"
    (tmp_path / "text.json").write_text("not json")
    proc = subprocess.run([*script, str(tmp_path / "text.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and "not a JSON file" in proc.stderr
