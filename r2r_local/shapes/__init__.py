"""Shapes of known models (models/shapes.json) and the tensors a shape-true GGUF must hold.

A shape is the architecture of a real model without its weights: hidden size, layers, heads,
FFN size, vocabulary rows, tied embeddings, RoPE base, RMS-norm epsilon, context length and a
vocabulary *family* (members of one family share one synthetic tokenizer, so they pair).
Only the `qwen2` architecture (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen) is described here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2r_local.errors import ConfigError

SHAPES_FILE = Path(__file__).resolve().parents[2] / "models" / "shapes.json"
_FIELDS = ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "ffn_size", "vocab_rows",
           "context_length")


@dataclass(frozen=True)
class Family:
    """One synthetic vocabulary: `n_regular` BPE tokens built from `seed`, then the specials."""

    name: str
    n_regular: int
    seed: int


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str
    family: Family
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_size: int
    vocab_rows: int
    tied_embeddings: bool
    rope_theta: float
    rms_eps: float
    context_length: int
    hf_id: str | None = None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.head_dim * self.n_kv_heads


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: GGUF name, numpy-order shape (rows, cols) or (n,), and its layer (or None)."""

    name: str
    shape: tuple[int, ...]
    layer: int | None = None

    @property
    def n_cols(self) -> int:
        return self.shape[-1]

    @property
    def n_rows(self) -> int:
        return self.shape[0] if len(self.shape) == 2 else 1


def load_table(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    p = Path(path) if path else SHAPES_FILE
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"shape table {p} not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"shape table {p}: cannot read it ({e})") from None


def known_shapes(path: str | os.PathLike[str] | None = None) -> list[str]:
    return sorted(load_table(path)["models"])


def get_shape(name: str, path: str | os.PathLike[str] | None = None) -> Shape:
    """The shape called `name` in the table; ConfigError naming the known ones otherwise."""
    table = load_table(path)
    models = table["models"]
    if name not in models:
        raise ConfigError(f"unknown shape '{name}'; known: {', '.join(sorted(models))}")
    return shape_from_dict(name, models[name], table["families"])


def shape_from_dict(name: str, d: dict[str, Any], families: dict[str, Any]) -> Shape:
    """Validate one table entry (also used by tests with hand-made shapes)."""
    fam = families.get(d.get("family", ""))
    if fam is None:
        raise ConfigError(f"shape '{name}': unknown family {d.get('family')!r}")
    for key in _FIELDS:
        if not isinstance(d.get(key), int) or d[key] <= 0:
            raise ConfigError(f"shape '{name}': '{key}' must be a positive integer")
    if d.get("arch") != "qwen2":
        raise ConfigError(f"shape '{name}': only the qwen2 architecture is supported")
    if d["hidden_size"] % d["n_heads"] or d["n_heads"] % d["n_kv_heads"]:
        raise ConfigError(f"shape '{name}': heads must divide hidden_size and kv heads the heads")
    family = Family(d["family"], int(fam["n_regular"]), int(fam["seed"]))
    if d["vocab_rows"] < family.n_regular + len(SPECIAL_TOKENS):
        raise ConfigError(f"shape '{name}': vocab_rows is smaller than its family's vocabulary")
    return Shape(
        name=name, arch="qwen2", family=family, hidden_size=d["hidden_size"],
        n_layers=d["n_layers"], n_heads=d["n_heads"], n_kv_heads=d["n_kv_heads"],
        ffn_size=d["ffn_size"], vocab_rows=d["vocab_rows"],
        tied_embeddings=bool(d["tied_embeddings"]), rope_theta=float(d["rope_theta"]),
        rms_eps=float(d["rms_eps"]), context_length=d["context_length"], hf_id=d.get("hf_id"),
    )


def tensor_specs(shape: Shape) -> list[TensorSpec]:
    """Every tensor of a qwen2 GGUF in file order (llama.cpp names; q/k/v carry biases).

    Weight shapes are numpy order (out, in): ggml's ne0 is the last entry.
    """
    d, kv, ff, v = shape.hidden_size, shape.kv_dim, shape.ffn_size, shape.vocab_rows
    specs = [TensorSpec("token_embd.weight", (v, d))]
    for i in range(shape.n_layers):
        b = f"blk.{i}."
        specs += [
            TensorSpec(b + "attn_norm.weight", (d,), i),
            TensorSpec(b + "attn_q.weight", (d, d), i), TensorSpec(b + "attn_q.bias", (d,), i),
            TensorSpec(b + "attn_k.weight", (kv, d), i), TensorSpec(b + "attn_k.bias", (kv,), i),
            TensorSpec(b + "attn_v.weight", (kv, d), i), TensorSpec(b + "attn_v.bias", (kv,), i),
            TensorSpec(b + "attn_output.weight", (d, d), i),
            TensorSpec(b + "ffn_norm.weight", (d,), i),
            TensorSpec(b + "ffn_gate.weight", (ff, d), i),
            TensorSpec(b + "ffn_up.weight", (ff, d), i),
            TensorSpec(b + "ffn_down.weight", (d, ff), i),
        ]
    specs.append(TensorSpec("output_norm.weight", (d,)))
    if not shape.tied_embeddings:
        specs.append(TensorSpec("output.weight", (v, d)))
    return specs


def n_params(shape: Shape) -> int:
    total = 0
    for spec in tensor_specs(shape):
        n = 1
        for dim in spec.shape:
            n *= dim
        total += n
    return total


# The family's special tokens, in id order after the regular tokens: (text, is_control).
# Control tokens are only matched when special parsing is on; <think> and </think> are plain
# user-defined tokens, as in R1's tokenizer.
SPECIAL_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<｜end▁of▁sentence｜>", True), ("<｜User｜>", True), ("<｜Assistant｜>", True),
    ("<｜begin▁of▁sentence｜>", True), ("<|EOT|>", True), ("<think>", False), ("</think>", False),
    ("<|im_start|>", True), ("<|im_end|>", True), ("<|endoftext|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", True), ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True), ("<|fim_pad|>", True), ("<|file_sep|>", True),
)
