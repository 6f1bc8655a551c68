"""Labelled data on disk: one .npz shard per prompt plus a manifest, so a rerun resumes.

A shard holds, for every position of the large model's answer: `small_token` (the small model's
argmax, the token the router will see proposed), `large_token`, `mismatch`, `label` (1 only at
divergent mismatches), `hidden` float16 [n,d], `topk` float32 [n,100]. Embedding rows are not
stored: they are read from the small model's GGUF by token id when training.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from r2r_local.errors import ConfigError

MANIFEST = "manifest.json"
_SHARD = re.compile(r"shard-(\d{6})\.npz$")
FIELDS = ("small_token", "large_token", "mismatch", "label", "hidden", "topk")


class ShardStore:
    """A directory of shards. `open()` checks that a rerun labels the same thing as before."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def open(self, config: dict[str, Any]) -> set[int]:
        """Create or reopen the store for `config`; returns the prompt indices already done."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"label output {self.root}: exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / MANIFEST
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("config") != config:
                changed = sorted(k for k in set(old.get("config", {})) | set(config)
                                 if old.get("config", {}).get(k) != config.get(k))
                raise ConfigError(f"label output {self.root}: holds data labelled with other settings "
                                  f"({', '.join(changed)}); use another --out or delete it")
        else:
            _atomic_write(path, json.dumps({"config": config}, indent=2).encode())
        return self.done()

    def done(self) -> set[int]:
        return {int(m.group(1)) for p in self.root.glob("shard-*.npz") if (m := _SHARD.search(p.name))}

    def write(self, index: int, arrays: dict[str, np.ndarray], records: list[dict[str, Any]]) -> Path:
        """Write one prompt's shard atomically (a crash never leaves half a shard)."""
        path = self.root / f"shard-{index:06d}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        if records:
            with (self.root / "mismatches.jsonl").open("a", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps({"prompt": index, **r}, ensure_ascii=False) + "\n")
        return path

    def config(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            raise ConfigError(f"labelled data {self.root}: no {MANIFEST} (not an r2r label directory)")
        return json.loads(path.read_text())["config"]

    def shards(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for index in sorted(self.done()):
            with np.load(self.root / f"shard-{index:06d}.npz") as data:
                yield index, {k: data[k] for k in FIELDS}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
