"""Configuration as frozen dataclasses, validated when built.

Nothing here touches the disk at import; user directories are computed by the functions that
need them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from r2r_local.errors import ConfigError

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class SamplingParams:
    """How one token is chosen from logits; shared by both models.

    temperature == 0 means greedy (argmax); top_k == 0 and top_p == 1 disable those filters.
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top-k must be >= 0 (0 disables it), got {self.top_k}")
        if not (0.0 < self.top_p <= 1.0):
            raise ConfigError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class ModelSpec:
    """Where a GGUF lives and how llama.cpp should load it."""

    path: str
    n_ctx: int = DEFAULT_N_CTX
    n_gpu_layers: int = 0
    threads: int | None = None
    role: str = "model"

    def __post_init__(self) -> None:
        if self.n_ctx < 16:
            raise ConfigError(f"n-ctx must be >= 16, got {self.n_ctx}")
        if self.n_gpu_layers < -1:
            raise ConfigError(f"gpu layers must be >= -1 (-1 = all), got {self.n_gpu_layers}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class GenerationSettings:
    """Limits of one generation."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max-tokens must be >= 1, got {self.max_tokens}")
        if any(s == "" for s in self.stop):
            raise ConfigError("a stop string must not be empty")


def as_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(obj).items()}
