"""Per-tensor types of a llama.cpp quantization mix, and valid random blocks of each type.

`tensor_types` restates, for the qwen2 tensors and the mixes F16, Q8_0 and Q4_K_M, the rules of
llama.cpp's quantizer (src/llama-quant.cpp at the vendored commit): only 2-D `*.weight`
tensors other than norms are quantized; the output matrix (and a tied token embedding, which
doubles as output) becomes Q6_K, or Q8_0 when its rows are not a multiple of 256; under Q4_K_M
attn_v and ffn_down take Q6_K in the layers `use_more_bits` picks; a type whose block does not
divide a row falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16). A test checks
these against llama.cpp's own quantizer.

Random blocks: random bytes for the quants, with every fp16 scale overwritten by a small
positive finite value, so weights are of the order of 0.02 and nothing overflows.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T, LlamaFileType

from r2r_local.shapes import Shape, TensorSpec, tensor_specs

QUANTS = {"F16": LlamaFileType.MOSTLY_F16, "Q8_0": LlamaFileType.MOSTLY_Q8_0,
          "Q4_K_M": LlamaFileType.MOSTLY_Q4_K_M}
_DEFAULT = {"Q8_0": T.Q8_0, "Q4_K_M": T.Q4_K}
_FALLBACK = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}

# Byte offsets of the fp16 fields in one block, and the range their values are drawn from.
# Layouts from ggml-common.h: block_q8_0 {d, qs[32]}, block_q5_0 {d, qh[4], qs[16]},
# block_q5_1 {d, m, qh[4], qs[16]}, block_q4_K {d, dmin, scales[12], qs[128]},
# block_q5_K {d, dmin, scales[12], qh[32], qs[128]}, block_q6_K {ql[128], qh[64], scales[16], d}.
_F16_FIELDS: dict[T, tuple[tuple[int, float, float], ...]] = {
    T.Q8_0: ((0, 1e-4, 3e-4),),
    T.Q5_0: ((0, 1e-3, 3e-3),),
    T.Q5_1: ((0, 1e-3, 3e-3), (2, -0.04, -0.02)),
    T.Q4_K: ((0, 5e-5, 1.5e-4), (2, 4e-4, 1.1e-3)),
    T.Q5_K: ((0, 3e-5, 8e-5), (2, 4e-4, 1.1e-3)),
    T.Q6_K: ((208, 1e-5, 2e-5),),
}
_CHUNK_BYTES = 32 << 20


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _quantized(spec: TensorSpec) -> bool:
    return len(spec.shape) == 2 and spec.name.endswith("weight") and "_norm.weight" not in spec.name


def _fallback(qtype: T, n_cols: int) -> T:
    block = GGML_QUANT_SIZES[qtype][0]
    if n_cols % block == 0:
        return qtype
    other = _FALLBACK.get(qtype, qtype)
    return other if n_cols % GGML_QUANT_SIZES[other][0] == 0 else T.F16


def _mix_type(spec: TensorSpec, shape: Shape, quant: str, i_attn_v: int) -> T:
    qtype = _DEFAULT[quant]
    is_output = spec.name == "output.weight" or (shape.tied_embeddings and spec.name == "token_embd.weight")
    if is_output:
        if spec.n_cols % GGML_QUANT_SIZES[qtype][0] != 0:
            qtype = T.Q8_0
        elif qtype != T.Q8_0:
            qtype = T.Q6_K
    elif quant == "Q4_K_M" and spec.name.endswith("attn_v.weight"):
        if use_more_bits(i_attn_v, shape.n_layers):
            qtype = T.Q6_K
    elif quant == "Q4_K_M" and spec.name.endswith("ffn_down.weight"):
        assert spec.layer is not None
        if use_more_bits(spec.layer, shape.n_layers):
            qtype = T.Q6_K
    return _fallback(qtype, spec.n_cols)


def tensor_types(shape: Shape, quant: str) -> dict[str, T]:
    """GGML type of every tensor of `shape` under the mix `quant` (F16, Q8_0 or Q4_K_M)."""
    if quant not in QUANTS:
        raise ValueError(f"unknown quantization {quant!r}; choose one of {', '.join(QUANTS)}")
    out: dict[str, T] = {}
    i_attn_v = 0
    for spec in tensor_specs(shape):
        if not _quantized(spec):
            out[spec.name] = T.F32
        elif quant == "F16":
            out[spec.name] = T.F16
        else:
            out[spec.name] = _mix_type(spec, shape, quant, i_attn_v)
            i_attn_v += spec.name.endswith("attn_v.weight")
    return out


def row_bytes(qtype: T, n_cols: int) -> int:
    block, size = GGML_QUANT_SIZES[qtype]
    return n_cols // block * size


def tensor_bytes(spec: TensorSpec, qtype: T) -> int:
    return spec.n_rows * row_bytes(qtype, spec.n_cols)


def random_chunks(spec: TensorSpec, qtype: T, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The tensor's bytes as a sequence of uint8 arrays of whole rows (~32 MB each).

    1-D tensors: norm weights near 1, biases near 0 (float32). F16: normal(0, 0.02).
    """
    if len(spec.shape) == 1:
        base = 1.0 if spec.name.endswith("norm.weight") else 0.0
        vals = base + rng.normal(0.0, 0.02, size=spec.shape).astype(np.float32)
        yield np.ascontiguousarray(vals, dtype=np.float32).view(np.uint8)
        return
    rbytes = row_bytes(qtype, spec.n_cols)
    rows_per_chunk = max(1, _CHUNK_BYTES // rbytes)
    for start in range(0, spec.n_rows, rows_per_chunk):
        n = min(rows_per_chunk, spec.n_rows - start)
        yield _random_rows(qtype, n, spec.n_cols, rng)


def _random_rows(qtype: T, n_rows: int, n_cols: int, rng: np.random.Generator) -> np.ndarray:
    if qtype in (T.F16, T.F32):
        dtype = np.float16 if qtype == T.F16 else np.float32
        vals = rng.standard_normal(n_rows * n_cols, dtype=np.float32) * np.float32(0.02)
        return vals.astype(dtype).view(np.uint8)
    if qtype not in _F16_FIELDS:
        raise ValueError(f"no random block layout for {qtype.name}")
    block_size = GGML_QUANT_SIZES[qtype][1]
    n_blocks = n_rows * n_cols // GGML_QUANT_SIZES[qtype][0]
    data = rng.integers(0, 256, size=(n_blocks, block_size), dtype=np.uint8)
    for offset, lo, hi in _F16_FIELDS[qtype]:
        scales = rng.uniform(lo, hi, size=n_blocks).astype(np.float16)
        data[:, offset:offset + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return data.reshape(-1)
