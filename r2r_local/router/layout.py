"""Where the residual blocks of a router change width (no torch, no onnx).

The reference router has one residual block per entry of `hidden_dims`: block i maps
hidden_dims[i] -> hidden_dims[i+1], and the last block keeps hidden_dims[-1]. The combined
projection and `input_projection` bring the features to hidden_dims[0] first, and the output
layer reads hidden_dims[-1]. A block whose two widths differ has a `dim_change` Linear on its
skip path.

Earlier r2r-local checkpoints (those without `block_layout` in their model_specific_args) may
use another layout ("legacy"): block 0 kept hidden_dims[0] and block i mapped
hidden_dims[i-1] -> hidden_dims[i]. The two layouts are the same network
when every entry of hidden_dims is equal; otherwise their weight shapes differ at some block,
so a checkpoint shows which one it was trained with.
"""

from __future__ import annotations

REFERENCE = "reference"
LEGACY = "legacy"
LAYOUTS = (REFERENCE, LEGACY)


def block_widths(hidden_dims: tuple[int, ...] | list[int], layout: str = REFERENCE) -> list[tuple[int, int]]:
    """(input width, output width) of each block, len(hidden_dims) of them; hidden_dims non-empty."""
    dims = tuple(int(h) for h in hidden_dims)
    if not dims:
        raise ValueError("hidden_dims is empty")
    if layout == REFERENCE:
        return list(zip(dims, dims[1:] + dims[-1:]))
    if layout == LEGACY:
        return list(zip(dims[:1] + dims[:-1], dims))
    raise ValueError(f"unknown block layout {layout!r} (expected one of {LAYOUTS})")


def layouts_differ(hidden_dims: tuple[int, ...] | list[int]) -> bool:
    """True when the legacy layout is another network than the reference one for these sizes."""
    return block_widths(hidden_dims, REFERENCE) != block_widths(hidden_dims, LEGACY)
