"""The baseline routers and the parser for router specs (`slm`, `llm`, `random:P`, `entropy:T`, a path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from r2r_local.errors import ConfigError
from r2r_local.router import Decision, Router, Step
from r2r_local.router.features import entropy

SPEC_HELP = "slm | llm | random:P | entropy:T | path/to/router.onnx[@THRESHOLD]"


class SmallOnly:
    """Never escalate: the small model alone."""

    name = "slm"
    needs_hidden = False
    may_escalate = False
    threshold = None

    def decide(self, step: Step, threshold: float | None = None) -> Decision:
        return Decision(False)


class LargeOnly:
    """Always escalate: every token is chosen by the large model."""

    name = "llm"
    needs_hidden = False
    may_escalate = True
    threshold = None

    def decide(self, step: Step, threshold: float | None = None) -> Decision:
        return Decision(True)


class RandomRouter:
    """Escalate each token independently with probability `share` (a request's threshold
    replaces it), from its own seeded stream."""

    needs_hidden = False
    may_escalate = True

    def __init__(self, share: float, seed: int = 0) -> None:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"router random:P needs 0 <= P <= 1, got {share}")
        self.threshold = share
        self._rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        return f"random:{self.threshold:g}"

    def decide(self, step: Step, threshold: float | None = None) -> Decision:
        share = self.threshold if threshold is None else threshold
        return Decision(bool(self._rng.random() < share))


class EntropyRouter:
    """Escalate when the small model's next-token entropy is at least `threshold` nats."""

    needs_hidden = False
    may_escalate = True

    def __init__(self, threshold: float) -> None:
        if not np.isfinite(threshold) or threshold < 0:
            raise ConfigError(f"router entropy:T needs T >= 0 (nats), got {threshold}")
        self.threshold = threshold

    @property
    def name(self) -> str:
        return f"entropy:{self.threshold:g}"

    def decide(self, step: Step, threshold: float | None = None) -> Decision:
        return Decision(entropy(step.logits) >= (self.threshold if threshold is None else threshold))


def _number(spec: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"router '{spec}': '{text}' is not a number ({SPEC_HELP})") from None


def _split_path(spec: str) -> tuple[str, str | None]:
    """(path, threshold text or None) of an ONNX spec `path[@T]`; a path may hold an '@' of its own."""
    is_path = spec.endswith(".onnx") or Path(spec).exists()
    if is_path or "@" not in spec:
        return spec, None
    path, _, threshold = spec.rpartition("@")
    return path, threshold


def check_router_spec(spec: str) -> Path | None:
    """Check a router spec without loading anything; returns the ONNX path it names, if any.

    Raises ConfigError/RouterError with one line: empty spec, a bad number, a missing file, a
    directory where a router file belongs, a threshold outside (0, 1)."""
    from r2r_local.errors import RouterError

    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if not spec:
        raise ConfigError(f"the router spec is empty: expected {SPEC_HELP}")
    if spec in ("slm", "llm"):
        return None
    if kind == "random" and arg:
        RandomRouter(_number(spec, arg))
        return None
    if kind == "entropy" and arg:
        EntropyRouter(_number(spec, arg))
        return None
    path, threshold = _split_path(spec)
    p = Path(path)
    if not (path.endswith(".onnx") or p.exists()):
        raise ConfigError(f"unknown router '{spec}': expected {SPEC_HELP}")
    if p.is_dir():
        raise RouterError(f"router {path}: is a directory, expected an .onnx file")
    if not p.exists():
        raise RouterError(f"router {path}: file not found")
    if threshold is not None:
        value = _number(spec, threshold)
        if not 0.0 < value < 1.0:
            raise ConfigError(f"router '{spec}': the threshold after '@' must be in (0, 1)")
    return p


def parse_router(
    spec: str, *, seed: int = 0, n_embd: int | None = None, vocab_hash: str | None = None
) -> Router:
    """Build a router from its spec. An ONNX router is checked against the small model's
    hidden size `n_embd` and vocabulary hash when these are given."""
    path = check_router_spec(spec)
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if spec == "slm":
        return SmallOnly()
    if spec == "llm":
        return LargeOnly()
    if kind == "random" and path is None:
        return RandomRouter(_number(spec, arg), seed)
    if kind == "entropy" and path is None:
        return EntropyRouter(_number(spec, arg))
    from r2r_local.router.onnx import OnnxRouter

    router = OnnxRouter(path, n_embd=n_embd, vocab_hash=vocab_hash)
    threshold = _split_path(spec)[1]
    if threshold is not None:
        router.threshold = _number(spec, threshold)
    return router
