"""Router checkpoints in the reference's block layout (block i maps hidden_dims[i] -> hidden_dims[i+1],
the last keeps hidden_dims[-1]) export to ONNX that matches a plain PyTorch forward pass of that
layout; earlier r2r-local checkpoints (another layout) still export exactly; options the ONNX
router cannot express are refused with one line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import router_layouts as rl  # noqa: E402
from r2r_local.errors import RouterError  # noqa: E402
from r2r_local.export.router import export_router  # noqa: E402
from r2r_local.router.onnx import OnnxRouter  # noqa: E402
from r2r_local.train.router_net import RouterNet, RouterShape, load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("export_script", ROOT / "scripts" / "export.py")
export_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_script)


def _onnx_vs_plain(onnx_path: Path, s: dict, d: int, normalize: bool) -> float:
    """Max abs difference of the logit: the exported router (onnxruntime, through the runtime's
    OnnxRouter) against the plain forward pass of the weights `s`."""
    h, e, k = rl.inputs(d)
    got = OnnxRouter(onnx_path, n_embd=d).logits(h.numpy(), e.numpy(), k.numpy()).reshape(-1)
    with torch.no_grad():
        want = rl.forward(s, h, e, k, normalize=normalize).numpy()
    assert np.abs(want).max() > 1e-2 and want.std() > 1e-3  # a real signal that depends on the inputs
    return float(np.abs(got - want).max())


@pytest.mark.parametrize("d,dims,normalize", [(64, [128, 96, 96], False), (64, [128, 96, 96], True),
                                              (32, [16, 48, 24, 24], True), (24, [32, 32, 32], False),
                                              (16, [40], True)])
def test_reference_layout_exports_exactly(tmp_path, d, dims, normalize):
    s = rl.write_checkpoint(tmp_path / "ref.pt", d, dims, normalize=normalize)
    res = export_router(tmp_path / "ref.pt", tmp_path / "ref.onnx")
    assert res.block_layout == "reference" and res.max_abs_diff <= 1e-4
    assert res.n_params == sum(t.numel() for t in s.values())
    assert _onnx_vs_plain(tmp_path / "ref.onnx", s, d, normalize) <= 1e-4
    meta = json.loads((tmp_path / "ref.json").read_text())
    assert meta["threshold"] == 0.3 and meta["d"] == d and meta["provenance"]["block_layout"] == "reference"


@pytest.mark.parametrize("d", [1024, 1536])
def test_reference_size_routers_export_exactly(tmp_path, d):
    """hidden_dims [1024]*6, the published router's sizes (56.3M parameters at d=1536)."""
    s = rl.write_checkpoint(tmp_path / "big.pt", d, [1024] * 6)
    res = export_router(tmp_path / "big.pt", tmp_path / "big.onnx", check_batch=4)
    if d == 1536:
        assert round(res.n_params / 1e6, 1) == 56.3
    assert _onnx_vs_plain(tmp_path / "big.onnx", s, d, False) <= 1e-4


def test_training_builds_the_reference_layout():
    for dims in ([128, 96, 96], [16, 48, 24, 24], [64, 32]):
        shape = RouterShape(hidden_states_size=24, hidden_dims=tuple(dims), normalize_input=True)
        got = {k: tuple(v.shape) for k, v in RouterNet(shape).state_dict().items()}
        assert got == {k: tuple(v.shape) for k, v in rl.state_dict(24, dims, normalize=True).items()}


def test_missing_init_args_take_the_reference_defaults(tmp_path):
    """The reference records only the arguments it was given; hidden_dims defaults to [256, 512, 256]."""
    s = rl.write_checkpoint(tmp_path / "r.pt", 16, [256, 512, 256])
    doc = torch.load(tmp_path / "r.pt", weights_only=True)
    doc["init_args"] = {"hidden_states_size": 16}
    torch.save(doc, tmp_path / "r.pt")
    export_router(tmp_path / "r.pt", tmp_path / "r.onnx")
    assert _onnx_vs_plain(tmp_path / "r.onnx", s, 16, False) <= 1e-4


def _legacy(path: Path, d: int = 32, dims: tuple[int, ...] = (48, 24, 24), **specific) -> dict:
    """A checkpoint as earlier r2r-local versions wrote it (their format tag, no block_layout)."""
    return rl.write_checkpoint(path, d, list(dims), normalize=True, layout="legacy",
                               specific={"format": "r2r-local", "recall_target": 0.9, "small_model": {}, **specific})


def test_an_earlier_r2r_local_checkpoint_still_exports_exactly(tmp_path, capsys):
    s = _legacy(tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").net.layout == "legacy"
    rc = export_script.main(["router", str(tmp_path / "old.pt"), str(tmp_path / "o.onnx")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "block layout of earlier r2r-local versions" in out and "retrain" in out
    assert _onnx_vs_plain(tmp_path / "o.onnx", s, 32, True) <= 1e-4
    assert json.loads((tmp_path / "o.json").read_text())["provenance"]["block_layout"] == "legacy"


def _run(capsys, checkpoint: Path, out: Path) -> str:
    rc = export_script.main(["router", str(checkpoint), str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(checkpoint) in err and not out.exists()
    return err


def _edit(path: Path, **changes) -> None:
    doc = torch.load(path, weights_only=True)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            doc[section][name] = value
        else:
            doc[section] = value
    torch.save(doc, path)


REFUSED = {  # edit of a reference checkpoint -> a piece of the one line
    "other model type": ({"model_type": "HiddenStatesLogitsClassifier"},
                         "model_type 'HiddenStatesLogitsClassifier' is not supported"),
    "position embeddings": ({"init_args__use_position_embedding": True},
                            "use_position_embedding=True is not supported"),
    "50 logits": ({"init_args__logits_size": 50}, "logits_size 50 is not supported"),
    "no hidden dims": ({"init_args__hidden_dims": []}, "bad init_args (hidden_dims is empty)"),
    "fractional size": ({"init_args__hidden_states_size": 31.5}, "bad init_args (31.5 is not a positive integer)"),
    "unknown layout": ({"model_specific_args__block_layout": "zigzag"}, "unknown block_layout 'zigzag'"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_options_the_exporter_cannot_express_are_refused(tmp_path, capsys, case):
    edits, needle = REFUSED[case]
    rl.write_checkpoint(tmp_path / "r.pt", 32, [48, 24])
    _edit(tmp_path / "r.pt", **edits)
    assert needle in _run(capsys, tmp_path / "r.pt", tmp_path / "r.onnx")


def test_a_layout_mistake_is_named_not_guessed(tmp_path, capsys):
    """Legacy shapes are accepted only from an r2r-local checkpoint that records no layout."""
    rl.write_checkpoint(tmp_path / "ref.pt", 32, [48, 24, 24], layout="legacy")  # reference-written
    err = _run(capsys, tmp_path / "ref.pt", tmp_path / "r.onnx")
    assert "weights do not fit its init_args (backbone.blocks.0.mlp.3.weight has shape [48, 192], " \
           "init_args give [24, 192])" in err
    _legacy(tmp_path / "marked.pt", block_layout="reference")
    assert "init_args give [24, 192]" in _run(capsys, tmp_path / "marked.pt", tmp_path / "r.onnx")
    rl.write_checkpoint(tmp_path / "sizes.pt", 32, [48, 24, 24], init_args={"hidden_dims": [24, 24, 24]})
    with pytest.raises(RouterError, match=r"combined_projection.weight has shape \[48, 96\], init_args give \[24, 96"):
        load_checkpoint(tmp_path / "sizes.pt")


def test_the_shipped_demo_router_keeps_its_outputs(tmp_path):
    """The demo router (hidden_dims 128,128: the same network in both layouts), rebuilt as the
    checkpoint it was exported from (its weights, read back from the ONNX file, in an earlier
    r2r-local checkpoint without block_layout), exports to a router with the same outputs."""
    import onnx
    from onnx import numpy_helper

    from r2r_local.demo import demo_router

    shipped = demo_router()
    meta = json.loads(shipped.with_suffix(".json").read_text())
    settings = meta["provenance"]["training"]["settings"]
    state = {i.name.removeprefix("model."): torch.from_numpy(numpy_helper.to_array(i).copy())
             for i in onnx.load(str(shipped)).graph.initializer}
    torch.save({"model_type": "HiddenStatesTokenLMHeadLogitsClassifier",
                "init_args": {"hidden_states_size": meta["d"], "logits_size": 100,
                              "hidden_dims": settings["hidden_dims"], "expansion_factor": settings["expansion"],
                              "dropout_rate": settings["dropout"],
                              "normalize_input": settings["normalize_input"], "use_position_embedding": False},
                "common_args": {"threshold": meta["threshold"]},
                "model_specific_args": {"format": "r2r-local"}, "state_dict": state}, tmp_path / "demo.pt")
    assert load_checkpoint(tmp_path / "demo.pt").net.layout == "reference"
    export_router(tmp_path / "demo.pt", tmp_path / "demo.onnx")
    h, e, k = (x.numpy() for x in rl.inputs(meta["d"], n=64))
    new, old = OnnxRouter(tmp_path / "demo.onnx"), OnnxRouter(shipped)
    assert new.threshold == old.threshold
    assert np.abs(new.logits(h, e, k) - old.logits(h, e, k)).max() <= 1e-5
