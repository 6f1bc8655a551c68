"""The reference-architecture ONNX router (random weights) against a numpy forward pass, and
its size against the reference's 56.3M parameters (docs/design.md)."""

from __future__ import annotations

import math
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from r2r_local.router.onnx import OnnxRouter
from r2r_local.router.reference_onnx import RouterArch, build_reference_router, write_reference_router

_CONSTS = {"half", "one", "inv_sqrt2"}


def _weights(path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    out = {}
    for init in model.graph.initializer:
        stem = re.sub(r"_\d+$", "", init.name)
        if stem not in _CONSTS:
            out[stem] = numpy_helper.to_array(init).astype(np.float64)
    return out


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def _forward(w: dict[str, np.ndarray], arch: RouterArch, h, e, k) -> np.ndarray:
    lin = lambda x, stem: x @ w[stem + ".weight"] + w[stem + ".bias"]  # noqa: E731
    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
    x = lin(np.concatenate([h, e, lin(k, "logits_projection")], -1), "combined_projection")
    x = lin(x, "backbone.input_projection")
    for i, h2 in enumerate(arch.hidden_dims):
        s = f"backbone.blocks.{i}"
        y = _ln(x, w[s + ".layer_norm.weight"], w[s + ".layer_norm.bias"])
        y = lin(gelu(lin(y, s + ".mlp.0")), s + ".mlp.3")
        x = (lin(x, s + ".dim_change") if s + ".dim_change.weight" in w else x) + y
    x = _ln(x, w["backbone.output_layer.0.weight"], w["backbone.output_layer.0.bias"])
    return lin(x, "backbone.output_layer.1")[:, 0]


@pytest.mark.parametrize("fp16,tol", [(False, 1e-5), (True, 2e-2)])
def test_small_router_matches_a_numpy_forward_pass(tmp_path, fp16, tol):
    arch = RouterArch(d=16, hidden_dims=(8, 12, 12), expansion=2)
    path = write_reference_router(tmp_path / "r.onnx", arch, seed=3, fp16=fp16, threshold=0.3)
    w = _weights(path)
    assert sum(v.size for v in w.values()) == arch.n_params
    # the reference layout: block i maps hidden_dims[i] -> hidden_dims[i+1], the last keeps hidden_dims[-1]
    assert [w[f"backbone.blocks.{i}.layer_norm.weight"].size for i in range(3)] == [8, 12, 12]
    assert "backbone.blocks.0.dim_change.weight" in w and "backbone.blocks.1.dim_change.weight" not in w
    rng = np.random.default_rng(0)
    h, e = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
    k = -np.sort(-rng.normal(size=(5, 100)) * 3, axis=1)
    router = OnnxRouter(path, n_embd=16)
    assert router.threshold == 0.3
    got = router.probabilities(h, e, k)
    want = 1.0 / (1.0 + np.exp(-_forward(w, arch, h, e, k)))
    assert np.abs(got - want).max() < tol
    assert got.std() > 1e-3  # inputs matter


def test_reference_size_is_56_3m_parameters():
    arch = RouterArch()
    assert (arch.d, arch.hidden_dims, arch.expansion) == (1536, (1024,) * 6, 4)
    assert round(arch.n_params / 1e6, 1) == 56.3
    model = build_reference_router(arch)
    n = sum(int(np.prod(i.dims)) for i in model.graph.initializer if re.sub(r"_\d+$", "", i.name) not in _CONSTS)
    assert n == arch.n_params
