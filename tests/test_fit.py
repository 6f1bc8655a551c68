"""The GPU fit plan on the real R1 shapes (header-only GGUFs) and the out-of-memory fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2r_local.errors import ModelLoadError
from r2r_local.fit import (CUDA_OVERHEAD_BYTES, MARGIN_FRACTION, ROUTER_RUNTIME_BYTES, FitError, budget,
                           compute_bytes, config_layers, layout_from_gguf, place, plan_fit, retry_fewer_layers)
from r2r_local.gpu import parse_nvidia_smi, query_gpus
from shape_headers import R1_1_5B, R1_1_5B_Q4_K_M_BYTES, R1_32B, R1_32B_Q4_K_M_GB, write_header_only

GiB = 1 << 30
ROUTER = 215_000_000  # the reference router as fp32 ONNX (measured on this project's CPU machines)


@pytest.fixture(scope="module")
def r1(tmp_path_factory):
    d = tmp_path_factory.mktemp("r1")
    return (layout_from_gguf(write_header_only(d / "r1-1.5b.gguf", R1_1_5B)),
            layout_from_gguf(write_header_only(d / "r1-32b.gguf", R1_32B)))


def test_header_only_shapes_match_the_published_files(r1):
    small, large = r1
    # The published file = tensors + metadata (vocabulary, merges: a few MB) + alignment.
    assert 0 < R1_1_5B_Q4_K_M_BYTES - small.weight_bytes < 10_000_000
    assert abs(large.weight_bytes / 1e9 - R1_32B_Q4_K_M_GB) < 0.1
    assert (small.n_layer, large.n_layer) == (28, 64)
    assert small.kv_bytes_per_token == 2 * 2 * 128 * 2  # K+V, 2 KV heads x 128, f16
    assert large.kv_bytes_per_token == 2 * 8 * 128 * 2
    assert not small.tied and not large.tied


def _check_maximal(plan, small, large, n_ctx):
    assert plan.gpu_bytes <= plan.budget_bytes == budget(plan.free_bytes)
    k = plan.large.gpu_layers
    if k <= large.n_layer:  # one more large layer would not have fitted
        used_by_rest = plan.gpu_bytes - plan.large.gpu_bytes
        assert used_by_rest + place(large, "large", k + 1, n_ctx).gpu_bytes > plan.budget_bytes


def test_24gb_card_holds_the_whole_pair(r1):
    small, large = r1
    plan = plan_fit(small, large, n_ctx=4096, free_bytes=24 * GiB, router_bytes=ROUTER)
    assert plan.small.gpu_layers == small.n_layer + 1 and plan.router_on_gpu
    _check_maximal(plan, small, large, 4096)
    assert plan.large.gpu_layers >= 60
    assert plan.lines()[2].startswith("large: 64/64 layers on GPU")


def test_12gb_card_splits_the_large_model(r1):
    small, large = r1
    plan = plan_fit(small, large, n_ctx=4096, free_bytes=12 * GiB, router_bytes=ROUTER)
    assert plan.small.gpu_layers == small.n_layer + 1
    _check_maximal(plan, small, large, 4096)
    # The same figure by hand: what is left after the fixed costs, over an average layer + its cache.
    left = (12 * GiB * (1 - MARGIN_FRACTION) - CUDA_OVERHEAD_BYTES - plan.small.gpu_bytes
            - ROUTER - ROUTER_RUNTIME_BYTES - compute_bytes(large, 4096, False))
    per_layer = sum(large.layer_bytes) / 64 + 4096 * large.kv_bytes_per_token
    assert abs(plan.large.gpu_layers - left / per_layer) <= 2
    assert 20 <= plan.large.gpu_layers <= 36
    line = plan.large.line()
    assert line.startswith(f"large: {plan.large.gpu_layers}/64 layers on GPU") and "GB on CPU" in line
    # what is not on the GPU is on the CPU, and nothing is lost
    kv_all = 64 * 4096 * large.kv_bytes_per_token
    gpu_weights = plan.large.gpu_bytes - compute_bytes(large, 4096, False)
    assert plan.large.cpu_bytes + gpu_weights == large.weight_bytes + kv_all


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    """The catalog's qwen3-0.6b-8b pair as header-only files: 0.6B at Q8_0, 8B at Q4_K_M."""
    from r2r_local.shapes import get_shape
    from r2r_local.shapes.writer import write_shape_header

    d = tmp_path_factory.mktemp("qwen3")
    return (layout_from_gguf(write_shape_header(get_shape("qwen3-0.6b"), "Q8_0", d / "s.gguf")),
            layout_from_gguf(write_shape_header(get_shape("qwen3-8b"), "Q4_K_M", d / "l.gguf")))


def test_qwen3_layouts_use_its_own_head_size(qwen3):
    small, large = qwen3
    # Qwen's files: 639446688 and 5027783488 bytes = tensors + ~5.95 MB of metadata.
    assert 5_900_000 < 639_446_688 - small.weight_bytes < 6_000_000
    assert 5_900_000 < 5_027_783_488 - large.weight_bytes < 6_000_000
    assert (small.n_layer, large.n_layer, small.n_embd, large.n_embd) == (28, 36, 1024, 4096)
    # K+V of 8 KV heads of 128 (key_length), f16: not hidden/heads, which is 64 for the 0.6B
    assert small.kv_bytes_per_token == large.kv_bytes_per_token == 2 * 8 * (128 + 128)
    assert small.tied and not large.tied


def test_qwen3_pair_on_8_and_12_gb_cards(qwen3):
    small, large = qwen3
    router = 4 * 54_677_505  # the reference router's fp32 weights for a hidden size of 1024
    roomy = plan_fit(small, large, n_ctx=4096, free_bytes=12 * 10**9, router_bytes=router)
    assert roomy.small.gpu_layers == 29 and roomy.large.gpu_layers == 37 and roomy.router_on_gpu
    tight = plan_fit(small, large, n_ctx=4096, free_bytes=8 * 10**9, router_bytes=router)
    assert tight.small.gpu_layers == 29 and tight.router_on_gpu and 28 <= tight.large.gpu_layers < 36
    _check_maximal(tight, small, large, 4096)


def test_longer_context_leaves_fewer_layers(r1):
    small, large = r1
    short = plan_fit(small, large, n_ctx=2048, free_bytes=12 * GiB)
    long = plan_fit(small, large, n_ctx=16384, free_bytes=12 * GiB)
    assert long.large.gpu_layers < short.large.gpu_layers


def test_a_card_too_small_for_the_small_model_is_refused(r1):
    small, large = r1
    with pytest.raises(FitError) as e:
        plan_fit(small, large, n_ctx=4096, free_bytes=int(1.5 * GiB), router_bytes=ROUTER)
    msg = str(e.value)
    assert "small model does not fit" in msg and "--small-gpu-layers 0" in msg and "\n" not in msg


def test_the_router_moves_to_the_cpu_when_only_the_small_model_fits(r1):
    small, large = r1
    s = place(small, "small", -1, 4096)
    free = int((s.gpu_bytes + CUDA_OVERHEAD_BYTES + 100e6) / (1 - MARGIN_FRACTION))
    plan = plan_fit(small, large, n_ctx=4096, free_bytes=free, router_bytes=ROUTER)
    assert not plan.router_on_gpu and "router" in plan.note and plan.large.gpu_layers == 0


def test_flags_override_the_plan(r1):
    small, large = r1
    plan = plan_fit(small, large, n_ctx=4096, free_bytes=12 * GiB, large_gpu_layers=10)
    assert plan.source == "flags" and plan.large.gpu_layers == 10 and plan.small.gpu_layers == 29
    over = plan_fit(small, large, n_ctx=4096, free_bytes=12 * GiB, large_gpu_layers=-1)
    assert over.large.gpu_layers == 65 and "warning" in over.note
    assert config_layers(over.large) == -1 and config_layers(plan.large) == 10


def test_no_gpu_puts_everything_on_the_cpu(r1):
    small, large = r1
    plan = plan_fit(small, large, n_ctx=4096, free_bytes=None, router_bytes=ROUTER)
    assert plan.source == "no-gpu" and plan.small.gpu_layers == plan.large.gpu_layers == 0
    assert plan.gpu_bytes == 0 and plan.lines()[0].startswith("no GPU found")


def test_layout_of_a_real_gguf_with_tied_embeddings(smollm2):
    m = layout_from_gguf(smollm2)
    assert m.n_layer == 30 and m.tied and m.n_embd == 576
    assert 0 < smollm2.stat().st_size - m.weight_bytes < 5_000_000  # header and metadata only


def test_retry_fewer_layers_steps_down_on_out_of_memory():
    calls = []

    def load(n: int) -> str:
        calls.append(n)
        if n > 40:
            raise ModelLoadError("large model x.gguf: allocating 812 MiB on device 0: cudaMalloc failed: out of memory")
        return f"loaded {n}"

    assert retry_fewer_layers(load, 52, step=4) == ("loaded 40", 40)
    assert calls == [52, 48, 44, 40]


def test_retry_fewer_layers_passes_other_errors_through():
    def corrupt(n: int) -> None:
        raise ModelLoadError("large model x.gguf: failed to read magic (the file is truncated or corrupt)")

    with pytest.raises(ModelLoadError, match="corrupt"):
        retry_fewer_layers(corrupt, 52)

    def never(n: int) -> None:
        raise ModelLoadError("unable to allocate CUDA0 buffer")

    with pytest.raises(ModelLoadError, match="unable to allocate"):
        retry_fewer_layers(never, 8, step=4)


def test_load_pair_fitted_loads_a_real_pair(smollm2):
    from dataclasses import replace

    from r2r_local.config import ModelSpec
    from r2r_local.fit import load_pair_fitted
    from settings import THREADS

    spec = ModelSpec(str(smollm2), n_ctx=256, threads=THREADS)
    pair, used, _ = load_pair_fitted(replace(spec, role="small"), replace(spec, role="large", n_gpu_layers=0))
    try:
        assert used == 0 and pair.large.n_layer == 30
    finally:
        pair.close()
    # "all layers" (-1) starts counting down from every layer plus the head, not from a sentinel
    pair, used, tried = load_pair_fitted(replace(spec, role="small"), replace(spec, role="large", n_gpu_layers=-1))
    pair.close()
    assert used == tried == 31


def test_nvidia_smi_rows_parse():
    gpus = parse_nvidia_smi("0, NVIDIA GeForce RTX 4090, 24564, 23012\n1, NVIDIA RTX A2000, 12288, 11000\n")
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A2000"]
    assert gpus[0].free_bytes == 23012 << 20 and gpus[1].total_bytes == 12288 << 20


def test_this_machine_reports_why_it_has_no_gpu():
    q = query_gpus()
    if q.gpus:
        pytest.skip("this machine has a GPU")
    assert q.best_free_bytes is None and q.detail.startswith("no GPU found")
