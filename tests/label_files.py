"""Test helper: labelled shards with a known, learnable rule (no models needed)."""

from __future__ import annotations

import numpy as np

from r2r_local.labeling.shards import ShardStore


def synthetic_labels(root, smollm2, n_prompts=12, n=200, seed=0):
    """Shards whose label is a learnable function of the hidden state (d = SmolLM2's 576)."""
    store = ShardStore(root)
    store.open({"small": str(smollm2), "n_embd": 576, "small_vocab_hash": "x", "topk": 100})
    rng = np.random.default_rng(seed)
    for i in range(n_prompts):
        hidden = rng.normal(size=(n, 576))
        signal = rng.normal(size=n)
        hidden[:, :32] += 3 * signal[:, None]  # a direction of the hidden state that predicts the label
        hidden = hidden.astype(np.float16)
        label = (signal > 1.5).astype(np.int8)
        tokens = rng.integers(0, 49152, size=n)
        store.write(i, {"small_token": tokens, "large_token": np.where(label == 1, tokens + 1, tokens),
                        "mismatch": label.astype(bool), "label": label, "hidden": hidden,
                        "topk": -np.sort(-rng.normal(size=(n, 100)), axis=1).astype(np.float32)}, [])
