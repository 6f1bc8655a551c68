"""The shipped demo router (models/demo/router.onnx): files match the manifest, --demo uses it,
and the sweep and agreement scripts that produced its reported figures run on it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from settings import THREADS

from r2r_local.demo import demo_pair, demo_router, load_manifest
from r2r_local.demo.paths import demo_dir
from r2r_local.router import parse_router

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


def test_router_files_match_the_manifest():
    manifest = load_manifest()
    entry = manifest["router"]
    path = demo_router()
    assert path is not None and path.name == entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    sidecar = json.loads((path.parent / entry["sidecar"]).read_text())
    assert sidecar["threshold"] == entry["validation"]["threshold"]
    router = parse_router(str(path), n_embd=manifest["models"]["small"]["shape"]["hidden"])
    assert router.threshold == sidecar["threshold"]
    f32 = demo_dir() / entry["f32_small"]["file"]
    assert hashlib.sha256(f32.read_bytes()).hexdigest() == entry["f32_small"]["sha256"]


def test_generate_demo_uses_the_shipped_router():
    proc = run("-m", "r2r_local.cli", "generate", "--demo", "--prompt", "347+589", "--json", "--threads", str(THREADS))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert Path(doc["config"]["router"]).resolve() == demo_router().resolve()
    assert doc["text"].rstrip().endswith("347+589 = 936.")


def test_without_a_router_the_demo_falls_back_to_entropy(tmp_path):
    import os

    pair = demo_pair()
    for path in (pair.small, pair.large, pair.manifest):
        shutil.copy(path, tmp_path / path.name)
    env = os.environ | {"R2R_DEMO_DIR": str(tmp_path)}
    proc = run("-m", "r2r_local.cli", "generate", "--demo", "--prompt", "347+589", "--json",
               "--threads", str(THREADS), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["router"] == "entropy:0.3"


def test_sweep_matches_shares(tmp_path):
    out = tmp_path / "sweep.json"
    proc = run("scripts/router_sweep.py", "--n", "4", "--thresholds", "0.5", "--threads", str(THREADS),
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    (point,) = doc["points"]
    share = point["trained"]["large_share"]
    assert point["trained"]["router"].endswith("router.onnx@0.5")
    assert point["random"]["router"] == f"random:{share:.4f}"
    ent = point["entropy"]
    assert ent["matched"] == (abs(ent["large_share"] - share) <= 0.003)
    assert "| 0.5 |" in proc.stdout


def test_agreement_is_exact_for_the_same_file_and_high_after_q8(tmp_path):
    f32 = str(demo_dir() / load_manifest()["router"]["f32_small"]["file"])
    same = run("scripts/router_agreement.py", "--f32", f32, "--quantized", f32, "--n", "3",
               "--threads", str(THREADS), "--json")
    assert same.returncode == 0, same.stderr
    doc = json.loads(same.stdout)
    assert doc["decision_agreement"] == 1.0 and doc["p_max_abs_diff"] == 0.0 and doc["argmax_agreement"] == 1.0
    q8 = run("scripts/router_agreement.py", "--f32", f32, "--n", "3", "--threads", str(THREADS), "--json")
    assert q8.returncode == 0, q8.stderr
    doc = json.loads(q8.stdout)
    assert doc["positions"] > 100 and doc["decision_agreement"] >= 0.9


@pytest.fixture(scope="module")
def pair_1t():
    """The demo pair with one llama.cpp thread per model: --overlap and --ahead step both models
    at once from two threads (docs/decoding.md, "Threads on a CPU")."""
    from r2r_local.config import ModelSpec
    from r2r_local.pair import load_pair

    files, spec = demo_pair(), dict(n_ctx=512, threads=1)
    p = load_pair(ModelSpec(str(files.small), role="small", **spec), ModelSpec(str(files.large), role="large", **spec))
    yield p
    p.close()


@pytest.mark.parametrize("variant", ["overlap", "ahead", "overlap+ahead"])
def test_variants_give_the_plain_loops_answers_token_for_token(pair_1t, variant):
    """The demo pair disagrees often (small 56%, large 100%): the overlap mode redoes speculative
    steps and the ahead mode drops tokens written ahead; what is committed must be the plain
    loop's exactly, with the shipped (step-only) router."""
    from r2r_local.chat import Message, chat_tokens
    from r2r_local.config import GenerationSettings
    from r2r_local.decode import ROUTED, Request, policy_for_mode
    from r2r_local.demo import task

    pair = pair_1t
    router = pair.router(str(demo_router()))
    redone = kept = dropped = 0
    for p in task.problems(task.EVAL_SEED, 30, task.HELDOUT):
        prompt = chat_tokens(pair.small, [Message("user", p.message)])
        a = pair.generate(Request(prompt, router, ROUTED, settings=GenerationSettings(200))).run()
        b = pair.generate(Request(prompt, router, policy_for_mode(variant), settings=GenerationSettings(200))).run()
        assert [(e.id, e.source, e.caught_up) for e in b.events] == [(e.id, e.source, e.caught_up) for e in a.events]
        assert b.text == a.text and pair.small.slot.tokens == b.committed
        redone, kept, dropped = redone + b.stats.redone_steps, kept + b.stats.draft_kept, dropped + b.stats.draft_dropped
    if variant == "overlap":
        assert redone > 0
    else:  # with ahead, a step on a replaced proposal is part of the dropped draft, not redone
        assert kept > 0 and dropped > 0


def test_int8_router_keeps_the_contract_and_the_decisions(tmp_path):
    """scripts/export.py router-int8 on the shipped router: same ONNX contract and threshold,
    sidecar says int8 and what it came from, decisions on the demo's features nearly all equal."""
    src = demo_router()
    out = tmp_path / "router-int8.onnx"
    proc = run("scripts/export.py", "router-int8", str(src), str(out))
    assert proc.returncode == 0, proc.stderr
    assert "parameters in int8" in proc.stdout and "pre-processing" not in proc.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["precision"] == "int8" and side["threshold"] == json.loads(src.with_suffix(".json").read_text())["threshold"]
    assert side["provenance"]["quantized_from_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert out.stat().st_size < src.stat().st_size / 3
    same = run("scripts/router_agreement.py", "--router-b", str(src), "--n", "3", "--threads", str(THREADS), "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["decision_agreement"] == 1.0 and json.loads(same.stdout)["p_max_abs_diff"] == 0.0
    q = run("scripts/router_agreement.py", "--router-b", str(out), "--n", "3", "--threads", str(THREADS), "--json")
    assert q.returncode == 0, q.stderr
    doc = json.loads(q.stdout)
    assert doc["positions"] > 100 and doc["decision_agreement"] >= 0.98 and 0 < doc["p_max_abs_diff"] < 0.5
    bad = run("scripts/export.py", "router-int8", str(tmp_path / "missing.onnx"), str(tmp_path / "x.onnx"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "missing.onnx" in bad.stderr
    again = run("scripts/export.py", "router-int8", str(out), str(out))
    assert again.returncode == 1 and "must differ from the input" in again.stderr


def test_speculative_decoding_gives_the_large_models_answers_on_200_problems(pair_1t):
    """spec:K at greedy is the large model's own output, token for token, on the demo pair, whose
    models disagree often (many drafts are cut)."""
    from r2r_local.chat import Message, chat_tokens
    from r2r_local.config import GenerationSettings
    from r2r_local.decode import LARGE, Request, policy_for_mode
    from r2r_local.demo import task

    pair, rewinds = pair_1t, 0
    for i, p in enumerate(task.problems(task.EVAL_SEED, 200, task.HELDOUT)):
        prompt = chat_tokens(pair.small, [Message("user", p.message)])
        alone = pair.generate(Request(prompt, policy=LARGE, settings=GenerationSettings(200))).run()
        spec = pair.generate(Request(prompt, policy=policy_for_mode(f"spec:{1 + i % 8}"),
                                     settings=GenerationSettings(200))).run()
        assert [e.id for e in spec.events] == [e.id for e in alone.events], p.message
        rewinds += spec.stats.rewinds
    assert rewinds > 0
