from __future__ import annotations

import json

import numpy as np
import pytest

from r2r_local.chat import Message, chat_tokens
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import Request
from r2r_local.errors import ConfigError, RouterError
from r2r_local.router import Step, parse_router
from r2r_local.router.features import topk_logits

from router_files import linear_router


def test_router_probability_is_sigmoid_of_the_graph(tmp_path):
    w = linear_router(tmp_path / "r.onnx", 8, threshold=0.6)
    router = parse_router(str(tmp_path / "r.onnx"), n_embd=8)
    rng = np.random.default_rng(1)
    h, e, logits = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32), rng.normal(size=500).astype(np.float32)
    d = router.decide(Step(logits, h, 3, lambda t: e))
    z = h @ w["w_h"] + e @ w["w_e"] + topk_logits(logits) @ w["w_k"] + w["b"]
    want = 1 / (1 + np.exp(-float(z[0])))
    assert d.p == pytest.approx(want, abs=1e-5) and d.escalate == (want >= 0.6)
    assert router.provider == "CPUExecutionProvider" or router.provider == "CUDAExecutionProvider"


def test_onnx_routed_generation_keeps_the_greedy_output(pair, tmp_path):
    path = tmp_path / "r.onnx"
    linear_router(path, pair.small.n_embd, threshold=0.999999, vocab_hash=pair.small_vocab_hash)
    tokens = chat_tokens(pair.small, [Message("user", "Name three colours.")])
    settings = GenerationSettings(max_tokens=32)
    probe = pair.generate(Request(tokens, pair.router(str(path)), sampling=SamplingParams(), settings=settings)).run()
    ps = [e.p for e in probe.events]
    assert all(0.0 <= p <= 1.0 for p in ps) and len(set(ps)) > 10
    median = float(np.median(ps))  # escalate about half the tokens
    linear_router(path, pair.small.n_embd, threshold=median, vocab_hash=pair.small_vocab_hash)
    routed = pair.generate(Request(tokens, pair.router(str(path)), sampling=SamplingParams(), settings=settings)).run()
    assert [e.id for e in routed.events] == [e.id for e in probe.events]
    assert [e.source == "large" for e in routed.events] == [p >= median for p in ps]
    assert [e.p for e in routed.events] == pytest.approx(ps, abs=1e-6)
    assert 0 < routed.stats.large_tokens < routed.stats.n_tokens


def test_threshold_after_at_overrides_the_sidecar(tmp_path):
    linear_router(tmp_path / "r.onnx", 8, threshold=0.6)
    assert parse_router(str(tmp_path / "r.onnx")).threshold == 0.6
    assert parse_router(f"{tmp_path / 'r.onnx'}@0.25").threshold == 0.25
    at_dir = tmp_path / "a@b"
    at_dir.mkdir()
    linear_router(at_dir / "r.onnx", 8, threshold=0.7)
    assert parse_router(str(at_dir / "r.onnx")).threshold == 0.7  # an '@' in the path is not a threshold
    assert parse_router(f"{at_dir / 'r.onnx'}@0.2").threshold == 0.2
    for bad in ("1.5", "0", "x"):
        with pytest.raises(ConfigError, match="threshold after '@'|is not a number"):
            parse_router(f"{tmp_path / 'r.onnx'}@{bad}")


def test_router_for_another_hidden_size_is_refused(tmp_path):
    linear_router(tmp_path / "r.onnx", 8)
    with pytest.raises(RouterError, match="hidden size 8, the small model has 576"):
        parse_router(str(tmp_path / "r.onnx"), n_embd=576)


def test_router_for_another_vocabulary_is_refused(tmp_path):
    linear_router(tmp_path / "r.onnx", 8, vocab_hash="abc")
    with pytest.raises(RouterError, match="another small model's vocabulary"):
        parse_router(str(tmp_path / "r.onnx"), n_embd=8, vocab_hash="def")


def test_corrupt_onnx_and_bad_sidecars_are_refused(tmp_path):
    path = tmp_path / "r.onnx"
    linear_router(path, 8)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])
    with pytest.raises(RouterError, match="not a loadable ONNX model"):
        parse_router(str(path))
    path.write_bytes(good)
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**meta, "threshold": 3}))
    with pytest.raises(RouterError, match="'threshold' must be a number in"):
        parse_router(str(path))
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(RouterError, match="not valid JSON"):
        parse_router(str(path))
    path.with_suffix(".json").unlink()
    with pytest.raises(RouterError, match="sidecar .* is missing"):
        parse_router(str(path))
