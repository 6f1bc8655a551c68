"""Checks and reads on GGUF files that do not need llama.cpp (the `gguf` package, numpy only).

`read_header` parses only the header (metadata and tensor table), never tensor data, so it works
on a 20 GB file in milliseconds and on header-only files; `gguf.GGUFReader` parses every metadata
value into numpy objects, which takes seconds for a 150k-token vocabulary.
"""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from math import prod
from typing import Any, BinaryIO, Iterable

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


_EOF = ": the file is truncated or corrupt"
GGUF_VERSIONS = (2, 3)  # what llama.cpp reads
MAX_DIMS = 4  # GGML_MAX_DIMS
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Reads a GGUF header; every count and length is checked against the bytes left in the file
    before it is used, so a corrupt header fails at once instead of allocating or looping."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.size = os.fstat(f.fileno()).st_size

    def left(self) -> int:
        return self.size - self.f.tell()

    def need(self, n: int, each: int, what: str) -> None:
        if n * each > self.left():
            raise ValueError(f"{what} ({n}) runs past the end of the file{_EOF}")

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError(f"unexpected end of file{_EOF}")
        return struct.unpack("<" + fmt, data)[0]

    def string(self) -> bytes:
        n = self.unpack("Q")
        self.need(n, 1, "a string length")
        return self.f.read(n)

    def skip_value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, n = self.unpack("I"), self.unpack("Q")
            if itype == _STRING:
                self.need(n, 8, "an array length")
                for _ in range(n):
                    self.string()
            elif itype in _SCALAR:
                each = struct.calcsize("<" + _SCALAR[itype])
                self.need(n, each, "an array length")
                self.f.seek(each * n, 1)
            else:
                self.need(n, 12, "an array length")
                for _ in range(n):
                    self.skip_value(itype)
            return None
        if vtype not in _SCALAR:
            raise ValueError(f"unknown metadata type {vtype}")
        return self.unpack(_SCALAR[vtype])


# ggml type id -> (elements per block, bytes per block); the ids are part of the GGUF format.
_QUANT_SIZES: dict[int, tuple[int, int]] | None = None


def quant_sizes() -> dict[int, tuple[int, int]]:
    global _QUANT_SIZES
    if _QUANT_SIZES is None:
        from gguf.constants import GGML_QUANT_SIZES

        _QUANT_SIZES = {int(t): v for t, v in GGML_QUANT_SIZES.items()}
    return _QUANT_SIZES


def tensor_nbytes(ggml_type: int, shape: Iterable[int]) -> int:
    """Bytes of a tensor of `ggml_type` with `shape` (ggml order, rows first)."""
    sizes = quant_sizes()
    if ggml_type not in sizes:
        raise ValueError(f"unknown ggml type {ggml_type}")
    block, type_size = sizes[ggml_type]
    return prod(shape) // block * type_size


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF: type id, shape (ggml order, rows first), size and absolute offset."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    nbytes: int
    offset: int = 0


@dataclass(frozen=True)
class GGUFHeader:
    """metadata: scalar and string values (strings decoded); arrays: only the keys asked for."""

    path: str
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    arrays: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_int(self, key: str, default: int | None = None) -> int | None:
        """`{arch}.{key}` as an int (e.g. 'block_count'), or `default`."""
        value = self.metadata.get(f"{self.arch}.{key}", default)
        return None if value is None else int(value)


def _read_array(cur: _Cursor) -> list[Any]:
    itype, n = cur.unpack("I"), cur.unpack("Q")
    if itype == _STRING:
        cur.need(n, 8, "an array length")
        return [cur.string() for _ in range(n)]
    if itype in _SCALAR:
        fmt = _SCALAR[itype]
        size = struct.calcsize("<" + fmt)
        cur.need(n, size, "an array length")
        data = cur.f.read(size * n)
        return list(struct.unpack(f"<{n}{fmt}", data))
    cur.need(n, 12, "an array length")
    return [cur.skip_value(itype) for _ in range(n)]


def read_header(path: str | os.PathLike[str], arrays: Iterable[str] = ()) -> GGUFHeader:
    """Parse a GGUF header; `arrays` names the array-valued keys to keep (others are skipped).

    Raises ModelLoadError with one line naming the file when it is not a readable GGUF.
    """
    wanted = set(arrays)
    p = Path(path)
    try:
        with p.open("rb") as f:
            cur = _Cursor(f)
            if f.read(4) != GGUF_MAGIC:
                raise ValueError("not a GGUF file (it does not start with 'GGUF')")
            version, n_tensors, n_kv = cur.unpack("I"), cur.unpack("Q"), cur.unpack("Q")
            if version not in GGUF_VERSIONS:
                raise ValueError(f"GGUF version {version} is not supported (llama.cpp reads versions 2 and 3)")
            cur.need(n_kv, 13, "the metadata count")  # key length, type, one byte of value at least
            cur.need(n_tensors, 24, "the tensor count")  # name length, n_dims, type, offset
            meta: dict[str, Any] = {}
            kept: dict[str, list[Any]] = {}
            alignment = 32
            for _ in range(n_kv):
                key = cur.string().decode("utf-8", errors="replace")
                vtype = cur.unpack("I")
                if vtype == _ARRAY:
                    if key in wanted:
                        kept[key] = _read_array(cur)
                    else:
                        cur.skip_value(vtype)
                    continue
                value = cur.skip_value(vtype)
                meta[key] = value.decode("utf-8", errors="replace") if vtype == _STRING else value
                if key == "general.alignment":
                    alignment = int(value)
                    if alignment < 1:
                        raise ValueError(f"general.alignment is {alignment}{_EOF}")
            raw = []
            for _ in range(n_tensors):
                name = cur.string().decode("utf-8", errors="replace")
                n_dims = cur.unpack("I")
                if n_dims > MAX_DIMS:
                    raise ValueError(f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS}){_EOF}")
                dims = tuple(cur.unpack("Q") for _ in range(n_dims))
                raw.append((name, cur.unpack("I"), dims, cur.unpack("Q")))
            data_start = -(-f.tell() // alignment) * alignment
            tensors = [TensorInfo(n, t, d, tensor_nbytes(t, d), data_start + o) for n, t, d, o in raw]
    except FileNotFoundError:
        raise ModelLoadError(f"model {p}: file not found") from None
    except IsADirectoryError:
        raise ModelLoadError(f"model {p}: is a directory, expected a .gguf file") from None
    except (OSError, ValueError, OverflowError, struct.error) as e:
        raise ModelLoadError(f"model {p}: cannot read its GGUF header ({e})") from None
    return GGUFHeader(str(p), meta, tuple(tensors), kept)


def check_gguf_file(path: str | os.PathLike[str], role: str) -> GGUFHeader:
    """`check_gguf_path`, then the header parsed and every tensor's data inside the file: what a
    config may safely point at (llama.cpp makes the same checks when it loads the file)."""
    p = check_gguf_path(path, role)
    try:
        header = read_header(p)
    except ModelLoadError as e:
        raise ModelLoadError(f"{role} {e}") from None
    size = p.stat().st_size
    end = max((t.offset + t.nbytes for t in header.tensors), default=0)
    if end > size:
        raise ModelLoadError(f"{role} model {p}: the file is truncated: its tensors end at byte {end}, "
                             f"the file has {size} bytes")
    return header


def find_tensor(path: str | os.PathLike[str], name: str) -> TensorInfo:
    """Locate one tensor by reading only the header (KeyError when the file has none of that name)."""
    for t in read_header(path).tensors:
        if t.name == name:
            return t
    raise KeyError(name)


class EmbeddingTable:
    """Rows of a model's input embedding table (`token_embd.weight`), read from its GGUF.

    Rows are read and dequantized to float32 on first use and kept in a bounded LRU cache; the
    whole table (151936 x 1536 for R1-1.5B, ~0.9 GB as float32) is never materialised.
    """

    def __init__(self, path: str | os.PathLike[str], cache_rows: int = 4096) -> None:
        self._path = Path(path)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_rows = cache_rows
        self._loc: TensorInfo | None = None
        self._row_bytes = 0

    def _locate(self) -> TensorInfo:
        from gguf.constants import GGMLQuantizationType

        try:
            loc = find_tensor(self._path, _EMBEDDING_TENSOR)
        except KeyError:
            raise ModelLoadError(f"model {self._path}: has no '{_EMBEDDING_TENSOR}' tensor") from None
        self._row_bytes = tensor_nbytes(loc.ggml_type, loc.shape[:1])
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
