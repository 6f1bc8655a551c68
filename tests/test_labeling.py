"""`r2r label` on a real pair: SmolLM2 Q4_1 as the large model, a Q2_K copy as the small one."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from settings import THREADS

from gguf_edit import requantize
from r2r_local.labeling import ShardStore

PROMPTS = "What is 2 + 2? Explain.\nName two colours and say why you like them.\nCount from one to five in words.\n"


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def setup(smollm2, tmp_path_factory):
    d = tmp_path_factory.mktemp("label")
    small = requantize(smollm2, d / "small-q2k.gguf")
    (d / "prompts.txt").write_text(PROMPTS)
    base = ["label", "--small", str(small), "--large", str(smollm2), "--threads", str(THREADS), "--n-ctx", "1024",
            "--prompts", str(d / "prompts.txt"), "--verifier", "exact", "--max-tokens", "32"]
    return d, base


def test_labels_are_consistent_and_a_rerun_resumes(setup):
    d, base = setup
    first = r2r(*base, "--out", str(d / "out"), "--n", "2")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["prompts"] == 2
    second = r2r(*base, "--out", str(d / "out"))
    assert second.returncode == 0, second.stderr
    assert "2 of 3 prompts already labelled" in second.stderr
    summary = json.loads(second.stdout)
    store = ShardStore(d / "out")
    shards = dict(store.shards())
    assert sorted(shards) == [0, 1, 2] and summary["prompts"] == 3
    tokens = mismatches = divergent = 0
    for shard in shards.values():
        n = len(shard["label"])
        assert shard["hidden"].shape == (n, 576) and shard["topk"].shape == (n, 100)
        np.testing.assert_array_equal(shard["mismatch"], shard["small_token"] != shard["large_token"])
        assert not (shard["label"].astype(bool) & ~shard["mismatch"]).any()  # labels only at mismatches
        assert (np.diff(shard["topk"], axis=1) <= 0).all()
        tokens, mismatches, divergent = tokens + n, mismatches + shard["mismatch"].sum(), divergent + shard["label"].sum()
    assert (summary["tokens"], summary["mismatches"], summary["divergent"]) == (tokens, mismatches, divergent)
    assert 0 < mismatches < tokens  # a degraded copy disagrees somewhere, not everywhere
    records = [json.loads(line) for line in (d / "out" / "mismatches.jsonl").read_text().splitlines()]
    assert len(records) == mismatches and {r["label"] for r in records} <= {0, 1}


def test_other_settings_are_refused_and_bad_verifier(setup):
    d, base = setup
    r2r(*base, "--out", str(d / "out2"), "--n", "1")
    proc = r2r(*[a if a != "32" else "16" for a in base], "--out", str(d / "out2"), "--n", "1")
    assert proc.returncode == 1 and "labelled with other settings (max_tokens)" in proc.stderr
    proc = r2r(*base[:-4], "--verifier", "oracle", "--out", str(d / "out3"))
    assert proc.returncode == 1 and "unknown verifier 'oracle'" in proc.stderr and "Traceback" not in proc.stderr
