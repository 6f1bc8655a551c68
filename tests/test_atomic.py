import os

import numpy as np
import pytest

from r2r_local import atomic


def test_write_bytes_replaces_and_keeps_the_mode(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    path.chmod(0o600)
    atomic.write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o600
    atomic.write_text(tmp_path / "sub" / "g.txt", "caf\u00e9\r\n")
    assert (tmp_path / "sub" / "g.txt").read_bytes() == "caf\u00e9\r\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "sub"]


def test_a_new_file_gets_the_umasks_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic.write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640


def test_the_temp_file_keeps_the_suffix_for_writers_that_append_one(tmp_path):
    path = tmp_path / "a.npz"
    with atomic.replacing(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npz" and tmp.name.startswith(".a.npz.")
        np.savez(tmp, x=np.arange(3))
    assert np.load(path)["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError, ValueError])
def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path, error):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(error):
        with atomic.replacing(path) as tmp:
            tmp.write_bytes(b"half")
            raise error()
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_a_failing_rename_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch, error):
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def fail(src, dst):
        raise error()

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(error):
        atomic.write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f"]


@pytest.mark.parametrize("had_sidecar", [True, False])
def test_a_pair_is_restored_when_its_second_rename_fails(tmp_path, monkeypatch, had_sidecar):
    model, side = tmp_path / "r.onnx", tmp_path / "r.json"
    model.write_bytes(b"old model")
    if had_sidecar:
        side.write_bytes(b"old sidecar")
    real = os.replace

    def second_fails(src, dst):
        if str(dst) == str(side):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(KeyboardInterrupt):
        with atomic.replacing_together(model, side) as (tmp_model, tmp_side):
            tmp_model.write_bytes(b"new model")
            tmp_side.write_bytes(b"new sidecar")
    assert model.read_bytes() == b"old model"
    assert side.read_bytes() == b"old sidecar" if had_sidecar else not side.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.onnx"] + ["r.json"] * had_sidecar)


def test_a_new_pair_is_removed_when_its_second_rename_fails(tmp_path, monkeypatch):
    model, side = tmp_path / "r.onnx", tmp_path / "r.json"
    real = os.replace

    def second_fails(src, dst):
        if str(dst) == str(side):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError):
        with atomic.replacing_together(model, side) as (tmp_model, tmp_side):
            tmp_model.write_bytes(b"new model")
            tmp_side.write_bytes(b"new sidecar")
    assert list(tmp_path.iterdir()) == []


def test_a_pair_is_replaced_together(tmp_path):
    model, side = tmp_path / "r.onnx", tmp_path / "r.json"
    model.write_bytes(b"old model")
    side.write_bytes(b"old sidecar")
    with atomic.replacing_together(model, side) as (tmp_model, tmp_side):
        tmp_model.write_bytes(b"new model")
        tmp_side.write_bytes(b"new sidecar")
    assert (model.read_bytes(), side.read_bytes()) == (b"new model", b"new sidecar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.onnx"]
