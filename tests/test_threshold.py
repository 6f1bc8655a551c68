"""`r2r threshold`: an ONNX router's threshold re-chosen on labelled data (no torch)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from label_files import synthetic_labels
from r2r_local.labeling.thresholds import rates, threshold_for_recall, threshold_for_share
from router_files import linear_router


def test_threshold_functions():
    p = np.linspace(0, 1, 101)[:-1]
    label = (p > 0.8).astype(np.int8)
    t = threshold_for_recall(p, label, 0.95)
    assert rates(p, label, t)["recall"] >= 0.95 and t == pytest.approx(0.81)
    assert rates(p, label, threshold_for_share(p, 0.12))["large_share"] == pytest.approx(0.12, abs=0.01)


@pytest.mark.parametrize("goal,check", [(["--target-share", "0.1"], lambda r: abs(r["large_share"] - 0.1) < 0.01),
                                        (["--recall", "0.8"], lambda r: r["recall"] >= 0.8)])
def test_threshold_command_rewrites_the_sidecar(tmp_path, smollm2, goal, check):
    synthetic_labels(tmp_path / "data", smollm2, n_prompts=3)
    linear_router(tmp_path / "r.onnx", 576, threshold=0.5)
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", "threshold", "--router", str(tmp_path / "r.onnx"),
                           "--data", str(tmp_path / "data"), *goal], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert check(result) and result["old_threshold"] == 0.5 and result["positions"] == 600
    assert json.loads((tmp_path / "r.json").read_text())["threshold"] == result["threshold"]


def test_a_recall_threshold_on_few_positives_is_flagged(tmp_path, smollm2):
    synthetic_labels(tmp_path / "data", smollm2, n_prompts=2, n=40)  # ~5 divergent positions
    linear_router(tmp_path / "r.onnx", 576, threshold=0.5)
    cmd = [sys.executable, "-m", "r2r_local.cli", "threshold", "--router", str(tmp_path / "r.onnx"),
           "--data", str(tmp_path / "data"), "--dry-run"]
    proc = subprocess.run([*cmd, "--recall", "0.9"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "divergent positions (fewer than 20): the threshold chosen for the recall target is a rough guess" in proc.stderr
    proc = subprocess.run([*cmd, "--target-share", "0.1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "warning" not in proc.stderr  # a share does not rest on the positives
