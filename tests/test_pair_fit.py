"""Whether a known pair fits this machine, told before its download: layouts from the shapes the
catalog names (checked against written files and the published sizes), the verdict on a GPU and
without one, and the sizes still to download."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from r2r_local.catalog import load_catalog, local_path
from r2r_local.fit import layout_from_gguf, plan_fit
from r2r_local.pair_fit import (TIGHT, Machine, available_ram_bytes, detect_machine, fit_known_pairs, fit_pair,
                                judge, layout_from_shape)
from r2r_local.shapes import get_shape
from r2r_local.shapes.writer import write_shape_model
from r2r_local.units import format_bytes

GB = 10**9
N_CTX = 4096


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("R2R_KNOWN_MODELS", raising=False)
    return tmp_path


@pytest.mark.parametrize("name,quant", [("test-tiny-small", "Q4_K_M"), ("test-tiny-large", "Q8_0"),
                                        ("test-tiny-qwen3-small", "Q8_0"), ("test-tiny-qwen3-large", "F16")])
def test_a_shape_layout_is_the_layout_of_the_written_file(tmp_path, name, quant):
    path = write_shape_model(get_shape(name), quant, tmp_path / f"{name}.gguf", seed=1).path
    from_file = layout_from_gguf(path)
    assert replace(layout_from_shape(name, quant), path=from_file.path) == from_file


def test_the_catalog_shapes_give_the_published_sizes():
    """Each known GGUF is its tensors plus ~5.95 MB of metadata; the 32B's size is published rounded."""
    files = {f.key: f for p in load_catalog().values() for f in (p.small, p.large)}
    assert all(f.shape for f in files.values())
    for f in files.values():
        weights = layout_from_shape(f.shape, f.quant).weight_bytes
        if f.size:
            assert 5_900_000 < f.size - weights < 6_000_000, f.key
        else:
            assert abs(weights / GB - f.approx_gb) < 0.1, f.key


@pytest.fixture(scope="module")
def qwen3():
    return layout_from_shape("qwen3-0.6b", "Q8_0"), layout_from_shape("qwen3-8b", "Q4_K_M")


def test_a_gpu_with_room_for_everything(qwen3):
    fits, verdict = judge(*qwen3, Machine("GPU", 80 * GB, 64 * GB), N_CTX)
    plan = plan_fit(*qwen3, n_ctx=N_CTX, free_bytes=80 * GB)
    assert fits and verdict.startswith("fits the GPU: ") and plan.large.gpu_layers == 37


def test_a_small_gpu_takes_what_fits_and_the_rest_goes_to_ram(qwen3):
    plan = plan_fit(*qwen3, n_ctx=N_CTX, free_bytes=5 * GB)
    k = plan.large.gpu_layers
    assert 0 < k < 36
    fits, verdict = judge(*qwen3, Machine("GPU", 5 * GB, 64 * GB), N_CTX)
    assert fits and verdict.startswith(f"fits partly: {k}/36 large-model layers on the GPU, ")
    fits, verdict = judge(*qwen3, Machine("GPU", 5 * GB, GB // 10), N_CTX)
    assert not fits and verdict.startswith(f"too big: {k}/36 large-model layers on the GPU, the rest needs ")


def test_all_layers_but_the_head_is_said_so(qwen3):
    """Free memory between 'every layer' and 'every layer and the head'."""
    lo = next(gb for gb in range(5, 20) if plan_fit(*qwen3, n_ctx=N_CTX, free_bytes=gb * GB).large.gpu_layers >= 36)
    free = next(f for f in range(lo * GB - GB, lo * GB + 1, GB // 50)
                if plan_fit(*qwen3, n_ctx=N_CTX, free_bytes=f).large.gpu_layers == 36)
    fits, verdict = judge(*qwen3, Machine("GPU", free, 64 * GB), N_CTX)
    assert fits and "all 36 large-model layers on the GPU, its output head on the CPU" in verdict


def test_a_gpu_too_small_for_the_small_model(qwen3):
    fits, verdict = judge(*qwen3, Machine("GPU", GB // 2, 64 * GB), N_CTX)
    assert fits is False and verdict == "too big: the small model alone needs more than the GPU's 500 MB free"


def test_without_a_gpu_both_models_must_fit_the_ram(qwen3):
    plan = plan_fit(*qwen3, n_ctx=N_CTX, free_bytes=None)
    need = plan.small.cpu_bytes + plan.large.cpu_bytes
    assert 6 * GB < need < 8 * GB  # 5.7 GB of weights and two 4096-token caches
    assert judge(*qwen3, Machine(None, None, 64 * GB), N_CTX)[0] is True
    fits, verdict = judge(*qwen3, Machine(None, None, int(need / (TIGHT + 0.05))), N_CTX)
    assert fits and verdict.startswith("fits in RAM, tightly: ")
    fits, verdict = judge(*qwen3, Machine(None, None, need - 1), N_CTX)
    assert fits is False and verdict.startswith("too big: needs ") and verdict.endswith("available (no GPU)")
    fits, verdict = judge(*qwen3, Machine(None, None, None), N_CTX)
    assert fits is None and verdict.startswith("needs about ")


TINY_CATALOG = """
[pairs.tiny]
description = "two tiny shapes (0.01 GB + 0.01 GB)"
small = "s"
large = "l"

[files.s]
kind = "gguf"
repo = "test/tiny"
file = "small.gguf"
revision = "r1"
size = {small}
shape = "test-tiny-small"
quant = "Q8_0"

[files.l]
kind = "gguf"
repo = "test/tiny"
file = "sub/large.gguf"
revision = "r1"
approx_gb = 0.01
shape = "test-tiny-large"
quant = "Q8_0"
"""


def test_what_is_left_to_download_and_a_downloaded_file_read_itself(tmp_path, monkeypatch):
    small = write_shape_model(get_shape("test-tiny-small"), "Q8_0", tmp_path / "s.gguf").path
    large = write_shape_model(get_shape("test-tiny-large"), "Q8_0", tmp_path / "l.gguf").path
    known = tmp_path / "known.toml"
    known.write_text(TINY_CATALOG.format(small=small.stat().st_size))
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(known))
    pair = load_catalog()["tiny"]
    machine = Machine(None, None, 64 * GB)
    before = fit_pair(pair, machine)
    assert (before.download_bytes, before.size_known, before.downloaded) == (small.stat().st_size + 10**7, False, False)
    assert before.fits is True and before.size_text() == f"~{format_bytes(small.stat().st_size + 10**7)} to download"
    assert before.pull_command == "r2r models pull tiny"
    local_path(pair.small).parent.mkdir(parents=True)
    shutil.copy(small, local_path(pair.small))
    half = fit_pair(pair, machine)
    assert (half.download_bytes, half.size_known) == (10**7, False)
    local_path(pair.large).parent.mkdir(parents=True)
    local_path(pair.large).write_bytes(b"not a gguf")  # a downloaded file is read, not its shape
    broken = fit_pair(pair, machine)
    assert broken.downloaded and broken.size_text() == "downloaded" and broken.fits is None
    shutil.copy(large, local_path(pair.large))
    assert fit_pair(pair, machine).fits is True
    assert [p.name for p in fit_known_pairs(machine)] == ["tiny"]


def test_every_known_pair_is_judged_in_the_catalogs_order():
    fits = fit_known_pairs(Machine("GPU", 24 * GB, 64 * GB))
    assert [f.name for f in fits] == list(load_catalog())
    assert all(f.fits is not None and not f.downloaded and f.download_bytes > GB for f in fits)


def test_the_machine_is_the_gpu_llama_cpp_can_use_else_the_ram(monkeypatch):
    import r2r_local.backends.llama_cpp as backend
    import r2r_local.gpu as gpu

    found = gpu.GpuQuery((gpu.GpuInfo(0, "Test GPU", 24 * GB, 20 * GB, "nvml"),), "1", "NVML found 1 GPU(s)")
    monkeypatch.setattr(gpu, "query_gpus", lambda: found)
    monkeypatch.setattr(backend, "supports_gpu_offload", lambda: True)
    m = detect_machine()
    assert (m.gpu_name, m.gpu_free) == ("Test GPU", 20 * GB) and m.line().startswith("GPU Test GPU: 20 GB free; ")
    monkeypatch.setattr(backend, "supports_gpu_offload", lambda: False)
    m = detect_machine()
    assert m.gpu_free is None and "Test GPU found, but this llama-cpp-python is a CPU-only build" in m.line()
    monkeypatch.setattr(gpu, "query_gpus", lambda: gpu.GpuQuery((), None, "no GPU found: none here"))
    m = detect_machine()
    assert m.gpu_free is None and m.line().startswith("no GPU in use (none found): ")


def test_the_available_ram_is_read():
    ram = available_ram_bytes()
    assert ram is not None and 10**8 < ram < 10**14
