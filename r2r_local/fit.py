"""The GPU fit plan: which layers of each model go on the GPU, decided before loading.

Pure arithmetic over GGUF headers and one free-memory figure; nothing here touches a GPU.
Order of priority (docs/design.md, "The local system"): the small model and the router entirely on the GPU,
then as many large-model layers as fit, the rest of the large model on the CPU.

llama.cpp's placement, which the plan mirrors: `n_gpu_layers = k` puts the *last* k repeating
layers (blocks) on the GPU; k = n_layer + 1 also puts the output head there; the input embedding
table (`token_embd`) always stays on the CPU. Each layer's KV cache (f16 K and V) lives where the
layer lives. Compute buffers are estimated (an upper bound, see `compute_bytes`); a load that
still runs out of memory falls back to fewer layers (`retry_fewer_layers`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from r2r_local.config import ModelSpec
from r2r_local.errors import ModelLoadError, R2RError
from r2r_local.units import format_bytes

if TYPE_CHECKING:
    from r2r_local.backends.gguf_file import GGUFHeader

log = logging.getLogger(__name__)

MiB = 1 << 20
# Per process: the CUDA context, cuBLAS workspaces, allocator slack. Not in any model's bytes.
CUDA_OVERHEAD_BYTES = 512 * MiB
# onnxruntime's CUDA provider adds its own handles and arena on top of the router's weights.
ROUTER_RUNTIME_BYTES = 256 * MiB
MARGIN_FRACTION = 0.03  # of the free memory, kept unused against estimate errors
N_UBATCH = 512  # what backends/llama_slot.py creates contexts with
_KV_ELEMENT_BYTES = 2  # f16 cache


class FitError(R2RError):
    """The models cannot be placed as asked (e.g. not even the small model fits on the GPU)."""

    title = "Does not fit"


@dataclass(frozen=True)
class ModelLayout:
    """What placing one model costs, from its GGUF header.

    layer_bytes[i]: weights of block i; input_bytes: tensors that stay on the CPU (token_embd);
    output_bytes: the head (output.weight, or the embedding table again when tied, and
    output_norm); kv_bytes_per_token: K+V bytes per token per layer (f16).
    """

    path: str
    n_layer: int
    layer_bytes: tuple[int, ...]
    input_bytes: int
    output_bytes: int
    kv_bytes_per_token: int
    n_embd: int
    n_ff: int
    n_head: int
    n_vocab: int

    tied: bool = False

    @property
    def weight_bytes(self) -> int:
        """What the file's tensors take (a tied head is the embedding table, counted once)."""
        head = self.output_bytes - self.input_bytes if self.tied else self.output_bytes
        return sum(self.layer_bytes) + self.input_bytes + head


_BLOCK = re.compile(r"^blk\.(\d+)\.")


def layout_from_header(header: GGUFHeader) -> ModelLayout:
    """Per-layer bytes and KV cost; raises ModelLoadError when the architecture keys are missing."""
    n_layer = header.arch_int("block_count")
    n_embd = header.arch_int("embedding_length")
    n_head = header.arch_int("attention.head_count")
    if not (n_layer and n_embd and n_head):
        raise ModelLoadError(f"model {header.path}: its GGUF header lacks block_count, "
                             f"embedding_length or attention.head_count for '{header.arch}'")
    n_head_kv = header.arch_int("attention.head_count_kv", n_head)
    head_k = header.arch_int("attention.key_length", n_embd // n_head)
    head_v = header.arch_int("attention.value_length", n_embd // n_head)
    layers = [0] * n_layer
    input_bytes = output_bytes = 0
    n_vocab, tied = 0, True
    for t in header.tensors:
        m = _BLOCK.match(t.name)
        if m and int(m.group(1)) < n_layer:
            layers[int(m.group(1))] += t.nbytes
        elif t.name == "token_embd.weight":
            input_bytes += t.nbytes
            n_vocab = t.shape[-1]
        elif t.name.startswith("output"):
            output_bytes += t.nbytes
            tied = tied and t.name != "output.weight"
        else:
            input_bytes += t.nbytes  # e.g. rope factors: small, left where llama.cpp puts inputs
    if tied:  # no output.weight: llama.cpp duplicates the embedding table as the head
        output_bytes += input_bytes
    return ModelLayout(header.path, n_layer, tuple(layers), input_bytes, output_bytes,
                       _KV_ELEMENT_BYTES * n_head_kv * (head_k + head_v), n_embd,
                       header.arch_int("feed_forward_length", 4 * n_embd) or 4 * n_embd, n_head,
                       n_vocab, tied)


def layout_from_gguf(path: str | os.PathLike[str]) -> ModelLayout:
    from r2r_local.backends.gguf_file import read_header

    return layout_from_header(read_header(path))


def compute_bytes(m: ModelLayout, n_ctx: int, output_on_gpu: bool, n_ubatch: int = N_UBATCH) -> int:
    """An upper estimate of llama.cpp's GPU compute buffer for one context: one ubatch's
    attention scores and softmax (f32, n_head x n_ctx per token, no flash attention), FFN and
    residual activations, and the logits when the head is on the GPU."""
    per_token = 2 * m.n_head * n_ctx + 2 * m.n_ff + 4 * m.n_embd
    if output_on_gpu:
        per_token += m.n_vocab
    return 4 * n_ubatch * per_token


@dataclass(frozen=True)
class ModelPlan:
    """`gpu_layers` in llama.cpp's meaning (0..n_layer+1; n_layer+1 = the head too)."""

    role: str
    n_layer: int
    gpu_layers: int
    gpu_bytes: int
    cpu_bytes: int

    def line(self) -> str:
        shown = min(self.gpu_layers, self.n_layer)
        head = ", head on GPU" if self.gpu_layers > self.n_layer else ""
        return (f"{self.role}: {shown}/{self.n_layer} layers on GPU{head}, "
                f"{format_bytes(self.gpu_bytes)} on GPU, {format_bytes(self.cpu_bytes)} on CPU")


@dataclass(frozen=True)
class FitPlan:
    small: ModelPlan
    large: ModelPlan
    router_on_gpu: bool
    router_bytes: int
    free_bytes: int | None  # None: no GPU
    budget_bytes: int  # what the plan may use: free minus overhead and margin
    source: str  # "auto" | "flags" | "no-gpu"
    note: str = ""

    @property
    def gpu_bytes(self) -> int:
        router = self.router_bytes + ROUTER_RUNTIME_BYTES if self.router_on_gpu and self.router_bytes else 0
        return self.small.gpu_bytes + self.large.gpu_bytes + router

    def lines(self) -> list[str]:
        if self.free_bytes is None:
            head = "no GPU found: both models on the CPU" if self.source == "no-gpu" else "no GPU found"
        else:
            head = (f"GPU: {format_bytes(self.free_bytes)} free, plan uses {format_bytes(self.gpu_bytes)} "
                    f"of {format_bytes(self.budget_bytes)} usable ({self.source})")
        out = [head, self.small.line(), self.large.line()]
        if self.router_bytes:
            out.append(f"router: {'GPU' if self.router_on_gpu else 'CPU'}, {format_bytes(self.router_bytes)}")
        if self.note:
            out.append(self.note)
        return out

    def as_dict(self) -> dict:
        def model(p: ModelPlan) -> dict:
            return {"n_layer": p.n_layer, "gpu_layers": p.gpu_layers, "gpu_bytes": p.gpu_bytes,
                    "cpu_bytes": p.cpu_bytes, "line": p.line()}

        return {"small": model(self.small), "large": model(self.large), "router_on_gpu": self.router_on_gpu,
                "router_bytes": self.router_bytes, "free_bytes": self.free_bytes,
                "budget_bytes": self.budget_bytes, "gpu_bytes": self.gpu_bytes, "source": self.source,
                "lines": self.lines()}


def place(m: ModelLayout, role: str, gpu_layers: int, n_ctx: int) -> ModelPlan:
    """Bytes on each side for `gpu_layers` (-1 = everything, as in ModelSpec)."""
    k = m.n_layer + 1 if gpu_layers < 0 else min(gpu_layers, m.n_layer + 1)
    n_gpu = min(k, m.n_layer)
    head_gpu = k > m.n_layer
    kv = m.kv_bytes_per_token * n_ctx
    gpu_layers_bytes = sum(m.layer_bytes[m.n_layer - n_gpu:])
    gpu = gpu_layers_bytes + kv * n_gpu + (m.output_bytes if head_gpu else 0)
    if k > 0:
        gpu += compute_bytes(m, n_ctx, head_gpu)
    cpu = m.input_bytes + sum(m.layer_bytes) - gpu_layers_bytes + kv * (m.n_layer - n_gpu)
    if not head_gpu and not m.tied:
        cpu += m.output_bytes
    return ModelPlan(role, m.n_layer, k, gpu, cpu)


def budget(free_bytes: int) -> int:
    return max(0, int(free_bytes * (1 - MARGIN_FRACTION)) - CUDA_OVERHEAD_BYTES)


def plan_fit(small: ModelLayout, large: ModelLayout, *, n_ctx: int, free_bytes: int | None,
             router_bytes: int = 0, small_gpu_layers: int | None = None,
             large_gpu_layers: int | None = None) -> FitPlan:
    """Decide the layers each model puts on the GPU.

    free_bytes: the GPU's free memory (None = no usable GPU: everything on the CPU). Explicit
    `*_gpu_layers` override the automatic choice (the plan then only reports). Raises FitError
    when a GPU is there but the small model and the router do not fit on it.
    """
    flags = small_gpu_layers is not None or large_gpu_layers is not None
    if free_bytes is None and not flags:
        return FitPlan(place(small, "small", 0, n_ctx), place(large, "large", 0, n_ctx), False,
                       router_bytes, None, 0, "no-gpu")
    usable = budget(free_bytes) if free_bytes is not None else 0
    router_gpu = router_bytes + ROUTER_RUNTIME_BYTES if router_bytes else 0
    if flags:
        s = place(small, "small", -1 if small_gpu_layers is None else small_gpu_layers, n_ctx)
        l_ = place(large, "large", 0 if large_gpu_layers is None else large_gpu_layers, n_ctx)
        plan = FitPlan(s, l_, bool(router_bytes) and free_bytes is not None, router_bytes, free_bytes, usable,
                       "flags")
        if free_bytes is None:
            plan = replace(plan, note="no GPU found: the layers asked for take effect only with a GPU")
        elif plan.gpu_bytes > usable:
            plan = replace(plan, note=f"warning: the layers asked for need {format_bytes(plan.gpu_bytes)}, "
                                      f"more than the {format_bytes(usable)} usable; loading may fall back")
        return plan
    s = place(small, "small", -1, n_ctx)
    if s.gpu_bytes > usable:
        raise FitError(
            f"the small model does not fit on the GPU: it needs {format_bytes(s.gpu_bytes)} with a "
            f"{n_ctx}-token cache, {format_bytes(usable)} of {format_bytes(free_bytes)} free is usable; lower "
            f"--n-ctx or run on the CPU with --small-gpu-layers 0 --large-gpu-layers 0")
    note = ""
    if router_gpu and s.gpu_bytes + router_gpu > usable:
        router_gpu, note = 0, "the router does not fit next to the small model: it runs on the CPU"
    left = usable - s.gpu_bytes - router_gpu
    k = 0
    for cand in range(large.n_layer + 1, 0, -1):  # largest first; a handful of sums, cheap
        if place(large, "large", cand, n_ctx).gpu_bytes <= left:
            k = cand
            break
    return FitPlan(s, place(large, "large", k, n_ctx), bool(router_gpu), router_bytes, free_bytes,
                   usable, "auto", note)


# --- loading with a fallback ----------------------------------------------------------------

_OOM = ("out of memory", "failed to allocate", "unable to allocate", "cudamalloc", "alloc_buffer")
T = TypeVar("T")


def is_out_of_memory(err: Exception) -> bool:
    text = str(err).lower()
    return any(s in text for s in _OOM)


def retry_fewer_layers(load: Callable[[int], T], gpu_layers: int, *, step: int = 4,
                       on_retry: Callable[[int, Exception], None] | None = None) -> tuple[T, int]:
    """Call `load(gpu_layers)`; while it fails with an out-of-memory ModelLoadError, retry with
    `step` fewer layers (down to 0). Returns (result, layers used). Other errors propagate, as
    does an out-of-memory failure at 0 layers (then it is not the large model's layers)."""
    n = gpu_layers
    while True:
        try:
            return load(n), n
        except ModelLoadError as e:
            if n <= 0 or not is_out_of_memory(e):
                raise
            nxt = max(0, n - step)
            log.warning("out of GPU memory with %d large-model layers on the GPU; retrying with %d", n, nxt)
            if on_retry:
                on_retry(nxt, e)
            n = nxt


def load_pair_fitted(small: ModelSpec, large: ModelSpec, *, step: int = 4):
    """`pair.load_pair`, retrying with fewer large-model GPU layers when loading runs out of memory.
    Returns (LoadedPair, large layers used, large layers first tried)."""
    from r2r_local.pair import load_pair

    start = large.n_gpu_layers
    if start < 0:  # "all": count down from every layer plus the head, not from a sentinel
        start = layout_from_gguf(large.path).n_layer + 1
    pair, used = retry_fewer_layers(lambda n: load_pair(small, replace(large, n_gpu_layers=n)), start, step=step)
    return pair, used, start


def plan_for_machine(small_path: str, large_path: str, *, n_ctx: int, router: str | None = None,
                     assume_free_bytes: int | None = None, small_gpu_layers: int | None = None,
                     large_gpu_layers: int | None = None) -> FitPlan:
    """plan_fit for this machine: the first GPU's free memory (or `assume_free_bytes`), and no GPU
    at all when llama-cpp-python cannot offload (unless a figure is assumed)."""
    from r2r_local.gpu import query_gpus

    free = assume_free_bytes
    if free is None:
        from r2r_local.backends.llama_cpp import supports_gpu_offload

        free = query_gpus().best_free_bytes if supports_gpu_offload() else None
    return plan_fit(layout_from_gguf(small_path), layout_from_gguf(large_path), n_ctx=n_ctx, free_bytes=free,
                    router_bytes=router_file_bytes(router), small_gpu_layers=small_gpu_layers,
                    large_gpu_layers=large_gpu_layers)


def config_layers(p: ModelPlan) -> int:
    """A plan's layers as written in ModelSpec / the config file (-1 = every layer and the head)."""
    return -1 if p.gpu_layers > p.n_layer else p.gpu_layers


def router_file_bytes(router: str | None) -> int:
    """Bytes of a router given as an .onnx path (0 for built-in routers such as 'random:0.1')."""
    if router and router.endswith(".onnx") and Path(router).is_file():
        return Path(router).stat().st_size
    return 0
