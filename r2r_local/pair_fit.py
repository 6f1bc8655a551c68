"""Would a known pair fit this machine? Answered before anything is downloaded.

Each pair's files name their shape and quantization mix (models/known_models.toml, keys `shape`
and `quant`); a shape and llama.cpp's mix rules give every tensor's bytes (r2r_local.shapes), so
the GPU fit plan (r2r_local.fit) is made as for the real files: a GGUF header built from the
shape goes through the same `layout_from_header`. A file already downloaded is read instead.

Memory: the first GPU's free memory where llama.cpp can offload to it, else the RAM available.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from r2r_local.catalog import KnownFile, KnownPair, load_catalog, local_path
from r2r_local.config import DEFAULT_N_CTX
from r2r_local.errors import R2RError
from r2r_local.fit import FitError, FitPlan, ModelLayout, layout_from_gguf, layout_from_header, plan_fit
from r2r_local.units import format_bytes

TIGHT = 0.85  # a pair that needs more than this share of the available RAM is said to fit tightly


@dataclass(frozen=True)
class Machine:
    """What a pair has to fit into. gpu_free None: no GPU llama.cpp can use (then RAM counts);
    ram_available None: unknown; note: why a GPU that is there is not used."""

    gpu_name: str | None
    gpu_free: int | None
    ram_available: int | None
    note: str = ""

    def line(self) -> str:
        ram = f"{format_bytes(self.ram_available)} of RAM available" if self.ram_available else "RAM unknown"
        if self.gpu_free is not None:
            return f"GPU {self.gpu_name}: {format_bytes(self.gpu_free)} free; {ram}"
        return f"no GPU in use{f' ({self.note})' if self.note else ''}: {ram}"


@dataclass(frozen=True)
class PairFit:
    """One known pair for the first-run view. download_bytes: what is still to download (files
    of unknown size count 0, and `size_known` is then False); fits: None when it could not be told."""

    name: str
    description: str
    download_bytes: int
    size_known: bool
    downloaded: bool
    fits: bool | None
    verdict: str

    @property
    def pull_command(self) -> str:
        return f"r2r models pull {self.name}"

    def size_text(self) -> str:
        if self.downloaded:
            return "downloaded"
        return ("" if self.size_known else "~") + format_bytes(self.download_bytes) + " to download"


def available_ram_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), else the free pages POSIX reports, else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def detect_machine() -> Machine:
    """The first GPU's free memory when llama-cpp-python can offload, and the available RAM."""
    from r2r_local.backends.llama_cpp import supports_gpu_offload
    from r2r_local.gpu import query_gpus

    gq = query_gpus()
    ram = available_ram_bytes()
    if not gq.gpus:
        return Machine(None, None, ram, "none found")
    if not supports_gpu_offload():
        return Machine(None, None, ram, f"{gq.gpus[0].name} found, but this llama-cpp-python is a CPU-only build")
    return Machine(gq.gpus[0].name, gq.gpus[0].free_bytes, ram)


def layout_from_shape(shape_name: str, quant: str) -> ModelLayout:
    """The layout a GGUF of this shape and mix has: a header with the shape's architecture keys and
    every tensor's type and bytes (ggml order shapes), read by fit.layout_from_header."""
    from r2r_local.backends.gguf_file import GGUFHeader, TensorInfo
    from r2r_local.shapes import get_shape, tensor_specs
    from r2r_local.shapes.quant import tensor_bytes, tensor_types

    shape = get_shape(shape_name)
    types = tensor_types(shape, quant)
    tensors = tuple(TensorInfo(s.name, int(types[s.name]), tuple(reversed(s.shape)), tensor_bytes(s, types[s.name]))
                    for s in tensor_specs(shape))
    arch = shape.arch
    meta = {"general.architecture": arch, f"{arch}.block_count": shape.n_layers,
            f"{arch}.embedding_length": shape.hidden_size, f"{arch}.feed_forward_length": shape.ffn_size,
            f"{arch}.attention.head_count": shape.n_heads, f"{arch}.attention.head_count_kv": shape.n_kv_heads,
            f"{arch}.attention.key_length": shape.head_dim, f"{arch}.attention.value_length": shape.head_dim}
    return layout_from_header(GGUFHeader(f"{shape_name} {quant}", meta, tensors))


def file_layout(f: KnownFile) -> ModelLayout | None:
    """The downloaded file's layout, else its shape's; None when neither is there."""
    path = local_path(f)
    try:
        if path.is_file():
            return layout_from_gguf(path)
        return layout_from_shape(f.shape, f.quant) if f.shape else None
    except R2RError:
        return None


def fit_pair(pair: KnownPair, machine: Machine, n_ctx: int = DEFAULT_N_CTX) -> PairFit:
    """The pair's download size and whether it fits `machine` (with an `n_ctx`-token cache each)."""
    files = [f for f in (pair.small, pair.large, pair.router) if f is not None]
    missing = [f for f in files if not local_path(f).is_file()]
    size = sum(f.size or int(f.approx_gb * 1e9) for f in missing)
    known = all(f.size for f in missing)
    small, large = file_layout(pair.small), file_layout(pair.large)
    if small is None or large is None:
        fits, verdict = None, "fit unknown: no shape recorded for its models"
    else:
        fits, verdict = judge(small, large, machine, n_ctx)
    return PairFit(pair.name, pair.description, size, known, not missing, fits, verdict)


def judge(small: ModelLayout, large: ModelLayout, machine: Machine, n_ctx: int) -> tuple[bool | None, str]:
    """(fits, one line). On a GPU: the fit plan (small model first, then as many large-model layers
    as fit), the layers left over must fit the RAM; without one, both models must fit the RAM."""
    ram = machine.ram_available
    if machine.gpu_free is None:
        plan = plan_fit(small, large, n_ctx=n_ctx, free_bytes=None)
        need = plan.small.cpu_bytes + plan.large.cpu_bytes
        if ram is None:
            return None, f"needs about {format_bytes(need)} of RAM (no GPU; free RAM unknown)"
        if need > ram:
            return False, f"too big: needs {format_bytes(need)} of RAM, {format_bytes(ram)} available (no GPU)"
        tight = ", tightly" if need > TIGHT * ram else ""
        return True, f"fits in RAM{tight}: {format_bytes(need)} of {format_bytes(ram)} available (no GPU: slow)"
    try:
        plan = plan_fit(small, large, n_ctx=n_ctx, free_bytes=machine.gpu_free)
    except FitError:
        return False, f"too big: the small model alone needs more than the GPU's {format_bytes(machine.gpu_free)} free"
    return _gpu_verdict(plan, ram)


def _gpu_verdict(plan: FitPlan, ram: int | None) -> tuple[bool, str]:
    large, cpu = plan.large, plan.small.cpu_bytes + plan.large.cpu_bytes
    if large.gpu_layers > large.n_layer:
        return True, f"fits the GPU: {format_bytes(plan.gpu_bytes)} of {format_bytes(plan.free_bytes or 0)} free"
    if large.gpu_layers == large.n_layer:
        on_gpu = f"all {large.n_layer} large-model layers on the GPU, its output head on the CPU"
    else:
        on_gpu = f"{large.gpu_layers}/{large.n_layer} large-model layers on the GPU"
    if ram is not None and cpu > ram:
        return False, f"too big: {on_gpu}, the rest needs {format_bytes(cpu)} of RAM, {format_bytes(ram)} available"
    return True, f"fits partly: {on_gpu}, {format_bytes(cpu)} in RAM (slower)"


def fit_known_pairs(machine: Machine, catalog: dict[str, KnownPair] | None = None,
                    n_ctx: int = DEFAULT_N_CTX) -> list[PairFit]:
    """Every known pair, in the catalog's order, with its size and fit on `machine`."""
    catalog = catalog if catalog is not None else load_catalog()
    return [fit_pair(pair, machine, n_ctx) for pair in catalog.values()]
