"""Router files that are wrong in a way the router only shows later: a bad sidecar, a graph with
the wrong input types or output shape, a graph that fails or returns NaN while running. Each is
one RouterError naming the file, at load time where the file shows it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from r2r_local.errors import R2RError, RouterError
from r2r_local.router import Step, parse_router
from r2r_local.router.baselines import check_router_spec

from router_files import linear_router

D = 8


def _graph_router(path, *, in_type=TensorProto.FLOAT, out_shape=("B", 1), body=None, out_type=TensorProto.FLOAT,
                  d=D) -> str:
    """A router graph: logit = ReduceSum over the inputs' columns (or `body`'s nodes)."""
    inputs = [helper.make_tensor_value_info("hidden", in_type, ["B", d]),
              helper.make_tensor_value_info("token_embedding", in_type, ["B", d]),
              helper.make_tensor_value_info("topk_logits", in_type, ["B", 100])]
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes, inits = body or ([helper.make_node("ReduceSum", ["hidden", "axes"], ["s"], keepdims=1),
                             helper.make_node("Cast", ["s"], ["logit"], to=out_type)], [axes])
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("logit", out_type, list(out_shape))],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    path.with_suffix(".json").write_text(json.dumps({"threshold": 0.5, "d": d}))
    return str(path)


def _step(hidden=None):
    rng = np.random.default_rng(0)
    h = rng.normal(size=D).astype(np.float32) if hidden is None else hidden
    return Step(rng.normal(size=300).astype(np.float32), h, 1, lambda t: np.ones(D, np.float32))


@pytest.mark.parametrize("edit,fragment", [
    ({"small_model": "x"}, "'small_model' must be an object"),
    ({"small_model": {"vocab_hash": 3}}, "'small_model.vocab_hash' must be a string"),
    ({"small_model": {"n_embd": "8"}}, "'small_model.n_embd' must be an integer"),
    ({"d": True}, "'d' must be a positive integer"),
    ({"d": 8.0}, "'d' must be a positive integer"),
    ({"threshold": True}, "'threshold' must be a number"),
    ({"threshold": float("nan")}, "'threshold' must be a number"),
    ({"topk": 50}, "'topk' must be 100"),
    ({"precision": 8}, "'precision' has the wrong type"),
])
def test_sidecar_field_types(tmp_path, edit, fragment):
    path = tmp_path / "r.onnx"
    linear_router(path, D)
    meta = json.loads(path.with_suffix(".json").read_text()) | edit
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(RouterError, match=fragment) as err:
        parse_router(str(path), n_embd=D, vocab_hash="abc")
    assert str(path.with_suffix(".json")) in str(err.value)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"in_type": TensorProto.DOUBLE}, "input 'hidden' is tensor(double), expected tensor(float)"),
    ({"out_shape": ("B", 2), "body": ([helper.make_node("ReduceSum", ["hidden", "axes"], ["s"], keepdims=1),
                                       helper.make_node("Concat", ["s", "s"], ["logit"], axis=1)],
                                      [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])},
     "output 'logit' has shape"),
    ({"out_shape": ("B",)}, "output 'logit' has shape"),
    ({"out_type": TensorProto.INT64}, "output 'logit' is tensor(int64)"),
])
def test_graph_inputs_and_output_are_checked_at_load(tmp_path, kwargs, fragment):
    path = _graph_router(tmp_path / "r.onnx", **kwargs)
    with pytest.raises(RouterError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_router(path, n_embd=D)
    assert path in str(err.value)


def test_a_graph_that_fails_while_running_is_one_line(tmp_path, capfd):
    # column 20 of an 8-column input: loads fine, fails on the first token
    index = numpy_helper.from_array(np.array([20], dtype=np.int64), "index")
    body = ([helper.make_node("Gather", ["hidden", "index"], ["logit"], axis=1)], [index])
    path = _graph_router(tmp_path / "r.onnx", body=body)
    router = parse_router(path, n_embd=D)
    with pytest.raises(RouterError, match="failed while running") as err:
        router.decide(_step())
    assert path in str(err.value) and "\n" not in str(err.value)
    assert "\x1b[" not in capfd.readouterr().err  # onnxruntime's own (coloured) log line stays quiet


def test_nan_from_the_router_is_an_error(tmp_path):
    path = _graph_router(tmp_path / "r.onnx")
    router = parse_router(path, n_embd=D)
    assert router.decide(_step()).p is not None
    with pytest.raises(RouterError, match="returned NaN") as err:
        router.decide(_step(np.full(D, np.nan, np.float32)))
    assert path in str(err.value)


@pytest.mark.parametrize("spec,fragment", [("", "the router spec is empty"), ("  ", "the router spec is empty"),
                                           ("random:abc", "'abc' is not a number"), ("entropy:-1", "T >= 0")])
def test_router_specs_checked_without_loading(spec, fragment):
    with pytest.raises(R2RError, match=fragment):
        check_router_spec(spec)


def test_a_directory_is_not_a_router(tmp_path):
    (tmp_path / "d.onnx").mkdir()
    for spec in (str(tmp_path), str(tmp_path / "d.onnx")):
        with pytest.raises(RouterError, match="is a directory"):
            parse_router(spec)
    with pytest.raises(RouterError, match="file not found"):
        parse_router(str(tmp_path / "none.onnx"))


@pytest.mark.parametrize("value", ["abc", "0", "-2", "100000", ""])
def test_router_threads_from_the_environment(tmp_path, monkeypatch, value):
    linear_router(tmp_path / "r.onnx", D)
    monkeypatch.setenv("R2R_ROUTER_THREADS", value)
    with pytest.raises(RouterError, match="R2R_ROUTER_THREADS must be an integer between 1 and 1024"):
        parse_router(str(tmp_path / "r.onnx"), n_embd=D)
