"""Test helper: shape-true *header-only* GGUFs of the real R1 models (no tensor data).

The fit plan reads only headers, so a file holding the real metadata and the real tensor table
(names, shapes and llama.cpp's Q4_K_M types, from models/shapes.json and r2r_local/shapes, the
same recipe scripts/make_shape_model.py writes with weights) stands in for a 20 GB model.
"""

from __future__ import annotations

from pathlib import Path

from r2r_local.shapes import Shape, get_shape
from r2r_local.shapes.writer import write_shape_header

R1_1_5B = get_shape("r1-1.5b")
R1_32B = get_shape("r1-32b")
# Published file sizes (unsloth's GGUF repos): 1.5B Q4_K_M exactly 1117320576 bytes; 32B ~19.9 GB.
R1_1_5B_Q4_K_M_BYTES = 1_117_320_576
R1_32B_Q4_K_M_GB = 19.9


def write_header_only(path: Path, shape: Shape, *, tokens: list[str] | None = None, n_padding: int = 0,
                      full_size: bool = False) -> Path:
    """`shape` at Q4_K_M, header only; `tokens` (optional) a small vocabulary plus `n_padding`
    UNUSED rows, so vocabulary checks can run on these files too. `full_size`: extended (sparse,
    no disk used) to the end of its tensor data, so checks that the data lies inside the file
    (`r2r models add`, `r2r doctor`) pass as they do for the real file."""
    write_shape_header(shape, "Q4_K_M", path, tokens=tokens, n_padding=n_padding)
    if full_size:
        from r2r_local.backends.gguf_file import read_header

        end = max(t.offset + t.nbytes for t in read_header(path).tensors)
        with open(path, "r+b") as f:
            f.truncate(end)
    return path
