"""Checks and reads on GGUF files that do not need llama.cpp (the `gguf` package, numpy only)."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from r2r_local.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
_EMBEDDING_TENSOR = "token_embd.weight"


def check_gguf_path(path: str | os.PathLike[str], role: str) -> Path:
    """Fail with one clear line unless `path` is a readable, non-empty file starting with GGUF magic.

    Truncation and corruption past the header are left to llama.cpp, which checks tensor bounds.
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{role} model {p}: file not found")
    if p.is_dir():
        raise ModelLoadError(f"{role} model {p}: is a directory, expected a .gguf file")
    try:
        with p.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"{role} model {p}: cannot read it ({e.strerror})") from None
    if not head:
        raise ModelLoadError(f"{role} model {p}: file is empty, expected a GGUF model")
    if head != GGUF_MAGIC:
        raise ModelLoadError(f"{role} model {p}: not a GGUF file (it does not start with 'GGUF')")
    return p


class EmbeddingTable:
    """Rows of a model's input embedding table (`token_embd.weight`), read from its GGUF.

    Rows are dequantized to float32 on first use and kept in a bounded LRU cache; the whole
    table (151936 x 1536 for R1-1.5B, ~0.9 GB as float32) is never materialised.
    """

    def __init__(self, path: str | os.PathLike[str], cache_rows: int = 4096) -> None:
        self._path = Path(path)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_rows = cache_rows
        self._tensor = None

    def _open(self):
        from gguf import GGUFReader

        try:
            reader = GGUFReader(self._path)
        except (ValueError, OSError) as e:
            raise ModelLoadError(f"model {self._path}: cannot read its tensors ({e})") from None
        for t in reader.tensors:
            if t.name == _EMBEDDING_TENSOR:
                return t
        raise ModelLoadError(f"model {self._path}: has no '{_EMBEDDING_TENSOR}' tensor")

    @property
    def n_rows(self) -> int:
        if self._tensor is None:
            self._tensor = self._open()
        return int(self._tensor.data.shape[0])

    def row(self, token: int) -> np.ndarray:
        """float32 [n_embd], the input embedding of `token`."""
        hit = self._cache.get(token)
        if hit is not None:
            self._cache.move_to_end(token)
            return hit
        if self._tensor is None:
            self._tensor = self._open()
        from gguf.quants import dequantize

        raw = self._tensor.data[token]
        vec = np.asarray(dequantize(raw, self._tensor.tensor_type), dtype=np.float32).reshape(-1)
        vec.setflags(write=False)
        self._cache[token] = vec
        if len(self._cache) > self._cache_rows:
            self._cache.popitem(last=False)
        return vec
