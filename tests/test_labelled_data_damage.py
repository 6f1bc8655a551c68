"""Damaged labelled data, non-finite thresholds and interrupted writes: `train-router` and
`threshold` answer with one line that names the damaged file, and never lose a router."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from label_files import synthetic_labels
from r2r_local.cli import main
from r2r_local.demo.paths import demo_pair
from r2r_local.errors import ConfigError
from r2r_local.labeling import thresholds
from router_files import linear_router

SHARD = "shard-000001.npz"


def _manifest(root: Path, change) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((root / "manifest.json").read_text())
    change(doc["config"])
    (root / "manifest.json").write_text(json.dumps(doc))


def _shard(root: Path, change) -> None:  # type: ignore[no-untyped-def]
    with np.load(root / SHARD) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez_compressed(root / SHARD, **arrays)


def _set(arrays: dict, key: str, value) -> None:  # type: ignore[no-untyped-def]
    arrays[key] = value(arrays[key])


def _nan(a: np.ndarray) -> np.ndarray:
    return np.full_like(a, np.nan)


def _token_out_of_range(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[3] = 49152 + 7  # SmolLM2 has 49152 tokens
    return a


def _flip(raw: bytes) -> bytes:
    mid = len(raw) // 2
    return raw[:mid] + bytes(b ^ 0xFF for b in raw[mid:mid + 64]) + raw[mid + 64:]


DAMAGE = {  # name -> (damage, the file the message must name)
    "manifest not JSON": (lambda r: (r / "manifest.json").write_text("{bad"), "manifest.json"),
    "manifest a list": (lambda r: (r / "manifest.json").write_text("[1]"), "manifest.json"),
    "manifest not UTF-8": (lambda r: (r / "manifest.json").write_bytes(b'{"config": "\xff\xfe"}'), "manifest.json"),
    "manifest without config": (lambda r: (r / "manifest.json").write_text("{}"), "manifest.json"),
    "config without small": (lambda r: _manifest(r, lambda c: c.pop("small")), "manifest.json"),
    "config n_embd not a number": (lambda r: _manifest(r, lambda c: c.update(n_embd="576")), "manifest.json"),
    "config small of another width": (lambda r: _manifest(r, lambda c: c.update(small=str(demo_pair().small))),
                                      "manifest.json"),
    "config small not a GGUF": (lambda r: _manifest(r, lambda c: c.update(small=str(r / "manifest.json"))),
                                "manifest.json"),
    "shard of 0 bytes": (lambda r: (r / SHARD).write_bytes(b""), SHARD),
    "shard truncated": (lambda r: (r / SHARD).write_bytes((r / SHARD).read_bytes()[:3000]), SHARD),
    "shard with flipped bytes": (lambda r: (r / SHARD).write_bytes(_flip((r / SHARD).read_bytes())), SHARD),
    "shard a text file": (lambda r: (r / SHARD).write_text("prompt,label\n1,0\n"), SHARD),
    "shard a pickle": (lambda r: np.save(r / SHARD, np.array([{"a": 1}], dtype=object)) or
                       (r / (SHARD + ".npy")).replace(r / SHARD), SHARD),
    "shard without topk": (lambda r: _shard(r, lambda a: a.pop("topk")), SHARD),
    "hidden of another width": (lambda r: _shard(r, lambda a: _set(a, "hidden", lambda h: h[:, :100])), SHARD),
    "small_token outside the vocabulary": (lambda r: _shard(r, lambda a: _set(a, "small_token", _token_out_of_range)),
                                           SHARD),
    "small_token negative": (lambda r: _shard(r, lambda a: _set(a, "small_token", lambda t: t - 10**6)), SHARD),
    "small_token floats": (lambda r: _shard(r, lambda a: _set(a, "small_token", lambda t: t.astype(float))), SHARD),
    "label shorter than features": (lambda r: _shard(r, lambda a: _set(a, "label", lambda x: x[:-5])), SHARD),
    "label not 0 or 1": (lambda r: _shard(r, lambda a: _set(a, "label", lambda x: x + 2)), SHARD),
    "topk of another width": (lambda r: _shard(r, lambda a: _set(a, "topk", lambda k: k[:, :50])), SHARD),
    "hidden all NaN": (lambda r: _shard(r, lambda a: _set(a, "hidden", _nan)), SHARD),
    "topk infinite": (lambda r: _shard(r, lambda a: _set(a, "topk", lambda k: k * np.inf)), SHARD),
}


@pytest.fixture(scope="module")
def good_data(tmp_path_factory, smollm2):
    root = tmp_path_factory.mktemp("good") / "data"
    synthetic_labels(root, smollm2, n_prompts=3, n=40)
    return root


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _one_line_error(capsys, code: int, *names: str) -> str:  # type: ignore[no-untyped-def]
    err = capsys.readouterr().err
    # a warning about the data (few divergent positions) may come first; the error is one line
    err = "".join(line for line in err.splitlines(keepends=True) if ": warning: " not in line)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("r2r: error: ") and "internal error" not in err, err
    for name in names:
        assert name in err, err
    return err


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_threshold_on_damaged_data_names_the_file_and_keeps_the_sidecar(tmp_path, good_data, capsys, damage):
    data = _copy(good_data, tmp_path / "data")
    hurt, name = DAMAGE[damage]
    hurt(data)
    linear_router(tmp_path / "r.onnx", 576, threshold=0.5)
    before = (tmp_path / "r.json").read_bytes()
    code = main(["threshold", "--router", str(tmp_path / "r.onnx"), "--data", str(data), "--recall", "0.9"])
    _one_line_error(capsys, code, str(data / name))
    assert (tmp_path / "r.json").read_bytes() == before


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_train_router_on_damaged_data_names_the_file(tmp_path, good_data, capsys, damage):
    pytest.importorskip("torch")
    data = _copy(good_data, tmp_path / "data")
    hurt, name = DAMAGE[damage]
    hurt(data)
    code = main(["train-router", "--data", str(data), "--out", str(tmp_path / "r.pt"),
                 "--onnx", str(tmp_path / "r.onnx"), "--epochs", "1", "--hidden-dims", "16"])
    err = _one_line_error(capsys, code, str(data / name))
    assert "epoch" not in err and not list(tmp_path.glob("r.*"))


def test_a_router_with_nan_output_never_writes_a_nan_threshold(tmp_path, good_data, capsys):
    linear_router(tmp_path / "r.onnx", 576, threshold=0.5, scale=float("nan"))
    before = (tmp_path / "r.json").read_bytes()
    for goal in (["--recall", "0.9"], ["--target-share", "0.1"]):
        code = main(["threshold", "--router", str(tmp_path / "r.onnx"), "--data", str(good_data), *goal])
        # the router itself refuses its NaN output (the threshold functions' own check is below)
        _one_line_error(capsys, code, str(tmp_path / "r.onnx"), "NaN")
        assert (tmp_path / "r.json").read_bytes() == before


def test_threshold_functions_refuse_non_finite_probabilities():
    p, label = np.array([0.1, np.nan, 0.9]), np.array([0, 1, 1])
    with pytest.raises(ConfigError, match="NaN or infinite"):
        thresholds.threshold_for_recall(p, label, 0.9)
    with pytest.raises(ConfigError, match="NaN or infinite"):
        thresholds.threshold_for_share(p, 0.5)
    with pytest.raises(ConfigError, match="recall must be in"):
        thresholds.threshold_for_recall(np.array([0.5]), np.array([1]), float("nan"))


def _half_then_fail(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every Path.write_text/write_bytes writes half its data, then the disk is full."""
    def write_bytes(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **k: write_bytes(self, text.encode()))


def test_threshold_interrupted_while_writing_keeps_the_old_sidecar(tmp_path, good_data, capsys, monkeypatch):
    linear_router(tmp_path / "r.onnx", 576, threshold=0.5)
    before = (tmp_path / "r.json").read_bytes()
    _half_then_fail(monkeypatch)
    code = main(["threshold", "--router", str(tmp_path / "r.onnx"), "--data", str(good_data), "--recall", "0.9"])
    _one_line_error(capsys, code, "r.json", "No space left on device")
    assert (tmp_path / "r.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.onnx"]  # no temp file left behind


def test_checkpoint_interrupted_while_writing_keeps_the_old_one(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from r2r_local.errors import RouterError
    from r2r_local.train.router_net import RouterNet, RouterShape, load_checkpoint, save_checkpoint

    net = RouterNet(RouterShape(hidden_states_size=8, hidden_dims=(8,)))
    save_checkpoint(tmp_path / "r.pt", net, threshold=0.25, recall_target=0.9)
    real_save = torch.save

    def save_half(obj, f, *a, **k):  # type: ignore[no-untyped-def]
        real_save(obj, f, *a, **k)
        Path(f).write_bytes(Path(f).read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save_half)
    with pytest.raises(RouterError, match="r.pt: cannot write it"):
        save_checkpoint(tmp_path / "r.pt", net, threshold=0.75, recall_target=0.9)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "r.pt").threshold == 0.25
    assert [p.name for p in tmp_path.iterdir()] == ["r.pt"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_a_shard_interrupted_while_writing_keeps_the_old_one(tmp_path, monkeypatch, error):
    from r2r_local.labeling import ShardStore

    store = ShardStore(tmp_path)
    path = store.write(3, {"x": np.arange(4)}, [])
    before = path.read_bytes()
    real = np.savez_compressed

    def save_then_fail(file, **arrays):  # type: ignore[no-untyped-def]
        real(file, **arrays)
        raise error(28, "No space left on device") if error is OSError else error()

    monkeypatch.setattr(np, "savez_compressed", save_then_fail)
    with pytest.raises(ConfigError if error is OSError else KeyboardInterrupt):
        store.write(3, {"x": np.arange(9)}, [])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_checkpoint_interrupted_by_ctrl_c_keeps_the_old_one(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from r2r_local.train.router_net import RouterNet, RouterShape, save_checkpoint

    net = RouterNet(RouterShape(hidden_states_size=8, hidden_dims=(8,)))
    save_checkpoint(tmp_path / "r.pt", net, threshold=0.25, recall_target=0.9)
    before = (tmp_path / "r.pt").read_bytes()

    def interrupted(obj, f, *a, **k):  # type: ignore[no-untyped-def]
        Path(f).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "r.pt", net, threshold=0.75, recall_target=0.9)
    assert (tmp_path / "r.pt").read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["r.pt"]
