"""Test helper: copy a GGUF with an edited vocabulary (real files for the pairing tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

UNUSED = 5  # tokenizer.ggml.token_type for padding rows
USER_DEFINED = 4  # a padding row some converters write: its text "[PADi]" is rendered


def copy_with_vocab(
    src: Path, dst: Path, *, pad_to: int | None = None,
    edit_tokens: Callable[[list[str]], list[str]] | None = None, pad_type: int = UNUSED,
) -> Path:
    """Write `src` to `dst` with the vocabulary padded to `pad_to` rows ([PADi], of token type
    `pad_type`, zero embedding rows) and/or its token texts changed by `edit_tokens`."""
    reader = GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    tokens = list(reader.fields["tokenizer.ggml.tokens"].contents())
    types = list(reader.fields["tokenizer.ggml.token_type"].contents())
    n_old = len(tokens)
    if edit_tokens:
        tokens = edit_tokens(tokens)
    if pad_to:
        tokens += [f"[PAD{i}]" for i in range(n_old, pad_to)]
        types += [pad_type] * (pad_to - n_old)
    writer = GGUFWriter(dst, arch=arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "tokenizer.ggml.tokens":
            writer.add_key_value(name, tokens, GGUFValueType.ARRAY, GGUFValueType.STRING)
        elif name == "tokenizer.ggml.token_type":
            writer.add_key_value(name, types, GGUFValueType.ARRAY, GGUFValueType.INT32)
        elif name == f"{arch}.vocab_size":
            writer.add_key_value(name, len(tokens), GGUFValueType.UINT32)
        elif field.types[0] == GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), GGUFValueType.ARRAY, field.types[-1])
        else:
            writer.add_key_value(name, field.contents(), field.types[0])
    for t in reader.tensors:
        data = np.asarray(t.data)
        if pad_to and t.name in ("token_embd.weight", "output.weight") and data.shape[0] == n_old:
            extra = np.zeros((pad_to - n_old,) + data.shape[1:], dtype=data.dtype)
            data = np.concatenate([data, extra])
        writer.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def requantize(src: Path, dst: Path, ftype: str = "Q2_K") -> Path:
    """A degraded copy of a GGUF through llama.cpp's own quantizer: a 'small' model that shares
    the vocabulary yet disagrees with the original at some tokens."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.allow_requantize = True
    params.nthread = 1
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) != 0:
        raise RuntimeError(f"quantizing {src} failed")
    return dst
