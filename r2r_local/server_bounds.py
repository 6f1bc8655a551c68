"""How a large model behind a server is asked: the request timeout, the retries and the number of
top log-probabilities per call (`--large-timeout`, `--large-retries`, `--large-top-k` and the
config file's `large_timeout`, `large_retries`, `large_top_k`).

They mean something only for a served large model (`--large http://HOST:PORT`); the commands
refuse the flags with a local GGUF (r2r_local.choice). Only the standard library is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from r2r_local.errors import ConfigError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 2  # extra tries of a request that could not connect or timed out
DEFAULT_TOP_K = 100  # llama-server's; vLLM caps log-probabilities at 20 unless started with --max-logprobs
VLLM_TOP_K = 20
MAX_TIMEOUT_S = 3600.0
MAX_RETRIES = 10
MAX_TOP_K = 1000

# Flag/config-key names, as in r2r_local.choice.KEYS and the config file's [models] table.
SERVER_KEYS = ("large_timeout", "large_retries", "large_top_k")


def flag_name(key: str) -> str:
    """The command-line spelling of a key: large_top_k -> --large-top-k."""
    return "--" + key.replace("_", "-")


def check_timeout(seconds: float | None, what: str = "--large-timeout") -> None:
    if seconds is not None and not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_S):
        raise ConfigError(f"{what} must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, got {seconds}")


def check_retries(n: int | None, what: str = "--large-retries") -> None:
    if n is not None and not 0 <= n <= MAX_RETRIES:
        raise ConfigError(f"{what} must be between 0 and {MAX_RETRIES}, got {n}")


def check_top_k(k: int | None, what: str = "--large-top-k") -> None:
    if k is not None and not 1 <= k <= MAX_TOP_K:
        raise ConfigError(f"{what} must be between 1 and {MAX_TOP_K}, got {k}")


def check_server_value(key: str, value: float | int | None, what: str | None = None) -> None:
    """The bounds of one of SERVER_KEYS (`what` names it in the message; default: the flag)."""
    checks = {"large_timeout": check_timeout, "large_retries": check_retries, "large_top_k": check_top_k}
    checks[key](value, what or flag_name(key))


@dataclass(frozen=True)
class ServerBounds:
    """timeout_s: seconds one request may wait for any answer (connect, send, each read);
    retries: extra tries after a refused connection or a timeout (an HTTP error is not retried);
    top_k: log-probabilities asked per call (sampling is truncated to them); None: the engine's
    default (DEFAULT_TOP_K for llama-server, VLLM_TOP_K for vLLM)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    top_k: int | None = None

    def __post_init__(self) -> None:
        check_timeout(self.timeout_s)
        check_retries(self.retries)
        check_top_k(self.top_k)

    @classmethod
    def of(cls, timeout_s: float | None, retries: int | None, top_k: int | None) -> "ServerBounds":
        """The given values, the defaults for those that are None (top-K: the engine's)."""
        return cls(DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s),
                   DEFAULT_RETRIES if retries is None else retries, top_k)
