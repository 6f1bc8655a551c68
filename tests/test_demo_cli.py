"""--demo on the commands: the shipped pair and checkable answers (its router: test_demo_router.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from settings import THREADS


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args, "--threads", str(THREADS)],
                          capture_output=True, text=True, timeout=600)


def test_demo_with_its_own_models_is_a_usage_error(smollm2):
    proc = r2r("generate", "--demo", "--small", str(smollm2), "--prompt", "1+1")
    assert proc.returncode == 1 and "leave out --small and --large" in proc.stderr


def test_bench_demo_checks_answers():
    proc = r2r("bench", "--demo", "--n", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["config"]["problems"].startswith("6 held-out demo problems")
    modes = doc["modes"]
    assert all(m["accuracy"] is not None and m["n_problems"] == 6 for m in modes.values())
    assert modes["large"]["accuracy"] >= modes["small"]["accuracy"]
