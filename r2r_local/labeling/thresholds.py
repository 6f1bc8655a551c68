"""Choosing a router threshold from escalation probabilities on held-out positions (numpy only)."""

from __future__ import annotations

import math

import numpy as np

from r2r_local.errors import ConfigError


def threshold_for_recall(p: np.ndarray, label: np.ndarray, recall: float) -> float:
    """The largest threshold that escalates at least `recall` of the positives."""
    pos = np.sort(p[label == 1])
    if len(pos) == 0:
        raise ConfigError("the held-out data has no divergent positions: cannot choose a threshold for recall")
    k = int(math.floor((1.0 - recall) * len(pos)))
    return float(np.clip(pos[min(k, len(pos) - 1)], 1e-6, 1 - 1e-6))


def threshold_for_share(p: np.ndarray, share: float) -> float:
    """The threshold at which about `share` of all positions are escalated."""
    if not 0.0 < share < 1.0:
        raise ConfigError(f"target share must be in (0, 1), got {share}")
    return float(np.clip(np.quantile(p, 1.0 - share), 1e-6, 1 - 1e-6))


def rates(p: np.ndarray, label: np.ndarray, threshold: float) -> dict[str, float]:
    esc = p >= threshold
    tp = int((esc & (label == 1)).sum())
    return {"threshold": threshold, "large_share": float(esc.mean()) if len(p) else 0.0,
            "recall": tp / max(1, int((label == 1).sum())), "precision": tp / max(1, int(esc.sum())),
            "positives": int((label == 1).sum()), "positions": int(len(p))}
