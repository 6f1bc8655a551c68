"""Timing single-token decode steps of a loaded backend (for shape-true models and router cost).

Speed is reported as medians; warm-up steps are not counted (docs/design.md, "Measuring").
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from r2r_local.backends import Model

PROMPT = "The lighthouse keeper counted the waves, one by one, until the storm passed."


@dataclass(frozen=True)
class StepTimes:
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def summary(self) -> dict[str, float]:
        s = sorted(self.seconds)
        return {"n": len(s), "median_ms": self.median * 1e3, "min_ms": s[0] * 1e3,
                "p90_ms": s[int(0.9 * (len(s) - 1))] * 1e3}


def prefill(backend: Model, prompt: str = PROMPT) -> int:
    """Evaluate the prompt from an empty cache; return the greedy next token."""
    backend.slot.truncate(0)
    tokens = backend.tokenize(prompt, add_special=True, parse_special=False)
    out = backend.slot.decode(tokens)
    return int(np.argmax(out.logits))


def time_decode_steps(backend: Model, n: int, *, hidden: bool = False, warmup: int = 3) -> StepTimes:
    """Wall time of `n` single-token decodes, each fed the previous greedy token, after a prompt."""
    return time_interleaved([backend], n, hidden=hidden, warmup=warmup)[0]


def time_interleaved(backends: list[Model], n: int, *, hidden: bool = False,
                     warmup: int = 3) -> list[StepTimes]:
    """Like `time_decode_steps` for several models, taking turns step by step, so that noise
    from other work on the machine falls on all of them alike."""
    tokens = [prefill(b) for b in backends]
    times: list[list[float]] = [[] for _ in backends]
    for i in range(warmup + n):
        for j, backend in enumerate(backends):
            start = time.perf_counter()
            out = backend.slot.decode([tokens[j]], hidden=hidden)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[j].append(elapsed)
            tokens[j] = int(np.argmax(out.logits))
    return [StepTimes(t) for t in times]


def time_catch_up(backend: Model, sizes: Sequence[int], n: int, *, warmup: int = 2) -> dict[int, StepTimes]:
    """Wall time of one batched call evaluating k new tokens with logits at the last only (the
    large model's catch-up in the routed loop), for each k in `sizes`, from the same cache
    position each time (the extra positions are dropped after every call). The sizes take
    turns round by round so noise falls on all of them alike."""
    prefill(backend)
    base = backend.slot.n_past
    high = min(backend.n_vocab, 30000)  # ordinary tokens: past the specials of small vocabularies
    low = min(100, high // 2)
    rng = np.random.default_rng(0)
    times: dict[int, list[float]] = {k: [] for k in sizes}
    for i in range(warmup + n):
        for k in sizes:
            tokens = [int(t) for t in rng.integers(low, high, size=k)]
            start = time.perf_counter()
            backend.slot.decode(tokens)
            elapsed = time.perf_counter() - start
            backend.slot.truncate(base)
            if i >= warmup:
                times[k].append(elapsed)
    return {k: StepTimes(t) for k, t in times.items()}


def machine() -> dict[str, Any]:
    """What the numbers were measured on, including how busy the machine was."""
    import os

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": list(load) if load else None,
            "platform": platform.platform()}
