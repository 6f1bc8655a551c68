"""Router network, checkpoints (reference format), training and ONNX export (needs torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from r2r_local.errors import RouterError  # noqa: E402
from r2r_local.export.router import export_router  # noqa: E402
from r2r_local.router import parse_router  # noqa: E402
from r2r_local.train.router_net import RouterNet, RouterShape, load_checkpoint, save_checkpoint  # noqa: E402
from label_files import synthetic_labels  # noqa: E402


def test_reference_size_is_56_3m_parameters():
    net = RouterNet(RouterShape())
    n = sum(p.numel() for p in net.parameters())
    assert round(n / 1e6, 1) == 56.3
    keys = set(net.state_dict())
    assert {"logits_projection.weight", "combined_projection.bias", "backbone.input_projection.weight",
            "backbone.blocks.5.layer_norm.weight", "backbone.blocks.0.mlp.0.weight", "backbone.blocks.0.mlp.3.bias",
            "backbone.output_layer.0.weight", "backbone.output_layer.1.bias"} <= keys
    assert not any("dim_change" in k for k in keys)  # all blocks keep 1024
    narrowing = RouterNet(RouterShape(hidden_dims=(64, 32))).state_dict()  # block 0 maps 64 -> 32, block 1 keeps 32
    assert "backbone.blocks.0.dim_change.weight" in narrowing and "backbone.blocks.1.dim_change.weight" not in narrowing


def _reference_style_checkpoint(path, d=32, with_embeddings=True):
    """A checkpoint written the way the reference code writes it: its own dict, normalize_input,
    the embedding table still inside."""
    shape = RouterShape(hidden_states_size=d, hidden_dims=(48, 32), normalize_input=True)
    torch.manual_seed(3)
    net = RouterNet(shape)
    state = dict(net.state_dict())
    if with_embeddings:
        state["token_embeddings.weight"] = torch.randn(1000, d)
    torch.save({"model_type": "HiddenStatesTokenLMHeadLogitsClassifier",
                "init_args": {"hidden_states_size": d, "logits_size": 100, "hidden_dims": [48, 32],
                              "expansion_factor": 4, "dropout_rate": 0.1, "normalize_input": True,
                              "freeze_lm_head": True, "use_position_embedding": False,
                              "pretrained_model_name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"},
                "common_args": {"threshold": 0.3, "input_type": ["hidden_states", "token", "logits"]},
                "model_specific_args": {}, "state_dict": state}, path)
    return net


@pytest.mark.parametrize("with_embeddings", [True, False])
def test_reference_checkpoint_exports_and_agrees(tmp_path, with_embeddings):
    net = _reference_style_checkpoint(tmp_path / "ref.pt", with_embeddings=with_embeddings)
    res = export_router(tmp_path / "ref.pt", tmp_path / "ref.onnx")
    assert res.max_abs_diff <= 1e-4
    router = parse_router(str(tmp_path / "ref.onnx"), n_embd=32)
    assert router.threshold == 0.3
    rng = np.random.default_rng(0)
    h, e, k = (rng.normal(size=(5, n)).astype(np.float32) for n in (32, 32, 100))
    with torch.no_grad():
        want = torch.sigmoid(net.eval()(*map(torch.from_numpy, (h, e, k)))).numpy().reshape(-1)
    np.testing.assert_allclose(router.probabilities(h, e, k), want, atol=1e-5)


def test_our_checkpoint_round_trips_and_exports_fp16(tmp_path):
    net = RouterNet(RouterShape(hidden_states_size=16, hidden_dims=(32,)))
    save_checkpoint(tmp_path / "r.pt", net, threshold=0.7, recall_target=0.95,
                    small_model={"n_embd": 16, "vocab_hash": "abc"}, training={"note": "test"})
    ckpt = load_checkpoint(tmp_path / "r.pt")
    assert ckpt.threshold == 0.7 and ckpt.recall_target == 0.95 and ckpt.small_model["vocab_hash"] == "abc"
    for name, t in net.state_dict().items():
        assert torch.equal(t, ckpt.net.state_dict()[name])
    assert export_router(tmp_path / "r.pt", tmp_path / "r32.onnx").max_abs_diff <= 1e-4
    half = export_router(tmp_path / "r.pt", tmp_path / "r16.onnx", fp16=True)
    assert half.max_abs_diff <= 5e-2 and half.bytes < (tmp_path / "r32.onnx").stat().st_size
    meta = json.loads((tmp_path / "r16.json").read_text())
    assert meta["precision"] == "fp16" and meta["small_model"]["vocab_hash"] == "abc" and meta["d"] == 16


def _pair(tmp_path):  # type: ignore[no-untyped-def]
    """A checkpoint, and an earlier export of another one at r.onnx/r.json; returns their bytes."""
    save_checkpoint(tmp_path / "old.pt", RouterNet(RouterShape(hidden_states_size=16, hidden_dims=(8,))),
                    threshold=0.25, recall_target=0.9)
    export_router(tmp_path / "old.pt", tmp_path / "r.onnx")
    save_checkpoint(tmp_path / "new.pt", RouterNet(RouterShape(hidden_states_size=16, hidden_dims=(32,))),
                    threshold=0.75, recall_target=0.9)
    return {p.name: p.read_bytes() for p in tmp_path.iterdir()}


@pytest.mark.parametrize("where", ["check", "sidecar rename", "model rename"])
def test_an_interrupted_export_keeps_the_old_model_and_sidecar(tmp_path, monkeypatch, where):
    import os

    import r2r_local.export.router as export

    before = _pair(tmp_path)
    real = os.replace

    def replace(src, dst):  # type: ignore[no-untyped-def]
        if str(dst).endswith(".json" if where == "sidecar rename" else ".onnx"):
            raise KeyboardInterrupt
        real(src, dst)

    def check(*a, **k):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(*(export, "_check", check) if where == "check" else (os, "replace", replace))
    with pytest.raises(KeyboardInterrupt):
        export.export_router(tmp_path / "new.pt", tmp_path / "r.onnx")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # byte-identical, no temp files


def test_train_router_export_failing_on_disk_keeps_the_old_pair(tmp_path, monkeypatch):
    import os

    from r2r_local.commands.train_router import _export_onnx

    before = _pair(tmp_path)
    real = os.replace

    def replace(src, dst):  # type: ignore[no-untyped-def]
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(RouterError, match="r.onnx: cannot write it .No space left on device"):
        _export_onnx(str(tmp_path / "new.pt"), str(tmp_path / "r.onnx"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


class _Evil:
    def __reduce__(self):
        return (print, ("this would have run code",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    torch.save({"init_args": {}, "state_dict": _Evil()}, tmp_path / "evil.pt")  # as torch.save writes it
    with pytest.raises(RouterError, match="refused, it contains objects that would run code"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RouterError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


@pytest.mark.parametrize("goal", [["--recall", "0.9"], ["--target-share", "0.2"]])
def test_train_router_cli_learns_and_sets_the_threshold(tmp_path, smollm2, goal):
    synthetic_labels(tmp_path / "data", smollm2)
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", "train-router", "--data", str(tmp_path / "data"),
                           "--out", str(tmp_path / "r.pt"), "--onnx", str(tmp_path / "r.onnx"), "--epochs", "12",
                           "--hidden-dims", "64,64", *goal], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    v = report["validation"]
    if goal[0] == "--recall":
        assert v["recall"] >= 0.9
    else:
        assert abs(v["large_share"] - 0.2) < 0.02
    base_rate = v["positives"] / v["positions"]
    assert v["precision"] > 2 * base_rate  # far better than escalating at random
    assert report["onnx"]["max_abs_diff"] <= 1e-4
    assert parse_router(str(tmp_path / "r.onnx"), n_embd=576).threshold == pytest.approx(v["threshold"])


def test_train_router_bad_data_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", "train-router", "--data", str(tmp_path),
                           "--out", str(tmp_path / "r.pt")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "no manifest.json" in proc.stderr and proc.stderr.count("\n") == 1


def test_export_script_router_subcommand(tmp_path):
    _reference_style_checkpoint(tmp_path / "ref.pt")
    proc = subprocess.run([sys.executable, "scripts/export.py", "router", str(tmp_path / "ref.pt"),
                           str(tmp_path / "ref.onnx")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "max abs diff" in proc.stdout and (tmp_path / "ref.json").is_file()
    proc = subprocess.run([sys.executable, "scripts/export.py", "router", str(tmp_path / "ref.pt"),
                           str(tmp_path / "q.onnx"), "--int8"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "q-fp32.json").read_text())["precision"] == "fp32"
    assert json.loads((tmp_path / "q.json").read_text())["precision"] == "int8"
    assert "parameters in int8" in proc.stdout
    proc = subprocess.run([sys.executable, "scripts/export.py", "router", str(tmp_path / "none.pt"),
                           str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "file not found" in proc.stderr


def test_export_script_router_takes_paths_like_its_siblings_and_names_an_onnx_input(tmp_path):
    """`router IN.pt OUT.onnx` as `router-int8 IN.onnx OUT.onnx`; an exported router given as the
    checkpoint is one line saying what it is (not torch's cut-off unpickling message)."""
    onnx = Path(__file__).resolve().parents[1] / "models" / "demo" / "router.onnx"
    proc = subprocess.run([sys.executable, "scripts/export.py", "router", str(onnx), str(tmp_path / "x.onnx")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr == (f"export.py router: router checkpoint {onnx}: an ONNX model (an exported router), not a "
                           f"PyTorch checkpoint: it needs no export (scripts/export.py router-int8 {onnx} OUT.onnx "
                           "makes an int8 copy)\n")
    assert not (tmp_path / "x.onnx").exists()


def _damaged(doc: dict, case: str) -> dict:
    state = {k: v.clone() for k, v in doc["state_dict"].items()}
    if case == "nan":
        state["logits_projection.weight"][0, 0] = float("nan")
    return {**doc, "state_dict": [1] if case == "not-a-dict" else state,
            "init_args": {**doc["init_args"], "hidden_states_size": 40} if case == "other-shape" else doc["init_args"],
            "common_args": {"threshold": "abc"} if case == "threshold" else doc["common_args"]}


@pytest.mark.parametrize("case,needle", [("other-shape", "weights do not fit its init_args"),
                                         ("not-a-dict", "state_dict is not a dict"),
                                         ("threshold", "threshold 'abc' is not a number"),
                                         ("nan", "logits_projection.weight has NaN")])
def test_export_script_damaged_router_checkpoint_is_one_line(tmp_path, case, needle):
    _reference_style_checkpoint(tmp_path / "ref.pt")
    torch.save(_damaged(torch.load(tmp_path / "ref.pt", weights_only=True), case), tmp_path / "bad.pt")
    proc = subprocess.run([sys.executable, "scripts/export.py", "router", str(tmp_path / "bad.pt"),
                           str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(tmp_path / "bad.pt") in proc.stderr and needle in proc.stderr
    assert not (tmp_path / "x.onnx").exists()
