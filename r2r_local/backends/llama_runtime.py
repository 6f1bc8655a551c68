"""llama.cpp's process-wide side: backend init, its log, errors per thread, quantization.

With llama_cpp.py, the only modules that import llama_cpp. llama.cpp has one log callback for
the whole process; errors it logs are kept per calling thread, so a failure of the large model's
call in a worker thread is never blamed on the small model stepping in the main thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections import deque

import llama_cpp as C

from r2r_local.backends.gguf_file import check_gguf_path
from r2r_local.errors import ConfigError, ModelLoadError

log = logging.getLogger("r2r_local.llama")

# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continue the previous line
_LEVEL_NAMES = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_init_lock = threading.Lock()
_initialised = False
_thread = threading.local()  # .errors: deque of recent error lines; .partial, .level: a line being built
_interrupt_pending = [False]


def recent_errors() -> deque[str]:
    """The error lines llama.cpp logged on this thread since the last `clear_errors()`."""
    errors = getattr(_thread, "errors", None)
    if errors is None:
        errors = _thread.errors = deque(maxlen=8)
    return errors


def clear_errors() -> None:
    recent_errors().clear()


@C.llama_log_callback
def _log_callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    """Forward llama.cpp's log to `logging`; remember recent errors for load messages.

    An exception cannot travel through llama.cpp's C frames (ctypes prints and drops it), so a
    Ctrl-C that lands in here is kept and raised again once the C call returns
    (`raise_if_interrupted`); any other failure to log is dropped quietly."""
    try:
        _log(level, text)
    except KeyboardInterrupt:
        _interrupt_pending[0] = True
    except Exception:
        pass


def raise_if_interrupted() -> None:
    if _interrupt_pending[0]:
        _interrupt_pending[0] = False
        raise KeyboardInterrupt


def _log(level: int, text: bytes) -> None:
    piece = (text or b"").decode("utf-8", errors="replace")
    partial = getattr(_thread, "partial", None)
    if partial is None:
        partial = _thread.partial = []
    if level != 5:
        _thread.level = _LEVEL_NAMES.get(level, logging.DEBUG)
    partial.append(piece)
    if not piece.endswith("\n"):
        return
    line = "".join(partial).rstrip()
    partial.clear()
    lvl = getattr(_thread, "level", logging.DEBUG)
    if lvl >= logging.ERROR:
        recent_errors().append(line)
    log.log(lvl, "%s", line)


def ensure_backend() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            if C.llama_supports_gpu_offload() and os.environ.get("R2R_LLAMA_LOG") != "1":
                # Measured on an H200 with a CUDA build: loading a model with GPU layers crashed
                # (SIGSEGV inside llama_model_load_from_file) whenever this Python log callback was
                # installed, and loaded fine without it. Until that is understood, GPU builds keep
                # llama-cpp-python's own callback, silenced; load errors then carry a generic reason.
                logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
            else:
                C.llama_log_set(_log_callback, ctypes.c_void_p(0))
            C.llama_backend_init()
            _initialised = True
    raise_if_interrupted()


def last_error(default: str) -> str:
    """The first error llama.cpp logged on this thread since the last clear (later ones repeat it)."""
    errors = recent_errors()
    if not errors:
        return default
    reason = errors[0].split(": ", 1)[-1]
    if reason.startswith("failed to read"):
        reason += " (the file is truncated or corrupt)"
    return reason


def supports_gpu_offload() -> bool:
    """Whether this llama-cpp-python build can put layers on a GPU."""
    return bool(C.llama_supports_gpu_offload())


# --- quantization ---------------------------------------------------------------------------------

def quantize_types() -> list[str]:
    """Names accepted by `quantize_gguf` (llama.cpp's file types, e.g. 'Q8_0', 'Q4_K_M')."""
    prefix = "LLAMA_FTYPE_MOSTLY_"
    names = [n[len(prefix):] for n in dir(C) if n.startswith(prefix)]
    return sorted(names + ["F32"])


def quantize_gguf(src: str, dst: str, ftype_name: str, *, threads: int | None = None) -> None:
    """Write `src` quantized to `ftype_name` at `dst` with llama.cpp's own quantizer.

    Raises ConfigError for an unknown type and ModelLoadError when llama.cpp refuses `src`.
    """
    name = ftype_name.upper()
    ftype = C.LLAMA_FTYPE_ALL_F32 if name == "F32" else getattr(C, f"LLAMA_FTYPE_MOSTLY_{name}", None)
    if ftype is None:
        raise ConfigError(f"unknown quantization type {ftype_name!r} (known: {', '.join(quantize_types())})")
    check_gguf_path(src, "input")
    ensure_backend()
    clear_errors()
    params = C.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or 0
    params.allow_requantize = True
    rc = C.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    raise_if_interrupted()
    if rc != 0:
        raise ModelLoadError(f"input {src}: {last_error(f'llama.cpp could not quantize it (code {rc})')}")
