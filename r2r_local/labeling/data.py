"""A label directory opened for reading (training, thresholds): its settings, its shards checked
against the small model it names, and that model's embedding rows (numpy only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from r2r_local.errors import ConfigError, ModelLoadError
from r2r_local.labeling.shards import ShardStore

_EMBEDDING = "token_embd.weight"


class LabelledData:
    """`r2r label` output, checked before use: the manifest's config must name a small model whose
    embedding width is the data's n_embd, and every shard must fit both (see `read_shard`).
    Every problem is a ConfigError that names the manifest or the shard."""

    def __init__(self, root: str | Path) -> None:
        self.store = ShardStore(root)
        self.config: dict[str, Any] = self.store.config()
        self.n_embd: int = self.config["n_embd"]
        self.topk: int = self.config.get("topk", 100)
        self._table, self.n_vocab = self._small_table()

    def _small_table(self) -> tuple[Any, int]:
        from r2r_local.backends.gguf_file import EmbeddingTable, find_tensor

        small, what = self.config["small"], f"labelled data {self.store.manifest_path}"
        try:
            loc = find_tensor(small, _EMBEDDING)
        except KeyError:
            raise ConfigError(f"{what}: its small model {small} has no '{_EMBEDDING}' tensor") from None
        except ModelLoadError as e:
            raise ConfigError(f"{what}: its small model cannot be read ({e})") from None
        width, n_vocab = int(loc.shape[0]), int(loc.shape[1])
        if width != self.n_embd:
            raise ConfigError(f"{what}: its small model {small} has embedding width {width}, but the data was "
                              f"labelled with n_embd {self.n_embd} (another model?)")
        return EmbeddingTable(small), n_vocab

    def shards(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(prompt index, arrays) of every shard, in prompt order, each validated on load."""
        return self.store.shards(self.n_embd, self.topk, self.n_vocab)

    def embeddings(self, tokens: np.ndarray) -> np.ndarray:
        """float32 [n, n_embd]: the small model's input-embedding rows of `tokens` (int [n])."""
        if not len(tokens):
            return np.zeros((0, self.n_embd), np.float32)
        try:
            return np.stack([self._table.row(int(t)) for t in tokens]).astype(np.float32, copy=False)
        except (OSError, ValueError) as e:
            raise ConfigError(f"labelled data {self.store.manifest_path}: cannot read embedding rows from "
                              f"its small model {self.config['small']} ({e})") from None
