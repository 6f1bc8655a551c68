"""Test helper: small but real ONNX routers built with onnx.helper (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_router(path: Path, d: int, *, threshold: float = 0.5, seed: int = 0,
                  vocab_hash: str | None = None, scale: float = 1.0) -> dict[str, np.ndarray]:
    """logit = hidden.w_h + token_embedding.w_e + topk_logits.w_k + b; writes path and its sidecar.
    Returns the weights so tests can recompute the probability with numpy."""
    rng = np.random.default_rng(seed)
    w = {"w_h": rng.normal(size=(d, 1)) * scale / np.sqrt(d), "w_e": rng.normal(size=(d, 1)) * scale,
         "w_k": rng.normal(size=(100, 1)) * scale / 10, "b": np.array([0.0])}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    inputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["B", d]),
              helper.make_tensor_value_info("token_embedding", TensorProto.FLOAT, ["B", d]),
              helper.make_tensor_value_info("topk_logits", TensorProto.FLOAT, ["B", 100])]
    nodes = [helper.make_node("MatMul", ["hidden", "w_h"], ["a"]),
             helper.make_node("MatMul", ["token_embedding", "w_e"], ["e"]),
             helper.make_node("MatMul", ["topk_logits", "w_k"], ["k"]),
             helper.make_node("Sum", ["a", "e", "k", "b"], ["logit"])]
    graph = helper.make_graph(nodes, "linear_router", inputs,
                              [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["B", 1])],
                              [numpy_helper.from_array(v, k) for k, v in w.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    meta = {"format": "r2r-local-router", "version": 1, "threshold": threshold, "recall_target": None,
            "d": d, "topk": 100, "small_model": {"n_embd": d, "vocab_hash": vocab_hash},
            "provenance": {"built_by": "tests/router_files.py"}}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return w
