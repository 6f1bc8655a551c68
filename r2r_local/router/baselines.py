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

    def decide(self, step: Step) -> Decision:
        return Decision(False)


class LargeOnly:
    """Always escalate: every token is chosen by the large model."""

    name = "llm"
    needs_hidden = False
    threshold = None

    def decide(self, step: Step) -> Decision:
        return Decision(True)


class RandomRouter:
    """Escalate each token independently with probability `share`, from its own seeded stream."""

    needs_hidden = False

    def __init__(self, share: float, seed: int = 0) -> None:
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"router random:P needs 0 <= P <= 1, got {share}")
        self.threshold = share
        self._rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        return f"random:{self.threshold:g}"

    def decide(self, step: Step) -> Decision:
        return Decision(bool(self._rng.random() < self.threshold))


class EntropyRouter:
    """Escalate when the small model's next-token entropy is at least `threshold` nats."""

    needs_hidden = False

    def __init__(self, threshold: float) -> None:
        if not np.isfinite(threshold) or threshold < 0:
            raise ConfigError(f"router entropy:T needs T >= 0 (nats), got {threshold}")
        self.threshold = threshold

    @property
    def name(self) -> str:
        return f"entropy:{self.threshold:g}"

    def decide(self, step: Step) -> Decision:
        return Decision(entropy(step.logits) >= self.threshold)


def _number(spec: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"router '{spec}': '{text}' is not a number ({SPEC_HELP})") from None


def parse_router(
    spec: str, *, seed: int = 0, n_embd: int | None = None, vocab_hash: str | None = None
) -> Router:
    """Build a router from its spec. An ONNX router is checked against the small model's
    hidden size `n_embd` and vocabulary hash when these are given."""
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if spec == "slm":
        return SmallOnly()
    if spec == "llm":
        return LargeOnly()
    if kind == "random" and arg:
        return RandomRouter(_number(spec, arg), seed)
    if kind == "entropy" and arg:
        return EntropyRouter(_number(spec, arg))
    is_path = spec.endswith(".onnx") or Path(spec).exists()  # a path may hold an '@' of its own
    path, at, threshold = (spec, "", "") if is_path or "@" not in spec else spec.rpartition("@")
    if path.endswith(".onnx") or Path(path).exists():
        from r2r_local.router.onnx import OnnxRouter

        router = OnnxRouter(path, n_embd=n_embd, vocab_hash=vocab_hash)
        if at:
            value = _number(spec, threshold)
            if not 0.0 < value < 1.0:
                raise ConfigError(f"router '{spec}': the threshold after '@' must be in (0, 1)")
            router.threshold = value
        return router
    raise ConfigError(f"unknown router '{spec}': expected {SPEC_HELP}")
