"""Writing a shape-true GGUF with random weights, one chunk of rows at a time.

The header, metadata and tensor table are written by `gguf.GGUFWriter`; the tensor data is
streamed after it in the same order and with the same alignment padding the table announces,
so memory stays at one chunk (~32 MB) whatever the model size.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGMLQuantizationType as T

from r2r_local.errors import ConfigError
from r2r_local.shapes import Shape, TensorSpec, tensor_specs
from r2r_local.shapes.quant import QUANTS, random_chunks, tensor_bytes, tensor_types
from r2r_local.shapes.vocab import NORMAL, UNUSED, build_vocab

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WriteResult:
    path: Path
    size_bytes: int
    n_tensors: int
    seconds: float


def planned_bytes(shape: Shape, quant: str) -> int:
    """Tensor data bytes of the file (without metadata and padding)."""
    types = tensor_types(shape, quant)
    return sum(tensor_bytes(s, types[s.name]) for s in tensor_specs(shape))


def _add_metadata(w: GGUFWriter, shape: Shape, quant: str, seed: int) -> None:
    arch = shape.arch
    w.add_name(f"shape-true {shape.name} (random weights)")
    w.add_description(f"random weights, seed {seed}, shape of {shape.hf_id or shape.name}; "
                      "written by r2r-local make_shape_model")
    w.add_file_type(int(QUANTS[quant]))
    w.add_quantization_version(2)
    w.add_uint32(f"{arch}.context_length", shape.context_length)
    w.add_uint32(f"{arch}.embedding_length", shape.hidden_size)
    w.add_uint32(f"{arch}.block_count", shape.n_layers)
    w.add_uint32(f"{arch}.feed_forward_length", shape.ffn_size)
    w.add_uint32(f"{arch}.attention.head_count", shape.n_heads)
    w.add_uint32(f"{arch}.attention.head_count_kv", shape.n_kv_heads)
    if shape.arch == "qwen3":  # as llama.cpp's converter writes config.json's head_dim
        w.add_uint32(f"{arch}.attention.key_length", shape.head_dim)
        w.add_uint32(f"{arch}.attention.value_length", shape.head_dim)
    w.add_float32(f"{arch}.rope.freq_base", shape.rope_theta)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", shape.rms_eps)
    w.add_string("r2r.shape", shape.name)
    w.add_string("r2r.vocab_family", shape.family.name)
    w.add_uint32("r2r.weight_seed", seed)


def _add_vocab(w: GGUFWriter, shape: Shape) -> None:
    vocab = build_vocab(shape.family, shape.vocab_rows)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.token_types)
    w.add_token_merges(vocab.merges)
    w.add_bos_token_id(vocab.bos_id)
    w.add_eos_token_id(vocab.eos_id)
    w.add_pad_token_id(vocab.bos_id if shape.family.tokenizer == "qwen3" else vocab.eos_id)
    w.add_add_bos_token(shape.family.kind.add_bos)
    w.add_add_eos_token(False)
    w.add_chat_template(shape.family.kind.chat_template)


def _add_tensor_table(w: GGUFWriter, specs: list[TensorSpec], types: dict[str, T]) -> None:
    for spec in specs:
        w.add_tensor_info(spec.name, spec.shape, np.dtype(np.float32),
                          tensor_bytes(spec, types[spec.name]), raw_dtype=types[spec.name])


def write_shape_header(shape: Shape, quant: str, out: str | os.PathLike[str], *,
                       tokens: list[str] | None = None, n_padding: int = 0) -> Path:
    """A GGUF of `shape` at mix `quant` that stops after its tensor table: the real metadata and
    tensor names, shapes and types, no tensor data. Whatever reads only headers (the fit plan,
    `r2r doctor`, `r2r models add`) sees the real model; llama.cpp cannot load it.

    tokens: when given, a plain vocabulary of these tokens followed by `n_padding` UNUSED
    '[PADn]' rows (cheap, for vocabulary checks); else no vocabulary at all.
    """
    out = Path(out)
    w = GGUFWriter(out, arch=shape.arch)
    _add_metadata(w, shape, quant, seed=0)
    if tokens is not None:
        w.add_tokenizer_model("gpt2")
        w.add_token_list(list(tokens) + [f"[PAD{i}]" for i in range(n_padding)])
        w.add_token_types([NORMAL] * len(tokens) + [UNUSED] * n_padding)
    _add_tensor_table(w, tensor_specs(shape), tensor_types(shape, quant))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return out


def _check_room(out: Path, need: int) -> None:
    parent = out.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ConfigError(f"output folder {parent} {what}")
    free = shutil.disk_usage(parent).free
    if free < need + (256 << 20):
        raise ConfigError(f"{parent} has {free / 1e9:.2f} GB free; the model needs {need / 1e9:.2f} GB")


def write_shape_model(shape: Shape, quant: str, out: str | os.PathLike[str], *, seed: int = 0,
                      progress: Progress | None = None) -> WriteResult:
    """Write `out`: the GGUF of `shape` at mix `quant` with random weights drawn from `seed`.

    Written to `out`.part and renamed when complete; the partial file is removed on failure.
    """
    out = Path(out)
    types = tensor_types(shape, quant)
    specs = tensor_specs(shape)
    total = planned_bytes(shape, quant)
    _check_room(out, total)
    tmp = out.with_name(out.name + ".part")
    start = time.perf_counter()
    try:
        _write(tmp, shape, quant, seed, specs, types, total, progress)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return WriteResult(out, out.stat().st_size, len(specs), time.perf_counter() - start)


def _write(path: Path, shape: Shape, quant: str, seed: int, specs: list[TensorSpec],
           types: dict[str, T], total: int, progress: Progress | None) -> None:
    w = GGUFWriter(path, arch=shape.arch)
    _add_metadata(w, shape, quant, seed)
    _add_vocab(w, shape)
    _add_tensor_table(w, specs, types)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None and len(w.fout) == 1
    f, align = w.fout[0], w.data_alignment
    rng = np.random.default_rng(seed)
    done, last = 0, 0.0
    for i, spec in enumerate(specs):
        f.write(b"\0" * (-f.tell() % align))
        expected = tensor_bytes(spec, types[spec.name])
        written = 0
        for chunk in random_chunks(spec, types[spec.name], rng):
            chunk.tofile(f)
            written += chunk.nbytes
        if written != expected:
            raise RuntimeError(f"{spec.name}: wrote {written} bytes, the table says {expected}")
        f.write(b"\0" * (-written % align))
        done += written
        now = time.perf_counter()
        if progress and (now - last > 2.0 or i == len(specs) - 1):
            last = now
            progress(f"[{i + 1}/{len(specs)}] {spec.name} {types[spec.name].name} "
                     f"{'x'.join(map(str, spec.shape))}  {done / 1e9:.2f}/{total / 1e9:.2f} GB")
    w.close()
