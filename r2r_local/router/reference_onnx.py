"""An ONNX router of the reference architecture (docs/router-export.md) with random weights.

Built with `onnx.helper` (no torch), for measuring what a router of the reference size costs
per token. It follows the router file contract (inputs `hidden` [B,d], `token_embedding` [B,d],
`topk_logits` [B,100] float32; output `logit` [B,1]; JSON sidecar beside it).

Graph: logits_projection Linear(100->d); concat [hidden, token_embedding, projected] (3d);
combined_projection Linear(3d->H0); input_projection Linear(H0->H0); one residual block per
entry of hidden_dims, block i mapping H = hidden_dims[i] to H' = hidden_dims[i+1] (the last keeps
hidden_dims[-1], r2r_local.router.layout): x' = dim_change(x) + Linear(4H->H')(GELU(Linear(H->4H)(LN(x))))
(dim_change only where H != H'); output LayerNorm + Linear(H->1). Dropout is the identity at
inference. GELU is the exact erf form.

Imports `onnx` when called: the runtime never imports this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from r2r_local.router.features import TOPK
from r2r_local.router.layout import block_widths


@dataclass(frozen=True)
class RouterArch:
    d: int = 1536
    hidden_dims: tuple[int, ...] = field(default=(1024,) * 6)
    expansion: int = 4

    @property
    def n_params(self) -> int:
        d, dims = self.d, self.hidden_dims
        n = TOPK * d + d + 3 * d * dims[0] + dims[0] + dims[0] * dims[0] + dims[0]
        for h, h2 in block_widths(dims):
            n += 2 * h + h * self.expansion * h + self.expansion * h
            n += self.expansion * h * h2 + h2
            if h2 != h:
                n += h * h2 + h2
        return n + 3 * dims[-1] + 1


class _Graph:
    """Collects nodes and initializers; names are unique by construction."""

    def __init__(self, rng: np.random.Generator, dtype: type) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.rng = rng
        self.dtype = dtype
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(value.astype(self.dtype), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs) -> str:
        from onnx import helper

        out = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int, stem: str) -> str:
        # Uniform(-1/sqrt(n_in), 1/sqrt(n_in)) like a freshly initialised torch Linear.
        bound = 1.0 / np.sqrt(n_in)
        w = self.const(stem + ".weight", self.rng.uniform(-bound, bound, (n_in, n_out)))
        b = self.const(stem + ".bias", self.rng.uniform(-bound, bound, (n_out,)))
        return self.node("Add", [self.node("MatMul", [x, w], stem + ".mm"), b], stem)

    def layer_norm(self, x: str, n: int, stem: str) -> str:
        scale = self.const(stem + ".weight", np.ones(n))
        bias = self.const(stem + ".bias", np.zeros(n))
        return self.node("LayerNormalization", [x, scale, bias], stem, axis=-1, epsilon=1e-5)

    def gelu(self, x: str) -> str:
        half = self.const("half", np.array(0.5))
        one = self.const("one", np.array(1.0))
        inv_sqrt2 = self.const("inv_sqrt2", np.array(1.0 / np.sqrt(2.0)))
        erf = self.node("Erf", [self.node("Mul", [x, inv_sqrt2], "gelu.scaled")], "gelu.erf")
        gate = self.node("Mul", [self.node("Add", [erf, one], "gelu.plus1"), half], "gelu.gate")
        return self.node("Mul", [x, gate], "gelu")


def build_reference_router(arch: RouterArch = RouterArch(), *, seed: int = 0, fp16: bool = False):
    """The `onnx.ModelProto` of a random-weight router of architecture `arch`.

    fp16: weights and activations in float16 inside the graph (inputs and output stay float32).
    """
    from onnx import TensorProto, helper

    g = _Graph(np.random.default_rng(seed), np.float16 if fp16 else np.float32)
    inputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["B", arch.d]),
              helper.make_tensor_value_info("token_embedding", TensorProto.FLOAT, ["B", arch.d]),
              helper.make_tensor_value_info("topk_logits", TensorProto.FLOAT, ["B", TOPK])]
    names = ["hidden", "token_embedding", "topk_logits"]
    if fp16:
        names = [g.node("Cast", [n], n + ".f16", to=TensorProto.FLOAT16) for n in names]
    projected = g.linear(names[2], TOPK, arch.d, "logits_projection")
    x = g.node("Concat", [names[0], names[1], projected], "combined", axis=-1)
    h = arch.hidden_dims[0]
    x = g.linear(x, 3 * arch.d, h, "combined_projection")
    x = g.linear(x, h, h, "backbone.input_projection")
    for i, (h, h2) in enumerate(block_widths(arch.hidden_dims)):
        stem = f"backbone.blocks.{i}"
        y = g.layer_norm(x, h, stem + ".layer_norm")
        y = g.gelu(g.linear(y, h, arch.expansion * h, stem + ".mlp.0"))
        y = g.linear(y, arch.expansion * h, h2, stem + ".mlp.3")
        skip = g.linear(x, h, h2, stem + ".dim_change") if h2 != h else x
        x = g.node("Add", [skip, y], stem)
    h = arch.hidden_dims[-1]
    x = g.layer_norm(x, h, "backbone.output_layer.0")
    x = g.linear(x, h, 1, "backbone.output_layer.1")
    if fp16:
        x = g.node("Cast", [x], "logit.f32", to=TensorProto.FLOAT)
    g.nodes.append(helper.make_node("Identity", [x], ["logit"]))
    graph = helper.make_graph(g.nodes, "r2r_reference_router", inputs,
                              [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["B", 1])],
                              g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_reference_router(path: str | Path, arch: RouterArch = RouterArch(), *, seed: int = 0,
                           fp16: bool = False, threshold: float = 0.5) -> Path:
    """Write the router and its sidecar (random weights: only good for measuring cost)."""
    import onnx

    path = Path(path)
    onnx.save(build_reference_router(arch, seed=seed, fp16=fp16), str(path))
    meta = {"format": "r2r-local-router", "version": 1, "threshold": threshold,
            "recall_target": None, "d": arch.d, "topk": TOPK,
            "small_model": {"n_embd": arch.d, "vocab_hash": None},
            "provenance": {"built_by": "r2r_local.router.reference_onnx", "weights": "random",
                           "seed": seed, "hidden_dims": list(arch.hidden_dims),
                           "expansion": arch.expansion, "n_params": arch.n_params,
                           "dtype": "float16" if fp16 else "float32"}}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return path
