"""`r2r train-router` checks every flag and output path before it reads data or trains, and a run
that fails keeps the routers already on disk."""

from __future__ import annotations

import json
import os

import pytest

from label_files import synthetic_labels
from r2r_local.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def data(tmp_path_factory, smollm2):
    root = tmp_path_factory.mktemp("flags") / "data"
    synthetic_labels(root, smollm2, n_prompts=3, n=40)
    return root


BAD = {  # flags -> a piece of the message ("{tmp}" is the test's folder)
    "lr negative": (["--lr", "-1"], "--lr must be a positive number, got -1.0"),
    "lr nan": (["--lr", "nan"], "--lr must be a positive number, got nan"),
    "lr zero": (["--lr", "0"], "--lr must be a positive number"),
    "threads 0": (["--threads", "0"], "--threads must be >= 1, got 0"),
    "threads -3": (["--threads", "-3"], "--threads must be >= 1, got -3"),
    "seed -1": (["--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    "seed 2**32": (["--seed", "4294967296"], "--seed must be between 0 and 4294967295, got 4294967296"),
    "target share nan": (["--target-share", "nan"], "--target-share must be in (0, 1), got nan"),
    "target share 1": (["--target-share", "1"], "--target-share must be in (0, 1), got 1.0"),
    "recall nan": (["--recall", "nan"], "--recall must be in (0, 1], got nan"),
    "out a directory": (["--out", "{tmp}"], "--out {tmp}: is a directory"),
    "out empty": (["--out", ""], "--out: empty path"),
    "out under a file": (["--out", "{tmp}/f.txt/r.pt"], "f.txt is not a directory"),
    "onnx not .onnx": (["--onnx", "{tmp}/r.txt"], "the file name must end in .onnx"),
    "onnx a directory": (["--onnx", "{tmp}/d.onnx"], "--onnx {tmp}/d.onnx: is a directory"),
    "onnx sidecar a directory": (["--onnx", "{tmp}/s.onnx"], "{tmp}/s.json: is a directory"),
    "onnx empty": (["--onnx", ""], "--onnx: empty path"),
    "onnx is out": (["--onnx", "{tmp}/r.onnx", "--out", "{tmp}/r.onnx"], "name the same file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_flags_are_refused_before_training(tmp_path, data, capsys, case):
    flags, message = BAD[case]
    (tmp_path / "f.txt").write_text("a file")
    (tmp_path / "d.onnx").mkdir()
    (tmp_path / "s.json").mkdir()
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    code = main(["train-router", "--data", str(data), "--out", str(tmp_path / "r.pt"), "--epochs", "1",
                 "--hidden-dims", "16", *flags])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "internal error" not in err, err
    assert message.replace("{tmp}", str(tmp_path)) in err and "epoch" not in err
    assert not (tmp_path / "r.pt").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_output_folder_is_refused_before_training(tmp_path, data, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code = main(["train-router", "--data", str(data), "--out", str(folder / "r.pt"), "--epochs", "1"])
    finally:
        folder.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 1 and f"directory {folder} is not writable" in err and "epoch" not in err


def test_a_missing_output_folder_is_made(tmp_path, data, capsys):
    out = tmp_path / "new" / "deeper" / "r.pt"
    code = main(["train-router", "--data", str(data), "--out", str(out), "--onnx", str(tmp_path / "x" / "r.onnx"),
                 "--epochs", "1", "--hidden-dims", "16", "--recall", "0.5"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file() and (tmp_path / "x" / "r.onnx").is_file() and (tmp_path / "x" / "r.json").is_file()
    n = json.loads(captured.out)["validation_positives"]
    assert 0 < n < 20 and f"warning: the held-out validation set has only {n} divergent position" in captured.err
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["r.json", "r.onnx"]  # no temp folder left


def test_changing_hidden_dims_train_the_reference_layout(tmp_path, data, capsys):
    """--hidden-dims 24,16,16: block 0 maps 24 -> 16, blocks 1 and 2 keep 16, as in the reference;
    the exported router is the plain forward pass of the saved weights."""
    import numpy as np
    import torch

    import router_layouts as rl
    from r2r_local.router.onnx import OnnxRouter

    code = main(["train-router", "--data", str(data), "--out", str(tmp_path / "r.pt"),
                 "--onnx", str(tmp_path / "r.onnx"), "--epochs", "1", "--hidden-dims", "24,16,16", "--recall", "0.5"])
    assert code == 0, capsys.readouterr().err
    doc = torch.load(tmp_path / "r.pt", weights_only=True)
    state, d = doc["state_dict"], doc["init_args"]["hidden_states_size"]
    assert doc["model_specific_args"]["block_layout"] == "reference" and doc["init_args"]["normalize_input"]
    assert {k: tuple(v.shape) for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in rl.state_dict(d, [24, 16, 16], normalize=True).items()}
    h, e, k = rl.inputs(d)
    with torch.no_grad():
        want = rl.forward(state, h, e, k, normalize=True).numpy()
    got = OnnxRouter(tmp_path / "r.onnx", n_embd=d).logits(h.numpy(), e.numpy(), k.numpy()).reshape(-1)
    assert np.abs(got - want).max() <= 1e-4


def test_help_gives_every_default(capsys):
    """Every flag with a default says it in --help (argparse does not unless asked)."""
    from r2r_local.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["train-router"]
    with_default = [a for a in sub._actions if a.option_strings and a.dest != "help"
                    and not any(a.default is v for v in (None, False))]
    assert len(with_default) == 8
    for action in with_default:
        assert "default" in (action.help or ""), action.option_strings
    with pytest.raises(SystemExit):
        main(["train-router", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal's width
    assert "(default 30)" in out and "(default 0.95)" in out and "default 256,256,256" in out
