"""Checks and reads on GGUF files that do not need llama.cpp (the `gguf` package, numpy only)."""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorLocation:
    """Where one tensor's bytes lie in a GGUF: type id, shape (ggml order) and absolute offset."""

    ggml_type: int
    shape: tuple[int, ...]
    offset: int


class _Cursor:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("unexpected end of file")
        return struct.unpack("<" + fmt, data)[0]

    def string(self) -> bytes:
        return self.f.read(self.unpack("Q"))

    def skip_value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, n = self.unpack("I"), self.unpack("Q")
            if itype == _STRING:
                for _ in range(n):
                    self.f.seek(self.unpack("Q"), 1)
            elif itype in _SCALAR:
                self.f.seek(struct.calcsize("<" + _SCALAR[itype]) * n, 1)
            else:
                for _ in range(n):
                    self.skip_value(itype)
            return None
        if vtype not in _SCALAR:
            raise ValueError(f"unknown metadata type {vtype}")
        return self.unpack(_SCALAR[vtype])


def find_tensor(path: str | os.PathLike[str], name: str) -> TensorLocation:
    """Locate a tensor by reading only the GGUF header (the `gguf` reader parses every metadata
    value into numpy objects, which takes seconds for a 150k-token vocabulary)."""
    with open(path, "rb") as f:
        cur = _Cursor(f)
        if f.read(4) != GGUF_MAGIC:
            raise ValueError("not a GGUF file")
        version, n_tensors, n_kv = cur.unpack("I"), cur.unpack("Q"), cur.unpack("Q")
        if version < 2:
            raise ValueError(f"GGUF version {version} is not supported")
        alignment, found = 32, None
        for _ in range(n_kv):
            key, vtype = cur.string(), cur.unpack("I")
            value = cur.skip_value(vtype)
            if key == b"general.alignment":
                alignment = int(value)
        for _ in range(n_tensors):
            tname = cur.string()
            dims = tuple(cur.unpack("Q") for _ in range(cur.unpack("I")))
            ggml_type, offset = cur.unpack("I"), cur.unpack("Q")
            if tname == name.encode():
                found = (ggml_type, dims, offset)
        data_start = -(-f.tell() // alignment) * alignment
    if found is None:
        raise KeyError(name)
    return TensorLocation(found[0], found[1], data_start + found[2])


class EmbeddingTable:
    """Rows of a model's input embedding table (`token_embd.weight`), read from its GGUF.

    Rows are read and dequantized to float32 on first use and kept in a bounded LRU cache; the
    whole table (151936 x 1536 for R1-1.5B, ~0.9 GB as float32) is never materialised.
    """

    def __init__(self, path: str | os.PathLike[str], cache_rows: int = 4096) -> None:
        self._path = Path(path)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_rows = cache_rows
        self._loc: TensorLocation | None = None
        self._row_bytes = 0

    def _locate(self) -> TensorLocation:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        try:
            loc = find_tensor(self._path, _EMBEDDING_TENSOR)
        except KeyError:
            raise ModelLoadError(f"model {self._path}: has no '{_EMBEDDING_TENSOR}' tensor") from None
        except (ValueError, OSError) as e:
            raise ModelLoadError(f"model {self._path}: cannot read its tensors ({e})") from None
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(loc.ggml_type)]
        self._row_bytes = loc.shape[0] // block * type_size
        self._qtype = GGMLQuantizationType(loc.ggml_type)
        return loc

    @property
    def n_rows(self) -> int:
        if self._loc is None:
            self._loc = self._locate()
        return int(self._loc.shape[1])

    def row(self, token: int) -> np.ndarray:
        """float32 [n_embd], the input embedding of `token`."""
        hit = self._cache.get(token)
        if hit is not None:
            self._cache.move_to_end(token)
            return hit
        if self._loc is None:
            self._loc = self._locate()
        if not 0 <= token < self._loc.shape[1]:
            raise IndexError(f"token {token} is outside the embedding table")
        from gguf.quants import dequantize

        with open(self._path, "rb") as f:
            f.seek(self._loc.offset + token * self._row_bytes)
            raw = np.frombuffer(f.read(self._row_bytes), dtype=np.uint8)
        vec = np.asarray(dequantize(raw, self._qtype), dtype=np.float32).reshape(-1)
        vec.setflags(write=False)
        self._cache[token] = vec
        if len(self._cache) > self._cache_rows:
            self._cache.popitem(last=False)
        return vec
