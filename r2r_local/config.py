"""Configuration as frozen dataclasses, validated when built.

Nothing here touches the disk at import; user directories are computed by the functions that
need them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
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


# --- the user's config file ---------------------------------------------------------------------
# ~/.config/r2r-local/config.toml (platformdirs), read by r2r-chat and written by `r2r models`:
#
#   [models]
#   small = "/path/small.gguf"
#   large = "/path/large.gguf"
#   router = "/path/router.onnx"      # or slm | llm | random:P | entropy:T
#   n_ctx = 4096
#   small_gpu_layers = -1
#   large_gpu_layers = 40
#   threads = 8

APP_NAME = "r2r-local"
CONFIG_KEYS = {"small": str, "large": str, "router": str, "n_ctx": int, "small_gpu_layers": int,
               "large_gpu_layers": int, "threads": int}


def config_dir() -> Path:
    """The user's config directory (R2R_CONFIG_DIR overrides; computed per call, never at import)."""
    from platformdirs import user_config_dir

    return Path(os.environ.get("R2R_CONFIG_DIR") or user_config_dir(APP_NAME))


def data_dir() -> Path:
    """The user's data directory: downloaded models, conversation history (R2R_DATA_DIR overrides)."""
    from platformdirs import user_data_dir

    return Path(os.environ.get("R2R_DATA_DIR") or user_data_dir(APP_NAME))


def config_path() -> Path:
    return config_dir() / "config.toml"


def load_user_config(path: Path | None = None) -> dict[str, Any]:
    """The [models] table of the config file, type-checked; {} when there is no file."""
    import tomllib

    path = path or config_path()
    if not path.exists():
        return {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path}: {e}") from None
    models = doc.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"config file {path}: [models] must be a table")
    for key, value in models.items():
        want = CONFIG_KEYS.get(key)
        if want is None:
            raise ConfigError(f"config file {path}: unknown key models.{key} (known: {', '.join(CONFIG_KEYS)})")
        if not isinstance(value, want) or isinstance(value, bool):
            raise ConfigError(f"config file {path}: models.{key} must be a {want.__name__}")
    return dict(models)


def write_user_config(models: dict[str, Any], path: Path | None = None) -> Path:
    """Write the [models] table (replacing the file atomically); returns the path."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# written by r2r-local; edit freely", "[models]"]
    for key, value in models.items():
        if key not in CONFIG_KEYS:
            raise ConfigError(f"unknown config key models.{key}")
        lines.append(f"{key} = {json.dumps(value) if isinstance(value, str) else int(value)}")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
