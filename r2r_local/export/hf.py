"""Reading a Hugging Face checkpoint folder one tensor at a time (safetensors or PyTorch .bin).

torch is imported when tensors are read, never at import.
"""

from __future__ import annotations

import json
import os
from typing import Iterator

import numpy as np

from r2r_local.export.errors import ExportError

SUPPORTED = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama"}


def read_config(folder: str) -> dict:
    """config.json of `folder`, checked for an architecture we can convert."""
    if not os.path.isdir(folder):
        raise ExportError(f"{folder}: no such folder")
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise ExportError(f"{folder}: no config.json (not a Hugging Face checkpoint folder)")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    archs = config.get("architectures") or []
    if not archs or archs[0] not in SUPPORTED:
        raise ExportError(
            f"{path}: unsupported architecture {archs[0] if archs else None!r} "
            f"(supported: {', '.join(sorted(SUPPORTED))})"
        )
    scaling = config.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise ExportError(f"{path}: rope_scaling {scaling} is not supported")
    return config


def _shards(folder: str) -> tuple[str, list[str]]:
    """('safetensors' | 'bin', shard paths) of the checkpoint."""
    for kind, single, index in (
        ("safetensors", "model.safetensors", "model.safetensors.index.json"),
        ("bin", "pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if os.path.isfile(os.path.join(folder, single)):
            return kind, [os.path.join(folder, single)]
        index_path = os.path.join(folder, index)
        if os.path.isfile(index_path):
            with open(index_path, encoding="utf-8") as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            return kind, [os.path.join(folder, name) for name in files]
    raise ExportError(f"{folder}: no model.safetensors or pytorch_model.bin (nor sharded index)")


class Checkpoint:
    """The tensors of a checkpoint folder: names and shapes first, data on demand."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.kind, self.files = _shards(folder)
        self._where: dict[str, str] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for path in self.files:
            for name, shape in self._list(path):
                self._where[name] = path
                self.shapes[name] = shape

    def _list(self, path: str) -> Iterator[tuple[str, tuple[int, ...]]]:
        if self.kind == "safetensors":
            from safetensors import safe_open

            try:
                with safe_open(path, framework="pt") as f:
                    for name in f.keys():
                        yield name, tuple(f.get_slice(name).get_shape())
            except Exception as e:  # safetensors raises its own error types for corrupt headers
                raise ExportError(f"{path}: not a readable safetensors file ({e})") from None
        else:
            for name, t in self._load_bin(path).items():
                yield name, tuple(t.shape)

    def _load_bin(self, path: str) -> dict:
        import torch

        try:
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except Exception as e:
            raise ExportError(f"{path}: not a readable PyTorch checkpoint ({e})") from None

    def load(self, name: str) -> np.ndarray:
        """The tensor `name` as float32 numpy (bf16 and f16 are widened)."""
        import torch

        path = self._where[name]
        if self.kind == "safetensors":
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                t = f.get_tensor(name)
        else:
            t = self._load_bin(path)[name]
        return t.to(torch.float32).numpy()
