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
# config.json keys the converter reads: required positive ints, then optional ones.
_REQUIRED_INTS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "max_position_embeddings")
_OPTIONAL_INTS = ("num_key_value_heads", "head_dim")
_OPTIONAL_FLOATS = ("rms_norm_eps", "rope_theta")


def read_json(path: str) -> object:
    """The parsed JSON of `path`; ExportError naming the file when it is not UTF-8 JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise ExportError(f"{path}: not valid JSON (not UTF-8 text)") from None


def read_config(folder: str) -> dict:
    """config.json of `folder`, checked for an architecture we can convert."""
    if not os.path.isdir(folder):
        raise ExportError(f"{folder}: no such folder")
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise ExportError(f"{folder}: no config.json (not a Hugging Face checkpoint folder)")
    config = read_json(path)
    if not isinstance(config, dict):
        raise ExportError(f"{path}: not a model config (expected a JSON object)")
    archs = config.get("architectures") or []
    if not isinstance(archs, list):
        raise ExportError(f"{path}: architectures must be a list of class names, not {archs!r}")
    if not archs or archs[0] not in SUPPORTED:
        raise ExportError(
            f"{path}: unsupported architecture {archs[0] if archs else None!r} "
            f"(supported: {', '.join(sorted(SUPPORTED))})"
        )
    for key in ("rope_scaling", "rope_parameters"):
        rope = config.get(key)
        if rope and (not isinstance(rope, dict) or rope.get("rope_type", rope.get("type")) not in (None, "default")):
            raise ExportError(f"{path}: {key} {rope} is not supported")
    _rope_theta_from_parameters(config, path)
    _check_numbers(config, path)
    return config


def _rope_theta_from_parameters(config: dict, path: str) -> None:
    """transformers 5 writes the RoPE base inside `rope_parameters` rather than as `rope_theta`
    (R1-Distill-Qwen's is 1e6; read as missing it would become the default 10000, a silently
    wrong model): take it from there."""
    theta = (config.get("rope_parameters") or {}).get("rope_theta")
    if theta is None:
        return
    if config.get("rope_theta") is not None and config["rope_theta"] != theta:
        raise ExportError(f"{path}: rope_theta {config['rope_theta']} and rope_parameters.rope_theta {theta} differ")
    config["rope_theta"] = theta


def _check_numbers(config: dict, path: str) -> None:
    """The hyperparameters the converter reads are present and of the right type."""
    for key in _REQUIRED_INTS + _OPTIONAL_INTS:
        value = config.get(key)
        if value is None and key in _OPTIONAL_INTS:
            continue
        if value is None:
            raise ExportError(f"{path}: {key} is missing")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ExportError(f"{path}: {key} must be a positive integer, not {value!r}")
    for key in _OPTIONAL_FLOATS:
        value = config.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
            raise ExportError(f"{path}: {key} must be a positive number, not {value!r}")
    if not config.get("head_dim") and config["hidden_size"] % config["num_attention_heads"]:
        raise ExportError(f"{path}: hidden_size {config['hidden_size']} is not a multiple of "
                          f"num_attention_heads {config['num_attention_heads']}")
    n_kv = config.get("num_key_value_heads") or config["num_attention_heads"]
    if config["num_attention_heads"] % n_kv:
        raise ExportError(f"{path}: num_attention_heads {config['num_attention_heads']} is not a multiple of "
                          f"num_key_value_heads {n_kv}")


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
            index_doc = read_json(index_path)
            weight_map = index_doc.get("weight_map") if isinstance(index_doc, dict) else None
            if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
                raise ExportError(f"{index_path}: not a checkpoint index (needs a weight_map of tensor -> file)")
            files = sorted(set(weight_map.values()))
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
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ExportError(f"{path}: not a readable PyTorch checkpoint ({first[:160]})") from None
        if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise ExportError(f"{path}: not a model state dict (expected a dict of tensor name -> tensor)")
        return state

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
