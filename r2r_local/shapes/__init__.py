"""Shapes of known models (models/shapes.json) and the tensors a shape-true GGUF must hold.

A shape is the architecture of a real model without its weights: hidden size, layers, heads,
FFN size, vocabulary rows, tied embeddings, RoPE base, RMS-norm epsilon, context length and a
vocabulary *family* (members of one family share one synthetic tokenizer, so they pair).
Two architectures are described: `qwen2` (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen: biases on
q/k/v, head size hidden/heads) and `qwen3` (Qwen3 dense models: no biases, an RMS norm over each
query and key head, and a head size of its own, 128, so q has n_heads*128 rows, not hidden).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2r_local.errors import ConfigError
from r2r_local.shapes.tokenizers import KINDS, TokenizerKind

SHAPES_FILE = Path(__file__).resolve().parents[2] / "models" / "shapes.json"
_FIELDS = ("hidden_size", "n_layers", "n_heads", "n_kv_heads", "ffn_size", "vocab_rows",
           "context_length")
ARCHS = ("qwen2", "qwen3")


@dataclass(frozen=True)
class Family:
    """One synthetic vocabulary: `n_regular` BPE tokens built from `seed`, then the special
    tokens of its tokenizer kind (r2r_local/shapes/tokenizers.py)."""

    name: str
    n_regular: int
    seed: int
    tokenizer: str = "r1"

    @property
    def kind(self) -> TokenizerKind:
        return KINDS[self.tokenizer]


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
    explicit_head_dim: int | None = None  # config.json's head_dim where it is not hidden/heads

    @property
    def head_dim(self) -> int:
        return self.explicit_head_dim or self.hidden_size // self.n_heads

    @property
    def q_dim(self) -> int:
        return self.head_dim * self.n_heads

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
    if d.get("arch") not in ARCHS:
        raise ConfigError(f"shape '{name}': the architecture must be one of {', '.join(ARCHS)}")
    head_dim = _head_dim(name, d)
    if d["n_heads"] % d["n_kv_heads"]:
        raise ConfigError(f"shape '{name}': kv heads must divide the heads")
    tokenizer = fam.get("tokenizer", "r1")
    if tokenizer not in KINDS:
        raise ConfigError(f"shape '{name}': family tokenizer must be one of {', '.join(KINDS)}")
    family = Family(d["family"], int(fam["n_regular"]), int(fam["seed"]), tokenizer)
    if d["vocab_rows"] < family.n_regular + len(family.kind.specials):
        raise ConfigError(f"shape '{name}': vocab_rows is smaller than its family's vocabulary")
    return Shape(
        name=name, arch=d["arch"], family=family, hidden_size=d["hidden_size"],
        n_layers=d["n_layers"], n_heads=d["n_heads"], n_kv_heads=d["n_kv_heads"],
        ffn_size=d["ffn_size"], vocab_rows=d["vocab_rows"],
        tied_embeddings=bool(d["tied_embeddings"]), rope_theta=float(d["rope_theta"]),
        rms_eps=float(d["rms_eps"]), context_length=d["context_length"], hf_id=d.get("hf_id"),
        explicit_head_dim=head_dim,
    )


def _head_dim(name: str, d: dict[str, Any]) -> int | None:
    """qwen3 needs config.json's head_dim; qwen2 has none (hidden/heads, which must divide)."""
    head_dim = d.get("head_dim")
    if d["arch"] == "qwen2":
        if head_dim is not None:
            raise ConfigError(f"shape '{name}': qwen2 has no head_dim of its own (it is hidden/heads)")
        if d["hidden_size"] % d["n_heads"]:
            raise ConfigError(f"shape '{name}': heads must divide hidden_size")
        return None
    if not isinstance(head_dim, int) or isinstance(head_dim, bool) or head_dim <= 0 or head_dim % 2:
        raise ConfigError(f"shape '{name}': qwen3 needs 'head_dim', a positive even integer")
    return head_dim


def tensor_specs(shape: Shape) -> list[TensorSpec]:
    """Every tensor of the GGUF in file order (llama.cpp names). qwen2: q/k/v carry biases;
    qwen3: no biases, attn_q_norm / attn_k_norm of one head's size.

    Weight shapes are numpy order (out, in): ggml's ne0 is the last entry.
    """
    d, q, kv, ff, v = shape.hidden_size, shape.q_dim, shape.kv_dim, shape.ffn_size, shape.vocab_rows
    specs = [TensorSpec("token_embd.weight", (v, d))]
    for i in range(shape.n_layers):
        b = f"blk.{i}."
        attn = [TensorSpec(b + "attn_q.weight", (q, d), i), TensorSpec(b + "attn_k.weight", (kv, d), i),
                TensorSpec(b + "attn_v.weight", (kv, d), i)]
        if shape.arch == "qwen2":
            attn = [attn[0], TensorSpec(b + "attn_q.bias", (q,), i), attn[1], TensorSpec(b + "attn_k.bias", (kv,), i),
                    attn[2], TensorSpec(b + "attn_v.bias", (kv,), i)]
        attn.append(TensorSpec(b + "attn_output.weight", (d, q), i))
        if shape.arch == "qwen3":
            attn += [TensorSpec(b + "attn_q_norm.weight", (shape.head_dim,), i),
                     TensorSpec(b + "attn_k_norm.weight", (shape.head_dim,), i)]
        specs += [TensorSpec(b + "attn_norm.weight", (d,), i), *attn,
                  TensorSpec(b + "ffn_norm.weight", (d,), i),
                  TensorSpec(b + "ffn_gate.weight", (ff, d), i),
                  TensorSpec(b + "ffn_up.weight", (ff, d), i),
                  TensorSpec(b + "ffn_down.weight", (d, ff), i)]
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


# The R1 kind's special tokens (kept under this name for older imports).
SPECIAL_TOKENS = KINDS["r1"].specials
