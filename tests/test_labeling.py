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


def test_a_served_large_model_labels_what_the_in_process_one_does(setup, smollm2_server):
    d, base = setup
    local = r2r(*base, "--out", str(d / "local1"), "--n", "1")
    served = r2r(*[smollm2_server.url if a == base[base.index("--large") + 1] else a for a in base],
                 "--out", str(d / "served1"), "--n", "1")
    assert local.returncode == 0 and served.returncode == 0, served.stderr
    counts = lambda proc: {k: v for k, v in json.loads(proc.stdout).items() if k != "seconds_this_run"}  # noqa: E731
    assert counts(served) == counts(local)
    (_, mine), (_, theirs) = next(ShardStore(d / "local1").shards()), next(ShardStore(d / "served1").shards())
    for key in ("small_token", "large_token", "mismatch", "label"):
        np.testing.assert_array_equal(theirs[key], mine[key])
    assert json.loads((d / "served1" / "manifest.json").read_text())["config"]["large"] == smollm2_server.url


def test_other_settings_are_refused_and_bad_verifier(setup):
    d, base = setup
    r2r(*base, "--out", str(d / "out2"), "--n", "1")
    proc = r2r(*[a if a != "32" else "16" for a in base], "--out", str(d / "out2"), "--n", "1")
    assert proc.returncode == 1 and "labelled with other settings (max_tokens)" in proc.stderr
    proc = r2r(*base[:-4], "--verifier", "oracle", "--out", str(d / "out3"))
    assert proc.returncode == 1 and "unknown verifier 'oracle'" in proc.stderr and "Traceback" not in proc.stderr


def test_correct_verifier_labels_only_where_the_large_model_is_right():
    from r2r_local.bench import last_number
    from r2r_local.labeling import CorrectAnswerVerifier, ExactAnswerVerifier
    from r2r_local.labeling.verifiers import Continuations

    correct, exact = CorrectAnswerVerifier(last_number), ExactAnswerVerifier(last_number)
    cases = {  # (own's answer, alternative's answer) -> label of `correct` with expected 12
        ("12", "13"): True,   # the small token breaks a right answer
        ("13", "12"): False,  # the large model is the one that goes wrong
        ("13", "14"): False,  # both wrong: escalating cannot help
        ("12", "12"): False,  # wording only
    }
    for (own, alt), want in cases.items():
        c = Continuations("so 5+7 = ", own, alt, expected="12")
        assert correct.diverges(c) is want
        assert exact.diverges(c) is (own != alt)
    with pytest.raises(ValueError):
        correct.diverges(Continuations("", "1", "2"))


def test_correct_labels_are_a_subset_of_exact_labels_on_the_demo_pair(tmp_path):
    """Same pair, same prompts: the mismatches are the same, and every `correct` label is also
    an `exact` label (own right and alternative wrong implies the answers differ)."""
    from r2r_local.demo import task

    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps(task.to_record(p)) + "\n" for p in task.problems(5, 12, task.TRAIN)))
    base = ["label", "--demo", "--threads", str(THREADS), "--prompts", str(problems), "--max-tokens", "200"]
    shards = {}
    for verifier in ("exact", "correct"):
        proc = r2r(*base, "--verifier", verifier, "--out", str(tmp_path / verifier))
        assert proc.returncode == 0, proc.stderr
        shards[verifier] = dict(ShardStore(tmp_path / verifier).shards())
    n_exact = n_correct = 0
    for i, ex in shards["exact"].items():
        co = shards["correct"][i]
        np.testing.assert_array_equal(ex["mismatch"], co["mismatch"])
        assert not (co["label"].astype(bool) & ~ex["label"].astype(bool)).any()
        n_exact, n_correct = n_exact + ex["label"].sum(), n_correct + co["label"].sum()
    assert n_exact > 0 and n_correct <= n_exact


def test_correct_verifier_needs_answers(setup):
    d, base = setup
    proc = r2r(*base[:-4], "--verifier", "correct", "--out", str(d / "out4"))
    assert proc.returncode == 1 and "needs .jsonl lines" in proc.stderr and "Traceback" not in proc.stderr
