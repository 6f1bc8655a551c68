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

from r2r_local.errors import ConfigError, R2RError
from r2r_local.server_bounds import SERVER_KEYS, ServerBounds, check_server_value

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 512
# Bounds that keep a typo from reaching llama.cpp, whose C ints wrap, hang or abort on huge values.
MAX_THREADS = 1024
MAX_N_CTX = 2**20  # 1,048,576 tokens: 8x R1's 131,072-token training context
# llama.cpp (llama-context.cpp) pads every context to a multiple of 256 tokens; 16 becomes 256,
# 300 becomes 512 (measured with llama-cpp-python 0.3.36: asked n_ctx -> llama_n_ctx).
N_CTX_STEP = 256
MAX_SEED = 2**32  # seeds are 0 <= seed < 2**32 (llama.cpp's and numpy's uint32 range)


def check_threads(threads: int | None, what: str = "threads") -> None:
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"{what} must be between 1 and {MAX_THREADS}, got {threads}")


def check_n_ctx(n_ctx: int, what: str = "n-ctx") -> None:
    """A context length a user asks for (a flag, the config file): a multiple of N_CTX_STEP from
    N_CTX_STEP to MAX_N_CTX. llama.cpp rounds any other length up to the next multiple, and the
    run would then hold another context than the one asked for and recorded."""
    if not N_CTX_STEP <= n_ctx <= MAX_N_CTX:
        raise ConfigError(f"{what} must be between {N_CTX_STEP} and {MAX_N_CTX}, got {n_ctx} "
                          f"(llama.cpp's smallest context is {N_CTX_STEP} tokens)")
    if n_ctx % N_CTX_STEP:
        lower = n_ctx - n_ctx % N_CTX_STEP
        raise ConfigError(f"{what} must be a multiple of {N_CTX_STEP} (llama.cpp rounds other lengths up), "
                          f"got {n_ctx}: use {lower} or {lower + N_CTX_STEP}")


def _check_n_ctx_range(n_ctx: int, what: str = "n_ctx") -> None:
    """The bounds of a ModelSpec built by code (tests of small fakes use lengths under 256; a real
    model's backend reports the length llama.cpp really allocated)."""
    if not 16 <= n_ctx <= MAX_N_CTX:
        raise ConfigError(f"{what} must be between 16 and {MAX_N_CTX}, got {n_ctx}")


def check_gpu_layers(n: int | None, what: str = "gpu layers") -> None:
    if n is not None and n < -1:
        raise ConfigError(f"{what} must be >= -1 (-1 = all), got {n}")


def check_seed(seed: int, what: str = "seed") -> None:
    if not 0 <= seed < MAX_SEED:
        raise ConfigError(f"{what} must be between 0 and {MAX_SEED - 1}, got {seed}")


def check_free_gb(gb: float | None, what: str = "--assume-free-gb") -> None:
    if gb is not None and not (math.isfinite(gb) and gb >= 0):
        raise ConfigError(f"{what} must be a finite number of GB >= 0, got {gb}")


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
        check_seed(self.seed)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class ModelSpec:
    """Where a GGUF lives and how llama.cpp should load it; for a model behind a server (`path`
    http://...), `server` bounds its requests (None: a local model)."""

    path: str
    n_ctx: int = DEFAULT_N_CTX
    n_gpu_layers: int = 0
    threads: int | None = None
    role: str = "model"
    server: ServerBounds | None = None

    def __post_init__(self) -> None:
        _check_n_ctx_range(self.n_ctx)
        check_gpu_layers(self.n_gpu_layers)
        check_threads(self.threads)


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
#   large_timeout = 60                # a served large model (large = "http://HOST:PORT") only:
#   large_retries = 2                 # see r2r_local.server_bounds
#   large_top_k = 100

APP_NAME = "r2r-local"
CONFIG_KEYS = {"small": str, "large": str, "router": str, "n_ctx": int, "small_gpu_layers": int,
               "large_gpu_layers": int, "threads": int, "large_timeout": (int, float), "large_retries": int,
               "large_top_k": int}


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
    """The [models] table of the config file, type- and range-checked; {} when there is no file.
    Raises ConfigError naming the file at the first bad value."""
    models, problems = read_user_config(path)
    if problems:
        raise ConfigError(problems[0])
    return models


def read_user_config(path: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """The valid values of the [models] table and one line naming the file for each bad one
    (`r2r doctor` reports them all; everything else uses load_user_config)."""
    import tomllib

    path = path or config_path()
    if path.parent.exists() and not path.parent.is_dir():
        return {}, [f"config directory {path.parent}: is a file, expected a directory"]
    if not path.exists():
        return {}, []
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return {}, [f"config file {path}: {e}"]
    models = doc.get("models", {})
    if not isinstance(models, dict):
        return {}, [f"config file {path}: [models] must be a table"]
    good, problems = {}, []
    for key, value in models.items():
        want = CONFIG_KEYS.get(key)
        try:
            if want is None:
                raise ConfigError(f"unknown key models.{key} (known: {', '.join(CONFIG_KEYS)})")
            if not isinstance(value, want) or isinstance(value, bool):
                raise ConfigError(f"models.{key} must be {_TYPE_WORDS[want]}, got {_toml_type(value)}")
            _check_value(key, value)
        except R2RError as e:
            problems.append(f"config file {path}: {e}")
            continue
        good[key] = value
    return good, problems


_TYPE_WORDS = {str: "a string", int: "an integer", (int, float): "a number"}


def _toml_type(value: Any) -> str:
    """What TOML calls the type of a value read by tomllib."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
             dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


def _check_value(key: str, value: Any) -> None:
    """The bounds a flag of the same meaning has; a router spec's syntax (its file is not opened)."""
    what = f"models.{key}"
    if key == "n_ctx":
        check_n_ctx(value, what)
    elif key == "threads":
        check_threads(value, what)
    elif key.endswith("_gpu_layers"):
        check_gpu_layers(value, what)
    elif key in SERVER_KEYS:
        check_server_value(key, value, what)
    elif key in ("small", "large") and not value.strip():
        raise ConfigError(f"{what} is empty, expected the path of a .gguf file")
    elif key == "router" and not _looks_like_path(value):
        from r2r_local.router.baselines import check_router_spec

        check_router_spec(value)


def _looks_like_path(spec: str) -> bool:
    return ".onnx" in spec or os.sep in spec


HEADER_COMMENT = "written by r2r-local; edit freely"


def write_user_config(models: dict[str, Any], path: Path | None = None, drop: tuple[str, ...] = (),
                      ) -> tuple[Path, Path | None]:
    """Set `models` (and remove `drop`) in the file's [models] table, keeping every other table,
    key and comment; returns the path and the backup that holds the previous file, if one was
    needed.

    Only the lines of the keys set change. Where the file's shape needs a rewrite of the whole
    document (which keeps every value but not the comments) or a changed or dropped line held a
    comment, the previous file is kept first, byte for byte and with its mode, in the first free
    one of config.toml.bak, config.toml.bak.1, ... (or in an existing backup that already holds
    exactly it): a backup is never overwritten, so the user's original survives any number of
    edits. A dropped key's value alone is not backed up: the caller names it (`r2r models add`
    prints the router it leaves out). The file is replaced atomically.
    """
    from r2r_local.toml_edit import dumps, edit_table

    path = path or config_path()
    for key in models:
        if key not in CONFIG_KEYS:
            raise ConfigError(f"unknown config key models.{key}")
    old = _read_config_text(path)
    edited = edit_table(old, "models", models, drop)
    if edited is None:
        import tomllib

        doc = tomllib.loads(old)  # load_user_config has parsed it already
        doc["models"] = {k: v for k, v in doc.get("models", {}).items() if k not in drop} | models
        new, lossless = dumps(doc), False
    elif not old.strip():
        new, lossless = dumps({"models": models}, HEADER_COMMENT), True
    else:
        new, lossless = edited
    backup = _backup(path) if old.strip() and not lossless else None
    _write(path, new.encode("utf-8"), path)
    return path, backup


def _backup(path: Path) -> Path:
    """Keep the current `path` in a backup file of its own (see write_user_config); returns it."""
    try:
        data, mode = path.read_bytes(), path.stat().st_mode & 0o7777
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot read it ({e.strerror or e})") from None
    for n in range(10_000):
        backup = path.with_name(path.name + (".bak" if n == 0 else f".bak.{n}"))
        try:
            if backup.read_bytes() == data:
                return backup
            continue
        except FileNotFoundError:
            _write(backup, data, path, mode)
            return backup
        except OSError:
            continue  # unreadable (or a directory): leave it alone, try the next name
    raise ConfigError(f"config file {path}: too many backups beside it ({path.name}.bak.*); delete some")


def _read_config_text(path: Path) -> str:
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"config directory {path.parent}: is a file, expected a directory")
    try:
        return path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path}: cannot read it ({e})") from None


def _write(target: Path, data: bytes, config: Path, mode: int | None = None) -> None:
    """Replace `target` with `data` atomically (r2r_local.atomic); errors name the config file."""
    from r2r_local.atomic import write_bytes

    try:
        write_bytes(target, data, mode=mode)
    except OSError as e:
        raise ConfigError(f"config file {config}: cannot write {target} ({e.strerror or e})") from None
