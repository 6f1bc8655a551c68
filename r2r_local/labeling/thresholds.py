"""Choosing a router threshold from escalation probabilities on held-out positions (numpy only).

A threshold is always a finite number in [1e-6, 1 - 1e-6]: probabilities that are not finite
(a router or training run that diverged) are refused, never turned into a NaN threshold.
"""

from __future__ import annotations

import math

import numpy as np

from r2r_local.errors import ConfigError


def _finite(p: np.ndarray, what: str) -> None:
    bad = int((~np.isfinite(p)).sum())
    if bad:
        raise ConfigError(f"{what}: {bad} of {len(p)} escalation probabilities are NaN or infinite "
                          "(the router's output is not finite); no threshold chosen")


def threshold_for_recall(p: np.ndarray, label: np.ndarray, recall: float, what: str = "router") -> float:
    """The largest threshold that escalates at least `recall` of the positives."""
    if not 0.0 < recall <= 1.0:
        raise ConfigError(f"recall must be in (0, 1], got {recall}")
    _finite(p, what)
    pos = np.sort(p[label == 1])
    if len(pos) == 0:
        raise ConfigError("the held-out data has no divergent positions: cannot choose a threshold for recall")
    k = int(math.floor((1.0 - recall) * len(pos)))
    return float(np.clip(pos[min(k, len(pos) - 1)], 1e-6, 1 - 1e-6))


MIN_POSITIVES = 20  # below this, one divergent position more or less moves the recall by 5 points or more


def few_positives(label: np.ndarray, what: str) -> str | None:
    """A warning line when a threshold for a recall target rests on fewer than MIN_POSITIVES
    divergent positions (`label` == 1), else None."""
    n = int((np.asarray(label) == 1).sum())
    if n >= MIN_POSITIVES:
        return None
    return (f"warning: {what} has only {n} divergent position{'s' if n != 1 else ''} (fewer than {MIN_POSITIVES}): "
            "the threshold chosen for the recall target is a rough guess; label more prompts")


def threshold_for_share(p: np.ndarray, share: float, what: str = "router") -> float:
    """The threshold at which about `share` of all positions are escalated."""
    if not 0.0 < share < 1.0:
        raise ConfigError(f"target share must be in (0, 1), got {share}")
    _finite(p, what)
    if len(p) == 0:
        raise ConfigError(f"{what}: no positions to choose a threshold on")
    return float(np.clip(np.quantile(p, 1.0 - share), 1e-6, 1 - 1e-6))


def rates(p: np.ndarray, label: np.ndarray, threshold: float) -> dict[str, float]:
    esc = p >= threshold
    tp = int((esc & (label == 1)).sum())
    return {"threshold": threshold, "large_share": float(esc.mean()) if len(p) else 0.0,
            "recall": tp / max(1, int((label == 1).sum())), "precision": tp / max(1, int(esc.sum())),
            "positives": int((label == 1).sum()), "positions": int(len(p))}
