"""`r2r bench` on the real SmolLM2 (both sides): the document, the files and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from settings import THREADS

from r2r_local.bench import last_number

FIELDS = ["accuracy", "n_problems", "n_tokens", "tokens_per_s", "median_tokens_per_s", "large_share", "large_calls",
          "mean_catch_up", "ms_small_per_token", "ms_router_per_token", "ms_large_per_token", "ms_other_per_token",
          "peak_rss_mb", "gpu_mem_mb"]
R2R_FIELDS = ["ideal_tokens_per_s", "efficiency", "speedup_vs_large", "ideal_parts"]


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def result(smollm2, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    problems = d / "p.jsonl"
    problems.write_text('{"prompt": "What is 2 + 3? Answer with the number.", "answer": "5"}\n\n'
                        '{"prompt": "What is 10 - 4? Answer with the number.", "answer": "6"}\n')
    proc = r2r("bench", "--small", str(smollm2), "--large", str(smollm2), "--threads", str(THREADS), "--n-ctx", "512",
               "--problems", str(problems), "--max-tokens", "12", "--router", "random:0.5", "--json", "--out", str(d / "out"))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), d / "out"


def test_modes_and_fields(result):
    doc, _ = result
    modes = doc["modes"]
    assert list(modes) == ["small", "large", "r2r"]
    for m in modes.values():
        assert set(FIELDS) <= set(m) and m["n_problems"] == 2 and 0 < m["n_tokens"] <= 24
        assert m["tokens_per_s"] > 0 and m["median_tokens_per_s"] > 0
        assert m["accuracy"] in (0.0, 0.5, 1.0)
    assert modes["small"]["large_share"] == 0.0 and modes["large"]["large_share"] == 1.0
    assert 0.0 < modes["r2r"]["large_share"] < 1.0
    r = modes["r2r"]
    assert set(R2R_FIELDS) <= set(r) and r["ideal_tokens_per_s"] > 0
    assert r["efficiency"] == pytest.approx(r["tokens_per_s"] / r["ideal_tokens_per_s"])
    assert doc["config"]["router"] == "random:0.5" and "llama-cpp-python" in doc["config"]["versions"]


def test_same_model_gives_same_answers_in_every_mode(result):
    """Same model on both sides, greedy: routing cannot change the answers."""
    doc, out = result
    with (out / "tokens.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_mode = {m: [(r["problem"], r["id"]) for r in rows if r["mode"] == m] for m in ("small", "large", "r2r")}
    assert by_mode["small"] == by_mode["large"] == by_mode["r2r"]
    assert len(rows) == sum(m["n_tokens"] for m in doc["modes"].values())
    assert json.loads((out / "bench.json").read_text()) == doc


def test_overlap_and_ahead_modes_make_the_same_tokens_as_r2r(tmp_path):
    """The demo pair's models differ, so the overlap mode redoes speculative steps and the ahead
    mode drops tokens written ahead; their tokens, decisions and share must still be r2r's
    exactly (entropy:T decides on the step alone), and overlap's ideal uses max(small, router)."""
    from r2r_local.bench import ideal_tokens_per_s

    proc = r2r("bench", "--demo", "--n", "6", "--threads", str(THREADS), "--modes", "large,r2r,overlap,ahead",
               "--router", "entropy:0.3", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    r, o, a = doc["modes"]["r2r"], doc["modes"]["overlap"], doc["modes"]["ahead"]
    for key in ("accuracy", "n_tokens", "large_share", "large_calls", "mean_catch_up"):
        assert o[key] == r[key] == a[key], key
    assert a["draft_kept"] + a["draft_dropped"] > 0
    assert o["redone_small_steps"] > 0 and o["speedup_vs_r2r"] == pytest.approx(o["tokens_per_s"] / r["tokens_per_s"])
    assert o["ideal_tokens_per_s"] == pytest.approx(ideal_tokens_per_s(o["ideal_parts"], o["large_share"], overlap=True))
    parts = {"t_small_step_s": 2.0, "t_router_s": 1.0, "t_large_call_s": 10.0}
    assert ideal_tokens_per_s(parts, 0.1, overlap=True) == pytest.approx(1 / 3.0)
    assert ideal_tokens_per_s(parts, 0.1) == pytest.approx(1 / 4.0)
    with (tmp_path / "tokens.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_mode = {m: [(x["problem"], x["id"], x["source"]) for x in rows if x["mode"] == m] for m in ("r2r", "overlap", "ahead")}
    assert by_mode["r2r"] == by_mode["overlap"] == by_mode["ahead"]


def test_help_documents_every_output_field():
    text = r2r("bench", "--help").stdout
    for field in FIELDS + R2R_FIELDS + ["speedup_vs_r2r", "redone_small_steps", "draft_kept", "draft_dropped"]:
        assert field in text, field


def test_bad_problems_file_names_the_line(tmp_path, smollm2):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "ok", "answer": "1"}\n{"prompt": 3}\n')
    proc = r2r("bench", "--small", str(smollm2), "--large", str(smollm2), "--problems", str(f))
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert f"{f}:2" in proc.stderr and "Traceback" not in proc.stderr
    proc = r2r("bench", "--modes", "small,huge", "--small", str(smollm2), "--large", str(smollm2))
    assert proc.returncode == 1 and "--modes must be" in proc.stderr


def test_last_number_skips_the_think_section():
    assert last_number("<think>so 12 maybe</think>\nSo 347+589 = 936.") == "936"
    assert last_number("it is 1,234") == "1234" and last_number("no digits") is None


def test_overlap_bench_script_runs_both_routed_modes(tmp_path):
    out = tmp_path / "o.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "overlap_bench.py"
    proc = subprocess.run([sys.executable, str(script), "--n", "1", "--max-tokens", "16",
                           "--threads", str(THREADS), "--work", str(tmp_path), "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    modes = json.loads(out.read_text())["modes"]
    assert list(modes) == ["small", "large", "r2r", "overlap"]
    assert modes["overlap"]["n_tokens"] == modes["r2r"]["n_tokens"] == 16
    assert modes["overlap"]["large_share"] == modes["r2r"]["large_share"] > 0
    assert "overlap against r2r" in proc.stdout
