"""GGUF -> quantized GGUF with llama.cpp's quantizer, written atomically.

llama.cpp writes its output in place as it goes; here it writes a temporary file beside the
target, renamed over it only when quantization succeeded, so a refused tensor (NaN), a full
disk or Ctrl-C leaves an existing output as it was and no half-written file behind.
"""

from __future__ import annotations

import os

from r2r_local.atomic import replacing
from r2r_local.export.errors import ExportError


def quantize(src: str, dst: str, ftype_name: str, *, threads: int | None = None) -> None:
    """Quantize `src` to `ftype_name` at `dst`; errors as quantize_gguf, plus ExportError for the output."""
    from r2r_local.backends.llama_cpp import quantize_gguf, quantize_types

    if ftype_name.upper() not in quantize_types():  # before the temp file (and a missing folder) is made
        raise ExportError(f"unknown quantization type {ftype_name!r} (known: {', '.join(quantize_types())})")
    if os.path.isdir(dst):
        raise ExportError(f"{dst}: is a folder; give the GGUF file to write")
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise ExportError(f"{dst}: is the input file; write the quantized GGUF elsewhere")
    try:
        with replacing(dst) as tmp:
            quantize_gguf(src, str(tmp), ftype_name, threads=threads)
    except OSError as e:
        raise ExportError(f"{dst}: cannot write it ({e.strerror or e})") from None
