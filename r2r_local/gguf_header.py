"""A GGUF file's header without llama.cpp: scalar metadata, chosen arrays, every tensor's size.

Reads only the header (metadata and tensor table), never tensor data, so it works on a 20 GB file
in milliseconds and on shape-true *header-only* files used in tests. `gguf.GGUFReader` parses every
metadata value into numpy objects (seconds for a 150k-token vocabulary); this skips what it is not
asked for. The value encoding is the one `backends/gguf_file.py` reads (its cursor is reused).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any, Iterable

from r2r_local.backends.gguf_file import _ARRAY, _SCALAR, _STRING, GGUF_MAGIC, _Cursor
from r2r_local.errors import ModelLoadError

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
    name: str
    ggml_type: int
    shape: tuple[int, ...]  # ggml order
    nbytes: int


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


def _read_array(cur: _Cursor, keep: bool) -> list[Any] | None:
    itype, n = cur.unpack("I"), cur.unpack("Q")
    if not keep:
        if itype == _STRING:
            for _ in range(n):
                cur.f.seek(cur.unpack("Q"), 1)
        elif itype in _SCALAR:
            cur.f.seek(struct.calcsize("<" + _SCALAR[itype]) * n, 1)
        else:
            for _ in range(n):
                cur.skip_value(itype)
        return None
    if itype == _STRING:
        return [cur.string() for _ in range(n)]
    if itype in _SCALAR:
        fmt = _SCALAR[itype]
        size = struct.calcsize("<" + fmt)
        data = cur.f.read(size * n)
        if len(data) != size * n:
            raise ValueError("unexpected end of file")
        return list(struct.unpack(f"<{n}{fmt}", data))
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
            if version < 2:
                raise ValueError(f"GGUF version {version} is not supported")
            meta: dict[str, Any] = {}
            kept: dict[str, list[Any]] = {}
            for _ in range(n_kv):
                key = cur.string().decode("utf-8", errors="replace")
                vtype = cur.unpack("I")
                if vtype == _ARRAY:
                    values = _read_array(cur, key in wanted)
                    if values is not None:
                        kept[key] = values
                    continue
                value = cur.skip_value(vtype)
                meta[key] = value.decode("utf-8", errors="replace") if vtype == _STRING else value
            tensors = []
            for _ in range(n_tensors):
                name = cur.string().decode("utf-8", errors="replace")
                dims = tuple(cur.unpack("Q") for _ in range(cur.unpack("I")))
                ggml_type, _offset = cur.unpack("I"), cur.unpack("Q")
                tensors.append(TensorInfo(name, ggml_type, dims, tensor_nbytes(ggml_type, dims)))
    except FileNotFoundError:
        raise ModelLoadError(f"model {p}: file not found") from None
    except (OSError, ValueError, struct.error) as e:
        raise ModelLoadError(f"model {p}: cannot read its GGUF header ({e})") from None
    return GGUFHeader(str(p), meta, tuple(tensors), kept)
