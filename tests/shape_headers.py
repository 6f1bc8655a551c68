"""Test helper: shape-true *header-only* GGUFs of the real R1 models (no tensor data).

The fit plan reads only headers, so a file holding the real metadata and the real tensor table
(names, shapes, quantization types) stands in for a 20 GB model. The tensor types follow
llama.cpp's Q4_K_M recipe for Qwen2: Q4_K everywhere, Q6_K for `output.weight` and for
`attn_v`/`ffn_down` in the layers where llama.cpp spends more bits (the first and last eighth and
every third layer between), F32 for norms and biases. Shapes are the published HF configs
(DeepSeek-R1-Distill-Qwen-1.5B / -32B config.json). The full scripts/make_shape_model.py with
weights is issue 6; this writes headers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as Q


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    rope_base: float
    rms_eps: float


R1_1_5B = Shape(28, 1536, 8960, 12, 2, 151936, 10000.0, 1e-6)
R1_32B = Shape(64, 5120, 27648, 40, 8, 152064, 1000000.0, 1e-5)
# Published file sizes (unsloth's GGUF repos): 1.5B Q4_K_M exactly 1117320576 bytes; 32B ~19.9 GB.
R1_1_5B_Q4_K_M_BYTES = 1_117_320_576
R1_32B_Q4_K_M_GB = 19.9


def _more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_tensors(s: Shape) -> list[tuple[str, tuple[int, ...], Q]]:
    """(name, shape in numpy order i.e. rows last-dim-first reversed, type) for every tensor."""
    hd = s.n_embd // s.n_head
    kv = s.n_head_kv * hd
    out = [("token_embd.weight", (s.n_vocab, s.n_embd), Q.Q4_K),
           ("output_norm.weight", (s.n_embd,), Q.F32),
           ("output.weight", (s.n_vocab, s.n_embd), Q.Q6_K)]
    for i in range(s.n_layer):
        more = _more_bits(i, s.n_layer)
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", (s.n_embd,), Q.F32),
                (b + "attn_q.weight", (s.n_embd, s.n_embd), Q.Q4_K),
                (b + "attn_q.bias", (s.n_embd,), Q.F32),
                (b + "attn_k.weight", (kv, s.n_embd), Q.Q4_K),
                (b + "attn_k.bias", (kv,), Q.F32),
                (b + "attn_v.weight", (kv, s.n_embd), Q.Q6_K if more else Q.Q4_K),
                (b + "attn_v.bias", (kv,), Q.F32),
                (b + "attn_output.weight", (s.n_embd, s.n_embd), Q.Q4_K),
                (b + "ffn_norm.weight", (s.n_embd,), Q.F32),
                (b + "ffn_gate.weight", (s.n_ff, s.n_embd), Q.Q4_K),
                (b + "ffn_up.weight", (s.n_ff, s.n_embd), Q.Q4_K),
                (b + "ffn_down.weight", (s.n_embd, s.n_ff), Q.Q6_K if more else Q.Q4_K)]
    return out


def write_header_only(path: Path, s: Shape, *, tokens: list[str] | None = None, n_padding: int = 0) -> Path:
    """A GGUF header (metadata + tensor table, no data) with `s`'s shapes at Q4_K_M.

    `tokens` (optional) writes a small vocabulary, followed by `n_padding` '[PAD..]' rows of type
    UNUSED, so vocabulary checks can run on these files too.
    """
    from gguf.constants import GGML_QUANT_SIZES

    w = GGUFWriter(str(path), "qwen2")
    w.add_context_length(131072)
    w.add_embedding_length(s.n_embd)
    w.add_block_count(s.n_layer)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_rope_freq_base(s.rope_base)
    w.add_layer_norm_rms_eps(s.rms_eps)
    w.add_file_type(15)  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    if tokens is not None:
        texts = list(tokens) + [f"[PAD{i}]" for i in range(n_padding)]
        w.add_tokenizer_model("gpt2")
        w.add_token_list(texts)
        w.add_token_types([1] * len(tokens) + [5] * n_padding)
    for name, shape, qtype in q4_k_m_tensors(s):
        block, size = GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * size
        w.add_tensor_info(name, shape, np.float32, nbytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return path
