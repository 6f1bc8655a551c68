"""`r2r doctor`'s findings: the llama.cpp build, the GPUs, onnxruntime's CUDA provider, the
configured models and the fit plan; every problem comes with the command that fixes it.

`diagnose()` gathers everything into a `Report`; rendering lives in commands/doctor.py.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2r_local.errors import R2RError

if TYPE_CHECKING:
    from r2r_local.server_bounds import ServerBounds

LLAMA_VERSION = "0.3.36"
FIX_LLAMA_CUDA = (f'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
                  f'llama-cpp-python=={LLAMA_VERSION}')
FIX_ORT_GPU = 'pip install "onnxruntime-gpu[cuda,cudnn]"'
FIX_ORT_REPLACE_CPU = f'pip uninstall -y onnxruntime && {FIX_ORT_GPU}'
FIX_DRIVER = ("nothing to do on a machine without an NVIDIA GPU; with one, install the NVIDIA driver (then "
              "`nvidia-smi` lists the GPU) and run r2r doctor again for the GPU builds it needs")
FIX_MODELS = "r2r models pull r1-q4   (or: r2r models add --small PATH --large PATH)"


@dataclass(frozen=True)
class Finding:
    severity: str  # "problem" | "warning"
    what: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "what": self.what, "fix": self.fix}


@dataclass
class Report:
    versions: dict[str, str]
    llama: dict[str, Any]
    gpus: dict[str, Any]
    onnxruntime: dict[str, Any]
    models: dict[str, Any]
    fit: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    def as_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "llama_cpp": self.llama, "gpus": self.gpus,
                "onnxruntime": self.onnxruntime, "models": self.models, "fit": self.fit,
                "findings": [f.as_dict() for f in self.findings], "ok": not self.problems}


def _dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def check_llama(have_gpu: bool) -> tuple[dict[str, Any], list[Finding]]:
    # the backends/llama_* modules stay the only ones that import llama_cpp: reach it through there.
    from r2r_local.backends import llama_cpp as backend

    offload = backend.supports_gpu_offload()
    system = backend.C.llama_print_system_info()
    system = system.decode(errors="replace").strip() if isinstance(system, bytes) else str(system).strip()
    info = {"version": _dist_version("llama-cpp-python"), "gpu_offload": offload, "system_info": system,
            "build": "GPU offload" if offload else "CPU-only build"}
    found = []
    if not offload:
        sev = "problem" if have_gpu else "warning"
        where = " although this machine has one" if have_gpu else ""
        found.append(Finding(sev, f"llama-cpp-python is a CPU-only build: no model layer can go to a GPU{where}",
                             FIX_LLAMA_CUDA))
    return info, found


def check_onnxruntime(have_gpu: bool) -> tuple[dict[str, Any], list[Finding]]:
    from r2r_local.router.onnx_probe import CUDA, probe_cuda

    probe = probe_cuda(try_cuda=True)
    info = probe.as_dict() | {"package": "onnxruntime-gpu" if _dist_version("onnxruntime-gpu") else
                              ("onnxruntime" if _dist_version("onnxruntime") else None)}
    if probe.cuda_ok:
        return info, []
    sev = "problem" if have_gpu else "warning"
    if probe.version is None:
        fix = FIX_ORT_GPU
    elif CUDA not in probe.available:
        fix = FIX_ORT_REPLACE_CPU
    else:
        fix = FIX_ORT_GPU
    return info, [Finding(sev, f"onnxruntime cannot run the router on a GPU: {probe.detail}", fix)]


def check_models(small: str | None, large: str | None, router: str | None,
                 source: str, server: "ServerBounds | None" = None) -> tuple[dict[str, Any], list[Finding]]:
    """Each model file as llama.cpp will see it (header, version, tensor data inside the file) and
    the router built for the small model (its file, sidecar, graph, hidden size and vocabulary).
    A served large model (http://...) is asked what it serves and checked against the small
    model's tokenizer (r2r_local.served, with the request bounds `server`)."""
    from r2r_local.backends.gguf_file import check_gguf_file
    from r2r_local.backends.remote import is_remote

    info: dict[str, Any] = {"source": source}
    found = []
    for role, path in (("small", small), ("large", large)):
        if not path:
            info[role] = None
            continue
        if role == "large" and is_remote(path):
            from r2r_local.served import doctor_entry

            usable = small if small and "error" not in info["small"] else None
            info[role], problems = doctor_entry(path, usable, server)
            found += [Finding("problem", what, fix) for what, fix in problems]
            continue
        entry: dict[str, Any] = {"path": path}
        try:
            h = check_gguf_file(path, role)
            entry |= {"size_bytes": Path(path).stat().st_size, "arch": h.arch,
                      "n_layer": h.arch_int("block_count"), "weights_bytes": sum(t.nbytes for t in h.tensors)}
        except R2RError as e:
            entry["error"] = str(e)
            found.append(Finding("problem", str(e), f"r2r models add --{role} PATH   (or: r2r models pull NAME)"))
        info[role] = entry
    if not small or not large:
        found.append(Finding("problem", f"no {'small' if not small else 'large'} model configured ({source})",
                             FIX_MODELS))
    info["router"] = {"spec": router}
    if router is not None:
        p = Path(router.strip())
        info["router"] |= {"size_bytes": p.stat().st_size if p.suffix == ".onnx" and p.is_file() else None}
        small_ok = small and "error" not in info["small"]
        problem = _router_problem(router, small if small_ok else None)
        if problem:
            found.append(Finding("problem", problem, FIX_ROUTER))
    return info, found


FIX_ROUTER = ("r2r models add --small S --large L --router ROUTER   (an .onnx exported for this small model, "
              "or slm | llm | random:P | entropy:T)")


def _router_problem(router: str, small: str | None) -> str | None:
    """Why `router` cannot serve `small` (only its spec and files are checked without a small model)."""
    from r2r_local.catalog import check_router_for
    from r2r_local.router.baselines import check_router_spec

    try:
        path = check_router_spec(router)
        if small:
            check_router_for(router, small)
        elif path is not None:
            from r2r_local.router.onnx import OnnxRouter

            OnnxRouter(path)
    except R2RError as e:
        return str(e)
    return None


CPU_ROUTER_BYTES = 50_000_000  # a float32 router this big costs milliseconds a call on a CPU


def check_router_cost(router: str | None, ort_cuda: bool) -> tuple[dict[str, Any], list[Finding]]:
    """A big float32 router that onnxruntime must run on the CPU reads all its weights on every
    token (the reference size: 225 MB, ~7 ms a call on a 2-core CPU); in int8 it is ~3x faster."""
    if not router or not router.endswith(".onnx") or not Path(router).is_file():
        return {}, []
    from r2r_local.errors import RouterError
    from r2r_local.router.onnx import read_sidecar

    try:
        precision = read_sidecar(router).get("precision", "fp32")
    except RouterError:
        return {}, []  # check_models has reported it
    size = Path(router).stat().st_size
    info = {"precision": precision, "runs_on": "cuda" if ort_cuda else "cpu"}
    if ort_cuda or precision != "fp32" or size < CPU_ROUTER_BYTES:
        return info, []
    int8 = str(Path(router).with_name(Path(router).stem + "-int8.onnx"))
    return info, [Finding("warning", f"router {router}: {size / 1e6:.0f} MB of float32 weights read on the CPU "
                                     "for every token (~3x slower than in int8)",
                          f"python scripts/export.py router-int8 {router} {int8}   then: r2r models add "
                          f"--small S --large L --router {int8}   (and try --overlap)")]


def check_fit(models: dict[str, Any], router: str | None, n_ctx: int, free_bytes: int | None,
              assumed: bool, offload: bool, layers: tuple[int | None, int | None] = (None, None),
              ) -> tuple[dict[str, Any] | None, list[Finding]]:
    from r2r_local.fit import FitError, layout_from_gguf, plan_fit, router_file_bytes

    small, large = models.get("small"), models.get("large")
    if not small or not large or "error" in small or "error" in large or large.get("served"):
        return None, []  # a served large model: its server places it
    try:
        plan = plan_fit(layout_from_gguf(small["path"]), layout_from_gguf(large["path"]), n_ctx=n_ctx,
                        free_bytes=free_bytes, router_bytes=router_file_bytes(router),
                        small_gpu_layers=layers[0], large_gpu_layers=layers[1])
    except R2RError as e:
        sev = "problem"
        fix = ("r2r models add --n-ctx 2048 ...  (a shorter context), or run on the CPU: "
               "--small-gpu-layers 0 --large-gpu-layers 0") if isinstance(e, FitError) else FIX_MODELS
        return {"n_ctx": n_ctx, "error": str(e), "assumed_free": assumed}, [Finding(sev, str(e), fix)]
    out = plan.as_dict() | {"n_ctx": n_ctx, "assumed_free": assumed}
    if not offload and free_bytes is not None:
        out["lines"].append("this llama-cpp-python is a CPU-only build: the plan takes effect after its CUDA rebuild")
    return out, []


def diagnose(*, small: str | None = None, large: str | None = None, router: str | None = None,
             n_ctx: int | None = None, assume_free_bytes: int | None = None,
             small_gpu_layers: int | None = None, large_gpu_layers: int | None = None,
             demo: bool = False, server_flags: dict[str, Any] | None = None) -> Report:
    """Everything `r2r doctor` shows. Paths given here replace the configured ones; layer counts
    given here, else configured ones, are checked instead of the automatic plan (as a load does).
    `demo`: the paths given are the demo pair's and the config file's models are not used.
    `server_flags`: --large-timeout/--large-retries/--large-top-k as given (r2r_local.choice.bounds_for).
    Without a GPU, GPU builds of llama.cpp and onnxruntime are not suggested."""
    from r2r_local.choice import bounds_for
    from r2r_local.commands import versions
    from r2r_local.config import DEFAULT_N_CTX, config_path, read_user_config
    from r2r_local.gpu import query_gpus

    gq = query_gpus()
    have_gpu = bool(gq.gpus)
    gpus = {"detail": gq.detail, "driver": gq.driver, "devices": [g.as_dict() for g in gq.gpus]}
    findings = []
    if not have_gpu:
        findings.append(Finding("warning", gq.detail + " (everything runs on the CPU)", FIX_DRIVER))
    llama, f = check_llama(have_gpu)
    findings += f if have_gpu else []  # GPU builds are fixes for a machine with a GPU only
    ort, f = check_onnxruntime(have_gpu)
    findings += f if have_gpu else []
    cfg, bad = read_user_config()
    source = f"config {config_path()}" if cfg or bad else f"no config file at {config_path()}"
    findings += [Finding("problem", line, f"fix or delete the value in {config_path()}") for line in bad]
    if demo:
        cfg, source = {}, "the built-in demo pair (--demo)"
    elif small or large:
        source = "command line" + (" and " + source if cfg else "")
    small, large = small or cfg.get("small"), large or cfg.get("large")
    router = router if router is not None else cfg.get("router")
    n_ctx = n_ctx or cfg.get("n_ctx") or DEFAULT_N_CTX
    server = bounds_for(large, server_flags or {}, cfg)[0] if large else None  # None for a local one
    models, f = check_models(small, large, router, source, server)
    findings += f
    cost, f = check_router_cost(router, bool(ort.get("cuda_ok")))
    models["router"] |= cost
    findings += f
    free = assume_free_bytes if assume_free_bytes is not None else gq.best_free_bytes
    layers = (small_gpu_layers if small_gpu_layers is not None else cfg.get("small_gpu_layers"),
              large_gpu_layers if large_gpu_layers is not None else cfg.get("large_gpu_layers"))
    fit, f = check_fit(models, router, n_ctx, free, assume_free_bytes is not None, llama["gpu_offload"], layers)
    findings += f
    return Report(versions(), llama, gpus, ort, models, fit, findings)
