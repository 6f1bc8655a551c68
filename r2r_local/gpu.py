"""What GPUs this machine has and how much memory is free on each: NVML, else nvidia-smi.

Both are optional. NVML is the driver's own library (libnvidia-ml.so.1 / nvml.dll), called
through ctypes, so no Python package is needed; nvidia-smi is the fallback. Nothing is probed
at import.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

_NVML_LIBS = ("nvml.dll",) if sys.platform == "win32" else ("libnvidia-ml.so.1", "libnvidia-ml.so")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    source: str  # "nvml" | "nvidia-smi"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GpuQuery:
    gpus: tuple[GpuInfo, ...]
    driver: str | None
    detail: str  # how it was found, or why none was

    @property
    def best_free_bytes(self) -> int | None:
        """Free memory of the first GPU (llama.cpp's main device), None without a GPU."""
        return self.gpus[0].free_bytes if self.gpus else None


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def _nvml() -> GpuQuery | str:
    lib = None
    for name in _NVML_LIBS:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        return f"no NVML library ({_NVML_LIBS[0]})"
    if lib.nvmlInit_v2() != 0:
        return "NVML did not initialise (is the NVIDIA driver loaded?)"
    try:
        count = ctypes.c_uint(0)
        if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return "NVML could not count the GPUs"
        drv = ctypes.create_string_buffer(96)
        driver = drv.value.decode() if lib.nvmlSystemGetDriverVersion(drv, 96) == 0 else None
        gpus = []
        for i in range(count.value):
            handle = ctypes.c_void_p()
            mem = _Memory()
            name = ctypes.create_string_buffer(96)
            if lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0:
                continue
            if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)) != 0:
                continue
            lib.nvmlDeviceGetName(handle, name, 96)
            gpus.append(GpuInfo(i, name.value.decode(errors="replace"), int(mem.total), int(mem.free), "nvml"))
        return GpuQuery(tuple(gpus), driver, f"NVML found {len(gpus)} GPU(s)")
    finally:
        lib.nvmlShutdown()


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Rows of `nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv,noheader,nounits`
    (memory in MiB)."""
    gpus = []
    for row in text.strip().splitlines():
        parts = [p.strip() for p in row.split(",")]
        if len(parts) != 4:
            continue
        try:
            gpus.append(GpuInfo(int(parts[0]), parts[1], int(float(parts[2])) << 20,
                                int(float(parts[3])) << 20, "nvidia-smi"))
        except ValueError:
            continue
    return gpus


def _smi() -> GpuQuery | str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "no nvidia-smi on PATH"
    query = [exe, "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"]
    try:
        proc = subprocess.run(query, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"nvidia-smi failed ({e})"
    if proc.returncode != 0:
        return f"nvidia-smi failed: {(proc.stderr or proc.stdout).strip().splitlines()[:1]}"
    gpus = parse_nvidia_smi(proc.stdout)
    return GpuQuery(tuple(gpus), None, f"nvidia-smi found {len(gpus)} GPU(s)")


def query_gpus() -> GpuQuery:
    """The NVIDIA GPUs and their free memory; an empty query saying why when there are none."""
    reasons = []
    for probe in (_nvml, _smi):
        try:
            found = probe()
        except (OSError, AttributeError) as e:  # a broken driver install: say so, keep going
            found = f"{probe.__name__.strip('_')} failed ({e})"
        if isinstance(found, GpuQuery) and found.gpus:
            return found
        reasons.append(found.detail if isinstance(found, GpuQuery) else found)
    return GpuQuery((), None, "no GPU found: " + "; ".join(reasons))
