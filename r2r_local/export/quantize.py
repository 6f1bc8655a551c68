"""GGUF -> quantized GGUF with llama.cpp's quantizer, written atomically.

llama.cpp writes its output in place as it goes; here it writes a temporary file beside the
target, renamed over it only when quantization succeeded, so a refused tensor (NaN), a full
disk or Ctrl-C leaves an existing output as it was and no half-written file behind.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

from r2r_local.atomic import replacing
from r2r_local.export.errors import ExportError


def quantize(src: str, dst: str, ftype_name: str, *, threads: int | None = None) -> None:
    """Quantize `src` to `ftype_name` at `dst`; errors as quantize_gguf, plus ExportError for the output."""
    from r2r_local.backends.gguf_file import check_gguf_path
    from r2r_local.backends.llama_cpp import quantize_gguf, quantize_types

    if ftype_name.upper() not in quantize_types():  # before the temp file (and a missing folder) is made
        raise ExportError(f"unknown quantization type {ftype_name!r} (known: {', '.join(quantize_types())})")
    check_gguf_path(src, "input")  # before the output's folder or temp file is made
    if os.path.isdir(dst):
        raise ExportError(f"{dst}: is a folder; give the GGUF file to write")
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise ExportError(f"{dst}: is the input file; write the quantized GGUF elsewhere")
    try:
        with replacing(dst) as tmp, _c_stderr_silenced():
            quantize_gguf(src, str(tmp), ftype_name, threads=threads)
    except OSError as e:
        raise ExportError(f"{dst}: cannot write it ({e.strerror or e})") from None


@contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while llama.cpp quantizes: ggml prints some refusals
    (a NaN in a row) with fprintf(stderr) instead of its log, and the reason already comes back
    through the log as the error's one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
