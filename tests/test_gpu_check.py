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
    b = tmp_path / "bench.json"
    b.write_text(json.dumps(bench))
    args = [str(b)]
    if router is not None:
        (tmp_path / "router.json").write_text(json.dumps(router))
        args.append(str(tmp_path / "router.json"))
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check_summary.py"), *args],
                          capture_output=True, text=True, timeout=60)


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
